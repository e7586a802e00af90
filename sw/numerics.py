"""Fixed-point numerics: the single source of truth for every number lstm-fpga computes.

Everything the hardware does to a number is defined here once and used by the integer
reference (:mod:`lstm_fpga.sw.reference`), the Amaranth generator (:mod:`lstm_fpga.hw`) and
the simulator checks (:mod:`lstm_fpga.sim`):

* :class:`FixedFormat` -- a two's complement (or unsigned) format ``width``/``frac``.
* :func:`quantize` / :func:`dequantize` -- float <-> integer conversion.
* :func:`shift_round`, :func:`clamp`, :func:`rescale` -- the hardware's requantisation step:
  an arithmetic shift with a rounding rule, then saturation or wrap-around.
* :class:`AccumulatorPlan` / :func:`plan_accumulator` -- how products of differently scaled
  operands are aligned into one accumulator, and how wide that accumulator must be so that it
  can never overflow.
* :class:`ActivationTable` -- sigmoid and tanh as integer functions (a table with linear
  interpolation) generated from the input and output formats.
* :class:`LstmFormats` / :class:`LstmDatapath` -- the formats of one LSTM layer direction and
  everything derived from them (accumulator plans and activation tables).

The numeric contract these pieces implement is written down in ``docs/numerics.md``.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "ACTIVATION_DOMAIN",
    "ACTIVATION_SEGMENTS_PER_UNIT",
    "DEFAULT_WIDTH",
    "AccumulatorPlan",
    "Activation",
    "ActivationTable",
    "FixedFormat",
    "HeadDatapath",
    "HeadFormats",
    "LstmDatapath",
    "LstmFormats",
    "MacSegment",
    "Overflow",
    "Rounding",
    "activation_table",
    "clamp",
    "dequantize",
    "overflow_count",
    "plan_accumulator",
    "quantize",
    "rescale",
    "shift_round",
]

#: Default total width of every tensor format.
DEFAULT_WIDTH = 16
#: Activation tables cover pre-activations in [-ACTIVATION_DOMAIN, ACTIVATION_DOMAIN); outside
#: they return the end values (|sigmoid(8) - 1| = 3.4e-4 and |tanh(8) - 1| = 2.3e-7, both
#: below the 2^-10 error budget).
ACTIVATION_DOMAIN = 8
#: Segments per unit of input in the interpolated activation tables: linear interpolation
#: error is h^2/8 * max|f''| = 2.3e-4 for tanh and 3e-5 for sigmoid with h = 1/16.
ACTIVATION_SEGMENTS_PER_UNIT = 16


class Rounding(enum.Enum):
    """How a right shift drops fraction bits."""

    #: Arithmetic shift right: round towards minus infinity (free in hardware).
    FLOOR = "floor"
    #: Add half an output LSB, then shift: round half towards plus infinity (one adder).
    HALF_UP = "half_up"


class Overflow(enum.Enum):
    """What happens to a value that does not fit its destination format."""

    #: Clamp to the nearest representable value.
    SATURATE = "saturate"
    #: Keep the low ``width`` bits (two's complement wrap-around).
    WRAP = "wrap"


_Q_PATTERN = re.compile(r"^(U?)Q(-?\d+)\.(-?\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class FixedFormat:
    """A fixed-point format: an integer ``v`` of ``width`` bits stands for ``v * 2**-frac``.

    Written ``Qm.n`` (signed: ``width = 1 + m + n``) or ``UQm.n`` (unsigned: ``width = m + n``).
    ``frac`` may exceed ``width`` or be negative; ``m`` is then negative or larger than the
    width.
    """

    width: int
    frac: int
    signed: bool = True

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool):
            raise TypeError(f"format width must be an int, not {self.width!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise TypeError(f"format fraction bits must be an int, not {self.frac!r}")
        min_width = 2 if self.signed else 1
        if not min_width <= self.width <= 62:
            raise ValueError(
                f"format width must be between {min_width} and 62 bits, not {self.width}"
            )
        if not -64 <= self.frac <= 64:
            raise ValueError(f"format fraction bits must be between -64 and 64, not {self.frac}")

    @classmethod
    def parse(cls, text: str) -> FixedFormat:
        """Parse ``Qm.n`` (signed) or ``UQm.n`` (unsigned), e.g. ``Q3.12`` = 16 bits, 12 frac."""
        match = _Q_PATTERN.match(text.strip())
        if match is None:
            raise ValueError(
                f"cannot parse fixed-point format {text!r}: write Qm.n (signed, 1+m+n bits) "
                f"or UQm.n (unsigned, m+n bits), e.g. Q3.12"
            )
        unsigned, int_bits, frac = match.group(1), int(match.group(2)), int(match.group(3))
        signed = not unsigned
        return cls(width=int_bits + frac + (1 if signed else 0), frac=frac, signed=signed)

    @property
    def int_bits(self) -> int:
        """Integer bits, not counting the sign bit."""
        return self.width - self.frac - (1 if self.signed else 0)

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return math.ldexp(1.0, -self.frac)

    @property
    def min_value(self) -> float:
        return self.min_int * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_int * self.lsb

    def __str__(self) -> str:
        return f"{'' if self.signed else 'U'}Q{self.int_bits}.{self.frac}"

    def to_json(self) -> str:
        return str(self)

    @classmethod
    def from_json(cls, text: str) -> FixedFormat:
        return cls.parse(text)


def _as_int64(values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise TypeError(f"expected integer values, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def clamp(values, fmt: FixedFormat, overflow: Overflow = Overflow.SATURATE) -> np.ndarray:
    """Fit integers into ``fmt`` by saturation or wrap-around."""
    values = _as_int64(values)
    if overflow is Overflow.SATURATE:
        return np.clip(values, fmt.min_int, fmt.max_int)
    mask = (1 << fmt.width) - 1
    wrapped = values & mask
    if fmt.signed:
        wrapped = np.where(wrapped > fmt.max_int, wrapped - (1 << fmt.width), wrapped)
    return wrapped.astype(np.int64)


def overflow_count(values, fmt: FixedFormat) -> int:
    """How many of ``values`` lie outside ``fmt`` (the hardware's saturation counters)."""
    values = _as_int64(values)
    return int(np.count_nonzero((values < fmt.min_int) | (values > fmt.max_int)))


def shift_round(values, shift: int, rounding: Rounding = Rounding.HALF_UP) -> np.ndarray:
    """Multiply by ``2**-shift``: right shift with ``rounding`` (``shift > 0``) or left shift."""
    values = _as_int64(values)
    if shift <= 0:
        return values << -shift
    if rounding is Rounding.HALF_UP:
        values = values + (1 << (shift - 1))
    return values >> shift


def rescale(
    values,
    from_frac: int,
    fmt: FixedFormat,
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Requantise integers with ``from_frac`` fraction bits to ``fmt``: shift, round, clamp."""
    return clamp(shift_round(values, from_frac - fmt.frac, rounding), fmt, overflow)


def quantize(
    values,
    fmt: FixedFormat,
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Convert floats to integers of ``fmt`` (``rounding`` applies to the dropped fraction)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), fmt.frac)
    if not np.all(np.isfinite(scaled)):
        raise ValueError("cannot quantize NaN or infinite values")
    if rounding is Rounding.HALF_UP:
        scaled = np.floor(scaled + 0.5)
    else:
        scaled = np.floor(scaled)
    # Clip in float first so huge values do not overflow the int64 conversion.
    limit = float(1 << 62)
    ints = np.clip(scaled, -limit, limit).astype(np.int64)
    return clamp(ints, fmt, overflow)


def dequantize(values, fmt: FixedFormat) -> np.ndarray:
    """Convert integers of ``fmt`` to floats (exact for widths up to 53 bits)."""
    return np.ldexp(_as_int64(values).astype(np.float64), -fmt.frac)


def _ceil_log2(n: int) -> int:
    return max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class MacSegment:
    """``length`` products of a ``weight``-format and an ``operand``-format integer."""

    weight: FixedFormat
    operand: FixedFormat
    length: int

    @property
    def frac(self) -> int:
        return self.weight.frac + self.operand.frac

    @property
    def width(self) -> int:
        return self.weight.width + self.operand.width


@dataclass(frozen=True)
class AccumulatorPlan:
    """How products of several segments and a bias are summed exactly.

    Every product of segment ``k`` is shifted left by ``shifts[k]`` and the bias by
    ``bias_shift`` so that all terms have ``frac`` fraction bits; the sum of all terms always
    fits a signed ``width``-bit accumulator (no overflow is possible).
    """

    frac: int
    width: int
    shifts: tuple[int, ...]
    bias_shift: int
    terms: int

    def accumulate(self, products, bias=None) -> np.ndarray:
        """Sum per-segment partial sums (each already summed over its segment) and the bias.

        ``products`` is a sequence of integer arrays, one per segment, each the exact sum of
        that segment's raw (unshifted) products. Returns the accumulator value.
        """
        total = None
        for partial, shift in zip(products, self.shifts, strict=True):
            term = _as_int64(partial) << shift
            total = term if total is None else total + term
        if bias is not None:
            total = total + (_as_int64(bias) << self.bias_shift)
        return total


def plan_accumulator(
    segments: tuple[MacSegment, ...] | list[MacSegment], bias: FixedFormat | None
) -> AccumulatorPlan:
    """Align ``segments`` (and ``bias``) to the finest scale and size the accumulator.

    The width is ``max(aligned product width + ceil(log2(terms)), aligned bias width) + 1``:
    a sum of ``terms`` signed products of ``a``- and ``b``-bit operands is bounded by
    ``terms * 2**(a+b-2)``, so this width leaves room for the bias and cannot overflow.
    """
    if not segments:
        raise ValueError("an accumulator needs at least one segment of products")
    frac = max(segment.frac for segment in segments)
    shifts = tuple(frac - segment.frac for segment in segments)
    terms = sum(segment.length for segment in segments)
    product_width = max(s.width + shift for s, shift in zip(segments, shifts, strict=True))
    width = product_width + _ceil_log2(terms)
    bias_shift = 0
    if bias is not None:
        bias_shift = frac - bias.frac
        if bias_shift < 0:
            raise ValueError(
                f"bias format {bias} has {bias.frac} fraction bits but the products it is added "
                f"to have only {frac}; use a bias format with at most {frac} fraction bits"
            )
        width = max(width, bias.width + bias_shift)
    return AccumulatorPlan(
        frac=frac, width=width + 1, shifts=shifts, bias_shift=bias_shift, terms=terms
    )


class Activation(enum.Enum):
    SIGMOID = "sigmoid"
    TANH = "tanh"

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self is Activation.SIGMOID:
            return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1/(1+exp(-x))
        return np.tanh(x)


@dataclass(frozen=True)
class ActivationTable:
    """An activation as an integer function: table lookup with linear interpolation.

    The input integer ``p`` (format ``input``) is clamped to ``[low, high]``; ``offset = p -
    low`` splits into a segment index ``offset >> segment_shift`` and an interpolation weight
    ``offset & (2**segment_shift - 1)``. With ``y0, y1 = values[index], values[index + 1]``
    the result is ``y0 + ((y1 - y0) * weight + rounding) >> segment_shift`` where rounding
    is half an LSB for :attr:`Rounding.HALF_UP` and 0 for :attr:`Rounding.FLOOR`.
    Entries are the function at segment starts, quantised (half-up, saturating) to ``output``.
    """

    function: Activation
    input: FixedFormat
    output: FixedFormat
    segment_shift: int
    low: int
    high: int
    values: tuple[int, ...]
    rounding: Rounding = Rounding.HALF_UP

    @property
    def segments(self) -> int:
        return len(self.values) - 1

    @property
    def delta_width(self) -> int:
        """Signed width that holds every ``values[k+1] - values[k]``."""
        deltas = np.diff(np.asarray(self.values, dtype=np.int64))
        if deltas.size == 0:
            return 2
        largest = int(max(deltas.max(), -deltas.min(), 1))
        return largest.bit_length() + 1

    @property
    def size_bits(self) -> int:
        """Storage cost of the table in bits."""
        return len(self.values) * self.output.width

    def evaluate(self, preactivation) -> np.ndarray:
        p = np.clip(_as_int64(preactivation), self.low, self.high)
        offset = p - self.low
        index = offset >> self.segment_shift
        table = np.asarray(self.values, dtype=np.int64)
        y0 = table[index]
        if self.segment_shift == 0:
            return y0
        weight = offset & ((1 << self.segment_shift) - 1)
        y1 = table[np.minimum(index + 1, len(table) - 1)]
        return y0 + shift_round((y1 - y0) * weight, self.segment_shift, self.rounding)


def activation_table(
    function: Activation,
    input: FixedFormat,
    output: FixedFormat,
    rounding: Rounding = Rounding.HALF_UP,
) -> ActivationTable:
    """Generate the interpolated table for ``function`` from its input and output formats."""
    segment_shift = max(0, input.frac - _ceil_log2(ACTIVATION_SEGMENTS_PER_UNIT))
    step = 1 << segment_shift
    domain = max(1, int(math.ldexp(ACTIVATION_DOMAIN, input.frac)))
    low = max(input.min_int, -domain)
    high = min(input.max_int, domain - 1)
    # Align the clamped range to whole segments (it already is for power-of-two ranges).
    low -= low % step
    n_segments = -(-(high + 1 - low) // step)
    starts = low + step * np.arange(n_segments + 1, dtype=np.int64)
    exact = function(np.ldexp(starts.astype(np.float64), -input.frac))
    values = quantize(exact, output, Rounding.HALF_UP, Overflow.SATURATE)
    return ActivationTable(
        function=function,
        input=input,
        output=output,
        segment_shift=segment_shift,
        low=int(low),
        high=int(high),
        values=tuple(int(v) for v in values),
        rounding=rounding,
    )


@dataclass(frozen=True)
class LstmFormats:
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

    def items(self) -> tuple[tuple[str, FixedFormat], ...]:
        return tuple((name, getattr(self, name)) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class LstmDatapath:
    """Everything derived from one layer direction's formats: the arithmetic of a time step.

    gates  = rescale(gate_acc.accumulate([W_ih @ x, W_hh @ h], bias), preact)
    i,f,o  = sigmoid(gates),  g = tanh(gates)        (tables in ``gate`` format)
    c_t    = rescale(cell_acc.accumulate([f * c, i * g]), cell)
    h_t    = rescale(o * tanh_cell(c_t), hidden)     (product has 2 * gate.frac fraction bits)
    """

    formats: LstmFormats
    input_size: int
    hidden_size: int
    rounding: Rounding = Rounding.HALF_UP
    overflow: Overflow = Overflow.SATURATE

    @cached_property
    def gate_acc(self) -> AccumulatorPlan:
        f = self.formats
        return plan_accumulator(
            (
                MacSegment(f.w_ih, f.x, self.input_size),
                MacSegment(f.w_hh, f.hidden, self.hidden_size),
            ),
            f.bias,
        )

    @cached_property
    def cell_acc(self) -> AccumulatorPlan:
        f = self.formats
        segments = (MacSegment(f.gate, f.cell, 1), MacSegment(f.gate, f.gate, 1))
        return plan_accumulator(segments, None)

    @property
    def hidden_product_frac(self) -> int:
        return 2 * self.formats.gate.frac

    @property
    def hidden_product_width(self) -> int:
        return 2 * self.formats.gate.width

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
class HeadFormats:
    """Formats of the Linear head: its input is the last layer's ``hidden`` format."""

    x: FixedFormat
    weight: FixedFormat
    bias: FixedFormat
    output: FixedFormat

    def items(self) -> tuple[tuple[str, FixedFormat], ...]:
        return tuple((name, getattr(self, name)) for name in self.__dataclass_fields__)


@dataclass(frozen=True)
class HeadDatapath:
    """``y = rescale(acc.accumulate([W @ x], bias), output)``."""

    formats: HeadFormats
    in_features: int
    rounding: Rounding = Rounding.HALF_UP
    overflow: Overflow = Overflow.SATURATE

    @cached_property
    def acc(self) -> AccumulatorPlan:
        f = self.formats
        return plan_accumulator((MacSegment(f.weight, f.x, self.in_features),), f.bias)
