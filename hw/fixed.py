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
    "format_shape",
    "rescale_value",
    "saturates",
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


def saturates(value: Value, fmt: FixedFormat) -> Value:
    """1 when ``value`` lies outside ``fmt`` (the reference's ``overflow_count`` test)."""
    value = Value.cast(value)
    return (value > fmt.max_int) | (value < fmt.min_int)


def _clamp_value(value: Value, fmt: FixedFormat, overflow: Overflow) -> Value:
    shape = format_shape(fmt)
    if overflow is Overflow.WRAP:
        low_bits = value[: fmt.width]
        return low_bits.as_signed() if fmt.signed else low_bits
    clamped = Mux(value > fmt.max_int, fmt.max_int, Mux(value < fmt.min_int, fmt.min_int, value))
    # The clamped value fits ``fmt``: keep its low bits with the format's signedness.
    low_bits = clamped[: shape.width]
    return low_bits.as_signed() if shape.signed else low_bits


def rescale_value(
    value: Value,
    from_frac: int,
    fmt: FixedFormat,
    rounding: Rounding,
    overflow: Overflow,
) -> Value:
    """Hardware :func:`~lstm_fpga.sw.numerics.rescale`: shift with ``rounding``, then fit."""
    return _clamp_value(shift_round_value(value, from_frac - fmt.frac, rounding), fmt, overflow)


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
