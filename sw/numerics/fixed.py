"""Fixed-point formats and the integer operations on them: quantise, shift, round, clamp."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

import numpy as np

#: Default total width of every tensor format.
DEFAULT_WIDTH = 16
#: Widest value the integer reference holds exactly: it computes in int64 (63 bits and a
#: sign), and one bit stays free so that a rounding offset added before a shift cannot wrap.
MAX_EXACT_WIDTH = 62


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
        if not min_width <= self.width <= MAX_EXACT_WIDTH:
            raise ValueError(
                f"format width must be between {min_width} and {MAX_EXACT_WIDTH} bits, not "
                f"{self.width}"
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
        # Exact while the shifted value fits: the IR refuses formats where it could not.
        return values << -shift
    if shift > MAX_EXACT_WIDTH:
        # Drop the low bits in two shifts so that neither the rounding offset nor the shift
        # leaves int64: floor((v + 2**(s-1)) / 2**s) = floor((floor(v / 2**k) + 2**(s-k-1)) /
        # 2**(s-k)) for integer v, and any shift of 63 or more leaves only the sign.
        values = values >> min(shift - MAX_EXACT_WIDTH, 63)
        shift = MAX_EXACT_WIDTH
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


def scaled_integers(values, fmt: FixedFormat, rounding: Rounding) -> np.ndarray:
    """Floats scaled to ``fmt``'s LSB and rounded to integers (as floats, not yet clamped)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), fmt.frac)
    if rounding is Rounding.FLOOR:
        return np.floor(scaled)
    # From 2**52 up every float is an integer, and adding 0.5 would round to even.
    return np.where(np.abs(scaled) < 2.0**52, np.floor(scaled + 0.5), scaled)


def quantize(
    values,
    fmt: FixedFormat,
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> np.ndarray:
    """Convert floats to integers of ``fmt`` (``rounding`` applies to the dropped fraction)."""
    scaled = scaled_integers(values, fmt, rounding)
    if not np.all(np.isfinite(scaled)):
        raise ValueError("cannot quantize NaN or infinite values")
    # Clip in float first so huge values do not overflow the int64 conversion.
    limit = float(1 << MAX_EXACT_WIDTH)
    ints = np.clip(scaled, -limit, limit).astype(np.int64)
    return clamp(ints, fmt, overflow)


def dequantize(values, fmt: FixedFormat) -> np.ndarray:
    """Convert integers of ``fmt`` to floats (exact for widths up to 53 bits)."""
    return np.ldexp(_as_int64(values).astype(np.float64), -fmt.frac)
