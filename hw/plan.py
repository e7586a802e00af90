"""The engine plan: how a whole model (layers, directions, head) maps onto one set of lanes.

Pure Python, no HDL. :class:`EnginePlan` is computed from the IR and a
:class:`~lstm_fpga.hw.config.HardwareConfig` and holds every constant the Amaranth blocks
need: the matrices the lanes compute (one per layer direction, plus the Linear head), their
pass schedule and place in the weight banks, the shapes shared by all of them, the vector
memories and the job schedule.

Matrices (index ``m``): ``m = layer * D + direction`` for the ``L * D`` layer directions in
PyTorch's order (``l0``, ``l0_reverse``, ``l1``, ...), then ``m = L * D`` for the head.

* A layer direction is the ``4H x (I_k + H)`` gate matrix with rows interleaved unit-major
  (row ``r`` = gate ``r % 4`` of unit ``r // 4``). Its columns are walked in the order of its
  :attr:`MatrixPlan.segments`: layer 0 reads ``[x_t ; h_{t-1}]`` (input first: ``x`` is there
  early, the recurrent ``h`` comes last), layers ``k > 0`` read ``[h_{t-1} ; in_t]`` (their
  input is the layer below's ``h_t``, produced just before: reading it last hides the
  latency of the gate and cell pipeline).
* A GRU layer direction is the ``3H x (I_k + H)`` matrix ``[W_ih | W_hh]`` with three rows
  per unit, ``r, z, n`` (:data:`GRU_UNIT_ROWS`, :attr:`MatrixPlan.unit_rows` = 3), biases
  ``b_ir + b_hr``, ``b_iz + b_hz`` and ``b_in``. The lane holding an ``n`` row *splits* its
  sum (:class:`~lstm_fpga.hw.mvu.MatrixVectorUnit`): the recurrent columns' products go to a
  second accumulator that starts from ``b_hn`` (the bias banks' second half,
  :mod:`lstm_fpga.hw.banks`), so the drain hands out the four sums
  :func:`lstm_fpga.sw.reference.gru_accumulators` computes (``r``, ``z``, ``W_in x + b_in``,
  ``W_hn h + b_hn``) from three rows, ``n``'s input and recurrent parts apart as PyTorch
  defines them: a GRU step takes ``ceil(3H (I_k + H) / P)`` lane cycles, its bound
  (:attr:`MatrixPlan.bound`).
* The head is the ``O x D*H`` matrix of ``nn.Linear``, rows in order, padded with zero rows to
  a multiple of 4 so that the drain hands it out four rows (one "unit") at a time. With
  attention pooling it is the score matrix ``W`` (``A x D*H``, bias ``b``, output format
  ``attention.preact``: :func:`lane_head`), on every step, into the attention unit.

Each lane owns its weight bank and bias bank; a matrix occupies words ``weight_base ..
weight_base + passes * span - 1`` of every weight bank (and ``bias_base .. bias_base +
passes - 1`` of every bias bank), laid out as :mod:`lstm_fpga.hw.banks` describes.

Schedules: unidirectional models *stream*: each time step runs the jobs ``l0, l1, ..., l(L-1)``
(and the head when it applies to that step), so the top layer's ``h_t`` leaves while the input
is still streaming. Bidirectional models are *buffered*: a whole sequence (at most
``max_seq_len`` steps) is stored first; each layer runs its forward and reverse directions
interleaved step by step (``(k, fwd, s)``, ``(k, rev, T-1-s)``), its outputs go to a sequence
buffer, and the next layer reads the ``2H`` concatenation from there (an LSTMP: each
direction's gate job is followed by its projection job, whose ``R`` rows are the buffer's
outputs; the next layer reads ``2R``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property

from ..sw.ir import LstmModel
from ..sw.numerics import (
    DspPackingError,
    FixedFormat,
    HeadDatapath,
    LstmDatapath,
    PackedProduct,
    dsp_packing,
)
from ..sw.shape import CellType
from .banks import BankImages, bank_images
from .compatibility import check_compatible, check_supported
from .config import GATES_PER_UNIT, HardwareConfig, HardwareConfigError
from .fixed import common_signed_shape, format_shape

__all__ = [
    "BUFFERED",
    "GRU_UNIT_ROWS",
    "GRU_UNIT_SUMS",
    "STREAMING",
    "EnginePlan",
    "MatrixPlan",
    "Segment",
    "SegmentKind",
    "cycle_bound",
    "gru_lane_layout",
    "lane_head",
    "matrix_bound",
]

#: Schedule of unidirectional models: step by step, all layers per step.
STREAMING = "streaming"
#: Schedule of bidirectional models: whole sequences, layer by layer.
BUFFERED = "buffered"
#: The three rows of a GRU unit on the lanes, each over ``[x; h]``: r, z and n (whose lane
#: keeps the input part ``W_in x + b_in`` and the recurrent part ``W_hn h + b_hn`` apart).
GRU_UNIT_ROWS = ("r", "z", "n")
#: The four sums the drain hands out per GRU unit (``gates[0 .. 3]`` of a unit).
GRU_UNIT_SUMS = ("r", "z", "xn", "hn")


class SegmentKind:
    """What a run of columns of a matrix multiplies."""

    #: The layer's input (``x_t`` for layer 0, the layer below's ``h_t`` otherwise): ``W_ih``.
    INPUT = "input"
    #: The layer direction's own previous ``h``: ``W_hh``.
    RECURRENT = "recurrent"
    #: The LSTM output feeding the Linear head: ``W``.
    HEAD = "head"
    #: An LSTMP's cell output ``m_t`` (``H`` columns) under its projection ``W_hr``.
    PROJECTION = "projection"


@dataclass(frozen=True)
class Segment:
    """``length`` consecutive columns of a matrix, their kind and product alignment shift."""

    kind: str
    length: int
    shift: int


@dataclass(frozen=True)
class MatrixPlan:
    """One matrix on the lanes: a layer direction's gate matrix or the head."""

    index: int
    name: str
    layer: int  # -1 for the head
    reverse: bool
    real_rows: int  # 4H, or O for the head
    rows: int  # real_rows padded to a multiple of 4
    segments: tuple[Segment, ...]
    bias_shift: int
    acc_frac: int
    row_lanes: int
    groups: int
    weight_base: int
    bias_base: int
    lanes_requested: int
    #: An LSTMP's projection ``W_hr`` (``R`` rows over ``H`` columns) of layer direction
    #: ``projects`` (its matrix index); ``None`` for the other matrices.
    projects: int | None = None
    #: Rows per unit the drain hands out: 4 (an LSTM's gates i, f, g, o; four head or
    #: projection rows), 3 for a GRU layer direction (r, z, n; the ``n`` row's two sums).
    unit_rows: int = GATES_PER_UNIT

    @property
    def split_n(self) -> bool:
        """A GRU layer direction: row ``3u + 2`` (unit ``u``'s ``n``) keeps its input and
        recurrent parts in two sums."""
        return self.unit_rows == 3

    @property
    def is_head(self) -> bool:
        return self.layer < 0

    @property
    def is_projection(self) -> bool:
        return self.projects is not None

    @property
    def row_order(self) -> bool:
        """Rows in PyTorch order, four per unit (the head and a projection), not gate-major
        units."""
        return self.is_head or self.is_projection

    @property
    def columns(self) -> int:
        return sum(s.length for s in self.segments)

    @property
    def span(self) -> int:
        """Cycles of a pass: ``ceil(columns / groups)``."""
        return math.ceil(self.columns / self.groups)

    @property
    def passes(self) -> int:
        return math.ceil(self.rows / self.row_lanes)

    @property
    def units(self) -> int:
        """Units of :attr:`unit_rows` rows the drain hands out: ``H`` for a layer
        direction."""
        return self.rows // self.unit_rows

    @property
    def last_pass_rows(self) -> int:
        return self.rows - (self.passes - 1) * self.row_lanes

    @property
    def pass_units(self) -> tuple[tuple[int, int], ...]:
        """The units each pass completes, ``(first, end)`` per pass: unit ``u`` is complete
        with the pass of its last row ``k u + k - 1`` (``k``: :attr:`unit_rows`; a unit may
        straddle two passes when ``row_lanes`` is not a multiple of ``k``; a pass may
        complete none)."""
        k = self.unit_rows
        bounds = [0] * (self.passes + 1)
        for u in range(self.units):
            bounds[(k * u + k - 1) // self.row_lanes + 1] = u + 1
        for p in range(1, len(bounds)):  # (a pass that completes no unit)
            bounds[p] = max(bounds[p], bounds[p - 1])
        return tuple(itertools.pairwise(bounds))

    @property
    def words(self) -> int:
        """Words of every weight bank this matrix occupies."""
        return self.passes * self.span

    @property
    def mac_cycles(self) -> int:
        """Cycles the lanes spend on one evaluation of this matrix."""
        return self.passes * self.span

    @property
    def bound(self) -> int:
        """``ceil(rows * columns / P)``: the fewest cycles ``P`` multipliers can need."""
        return matrix_bound(self.useful_rows, self.columns, self.lanes_requested)

    @property
    def useful_rows(self) -> int:
        """Rows whose products the bound counts: :attr:`real_rows` (``4H``; a GRU's ``3H``,
        the rows of ``W_ih`` and ``W_hh``)."""
        return self.real_rows

    def torch_row(self, row: int) -> int:
        """The PyTorch row (gate-major, ``gate * H + unit``) of lane-order row ``row``."""
        if self.row_order:
            return row
        k = self.unit_rows
        return (row % k) * self.units + row // k

    def unit_major_row(self, torch_row: int) -> int:
        """The lane-order row of PyTorch row ``torch_row`` (inverse of :meth:`torch_row`)."""
        if self.row_order:
            return torch_row
        return (torch_row % self.units) * self.unit_rows + torch_row // self.units

    def walk_column(self, column: int) -> int:
        """The place in the walk of column ``column`` of ``[W_ih | W_hh]`` (of ``W`` for the
        head): layer 0 walks the input first, layers above the recurrent ``h`` first."""
        first = self.segments[0]
        if first.kind != SegmentKind.RECURRENT:
            return column
        inputs = self.columns - first.length
        return column + first.length if column < inputs else column - inputs


#: Cycles a pass counts for at least when :func:`gru_lane_layout` compares lane layouts (a
#: pass's last column waits for the previous pass's drain load: 7 to 11 cycles, with margin).
PASS_TURNAROUND = 12


def gru_lane_layout(
    lanes: int, rows: int, layer_columns: list[int], max_columns: int
) -> tuple[int, int]:
    """``(row_lanes, groups)`` of a GRU plan: the layout of ``P`` lanes as ``groups`` column
    groups of ``row_lanes`` lanes with the fewest cycles per step, ``sum over layer
    directions of ceil(3H / row_lanes) * max(ceil(columns / groups), PASS_TURNAROUND)``, the
    most row lanes (fewest groups: the shortest adder tree) on a tie. ``3H`` rows leave a
    pass of ``P`` rows partly idle where ``P`` does not divide them (GRU(8, 24) at P=16: 72
    rows, 5 passes of 16 lanes x 32 columns = 160 cycles against the bound's 144); ``row_lanes
    = 8`` in 2 groups takes 9 passes x 16 = 144. A pass's last column waits for the previous
    pass to land in the drain (``LoopLatencies.to_drain`` + 1 cycles after its own, 7 to 11
    with 1 to 8 groups), so passes shorter than :data:`PASS_TURNAROUND` cycles count as that
    long. The LSTM's layout (``min(P, 4H)`` row lanes) is the default."""
    best = None
    for row_lanes in range(1, min(lanes, rows) + 1):
        groups = max(1, min(lanes // row_lanes, max_columns))
        cost = sum(
            -(-rows // row_lanes) * max(-(-c // groups), PASS_TURNAROUND) for c in layer_columns
        )
        key = (cost, -row_lanes)
        if best is None or key < best[0]:
            best = (key, (row_lanes, groups))
    return best[1]


def lane_head(model: LstmModel):
    """The Linear matrix of ``model`` the lanes compute as their head job
    (:class:`~lstm_fpga.sw.ir.LinearHead`): the model's head; with attention pooling the
    score matrix ``u_t = W h_t + b``
    (:meth:`~lstm_fpga.sw.ir.AttentionPooling.score_head`; ``docs/attention.md``)."""
    if model.attention is None:
        return model.head
    return model.attention.score_head()


def matrix_bound(rows: int, columns: int, lanes: int) -> int:
    """``ceil(rows * columns / P)``: the fewest cycles ``P`` multipliers need for one
    evaluation of a ``rows x columns`` matrix (the speed limit every bound sums)."""
    return math.ceil(rows * columns / lanes)


def cycle_bound(
    model_or_input_size,
    hidden_size: int | None = None,
    *,
    lanes: int,
    gates: int = 4,
    proj_size: int = 0,
) -> int:
    """The fewest cycles per time step ``P`` multipliers can need.

    ``cycle_bound(model, lanes=P)``: the sum over the model's layer directions of
    ``ceil(GH (I_k + H) / P)`` (``I_k``: the layer's input size; ``G`` = 4 for an LSTM, 3 for
    a GRU; ``ceil(4H(I+H)/P)`` for one LSTM layer); the same as :meth:`EnginePlan.step_bound`
    without building a plan. ``cycle_bound(I, H, lanes=P)``: one LSTM layer direction
    (``gates=3``: a GRU's). An LSTM with ``proj_size = R`` (the model's, or ``proj_size=R``)
    has two matrices per direction, the gates over ``[x; h]`` with ``R`` recurrent columns
    and the projection: ``ceil(4H (I_k + R) / P) + ceil(R H / P)`` (docs/lstmp.md).
    """
    if isinstance(model_or_input_size, LstmModel):
        if hidden_size is not None:
            raise TypeError("pass either a model or (input_size, hidden_size), not both")
        model = model_or_input_size
        shapes = [(d.input_size, d.hidden_size) for d in model.directions]
        gates, proj_size = model.cell_type.gates, model.proj_size
    elif hidden_size is None:
        raise TypeError("cycle_bound(I, H, lanes=P) needs the hidden size")
    else:
        shapes = [(model_or_input_size, hidden_size)]
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
        raise HardwareConfigError(f"lanes must be a positive int, not {lanes!r}")
    if proj_size:
        R = proj_size
        return sum(matrix_bound(4 * H, I + R, lanes) + matrix_bound(R, H, lanes) for I, H in shapes)
    return sum(matrix_bound(gates * H, I + H, lanes) for I, H in shapes)


class EnginePlan:
    """Everything the engine's blocks need to know about ``model`` on ``config``'s lanes.

    Built once per design and passed to every block. The lanes form :attr:`groups` groups of
    :attr:`row_lanes` lanes (lane ``p`` is lane ``q = p % row_lanes`` of group
    ``g = p // row_lanes``). Pass ``k`` of a matrix computes rows ``k*row_lanes + q``; in
    cycle ``j`` of a pass group ``g`` multiplies column ``j*groups + g``, and the groups'
    partial sums of a row are added when the pass ends. With ``P <= 4H`` (a GRU's ``3H``) there
    is one group (row-parallel, one column per cycle); only ``P >= 8H`` (``6H``) gives several,
    capped at the widest matrix's columns. :attr:`lanes` (``groups * row_lanes <= P``) are built.

    With ``config.dsp_packing == 2`` lanes ``2k`` and ``2k + 1`` of a group share one DSP
    multiplier (:attr:`packed_product`, checked here: ``HardwareConfigError`` when the widths do
    not fit ``config.dsp``); :attr:`lane_dsps` counts the multipliers.
    """

    def __init__(self, model: LstmModel, config: HardwareConfig):
        check_supported(model, config)
        self.model = model
        self.config = config
        H = model.hidden_size
        self.hidden_size = H
        self.input_size = model.input_size
        self.num_layers = model.num_layers
        self.num_directions = model.num_directions
        #: Attention pooling (:class:`~lstm_fpga.sw.ir.AttentionPooling`) and the head it
        #: feeds: they run in :class:`~lstm_fpga.hw.attention.AttentionUnit`, after the lanes,
        #: which run the layers and the score matrix and hand out ``h_t`` and ``u_t``.
        self.attention = model.attention
        self.attention_head = model.head if model.attention is not None else None
        #: With attention pooling the score matrix ``u_t = W h_t + b`` is the lanes' head
        #: job on every step (:meth:`AttentionPooling.score_head`), its ``A`` outputs
        #: (``attention.preact``) go to the unit beside ``h_t`` (``docs/attention.md``).
        self.score_on_lanes = model.attention is not None
        #: The Linear matrix of the lanes' head job (:func:`lane_head`): the model's head,
        #: with attention pooling the score matrix (:attr:`score_on_lanes`); or none.
        self.head = lane_head(model)
        #: The cell of every layer direction: :attr:`CellType.LSTM` or :attr:`CellType.GRU`.
        self.cell_type = model.cell_type
        self.schedule = BUFFERED if model.bidirectional else STREAMING
        # The lanes' output: every step into the attention unit (which outputs once).
        self.output_mode = config.output if model.attention is None else "all"
        self.max_seq_len = config.max_seq_len if model.bidirectional else None
        self.input_elements = config.input_elements
        self.datapaths: tuple[LstmDatapath, ...] = tuple(
            d.datapath(model.rounding, model.overflow) for d in model.directions
        )
        self.head_datapath: HeadDatapath | None = (
            self.head.datapath(model.rounding, model.overflow) if self.head is not None else None
        )

        #: ``R`` of an LSTMP (``nn.LSTM(proj_size=R)``), 0 without a projection.
        self.proj_size = R = model.proj_size
        #: Features of ``h_t``: ``R`` for an LSTMP, else ``H``.
        self.real_hidden_size = Hr = R or H
        P = config.lanes
        #: Rows per unit of a layer direction: 4 (LSTM), 3 (GRU: r, z, n).
        self.unit_rows = unit_rows = 3 if model.cell_type is CellType.GRU else GATES_PER_UNIT
        rows = unit_rows * H
        columns = [d.input_size + Hr for d in model.directions]
        if self.head is not None:
            columns.append(self.head.in_features)
        if R:
            columns.append(H)
        self.row_lanes = min(P, rows)
        self.groups = max(1, min(P // rows, max(columns)))
        if model.cell_type is CellType.GRU:
            layer_columns = [d.input_size + Hr for d in model.directions]
            self.row_lanes, self.groups = gru_lane_layout(P, rows, layer_columns, max(columns))
        self.lanes = self.groups * self.row_lanes

        matrices: list[MatrixPlan] = []

        def place(**fields) -> None:
            """Append a matrix after the ones placed so far in the weight and bias banks."""
            previous = matrices[-1] if matrices else None
            weight_base = previous.weight_base + previous.words if previous else 0
            bias_base = previous.bias_base + previous.passes if previous else 0
            matrices.append(
                MatrixPlan(
                    index=len(matrices),
                    row_lanes=self.row_lanes,
                    groups=self.groups,
                    weight_base=weight_base,
                    bias_base=bias_base,
                    lanes_requested=P,
                    **fields,
                )
            )

        for d, dp in zip(model.directions, self.datapaths, strict=True):
            shift_x, shift_h = dp.gate_acc.shifts
            input_segment = Segment(SegmentKind.INPUT, d.input_size, shift_x)
            recurrent = Segment(SegmentKind.RECURRENT, Hr, shift_h)
            segments = (input_segment, recurrent) if d.layer == 0 else (recurrent, input_segment)
            place(
                name=d.name,
                layer=d.layer,
                reverse=d.reverse,
                real_rows=rows,
                rows=rows,
                segments=segments,
                bias_shift=dp.gate_acc.bias_shift,
                acc_frac=dp.gate_acc.frac,
                unit_rows=unit_rows,
            )
        if self.head is not None:
            hd = self.head_datapath
            out = self.head.out_features
            place(
                name="head",
                layer=-1,
                reverse=False,
                real_rows=out,
                rows=-(-out // GATES_PER_UNIT) * GATES_PER_UNIT,
                segments=(Segment(SegmentKind.HEAD, self.head.in_features, hd.acc.shifts[0]),),
                bias_shift=hd.acc.bias_shift,
                acc_frac=hd.acc.frac,
            )
        if R:
            # An LSTMP's projections after the head: matrix ``projection_index(k)`` for layer
            # direction ``k`` (``W_hr``: R rows in order, four per unit, no bias).
            for k, (d, dp) in enumerate(zip(model.directions, self.datapaths, strict=True)):
                place(
                    name=f"{d.name}.proj",
                    layer=d.layer,
                    reverse=d.reverse,
                    real_rows=R,
                    rows=-(-R // GATES_PER_UNIT) * GATES_PER_UNIT,
                    segments=(Segment(SegmentKind.PROJECTION, H, dp.proj_acc.shifts[0]),),
                    bias_shift=0,
                    acc_frac=dp.proj_acc.frac,
                    projects=k,
                )
        self.matrices: tuple[MatrixPlan, ...] = tuple(matrices)
        last = matrices[-1]
        self.bank_depth = last.weight_base + last.words
        self.bias_depth = last.bias_base + last.passes
        self.packed_product: PackedProduct | None = None
        if config.dsp_packing == 2:
            try:
                self.packed_product = dsp_packing(
                    self.weight_shape.width, self.element_shape.width, config.dsp
                )
            except DspPackingError as error:
                raise HardwareConfigError(str(error)) from None

    # -- shape of the model ------------------------------------------------------------------
    @property
    def num_directions_total(self) -> int:
        """``L * D``: layer directions (the matrices before the head)."""
        return self.num_layers * self.num_directions

    @property
    def lstm_matrices(self) -> tuple[MatrixPlan, ...]:
        return self.matrices[: self.num_directions_total]

    @property
    def head_matrix(self) -> MatrixPlan | None:
        return self.matrices[self.head_index] if self.head is not None else None

    @property
    def projected(self) -> bool:
        """The model is an LSTMP (``nn.LSTM(proj_size=R)``): each layer direction has a
        projection matrix (:meth:`projection_index`)."""
        return self.proj_size > 0

    def projection_index(self, k: int) -> int:
        """Matrix index of layer direction ``k``'s projection (after the head, if any)."""
        return self.num_directions_total + (self.head is not None) + k

    @property
    def projection_matrices(self) -> tuple[MatrixPlan, ...]:
        """The projections of an LSTMP, one per layer direction (none otherwise)."""
        if not self.projected:
            return ()
        return self.matrices[self.projection_index(0) :]

    @property
    def head_index(self) -> int:
        """Matrix index of the head (``L * D``; one past the last layer direction)."""
        return self.num_directions_total

    @property
    def head_out(self) -> int:
        """Rows of the lanes' head job (:attr:`head`): ``O``, attention's ``A`` or 0."""
        return 0 if self.head is None else self.head.out_features

    @property
    def model_head_out(self) -> int:
        """``O`` of the model's Linear head (on the lanes or after attention pooling), else
        0."""
        return 0 if self.model.head is None else self.model.head.out_features

    @property
    def output_features(self) -> int:
        """Elements of one output vector on ``y``: ``O`` with a head (on the lanes or after
        attention pooling), else ``D * H`` (``D * R`` for an LSTMP)."""
        if self.attention_head is not None:
            return self.attention_head.out_features
        if self.head is not None:
            return self.head_out
        return self.num_directions * self.real_hidden_size

    @property
    def lane_output_features(self) -> int:
        """Elements of the lanes' output vector: :attr:`output_features`, except with
        attention pooling: the top layer's ``h_t`` (``D * H``, ``D * R``) into the unit."""
        if self.attention is not None:
            return self.num_directions * self.real_hidden_size
        return self.output_features

    @property
    def attention_steps(self) -> int | None:
        """The longest sequence the attention unit keeps (``HardwareConfig.max_seq_len``;
        ``None`` without attention pooling)."""
        return self.config.max_seq_len if self.attention is not None else None

    @property
    def copies_outputs(self) -> bool:
        """The output reader copies each buffered sequence's top-layer outputs out of the
        vector memory: :attr:`y_source` ``"copy"``, or a bidirectional model with attention
        pooling (the ``h_t`` into the attention unit, beside the score jobs' ``u_t``)."""
        return self.y_source == "copy" or (self.attention is not None and self.schedule == BUFFERED)

    @property
    def y_source(self) -> str:
        """Which block feeds ``y``: ``"head"``, ``"cell"`` (streaming ``h_t``) or ``"copy"``
        (buffered outputs read back from the sequence buffer)."""
        if self.head is not None:
            return "head"
        return "cell" if self.schedule == STREAMING else "copy"

    # -- shared shapes -----------------------------------------------------------------------
    @cached_property
    def hidden_formats(self) -> tuple[FixedFormat, ...]:
        return tuple(dp.formats.hidden for dp in self.datapaths)

    @cached_property
    def vector_formats(self) -> tuple[FixedFormat, ...]:
        """Formats of the values the vector memory holds: every ``h`` (and an LSTMP's cell
        outputs ``m_t``, ``proj_in``)."""
        if not self.projected:
            return self.hidden_formats
        return (*self.hidden_formats, *(dp.formats.proj_in for dp in self.datapaths))

    @cached_property
    def element_shape(self):
        """Shape of a broadcast element (any ``x``, ``h`` or LSTMP ``m_t`` the lanes
        multiply)."""
        return common_signed_shape(self.model.input_format, *self.vector_formats)

    @cached_property
    def weight_shape(self):
        formats = [f for dp in self.datapaths for f in (dp.formats.w_ih, dp.formats.w_hh)]
        if self.projected:
            formats += [dp.formats.w_hr for dp in self.datapaths]
        if self.head is not None:
            formats.append(self.head.formats.weight)
        return common_signed_shape(*formats)

    @cached_property
    def bias_shape(self):
        formats = [dp.formats.bias for dp in self.datapaths]
        if self.head is not None:
            formats.append(self.head.formats.bias)
        return common_signed_shape(*formats)

    @cached_property
    def acc_width(self) -> int:
        """Accumulator width: the widest of every matrix's derived width (each matrix's sums
        fit its own, so none overflows)."""
        widths = [dp.gate_acc.width for dp in self.datapaths]
        if self.projected:
            widths += [dp.proj_acc.width for dp in self.datapaths]
        if self.head_datapath is not None:
            widths.append(self.head_datapath.acc.width)
        return max(widths)

    @cached_property
    def state_shape(self):
        """Shape of ``h`` values of any layer (hidden formats; an LSTMP's vector memory words
        hold its cell outputs ``m_t`` too: :attr:`vector_formats`)."""
        return common_signed_shape(*self.vector_formats)

    @property
    def is_gru(self) -> bool:
        return self.cell_type is CellType.GRU

    @cached_property
    def cell_shape(self):
        """Shape of the state the cell pipeline keeps per unit: ``c`` (cell formats) for an
        LSTM; a GRU's pipeline keeps its own copy of ``h_{t-1}`` (:attr:`state_shape`)."""
        if self.is_gru:
            return self.state_shape
        return common_signed_shape(*(dp.formats.cell for dp in self.datapaths))

    @property
    def input_shape(self):
        return format_shape(self.model.input_format)

    @property
    def output_shape(self):
        """Shape of an element of the lanes' output (the head's output format, else the last
        layer's hidden; with attention pooling the last layer's hidden, the unit's input)."""
        if self.head is not None and self.attention is None:
            return format_shape(self.head.formats.output)
        return format_shape(self.model.output_format)

    @property
    def y_shape(self):
        """Shape of a ``y`` element of the top: :attr:`output_shape`, or with attention
        pooling the head's output format."""
        if self.attention_head is not None:
            return format_shape(self.attention_head.formats.output)
        return self.output_shape

    @property
    def lane_pairs(self) -> tuple[tuple[int, int], ...]:
        """Lanes ``(2k, 2k + 1)`` of a group that share one packed multiplier (none without
        packing; an odd group's last lane keeps its own)."""
        if self.packed_product is None:
            return ()
        return tuple(
            (g * self.row_lanes + q, g * self.row_lanes + q + 1)
            for g in range(self.groups)
            for q in range(0, self.row_lanes - 1, 2)
        )

    @property
    def lane_dsps(self) -> int:
        """DSP multipliers of the lanes: :attr:`lanes`, or ``ceil(lanes / 2)`` packed."""
        return self.lanes - len(self.lane_pairs)

    # -- memories ----------------------------------------------------------------------------
    @property
    def x_beats_per_step(self) -> int:
        """Input beats of one ``x_t``: ``ceil(I / input_elements)``."""
        return -(-self.input_size // self.input_elements)

    @property
    def x_slots(self) -> int:
        """``x`` buffer slots: 2 steps (streaming) or 2 whole sequences (buffered)."""
        return 2

    @property
    def x_slot_beats(self) -> int:
        """Words of one ``x`` slot in each of the ``input_elements`` banks (with
        :attr:`weight_reuse` a group step: ``B`` steps, sequence ``b``'s at ``b *
        x_beats_per_step``)."""
        steps = 1 if self.schedule == STREAMING else self.max_seq_len
        if self.weight_reuse:  # a group step: x_t of the B sequences, sequence b at b beats
            steps = self.interleave
        return steps * self.x_beats_per_step

    @property
    def vector_buffers(self) -> int:
        """Output buffers of layers: one per layer (streaming, 2 steps each) or two that
        alternate between layers (buffered, a whole sequence each; two even for one layer
        without a head, whose outputs are streamed out of one buffer while the next sequence
        computes into the other)."""
        if self.schedule == STREAMING:
            return self.num_layers
        if self.copies_outputs:
            return 2
        return min(self.num_layers, 2)

    @property
    def interleave(self) -> int:
        """``B``: sequences interleaved on the lanes (:attr:`HardwareConfig.interleave`)."""
        return self.config.interleave

    @property
    def weight_reuse(self) -> bool:
        """External weights with ``B > 1`` interleaved sequences: each fetched weight column
        serves the group's ``B`` sequences (``docs/interleave.md#external-weights``). The
        walk is column-level, ``(pass, column, sequence)``: a group job computes one layer
        (or the head) for all ``B`` sequences of a step, each column issued ``B`` times in a
        row; the ``x`` ring holds whole group steps. Any lane count: with several passes
        per matrix the units leave ``(pass, sequence, unit)`` (:attr:`MatrixPlan.pass_units`;
        ``y``/``state`` chunk by chunk)."""
        return self.interleave > 1 and self.config.weights == "external"

    @property
    def state_group_words(self) -> int:
        """Words of one state region for the ``B`` interleaved sequences: ``B * L * D * H``
        (sequence ``b``'s vector at ``b * L * D * H``)."""
        return self.interleave * self.state_words

    @property
    def vector_slot_words(self) -> int:
        """Words of one step in a layer's output buffer: ``D * H`` (buffered LSTMP: ``D * R``,
        the forward ``h_t`` then the reverse one, as the layer above and ``y`` read them)."""
        if self.schedule == BUFFERED:
            return self.num_directions * self.real_hidden_size
        return self.num_directions * self.hidden_size

    @property
    def vector_buffer_words(self) -> int:
        steps = 2 * self.interleave if self.schedule == STREAMING else self.max_seq_len
        return steps * self.vector_slot_words

    @property
    def vector_depth(self) -> int:
        """Words of the vector memory: the layers' output buffers, then an LSTMP's cell
        outputs (:meth:`cell_output_base`)."""
        return self.vector_buffers * self.vector_buffer_words + self.cell_output_words

    @property
    def cell_output_words(self) -> int:
        """An LSTMP's ``m_t`` region: ``H`` words per layer direction (and interleaved
        sequence); 0 without a projection."""
        if not self.projected:
            return 0
        return self.interleave * self.num_directions_total * self.hidden_size

    def cell_output_base(self, k: int) -> int:
        """Word of ``m_t[0]`` of layer direction ``k`` (an LSTMP's cell output, which its
        projection job reads): after the output buffers, ``H`` words per layer direction."""
        return self.vector_buffers * self.vector_buffer_words + k * self.hidden_size

    def vector_buffer_base(self, layer: int) -> int:
        return (layer % self.vector_buffers) * self.vector_buffer_words

    @property
    def state_words(self) -> int:
        """``L * D * H``: one state vector per layer direction."""
        return self.num_directions_total * self.hidden_size

    # -- performance ------------------------------------------------------------------------
    def step_bound(self) -> int:
        """Sum over layer directions of ``ceil(GH (I_k + H) / P)`` (``G`` = 4 for an LSTM, 3
        for a GRU; an LSTMP adds its projections' ``ceil(RH/P)``): cycles per time step."""
        return sum(m.bound for m in (*self.lstm_matrices, *self.projection_matrices))

    def sequence_bound(self, steps: int) -> int:
        """The bound of a whole sequence of ``steps`` steps: every layer direction per step,
        plus the head on every step (output ``"all"``) or once (``"last"``)."""
        total = steps * self.step_bound()
        if self.head is not None:
            runs = steps if self.output_mode == "all" else 1
            total += runs * self.head_matrix.bound
        return total

    def sequence_mac_cycles(self, steps: int) -> int:
        """Cycles the lanes are busy for a sequence (passes times spans)."""
        per_step = (*self.lstm_matrices, *self.projection_matrices)
        total = steps * sum(m.mac_cycles for m in per_step)
        if self.head is not None:
            runs = steps if self.output_mode == "all" else 1
            total += runs * self.head_matrix.mac_cycles
        return total

    # -- weight banks ------------------------------------------------------------------------
    @cached_property
    def images(self) -> BankImages:
        """Contents of every weight and bias bank for the plan's model."""
        return bank_images(self)

    def bank_images(self, model: LstmModel | None = None) -> BankImages:
        """Contents of every weight and bias bank for ``model`` (default: the plan's; another
        must have the same shape and formats): :func:`lstm_fpga.hw.banks.bank_images`."""
        return self.images if model is None or model is self.model else bank_images(self, model)

    def check_compatible(self, model: LstmModel) -> None:
        """Raise unless ``model`` has this plan's shape and formats (the hardware bakes the
        formats in; only the integer weights can be reloaded)."""
        check_compatible(model, self.model)
