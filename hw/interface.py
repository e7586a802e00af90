"""The contract of the generated top module ``lstm_top``, in one object: :class:`TopInterface`.

Everything a driver of ``lstm_top`` needs, so that none re-derives it: the port table (names,
directions, widths, in declaration order), the bit fields of every stream's ``tdata``, the
packing of ``x`` beats, ``init`` values and weight words, the unpacking of ``y`` and
``state`` beats, the idle value of every input, the saturation counters, which models the
hardware runs (:meth:`TopInterface.check_compatible`) and the cycle bound. It is built from
an :class:`~lstm_fpga.hw.plan.EnginePlan` and holds plain Python values (names, ints, NumPy
arrays), so the cocotb testbench, the C++ Verilator harness generator, the tests, the
benchmarks and the manifest writer all read it without touching HDL. :class:`LstmTop
<lstm_fpga.hw.engine.LstmTop>` builds its Amaranth signature from the same table, and a test
reads the table back from the generated Verilog.

Port names are Amaranth's flattening of the top's signature: stream ``s`` has ports
``s`` + :data:`SEPARATOR` + ``tdata``/``tvalid``/``tready``/``tlast``
(:data:`AXI_MEMBERS`). No other module types them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..sw.ir import LstmModel
from ..sw.numerics import FixedFormat
from .cell import EXTRA_STAGES, GateCellPipeline, state_layout
from .compatibility import check_same_shape
from .external import external_ports
from .gru_cell import GruCellPipeline
from .memory import write_layout
from .mvu import pass_latency
from .plan import EnginePlan
from .recurrence import LoopLatencies, recurrence_sequence_bound, recurrence_step_bound
from .reload import WeightWord, weight_load_words
from .sequencer import CYCLE_COUNTER_WIDTH, Sequencer

__all__ = [
    "AXI_MEMBERS",
    "CLOCK",
    "RESET",
    "SATURATION_COUNTER_WIDTH",
    "SATURATION_KINDS",
    "SEPARATOR",
    "TOP_NAME",
    "AxiMembers",
    "Control",
    "Direction",
    "Field",
    "Port",
    "SaturationKind",
    "Status",
    "StreamPorts",
    "TopInterface",
    "cell_extra_stages",
    "sign_extend",
]

#: Name of the generated top module (and of its Verilog file, ``lstm_top.v``).
TOP_NAME = "lstm_top"
#: Clock input (rising edge) and synchronous, active-high reset input.
CLOCK = "clk"
RESET = "rst"
#: How Amaranth joins a stream's name and its member's name in a flattened port name.
SEPARATOR = "__"
#: Width of each saturation counter output.
SATURATION_COUNTER_WIDTH = 32


class Direction(enum.Enum):
    """Direction of a port, seen from ``lstm_top``."""

    IN = "in"
    OUT = "out"

    @property
    def verilog(self) -> str:
        return "input" if self is Direction.IN else "output"


class SaturationKind(enum.Enum):
    """Tensors whose saturations the hardware counts (the reference's ``SaturationCounts``
    fields, in their order). ``ATTENTION`` counts every clamp of attention pooling (the score
    pre-activation ``u_t``, the score, the weights ``alpha`` and the context: the reference's
    ``result.attention.saturations`` summed); its head's clamps count as ``HEAD``. Every
    ``lstm_top`` has every counter (``sat_head`` reads 0 without a head, ``sat_attention``
    without attention pooling)."""

    PREACT = "preact"
    CELL = "cell"
    HIDDEN = "hidden"
    HEAD = "head"
    ATTENTION = "attention"

    @property
    def port(self) -> str:
        """The counter's output port."""
        return f"sat_{self.value}"


#: Saturation kinds in the order of ``SaturationCounts``.
SATURATION_KINDS = tuple(kind.value for kind in SaturationKind)


