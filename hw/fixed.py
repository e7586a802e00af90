"""Amaranth expressions for the fixed-point operations of :mod:`lstm_fpga.sw.numerics`.

Each function builds the hardware form of one reference function, so that a block using them
computes exactly what the reference computes. Shapes come from :class:`FixedFormat` objects
only.
"""

from __future__ import annotations

from amaranth.hdl import Array, Mux, Shape, Value, signed, unsigned

from ..sw.numerics import FixedFormat, Overflow, Rounding

__all__ = [
    "common_signed_shape",
    "fitting_range",
    "format_shape",
    "rescale_saturates",
    "rescale_value",
    "shift_round_value",
    "shift_select",
]


def format_shape(fmt: FixedFormat) -> Shape:
    """The Amaranth shape holding integers of ``fmt``."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def common_signed_shape(*formats: FixedFormat) -> Shape:
    """The narrowest signed shape that holds every integer of each of ``formats``."""
    return signed(max(f.width + (0 if f.signed else 1) for f in formats))


def shift_round_value(value: Value, shift: int, rounding: Rounding) -> Value:
    """Hardware :func:`~lstm_fpga.sw.numerics.shift_round`: ``value * 2**-shift``."""
    value = Value.cast(value)
    if shift <= 0:
        return value << -shift
    if rounding is Rounding.HALF_UP:
        value = value + (1 << (shift - 1))
    return value >> shift


def fitting_range(shift: int, rounding: Rounding, fmt: FixedFormat) -> tuple[int, int]:
    """``(low, high)``: ``shift_round(v, shift, rounding)`` lies in ``fmt`` exactly when
    ``low <= v <= high``.

    With ``h`` the rounding offset (``2**(shift-1)`` for ``HALF_UP``, else 0),
    ``floor((v + h) / 2**shift) <= max`` iff ``v <= (max + 1) * 2**shift - h - 1`` and
    ``>= min`` iff ``v >= min * 2**shift - h``; a left shift by ``k`` keeps ``v`` within
    ``ceil(min / 2**k) .. floor(max / 2**k)``.
    """
    if shift <= 0:
        k = -shift
        return -(-fmt.min_int >> k), fmt.max_int >> k
    half = 1 << (shift - 1) if rounding is Rounding.HALF_UP else 0
    return (fmt.min_int << shift) - half, ((fmt.max_int + 1) << shift) - half - 1


def _outside(value: Value, shift: int, rounding: Rounding, fmt: FixedFormat):
    """``(above, below)``: whether ``shift_round(value)`` exceeds ``fmt`` above or below,
    compared on ``value`` itself so that the compares run beside the rounding add."""
    low, high = fitting_range(shift, rounding, fmt)
    value = Value.cast(value)
    return value > high, value < low


def rescale_saturates(value: Value, from_frac: int, fmt: FixedFormat, rounding: Rounding) -> Value:
    """1 when ``rescale(value)`` clamps (or wraps): the rounded value lies outside ``fmt`` (the
    reference's ``overflow_count`` test), decided on ``value`` itself (:func:`fitting_range`),
    off the rounding adder's path."""
    above, below = _outside(value, from_frac - fmt.frac, rounding, fmt)
    return above | below


def rescale_value(
    value: Value,
    from_frac: int,
    fmt: FixedFormat,
    rounding: Rounding,
    overflow: Overflow,
) -> Value:
    """Hardware :func:`~lstm_fpga.sw.numerics.rescale`: shift with ``rounding``, then fit.

    The saturation compares test ``value`` against :func:`fitting_range` rather than the
    rounded value, so they run in parallel with the rounding add (one carry chain deep, not
    two); the result is the same."""
    shift = from_frac - fmt.frac
    rounded = shift_round_value(value, shift, rounding)
    shape = format_shape(fmt)
    if overflow is Overflow.WRAP:
        low_bits = rounded[: fmt.width]
        return low_bits.as_signed() if fmt.signed else low_bits
    above, below = _outside(value, shift, rounding, fmt)
    # A rounded value that fits keeps its low bits with the format's signedness.
    low_bits = rounded[: shape.width]
    fitted = low_bits.as_signed() if shape.signed else low_bits
    return Mux(above, fmt.max_int, Mux(below, fmt.min_int, fitted))


def shift_select(value, shifts: list[int], index) -> Value:
    """``value << shifts[index]``, the distinct shifts as a small multiplexer (one shift
    when all are equal)."""
    distinct = sorted(set(shifts))
    if len(distinct) == 1:
        return value << distinct[0]
    which = Array([distinct.index(s) for s in shifts])[index]
    result = value << distinct[0]
    for k, shift in enumerate(distinct[1:], start=1):
        result = Mux(which == k, value << shift, result)
    return result
