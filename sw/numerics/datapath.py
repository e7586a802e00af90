"""The formats of an LSTM layer direction (and the head) and the arithmetic derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .accumulator import (
    AccumulatorPlan,
    MacSegment,
    accumulator_frac,
    check_bias_frac,
    plan_accumulator,
)
from .activation import Activation, ActivationTable, activation_table
from .fixed import MAX_EXACT_WIDTH, FixedFormat, Overflow, Rounding


class FormatWidthError(ValueError):
    """A value the formats derive is wider than the integer reference computes exactly.

    ``tensor`` is the name of the format to change (``l0.preact``, ``head.output``, ...; the
    names of the format overrides) and ``width`` the bits the value needs.
    """

    def __init__(self, message: str, tensor: str, width: int):
        super().__init__(message)
        self.tensor = tensor
        self.width = width


@dataclass(frozen=True)
class IntermediateWidth:
    """One value the arithmetic of a layer direction (or the head) computes.

    ``width`` signed bits hold every value it can take; ``tensor`` names the format that
    decides it (the one to change when it is too wide) and ``fix`` says how.
    """

    what: str
    operands: str
    width: int
    tensor: str
    fix: str


def _shift_width(value_width: int, shift: int) -> int:
    """Bits of ``value * 2**-shift`` before rounding: a left shift widens the value."""
    return value_width + max(0, -shift)


def _interpolation_width(table: ActivationTable) -> int:
    """Bits of ``(y1 - y0) * weight`` plus the rounding offset in a table lookup."""
    return table.delta_width + table.segment_shift + (1 if table.segment_shift else 0)


def _finest(w_ih, x, w_hh, hidden, bias) -> str:
    """The operand with the most fraction bits: the format to coarsen in a too wide sum."""
    operands = {"w_ih": w_ih, "x": x, "w_hh": w_hh, "hidden": hidden, "bias": bias}
    return max(operands, key=lambda name: operands[name].frac)


def check_exact(owner: str, widths) -> None:
    """Refuse a datapath whose :class:`IntermediateWidth` exceeds :data:`MAX_EXACT_WIDTH`."""
    for item in widths:
        if item.width > MAX_EXACT_WIDTH:
            raise FormatWidthError(
                f"{owner}: the {item.what} ({item.operands}) needs {item.width} bits, more "
                f"than {MAX_EXACT_WIDTH}: {item.fix}",
                f"{owner}.{item.tensor}",
                item.width,
            )


class _BiasedFormats:
    """What the formats of a layer direction and of the head share: named fields, and one
    accumulator of products (:meth:`segments`, by the subclass) plus a ``bias``."""

    bias: FixedFormat

    def items(self) -> tuple[tuple[str, FixedFormat], ...]:
        return tuple((name, getattr(self, name)) for name in self.__dataclass_fields__)

    def segments(self, *sizes: int) -> tuple[MacSegment, ...]:
        raise NotImplementedError

    @property
    def accumulator_frac(self) -> int:
        """Fraction bits of the accumulator (its finest product's)."""
        return accumulator_frac(self.segments())

    def check_bias(self) -> None:
        """The bias rule of the accumulator (:func:`check_bias_frac`)."""
        check_bias_frac(self.bias, self.accumulator_frac)

    def accumulator(self, *sizes: int) -> AccumulatorPlan:
        """The accumulator of :meth:`segments` (of these ``sizes``) plus the bias."""
        return plan_accumulator(self.segments(*sizes), self.bias)


class _CellFormats(_BiasedFormats):
    """What an LSTM's and a GRU's layer-direction formats share: the gate accumulator sums
    ``W_ih @ x`` and ``W_hh @ h`` (fields ``x``, ``w_ih``, ``w_hh``, ``hidden`` of the
    subclass)."""

    x: FixedFormat
    w_ih: FixedFormat
    w_hh: FixedFormat
    hidden: FixedFormat

    def segments(self, input_size: int = 1, hidden_size: int = 1) -> tuple[MacSegment, ...]:
        """The products the gate accumulator sums: ``W_ih @ x`` and ``W_hh @ h``."""
        return (
            MacSegment(self.w_ih, self.x, input_size),
            MacSegment(self.w_hh, self.hidden, hidden_size),
        )


def check_format_chain(
    num_layers: int, bidirectional: bool, directions, head=None, attention=None
) -> None:
    """The chaining rules between the formats of a model's layers; ``ValueError`` if broken.

    Layer ``k > 0`` takes layer ``k-1``'s hidden format as input, layer 0 the model input
    format (``directions[0].x``); both directions of a layer share the hidden format; the head
    takes the last layer's hidden format, or with ``attention`` (an
    :class:`~.attention.AttentionFormats`) attention takes it and the head takes the context.
    ``directions`` are :class:`LstmFormats` in PyTorch's order (``l0``, ``l0_reverse``, ...).
    """
    D = 2 if bidirectional else 1
    for k, f in enumerate(directions):
        layer, name = k // D, f"l{k // D}{'_reverse' if k % D else ''}"
        feed = directions[0].x if layer == 0 else directions[(layer - 1) * D].hidden
        if f.x != feed:
            source = "the model input" if layer == 0 else f"layer {layer - 1}'s hidden"
            raise ValueError(
                f"{name}.x is {f.x} but {source} format is {feed}; a layer's input format "
                f"must equal what feeds it"
            )
        if f.hidden != directions[layer * D].hidden:
            raise ValueError(
                f"{name}.hidden is {f.hidden} but l{layer}.hidden is "
                f"{directions[layer * D].hidden}; both directions of a layer share the hidden "
                f"format"
            )
    last = directions[(num_layers - 1) * D].hidden
    if attention is not None:
        if attention.x != last:
            raise ValueError(
                f"attention.x is {attention.x} but the last layer's hidden format is {last}"
            )
        if head is not None and head.x != attention.context:
            raise ValueError(
                f"head.x is {head.x} but attention.context is {attention.context}; the head "
                f"takes the context"
            )
        return
    if head is not None and head.x != last:
        raise ValueError(f"head.x is {head.x} but the last layer's hidden format is {last}")


@dataclass(frozen=True)
class LstmFormats(_CellFormats):
    """Formats of every tensor of one LSTM layer direction.

    ``x`` is the layer input (the model input for layer 0, the previous layer's ``hidden`` for
    the others), ``preact`` the four gate pre-activations, ``gate`` the activated gates and
    ``tanh(c_t)``, ``cell`` the cell state ``c_t`` and ``hidden`` the output ``h_t``.
    """

    x: FixedFormat
    w_ih: FixedFormat
    w_hh: FixedFormat
    bias: FixedFormat
    preact: FixedFormat
    gate: FixedFormat
    cell: FixedFormat
    hidden: FixedFormat

    def datapath(self, input_size: int, hidden_size: int, **arithmetic) -> LstmDatapath:
        """The arithmetic of these formats at these sizes (``arithmetic``: ``rounding``,
        ``overflow``)."""
        return LstmDatapath(self, input_size, hidden_size, **arithmetic)


@dataclass(frozen=True)
class _Datapath:
    """What the datapaths of a layer direction and of the head share: how they round their
    rescales and treat overflow (keyword-only, after the subclass's formats and sizes), and
    the exactness check of their :meth:`intermediate_widths` (by the subclass)."""

    rounding: Rounding = field(default=Rounding.HALF_UP, kw_only=True)
    overflow: Overflow = field(default=Overflow.SATURATE, kw_only=True)

    def intermediate_widths(self) -> tuple[IntermediateWidth, ...]:
        raise NotImplementedError

    def check_exact(self, owner: str) -> None:
        """:func:`check_exact` of this datapath's intermediate widths, named ``owner``."""
        check_exact(owner, self.intermediate_widths())


@dataclass(frozen=True)
class LstmDatapath(_Datapath):
    """Everything derived from one layer direction's formats: the arithmetic of a time step.

    gates  = rescale(gate_acc.accumulate([W_ih @ x, W_hh @ h], bias), preact)
    i,f,o  = sigmoid(gates),  g = tanh(gates)        (tables in ``gate`` format)
    c_t    = rescale(cell_acc.accumulate([f * c, i * g]), cell)
    h_t    = rescale(o * tanh_cell(c_t), hidden)     (product has 2 * gate.frac fraction bits)
    """

    formats: LstmFormats
    input_size: int
    hidden_size: int

    @cached_property
    def gate_acc(self) -> AccumulatorPlan:
        return self.formats.accumulator(self.input_size, self.hidden_size)

    @cached_property
    def cell_acc(self) -> AccumulatorPlan:
        f = self.formats
        segments = (MacSegment(f.gate, f.cell, 1), MacSegment(f.gate, f.gate, 1))
        return plan_accumulator(segments, None)

    @property
    def cell_output(self) -> FixedFormat:
        """The format the hidden product ``o * tanh(c_t)`` is rescaled to: ``hidden`` (an
        LSTMP's :class:`LstmpDatapath` rescales it to ``proj_in`` and projects)."""
        return self.formats.hidden

    @property
    def hidden_product_frac(self) -> int:
        return 2 * self.formats.gate.frac

    @property
    def hidden_product_width(self) -> int:
        return 2 * self.formats.gate.width

    def intermediate_widths(self) -> tuple[IntermediateWidth, ...]:
        """Every value of a time step whose width the formats decide (see :func:`check_exact`).

        Accumulators, the products and left shifts of the rescale steps, and the
        interpolation products of the three activation tables.
        """
        f, finest = self.formats, "override the finest format with fewer fraction bits"
        gate_operands = f"w_ih {f.w_ih} * x {f.x} + w_hh {f.w_hh} * hidden {f.hidden}"
        cell_operands = f"gate {f.gate} * cell {f.cell} + gate {f.gate} * gate {f.gate}"
        preact_shift = self.gate_acc.frac - f.preact.frac
        hidden_shift = self.hidden_product_frac - f.hidden.frac
        tables = (("sigmoid", self.sigmoid, "preact"), ("tanh", self.tanh_gate, "preact"))
        tables += (("tanh(cell)", self.tanh_cell, "cell"),)
        return (
            IntermediateWidth(
                "gate accumulator",
                gate_operands,
                self.gate_acc.width,
                _finest(f.w_ih, f.x, f.w_hh, f.hidden, f.bias),
                "its products' fraction bits differ too much; " + finest,
            ),
            IntermediateWidth(
                "pre-activation rescale",
                f"accumulator with {self.gate_acc.frac} fraction bits to preact {f.preact}",
                _shift_width(self.gate_acc.width, preact_shift),
                "preact",
                "the left shift is too long; use a preact format with fewer fraction bits",
            ),
            IntermediateWidth(
                "cell accumulator",
                cell_operands,
                self.cell_acc.width,
                "gate",
                "its products are too wide; use narrower gate or cell formats",
            ),
            IntermediateWidth(
                "hidden product",
                f"gate {f.gate} * gate {f.gate} to hidden {f.hidden}",
                _shift_width(self.hidden_product_width, hidden_shift),
                "hidden",
                "use a narrower gate format or a hidden format with fewer fraction bits",
            ),
            *(
                IntermediateWidth(
                    f"{name} table interpolation",
                    f"{source} {table.input} to gate {f.gate}",
                    _interpolation_width(table),
                    source,
                    f"use a {source} format with fewer fraction bits or a narrower gate format",
                )
                for name, table, source in tables
            ),
        )

    @cached_property
    def sigmoid(self) -> ActivationTable:
        f = self.formats
        return activation_table(Activation.SIGMOID, f.preact, f.gate, self.rounding)

    @cached_property
    def tanh_gate(self) -> ActivationTable:
        f = self.formats
        return activation_table(Activation.TANH, f.preact, f.gate, self.rounding)

    @cached_property
    def tanh_cell(self) -> ActivationTable:
        f = self.formats
        return activation_table(Activation.TANH, f.cell, f.gate, self.rounding)


@dataclass(frozen=True)
class LstmpFormats(LstmFormats):
    """Formats of one layer direction of an ``nn.LSTM`` with ``proj_size > 0`` (LSTMP).

    As :class:`LstmFormats`, plus the projection: ``proj_in`` is the cell output
    ``o_t * tanh(c_t)`` (the projection's input, in (-1, 1)) and ``w_hr`` the projection
    weights; ``hidden`` is the projected ``h_t = W_hr @ proj_in`` (the recurrent state, the
    layer's output and ``h_n``), which can leave (-1, 1).
    """

    w_hr: FixedFormat
    proj_in: FixedFormat

    def datapath(
        self, input_size: int, hidden_size: int, proj_size: int, **arithmetic
    ) -> LstmpDatapath:
        """The arithmetic of these formats at these sizes (``arithmetic``: ``rounding``,
        ``overflow``)."""
        return LstmpDatapath(self, input_size, hidden_size, proj_size, **arithmetic)


@dataclass(frozen=True)
class LstmpDatapath(LstmDatapath):
    """The arithmetic of an LSTMP layer direction (``proj_size`` features of ``h_t``)::

        gates  = rescale(gate_acc.accumulate([W_ih @ x, W_hh @ h], bias), preact)  # h: R
        c_t    = rescale(cell_acc.accumulate([f * c, i * g]), cell)
        m_t    = rescale(o * tanh_cell(c_t), proj_in)       (product: 2 * gate.frac bits)
        h_t    = rescale(proj_acc.accumulate([W_hr @ m_t]), hidden)    (no bias)

    Everything up to ``m_t`` is :class:`LstmDatapath`'s with ``W_hh`` over ``proj_size``
    columns and the hidden product rescaled to ``proj_in`` instead of ``hidden``.
    """

    formats: LstmpFormats
    proj_size: int

    @cached_property
    def gate_acc(self) -> AccumulatorPlan:
        return self.formats.accumulator(self.input_size, self.proj_size)

    @property
    def cell_output(self) -> FixedFormat:
        """The format the hidden product ``o * tanh(c_t)`` is rescaled to: ``proj_in``."""
        return self.formats.proj_in

    @cached_property
    def proj_acc(self) -> AccumulatorPlan:
        """``W_hr @ m_t`` over ``hidden_size`` products (PyTorch's projection has no bias)."""
        f = self.formats
        return plan_accumulator((MacSegment(f.w_hr, f.proj_in, self.hidden_size),), None)

    def intermediate_widths(self) -> tuple[IntermediateWidth, ...]:
        """:class:`LstmDatapath`'s (the hidden product to ``proj_in``) and the projection's
        accumulator and rescale."""
        f = self.formats
        widths = []
        for item in super().intermediate_widths():
            if item.what == "hidden product":
                shift = self.hidden_product_frac - f.proj_in.frac
                item = IntermediateWidth(
                    "hidden product",
                    f"gate {f.gate} * gate {f.gate} to proj_in {f.proj_in}",
                    _shift_width(self.hidden_product_width, shift),
                    "proj_in",
                    "use a narrower gate format or a proj_in format with fewer fraction bits",
                )
            widths.append(item)
        return (
            *widths,
            IntermediateWidth(
                "projection accumulator",
                f"w_hr {f.w_hr} * proj_in {f.proj_in}",
                self.proj_acc.width,
                "w_hr",
                "use narrower w_hr or proj_in formats",
            ),
            IntermediateWidth(
                "projection rescale",
                f"projection accumulator with {self.proj_acc.frac} fraction bits to hidden "
                f"{f.hidden}",
                _shift_width(self.proj_acc.width, self.proj_acc.frac - f.hidden.frac),
                "hidden",
                "the left shift is too long; use a hidden format with fewer fraction bits",
            ),
        )


@dataclass(frozen=True)
class HeadFormats(_BiasedFormats):
    """Formats of the Linear head: its input is the last layer's ``hidden`` format."""

    x: FixedFormat
    weight: FixedFormat
    bias: FixedFormat
    output: FixedFormat

    def segments(self, in_features: int = 1) -> tuple[MacSegment, ...]:
        """The products the head's accumulator sums: ``W @ x``."""
        return (MacSegment(self.weight, self.x, in_features),)

    def datapath(self, in_features: int, **arithmetic) -> HeadDatapath:
        """The arithmetic of these formats over ``in_features`` inputs (``arithmetic``:
        ``rounding``, ``overflow``)."""
        return HeadDatapath(self, in_features, **arithmetic)


@dataclass(frozen=True)
class HeadDatapath(_Datapath):
    """``y = rescale(acc.accumulate([W @ x], bias), output)``."""

    formats: HeadFormats
    in_features: int

    @cached_property
    def acc(self) -> AccumulatorPlan:
        return self.formats.accumulator(self.in_features)

    def intermediate_widths(self) -> tuple[IntermediateWidth, ...]:
        """The accumulator and the rescale to the output (see :func:`check_exact`)."""
        f = self.formats
        return (
            IntermediateWidth(
                "accumulator",
                f"weight {f.weight} * x {f.x}, bias {f.bias}",
                self.acc.width,
                "weight",
                "override head.weight or head.bias with fewer fraction bits",
            ),
            IntermediateWidth(
                "output rescale",
                f"accumulator with {self.acc.frac} fraction bits to output {f.output}",
                _shift_width(self.acc.width, self.acc.frac - f.output.frac),
                "output",
                "the left shift is too long; use an output format with fewer fraction bits",
            ),
        )


@dataclass(frozen=True)
class GruFormats(_CellFormats):
    """Formats of every tensor of one GRU layer direction (``nn.GRU``, gates r, z, n).

    ``x`` is the layer input, ``bias`` holds the combined r/z biases, ``b_in`` and ``b_hn``
    (all added at the gate accumulator's scale), ``preact`` every pre-activation (those of
    r and z, the input and recurrent parts of n, and n's own), ``gate`` the activated gates
    r, z, n and ``hidden`` the output ``h_t``. A GRU has no cell state.
    """

    x: FixedFormat
    w_ih: FixedFormat
    w_hh: FixedFormat
    bias: FixedFormat
    preact: FixedFormat
    gate: FixedFormat
    hidden: FixedFormat

    def datapath(self, input_size: int, hidden_size: int, **arithmetic) -> GruDatapath:
        """The arithmetic of these formats at these sizes (``arithmetic``: ``rounding``,
        ``overflow``)."""
        return GruDatapath(self, input_size, hidden_size, **arithmetic)


@dataclass(frozen=True)
class GruDatapath(_Datapath):
    """Everything derived from one GRU layer direction's formats: the arithmetic of a step.

    With ``acc(parts, bias) = gate_acc.accumulate(parts, bias)`` (products aligned to the
    gate accumulator's scale, a missing part counting as zero)::

        r, z   = sigmoid(rescale(acc([W_i{r,z} @ x, W_h{r,z} @ h], b_{r,z}), preact))
        xn     = rescale(acc([W_in @ x, 0], b_in), preact)       # input part of n
        hn     = rescale(acc([0, W_hn @ h], b_hn), preact)       # recurrent part of n
        n      = tanh(rescale(n_acc.accumulate([r * hn], xn), preact))
        h_t    = rescale(update_acc.accumulate([(1 - z) * n, z * h]), hidden)

    ``b_{r,z} = b_i{r,z} + b_h{r,z}``; ``1 - z`` is ``(1 << gate.frac) - z`` in
    :attr:`one_minus_z` (it can be 1 exactly, which the gate format may not hold). The
    tables are the LSTM's (``preact`` to ``gate``).
    """

    formats: GruFormats
    input_size: int
    hidden_size: int

    @cached_property
    def gate_acc(self) -> AccumulatorPlan:
        return self.formats.accumulator(self.input_size, self.hidden_size)

    @cached_property
    def n_acc(self) -> AccumulatorPlan:
        """``r * hn`` plus ``xn`` (as the bias, aligned by ``gate.frac`` bits)."""
        f = self.formats
        return plan_accumulator((MacSegment(f.gate, f.preact, 1),), f.preact)

    @property
    def one_minus_z(self) -> FixedFormat:
        """The format of ``1 - z``: the gate's fraction bits, wide enough for any gate value
        (``|1 - z| <= 2**frac + 2**(width - 1)`` in integers)."""
        g = self.formats.gate
        return FixedFormat(max(g.frac, g.width - 1) + 3, g.frac)

    @property
    def one(self) -> int:
        """1.0 in the gate's scale (``1 - z`` is ``one - z``)."""
        return 1 << self.formats.gate.frac

    @cached_property
    def update_acc(self) -> AccumulatorPlan:
        """``(1 - z) * n + z * h``."""
        f = self.formats
        segments = (MacSegment(self.one_minus_z, f.gate, 1), MacSegment(f.gate, f.hidden, 1))
        return plan_accumulator(segments, None)

    def intermediate_widths(self) -> tuple[IntermediateWidth, ...]:
        """Every value of a time step whose width the formats decide (see :func:`check_exact`)."""
        f, finest = self.formats, "override the finest format with fewer fraction bits"
        gate_operands = f"w_ih {f.w_ih} * x {f.x} + w_hh {f.w_hh} * hidden {f.hidden}"
        preact_shift = self.gate_acc.frac - f.preact.frac
        tables = (("sigmoid", self.sigmoid), ("tanh", self.tanh_gate))
        return (
            IntermediateWidth(
                "gate accumulator",
                gate_operands,
                self.gate_acc.width,
                _finest(f.w_ih, f.x, f.w_hh, f.hidden, f.bias),
                "its products' fraction bits differ too much; " + finest,
            ),
            IntermediateWidth(
                "pre-activation rescale",
                f"accumulator with {self.gate_acc.frac} fraction bits to preact {f.preact}",
                _shift_width(self.gate_acc.width, preact_shift),
                "preact",
                "the left shift is too long; use a preact format with fewer fraction bits",
            ),
            IntermediateWidth(
                "n accumulator",
                f"gate {f.gate} * preact {f.preact} + preact {f.preact}",
                self.n_acc.width,
                "gate",
                "its product is too wide; use narrower gate or preact formats",
            ),
            IntermediateWidth(
                "n rescale",
                f"n accumulator with {self.n_acc.frac} fraction bits to preact {f.preact}",
                _shift_width(self.n_acc.width, self.n_acc.frac - f.preact.frac),
                "preact",
                "use a narrower gate format or a preact format with fewer fraction bits",
            ),
            IntermediateWidth(
                "hidden accumulator",
                f"(1 - gate) {self.one_minus_z} * gate {f.gate} + gate {f.gate} * hidden "
                f"{f.hidden}",
                self.update_acc.width,
                "gate",
                "its products are too wide; use narrower gate or hidden formats",
            ),
            IntermediateWidth(
                "hidden rescale",
                f"hidden accumulator with {self.update_acc.frac} fraction bits to hidden "
                f"{f.hidden}",
                _shift_width(self.update_acc.width, self.update_acc.frac - f.hidden.frac),
                "hidden",
                "use a narrower gate format or a hidden format with fewer fraction bits",
            ),
            *(
                IntermediateWidth(
                    f"{name} table interpolation",
                    f"preact {table.input} to gate {f.gate}",
                    _interpolation_width(table),
                    "preact",
                    "use a preact format with fewer fraction bits or a narrower gate format",
                )
                for name, table in tables
            ),
        )

    @cached_property
    def sigmoid(self) -> ActivationTable:
        f = self.formats
        return activation_table(Activation.SIGMOID, f.preact, f.gate, self.rounding)

    @cached_property
    def tanh_gate(self) -> ActivationTable:
        f = self.formats
        return activation_table(Activation.TANH, f.preact, f.gate, self.rounding)


def cell_formats(cell_type):
    """The formats class of a cell type (``"lstm"``/``"gru"`` or a ``CellType``):
    :class:`LstmFormats` or :class:`GruFormats`."""
    value = getattr(cell_type, "value", cell_type)
    return {"lstm": LstmFormats, "gru": GruFormats}[value]