class Control(enum.Enum):
    """One-bit control inputs, sampled with a sequence's first ``x`` beat (``clear_status``:
    every cycle it is high)."""

    CARRY_STATE = "carry_state"
    READ_STATE = "read_state"
    CLEAR_STATUS = "clear_status"


class Status(enum.Enum):
    """Status outputs besides the saturation counters."""

    CYCLES = "cycles"
    BUSY = "busy"
    STARTED = "started"
    DONE = "done"
    OVERFLOW = "overflow"


@dataclass(frozen=True)
class AxiMembers:
    """Member names of an AXI4-Stream-style stream."""

    data: str = "tdata"
    valid: str = "tvalid"
    ready: str = "tready"
    last: str = "tlast"


#: The members every stream of ``lstm_top`` has.
AXI_MEMBERS = AxiMembers()


@dataclass(frozen=True)
class _Bits:
    """``width`` bits called ``name``, two's complement if ``signed``."""

    name: str
    width: int
    signed: bool = dataclasses.field(default=False, kw_only=True)


@dataclass(frozen=True)
class Port(_Bits):
    """One port of ``lstm_top``; ``signed`` only for ``tdata`` of signed numbers."""

    direction: Direction = dataclasses.field(kw_only=True)


@dataclass(frozen=True)
class Field(_Bits):
    """Bits ``[offset, offset + width)`` of a ``tdata`` word."""

    offset: int = dataclasses.field(kw_only=True)

    def extract(self, words) -> np.ndarray:
        """This field of every word (Python ints or an int array), sign-extended if signed."""
        words = np.asarray(words, dtype=object)
        raw = np.asarray(
            [(int(w) >> self.offset) & ((1 << self.width) - 1) for w in words.reshape(-1)],
            dtype=np.int64,
        ).reshape(words.shape)
        return sign_extend(raw, self.width) if self.signed else raw


@dataclass(frozen=True)
class StreamPorts:
    """A stream of ``lstm_top``: ``direction`` is the direction of its ``tdata`` (``IN``:
    the top consumes it); ``fields`` lay out ``tdata`` (``width`` bits)."""

    name: str
    direction: Direction
    fields: tuple[Field, ...]
    width: int
    signed: bool

    def _port(self, member: str) -> str:
        return f"{self.name}{SEPARATOR}{member}"

    # Port names of the four members (``x__tdata`` ...).
    data = property(lambda self: self._port(AXI_MEMBERS.data))
    valid = property(lambda self: self._port(AXI_MEMBERS.valid))
    ready = property(lambda self: self._port(AXI_MEMBERS.ready))
    last = property(lambda self: self._port(AXI_MEMBERS.last))

    @property
    def ports(self) -> tuple[Port, ...]:
        """``tdata``, ``tvalid``, ``tready``, ``tlast`` (the declaration order)."""
        forward = self.direction
        backward = Direction.OUT if forward is Direction.IN else Direction.IN
        return (
            Port(self.data, self.width, direction=forward, signed=self.signed),
            Port(self.valid, 1, direction=forward),
            Port(self.ready, 1, direction=backward),
            Port(self.last, 1, direction=forward),
        )

    @property
    def idle(self) -> tuple[tuple[str, int], ...]:
        """Values of this stream's inputs while it carries nothing."""
        return tuple((p.name, 0) for p in self.ports if p.direction is Direction.IN)

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.name} has no field {name!r}")


def sign_extend(values, width: int) -> np.ndarray:
    """Two's complement ``width``-bit words as signed integers."""
    values = np.asarray(values, dtype=np.int64) & ((1 << width) - 1)
    return np.where(values >= 1 << (width - 1), values - (1 << width), values)


