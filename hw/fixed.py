"""Amaranth expressions for the fixed-point operations of :mod:`lstm_fpga.sw.numerics`.

Each function builds the hardware form of one reference function, so that a block using them
computes exactly what the reference computes. Shapes come from :class:`FixedFormat` objects
only.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Module, Mux, Shape, Signal, Value, signed, unsigned

from ..sw.numerics import FixedFormat, Overflow, Rounding

__all__ = [
    "Rounded",
    "common_signed_shape",
    "fit_rounded",
    "fitting_range",
    "format_shape",
    "rescale_saturates",
    "rescale_value",
    "round_for",
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


@dataclass(frozen=True)
class Rounded:
    """The first half of :func:`rescale_value`: ``value`` rounded to a format, not yet fitted
    (:func:`round_for`); :func:`fit_rounded` finishes it. A pipeline may register the three
    fields (:meth:`registered`) and fit in the next cycle.

    ``low``: the rounded value's low ``fmt.width`` bits (unsigned); ``above``/``below``:
    whether the rounded value lies above ``fmt.max_int`` / below ``fmt.min_int``, compared on
    the unrounded value (:func:`fitting_range`) so that the compares run beside the rounding
    add (one carry chain deep, not two).
    """

    low: Value
    above: Value
    below: Value

    @property
    def saturates(self) -> Value:
        """1 when the fit clamps (or wraps): the reference's ``overflow_count`` test."""
        return self.above | self.below

    def registered(self, m: Module, name: str) -> Rounded:
        """The fields through reset-less registers (no enable), named after ``name``."""
        fields = {}
        for field in ("low", "above", "below"):
            value = Value.cast(getattr(self, field))
            fields[field] = Signal(len(value), name=f"{name}_{field}", reset_less=True)
            m.d.sync += fields[field].eq(value)
        return Rounded(**fields)


def round_for(value: Value, from_frac: int, fmt: FixedFormat, rounding: Rounding) -> Rounded:
    """``value`` (``from_frac`` fraction bits) shifted to ``fmt.frac`` with ``rounding``, with
    its compares against ``fmt``: the part of :func:`rescale_value` with carry chains."""
    shift = from_frac - fmt.frac
    value = Value.cast(value)
    low, high = fitting_range(shift, rounding, fmt)
    rounded = shift_round_value(value, shift, rounding)
    return Rounded(rounded[: fmt.width], value > high, value < low)


def fit_rounded(rounded: Rounded, fmt: FixedFormat, overflow: Overflow) -> Value:
    """The rounded value fitted into ``fmt``: its low bits with the format's signedness when
    it fits (or always, with ``WRAP``), else the clamp (``SATURATE``)."""
    low = Value.cast(rounded.low)
    fitted = low.as_signed() if fmt.signed else low
    if overflow is Overflow.WRAP:
        return fitted
    return Mux(rounded.above, fmt.max_int, Mux(rounded.below, fmt.min_int, fitted))


def rescale_saturates(value: Value, from_frac: int, fmt: FixedFormat, rounding: Rounding) -> Value:
    """1 when ``rescale(value)`` clamps (or wraps): the rounded value lies outside ``fmt`` (the
    reference's ``overflow_count`` test), decided on ``value`` itself (:func:`fitting_range`),
    off the rounding adder's path."""
    return round_for(value, from_frac, fmt, rounding).saturates


def rescale_value(
    value: Value,
    from_frac: int,
    fmt: FixedFormat,
    rounding: Rounding,
    overflow: Overflow,
) -> Value:
    """Hardware :func:`~lstm_fpga.sw.numerics.rescale`: shift with ``rounding``, then fit
    (:func:`round_for`, then :func:`fit_rounded`, in one cycle)."""
    return fit_rounded(round_for(value, from_frac, fmt, rounding), fmt, overflow)


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