class TopInterface:
    """The ports, stream layouts and timing contract of ``lstm_top`` for one
    :class:`~lstm_fpga.hw.plan.EnginePlan`.

    Streams (each ``tdata``/``tvalid``/``tready``/``tlast``): :attr:`x` (in, ``x_t``
    elements, :attr:`x_elements` per beat), :attr:`y` (out, one output element per beat),
    :attr:`state` (out, ``h`` and ``c`` of one unit per beat; a GRU: ``h`` only), :attr:`init`
    (in, ``h0`` then ``c0`` values; a GRU: ``h0`` only), :attr:`w` (in, weight words). Then
    the :class:`Control` inputs and the :class:`Status` and saturation-counter outputs.
    ``docs/hardware.md`` describes the protocol and timing.
    """

    def __init__(self, plan: EnginePlan):
        if not isinstance(plan, EnginePlan):
            raise TypeError(f"TopInterface needs an EnginePlan, not {type(plan).__name__}")
        self.plan = plan

    # -- streams -----------------------------------------------------------------------------
    @cached_property
    def x(self) -> StreamPorts:
        """``x_t`` elements, element ``e`` of a beat in bits ``[e*w, (e+1)*w)``."""
        shape = self.plan.input_shape
        k = self.x_elements
        fields = tuple(
            Field(f"x{e}", shape.width, offset=e * shape.width, signed=True) for e in range(k)
        )
        # One element: tdata is that element (signed); several: a packed unsigned word.
        return StreamPorts("x", Direction.IN, fields, k * shape.width, k == 1)

    @cached_property
    def y(self) -> StreamPorts:
        shape = self.plan.y_shape
        y = Field("y", shape.width, offset=0, signed=True)
        return StreamPorts("y", Direction.OUT, (y,), shape.width, True)

    @cached_property
    def state(self) -> StreamPorts:
        """``h_n[k][u]`` in the low bits, ``c_n[k][u]`` above (a GRU: ``h_n`` only)."""
        layout = state_layout(self.plan)
        fields = tuple(
            Field(name, layout[name].shape.width, offset=layout[name].offset, signed=True)
            for name in self.state_fields
        )
        return StreamPorts("state", Direction.OUT, fields, sum(f.width for f in fields), False)

    @cached_property
    def init(self) -> StreamPorts:
        width = max(self.plan.state_shape.width, self.plan.cell_shape.width)
        value = Field("value", width, offset=0, signed=True)
        return StreamPorts("init", Direction.IN, (value,), width, True)

    @cached_property
    def w(self) -> StreamPorts:
        """One weight word: ``target`` (0 weights, 1 biases), ``lane``, ``address``, ``data``."""
        layout = write_layout(self.plan.images)
        fields = tuple(Field(name, f.width, offset=f.offset) for name, f in layout)
        return StreamPorts("w", Direction.IN, fields, layout.size, False)

    @property
    def streams(self) -> tuple[StreamPorts, ...]:
        """Every stream, in declaration order."""
        return (self.x, self.y, self.state, self.init, self.w)

    # -- the port table ----------------------------------------------------------------------
    @property
    def signals(self) -> tuple[Port, ...]:
        """The ports outside the streams (besides clock and reset): control inputs, status
        outputs, saturation counters and, with external weights, the AXI4 read master's
        ports (:func:`~lstm_fpga.hw.external.external_ports`), in declaration order."""
        widths = {Status.CYCLES: CYCLE_COUNTER_WIDTH}
        return (
            *(Port(c.value, 1, direction=Direction.IN) for c in Control),
            *(Port(s.value, widths.get(s, 1), direction=Direction.OUT) for s in Status),
            *(
                Port(k.port, SATURATION_COUNTER_WIDTH, direction=Direction.OUT)
                for k in SaturationKind
            ),
            *(
                Port(name, width, direction=Direction.OUT if out else Direction.IN)
                for name, out, width in external_ports(self.plan)
            ),
        )

    @cached_property
    def ports(self) -> tuple[Port, ...]:
        """Every port of ``lstm_top`` in declaration order (clock and reset first)."""
        ports = [Port(name, 1, direction=Direction.IN) for name in (CLOCK, RESET)]
        for stream in self.streams:
            ports.extend(stream.ports)
        ports.extend(self.signals)
        return tuple(ports)

    def port(self, name: str) -> Port:
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(f"{TOP_NAME} has no port {name!r}")

    @property
    def idle_inputs(self) -> tuple[tuple[str, int], ...]:
        """Every input but clock and reset at its idle value: no stream offers or accepts a
        beat, control inputs low."""
        idle = [pair for stream in self.streams for pair in stream.idle]
        idle.extend((c.value, 0) for c in Control)
        idle.extend((name, 0) for name, out, _w in external_ports(self.plan) if not out)
        return tuple(idle)

    @property
    def status_outputs(self) -> tuple[str, ...]:
        """Outputs a driver samples after a run: the status and the saturation counters."""
        return tuple(s.value for s in Status) + tuple(k.port for k in SaturationKind)

    # -- x -----------------------------------------------------------------------------------
    @property
    def x_elements(self) -> int:
        """Elements of ``x_t`` per beat (``HardwareConfig.input_elements``)."""
        return self.plan.input_elements

    @property
    def x_beats_per_step(self) -> int:
        """``ceil(I / x_elements)``: beats of one ``x_t`` (the last one zero-padded)."""
        return self.plan.x_beats_per_step

    def x_beat_elements(self, x) -> np.ndarray:
        """The elements of every beat of one sequence ``x`` (``(T, I)`` integers):
        ``(T * x_beats_per_step, x_elements)``, zero-padded."""
        x = np.asarray(x, dtype=np.int64)
        steps, inputs = x.shape
        if inputs != self.plan.input_size:
            raise ValueError(
                f"x has {inputs} features per step, the hardware {self.plan.input_size}"
            )
        k, beats = self.x_elements, self.x_beats_per_step
        padded = np.zeros((steps, beats * k), dtype=np.int64)
        padded[:, :inputs] = x
        return padded.reshape(steps * beats, k)

    def pack_x(self, x) -> np.ndarray:
        """``x__tdata`` of every beat of one sequence ``x`` (``(T, I)``): the element itself
        (one per beat), or the elements packed as :attr:`x` lays them out (object array of
        Python ints, the word may exceed 64 bits)."""
        elements = self.x_beat_elements(x)
        if self.x_elements == 1:
            return elements[:, 0]
        packed = np.empty(len(elements), dtype=object)
        packed[:] = [
            sum(
                (int(v) & ((1 << f.width) - 1)) << f.offset
                for f, v in zip(self.x.fields, beat, strict=True)
            )
            for beat in elements
        ]
        return packed

    def x_last(self, lengths) -> np.ndarray:
        """``tlast`` of every beat of sequences of ``lengths`` steps streamed back to back
        (in sequence order: :meth:`x_order` gives the order on the wire)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        last = np.zeros(int(lengths.sum()) * self.x_beats_per_step, dtype=bool)
        last[np.cumsum(lengths * self.x_beats_per_step) - 1] = True
        return last

    # -- interleaved sequences ---------------------------------------------------------------
    @property
    def interleave(self) -> int:
        """``B``: sequences interleaved on the lanes (``HardwareConfig.interleave``)."""
        return self.plan.interleave

    def check_groups(self, lengths) -> None:
        """Raise ``ValueError`` unless the sequences of ``lengths`` form interleave groups:
        ``B`` consecutive sequences of equal length each."""
        lengths = np.asarray(lengths, dtype=np.int64)
        B = self.interleave
        if B == 1:
            return
        if lengths.size % B:
            raise ValueError(
                f"the hardware interleaves {B} sequences: give a multiple of {B} sequences, "
                f"not {lengths.size}"
            )
        groups = lengths.reshape(-1, B)
        if (groups != groups[:, :1]).any():
            raise ValueError(
                f"the hardware interleaves {B} sequences of equal length: each group of {B} "
                f"consecutive sequences needs one length, not {groups.tolist()}"
            )

    def group_order(self, lengths, per_step: int, chunks=None) -> np.ndarray:
        """Where the wire's beats come from: for sequences of ``lengths`` steps with
        ``per_step`` beats per step laid out back to back (sequence 0's steps, then sequence
        1's, ...), the index of each beat in the interleaved order on the wire (per group of
        ``B`` sequences: step ``t`` of sequences ``0 .. B-1``, then step ``t + 1``). The
        identity for ``B = 1``. ``chunks`` (``(start, end)`` beat ranges of a step, in
        order; default the whole step): the group's step goes chunk by chunk, each chunk of
        sequences ``0 .. B-1`` (:meth:`y_chunks`)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        self.check_groups(lengths)
        B = self.interleave
        chunks = ((0, per_step),) if chunks is None else chunks
        starts = np.r_[0, np.cumsum(lengths * per_step)[:-1]]
        order = []
        for g in range(0, lengths.size, B):
            for t in range(int(lengths[g])):
                for start, end in chunks:
                    for b in range(g, g + B):
                        first = starts[b] + t * per_step
                        order.append(np.arange(first + start, first + end))
        if not order:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(order)

    def y_chunks(self) -> tuple[tuple[int, int], ...]:
        """The pieces of an output vector that leave together for the ``B`` sequences of a
        group, ``(start, end)`` element ranges in order: the whole vector, except with
        weight reuse (``--weights external``) when the matrix feeding ``y`` (the head, else
        the last layer) takes several passes: then each pass's completed units
        (:attr:`MatrixPlan.pass_units <lstm_fpga.hw.plan.MatrixPlan.pass_units>`; a head
        unit is 4 outputs), of sequences ``0 .. B-1``, then the next pass's."""
        plan = self.plan
        features = self.y_features
        if not plan.weight_reuse:
            return ((0, features),)
        matrix = plan.head_matrix or plan.lstm_matrices[-1]
        per_unit = 4 if matrix.is_head else 1
        ranges = [
            (min(per_unit * a, features), min(per_unit * b, features)) for a, b in matrix.pass_units
        ]
        return tuple((a, b) for a, b in ranges if b > a)

    def x_order(self, lengths) -> np.ndarray:
        """:meth:`group_order` of the ``x`` beats (``x_beats_per_step`` per step)."""
        return self.group_order(lengths, self.x_beats_per_step)

    def y_order(self, lengths) -> np.ndarray:
        """:meth:`group_order` of the ``y`` beats: interleaved per step with output
        ``"all"``; with ``"last"`` each sequence's one vector in sequence order; with weight
        reuse over several passes chunk by chunk (:meth:`y_chunks`)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        chunks = self.y_chunks()
        if self.output_mode == "last":
            self.check_groups(lengths)
            if len(chunks) == 1:
                return np.arange(int(self.y_beats(lengths).sum()))
            return self.group_order(np.ones_like(lengths), self.y_features, chunks)
        return self.group_order(lengths, self.y_features, chunks)

    # -- y -----------------------------------------------------------------------------------
    @property
    def y_features(self) -> int:
        """Elements of one output vector on ``y``: the head's ``O``, else ``D * H``."""
        return self.plan.output_features

    @property
    def y_format(self) -> FixedFormat:
        head = self.plan.attention_head or self.plan.head
        return head.formats.output if head is not None else self.plan.model.output_format

    @property
    def output_mode(self) -> str:
        """``"all"``: an output vector every step; ``"last"``: each sequence's final one
        (always with attention pooling: the head once per sequence, on the context)."""
        return "last" if self.plan.attention is not None else self.plan.output_mode

    def dropped(self, lengths) -> np.ndarray:
        """Sequences the hardware refuses: longer than ``max_seq_len`` on a buffered
        (bidirectional) model or with attention pooling; they set ``overflow`` and produce
        nothing."""
        lengths = np.asarray(lengths, dtype=np.int64)
        limit = self.plan.max_seq_len or self.plan.attention_steps
        if limit is None:
            return np.zeros(lengths.shape, dtype=bool)
        return lengths > limit

    def y_beats(self, lengths) -> np.ndarray:
        """``y`` beats of each sequence of ``lengths`` steps (0 for refused ones)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        steps = lengths if self.output_mode == "all" else np.ones_like(lengths)
        return np.where(self.dropped(lengths), 0, steps * self.y_features)

    def unpack_y(self, words) -> np.ndarray:
        """Signed output elements of ``y__tdata`` words."""
        return self.y.fields[0].extract(words)

    # -- state and init ----------------------------------------------------------------------
    @property
    def state_beats(self) -> int:
        """Beats of one state read-out (and values of ``h0`` or of ``c0``): ``L * D * H``;
        an LSTMP's read-out is ``L * D * (H + R)`` beats (:meth:`final_states`)."""
        plan = self.plan
        if plan.projected:
            return plan.num_directions_total * (plan.hidden_size + plan.proj_size)
        return plan.state_words

    def final_states(self, words, sequences: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(h_n, c_n)`` (``(L*D, S, H_h)`` and ``(L*D, S, H)``, ``c_n`` ``None`` for a GRU)
        of the ``state__tdata`` words of ``sequences`` read-outs. An LSTMP (``H_h = R``)
        sends per layer direction ``k`` first ``H`` beats of ``c_n[k]`` (``h`` field 0),
        then ``R`` beats of ``h_n[k]`` (``c`` field 0); otherwise beat ``u`` of layer
        direction ``k`` carries ``(h_n[k][u], c_n[k][u])``."""
        plan = self.plan
        LD, H, R = plan.num_directions_total, plan.hidden_size, plan.proj_size
        h, c = self.unpack_state(words)
        if plan.projected:
            h = h.reshape(sequences, LD, H + R)[:, :, H:].transpose(1, 0, 2)
            c = c.reshape(sequences, LD, H + R)[:, :, :H].transpose(1, 0, 2)
            return h, c
        h = h.reshape(sequences, LD, H).transpose(1, 0, 2)
        return h, None if c is None else c.reshape(sequences, LD, H).transpose(1, 0, 2)

    @property
    def state_fields(self) -> tuple[str, ...]:
        """The values of a ``state`` beat: ``("h", "c")``; ``("h",)`` for a GRU."""
        return ("h",) if self.plan.is_gru else ("h", "c")

    def state_order(self) -> np.ndarray:
        """Where a group's ``state`` beats come from: for the ``B * L * D * H`` final-state
        values of a group laid out sequence by sequence (sequence ``b``'s ``L * D * H`` in
        ``nn.LSTM`` order at ``b * L * D * H``), the index of each beat in the wire's order.
        Sequence by sequence (the identity) except with weight reuse (``--weights
        external``): layer direction by layer direction, each chunk by chunk (the units a
        pass completes, :attr:`MatrixPlan.pass_units
        <lstm_fpga.hw.plan.MatrixPlan.pass_units>`, one chunk with one pass per matrix),
        each chunk of sequences ``0 .. B-1``."""
        plan = self.plan
        B, H, LDH = self.interleave, plan.hidden_size, plan.state_words
        if not plan.weight_reuse:
            return np.arange(B * LDH)
        order = [
            b * LDH + mp.index * H + np.arange(first, end)
            for mp in plan.lstm_matrices
            for first, end in mp.pass_units
            for b in range(B)
        ]
        return np.concatenate(order)

    def unpack_state(self, words) -> tuple[np.ndarray, np.ndarray | None]:
        """``(h, c)`` of ``state__tdata`` words, sign-extended (``c`` is ``None`` for a
        GRU)."""
        h = self.state.field("h").extract(words)
        return h, None if self.plan.is_gru else self.state.field("c").extract(words)

    def init_values(self, h0, c0=None) -> np.ndarray:
        """The ``init`` beats loading ``h0`` and ``c0`` (``(L*D, H)`` each): ``h0`` flattened,
        then ``c0``; ``tlast`` goes on the final one. Interleaved (``B > 1``): ``h0`` of the
        group's sequences ``0 .. B-1`` (each ``(L*D, H)`` flattened), then their ``c0``;
        ``h0``/``c0`` may be ``(L*D, B, H)`` (one per sequence) or ``(L*D, H)`` (for all).
        A GRU loads ``h0`` only (``c0`` must be ``None``; GRUs are not interleaved). An LSTMP
        loads ``R`` values of ``h0`` per layer direction, then ``H`` of ``c0`` (``(L*D,
        R)`` and ``(L*D, H)``; interleaved, the ``B`` sequences' ``h0`` then their ``c0``)."""
        if self.plan.is_gru:
            if c0 is not None:
                raise ValueError("an nn.GRU has no cell state: give h0 only (c0=None)")
            values = np.asarray(h0).reshape(-1)
            if values.size != self.state_beats:
                raise ValueError(f"h0 needs {self.state_beats} values, not {values.size}")
            return values.astype(np.int64)
        B = self.interleave

        def per_sequence(state):
            state = np.asarray(state)
            if B > 1 and state.ndim == 3:
                return state.transpose(1, 0, 2).reshape(-1)
            return np.tile(state.reshape(-1), B)

        values = np.concatenate([per_sequence(h0), per_sequence(c0)])
        plan = self.plan
        if plan.projected:  # h0: R values per layer direction, then c0: H
            LD, H, R = plan.num_directions_total, plan.hidden_size, plan.proj_size
            h0, c0 = per_sequence(h0), per_sequence(c0)
            if (h0.size, c0.size) != (B * LD * R, B * LD * H):
                raise ValueError(
                    f"h0 and c0 need {B * LD * R} and {B * LD * H} values, not {h0.size} and "
                    f"{c0.size}"
                )
            return np.concatenate([h0, c0]).astype(np.int64)
        if values.size != 2 * B * self.state_beats:
            raise ValueError(
                f"h0 and c0 need {B * self.state_beats} values each, not {values.size // 2}"
            )
        return values.astype(np.int64)

    # -- w -----------------------------------------------------------------------------------
    @property
    def weight_word_fields(self) -> dict[str, tuple[int, int]]:
        """Bit ``(offset, width)`` of each field of ``w__tdata``."""
        return {f.name: (f.offset, f.width) for f in self.w.fields}

    def pack_weight_word(self, word: WeightWord) -> int:
        """``w__tdata`` of ``word``."""
        value = 0
        for name, raw in word.payload(self.plan).items():
            field = self.w.field(name)
            value |= (raw & ((1 << field.width) - 1)) << field.offset
        return value

    def weight_words(self, model: LstmModel) -> np.ndarray:
        """``w__tdata`` of every word that loads ``model``'s weights (object array; ``tlast``
        goes on the final one)."""
        packed = [self.pack_weight_word(w) for w in weight_load_words(self.plan, model)]
        words = np.empty(len(packed), dtype=object)
        words[:] = packed
        return words

    # -- compatibility and timing ------------------------------------------------------------
    def check_compatible(self, model: LstmModel) -> None:
        """Raise :class:`~lstm_fpga.hw.config.HardwareConfigError` unless ``model`` runs on
        this hardware: the generated shape and every format (only integer weights reload)."""
        self.plan.check_compatible(model)

    def check_same_shape(self, model: LstmModel) -> None:
        """Raise unless ``model`` has the generated sizes, layers, directions and head (its
        formats may differ: a reference to compare the hardware with)."""
        check_same_shape(model, self.plan.model)

    @property
    def step_bound(self) -> int:
        """Fewest cycles per time step the lanes can need: the sum over layer directions of
        ``ceil(4H (I_k + H) / P)`` (an LSTM; ``ceil(3H (I_k + H) / P)`` for a GRU, whose
        lanes take ``ceil(4H (I_k + H) / P)``: :mod:`lstm_fpga.hw.plan`). ``P`` logical lanes:
        with two multiplies per DSP they are ``ceil(P / 2)`` DSPs, and the pipeline's
        latencies are the same."""
        return self.plan.step_bound()

    def sequence_bound(self, steps: int) -> int:
        """The bound of a whole sequence (layer directions every step, the head per output)."""
        return self.plan.sequence_bound(steps)

    @cached_property
    def loop_latencies(self) -> LoopLatencies:
        """The recurrence loop of this hardware, from its blocks' latencies: issue to
        ``column`` beat (:attr:`Sequencer.COLUMN_LATENCY`) and the matrix-vector unit's
        :func:`~lstm_fpga.hw.mvu.pass_latency` to the drain; the gate and
        cell pipeline (:attr:`GateCellPipeline.LATENCY`, plus its extra stages where
        :func:`cell_extra_stages` chooses them) less the scoreboards' announcement lead
        (:attr:`Sequencer.ANNOUNCE`), plus the cycle from an announcement to a read."""
        return _loop_latencies(self.plan, cell_extra_stages(self.plan))

    @cached_property
    def cell_extra_stages(self) -> bool:
        """Whether the gate and cell pipeline has its two extra stages
        (:func:`cell_extra_stages`)."""
        return cell_extra_stages(self.plan)

    @property
    def recurrence_step_bound(self) -> int:
        """Fewest cycles per time step this hardware can take: :attr:`step_bound`, or more
        where the recurrence loop (:attr:`loop_latencies`) outlasts a step's slack (short
        jobs; :func:`~lstm_fpga.hw.recurrence.recurrence_step_bound`)."""
        return recurrence_step_bound(self.plan, self.loop_latencies)

    def recurrence_sequence_bound(self, steps: int) -> int:
        """Fewest cycles per ``steps``-step sequence, sequences back to back: at least
        :meth:`sequence_bound`, more where the recurrence loop limits."""
        return recurrence_sequence_bound(self.plan, steps, self.loop_latencies)


def _loop_latencies(plan: EnginePlan, extra_stages: bool) -> LoopLatencies:
    to_drain = Sequencer.COLUMN_LATENCY + pass_latency(plan)
    cell = GruCellPipeline if plan.is_gru else GateCellPipeline
    latency = cell.LATENCY + EXTRA_STAGES * extra_stages
    return LoopLatencies(to_drain, latency - Sequencer.ANNOUNCE + 1)


#: Steps of the sequences whose cycles :func:`cell_extra_stages` compares.
_EXTRA_STAGES_STEPS = 8


def cell_extra_stages(plan: EnginePlan) -> bool:
    """Whether the LSTM's gate and cell pipeline takes its :data:`~lstm_fpga.hw.cell.EXTRA_STAGES`
    (:class:`~lstm_fpga.hw.cell.GateCellPipeline`'s ``extra_stages``: an input register, so
    that the route from the matrix-vector unit's drain, spread with the lanes over the
    device, is a cycle of its own, and ``c_t``'s rescale over two cycles). Chosen wherever
    the schedule hides those cycles of the recurrence loop: the steady state per step and
    the cycles of back-to-back ``_EXTRA_STAGES_STEPS``-step sequences are those without
    them. Never for a GRU (its cell pipeline has no such stages); loop-limited plans (short
    jobs, such as the demo model's) keep their cycles."""
    if plan.is_gru:
        return False
    without, with_stages = _loop_latencies(plan, False), _loop_latencies(plan, True)
    steps = _EXTRA_STAGES_STEPS
    return recurrence_step_bound(plan, with_stages) == recurrence_step_bound(
        plan, without
    ) and recurrence_sequence_bound(plan, steps, with_stages) == recurrence_sequence_bound(
        plan, steps, without
    )
