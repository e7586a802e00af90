"""Hardware rescale against the reference: every input of a small shape, every rounding and
overflow mode, right and left shifts (the saturation compares run on the unrounded value)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from lstm_fpga.hw.fixed import (
    fit_rounded,
    fitting_range,
    rescale_saturates,
    rescale_value,
    round_for,
)
from lstm_fpga.sw.numerics import (
    FixedFormat,
    Overflow,
    Rounding,
    overflow_count,
    rescale,
    shift_round,
)

#: (input shape, from_frac, destination format): right shifts of 1..6 bits, none, a left
#: shift; signed and unsigned destinations; a destination wider than the rounded range.
CASES = [
    (signed(8), 4, FixedFormat(4, 1)),
    (signed(8), 6, FixedFormat(2, 0, signed=False)),
    (signed(8), 1, FixedFormat(3, 0, signed=False)),
    (signed(9), 3, FixedFormat(6, 3)),
    (signed(7), 2, FixedFormat(4, 4)),
    (unsigned(8), 5, FixedFormat(3, 1, signed=False)),
    (signed(8), 7, FixedFormat(12, 2)),
]


def _every_value(shape) -> list[int]:
    low = -(1 << (shape.width - 1)) if shape.signed else 0
    return list(range(low, low + (1 << shape.width)))


def _sweep(m: Module, value: Signal, result: Signal, flag: Signal, *, clocked: bool) -> tuple:
    """Drive ``value`` through every value of its shape; ``result`` and ``flag`` as seen at each
    (after a clock edge when ``clocked``)."""
    values = _every_value(value.shape())
    seen = {"result": [], "flag": []}

    async def bench(ctx):
        for v in values:
            ctx.set(value, v)
            if clocked:
                await ctx.tick()
            seen["result"].append(ctx.get(result))
            seen["flag"].append(ctx.get(flag))

    sim = Simulator(m)
    if clocked:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return values, seen["result"], seen["flag"]


def _assert_equals_reference(values, results, flags, from_frac, fmt, rounding, overflow):
    expected = rescale(np.array(values), from_frac, fmt, rounding, overflow)
    assert results == [int(e) for e in expected]
    rounded = shift_round(np.array(values), from_frac - fmt.frac, rounding)
    assert flags == [overflow_count([r], fmt) for r in rounded]


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("shape, from_frac, fmt", CASES)
def test_rescale_and_its_saturation_flag_equal_the_reference(
    shape, from_frac, fmt, rounding, overflow
):
    m = Module()
    value = Signal(shape)
    result = Signal(rescale_value(value, from_frac, fmt, rounding, overflow).shape())
    flag = Signal()
    m.d.comb += [
        result.eq(rescale_value(value, from_frac, fmt, rounding, overflow)),
        flag.eq(rescale_saturates(value, from_frac, fmt, rounding)),
    ]
    values, results, flags = _sweep(m, value, result, flag, clocked=False)
    _assert_equals_reference(values, results, flags, from_frac, fmt, rounding, overflow)
    assert 0 < sum(flags) < len(values) or fmt.width >= 12


@pytest.mark.parametrize("shift", [-3, -1, 0, 1, 2, 5])
@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("fmt", [FixedFormat(4, 0), FixedFormat(3, 0, signed=False)])
def test_fitting_range_is_the_exact_preimage_of_the_format(shift, rounding, fmt):
    low, high = fitting_range(shift, rounding, fmt)
    values = np.arange(-300, 301)
    rounded = shift_round(values, shift, rounding)
    fits = (rounded >= fmt.min_int) & (rounded <= fmt.max_int)
    assert values[fits].min() == low and values[fits].max() == high
    assert fits.sum() == high - low + 1


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("shape, from_frac, fmt", CASES[:2] + CASES[4:6])
def test_registered_round_then_fit_equals_rescale_a_cycle_later(shape, from_frac, fmt, overflow):
    rounding = Rounding.HALF_UP
    m = Module()
    value = Signal(shape)
    staged = round_for(value, from_frac, fmt, rounding).registered(m, "stage")
    result = Signal(fit_rounded(staged, fmt, overflow).shape())
    flag = Signal()
    m.d.comb += [result.eq(fit_rounded(staged, fmt, overflow)), flag.eq(staged.saturates)]
    values, results, flags = _sweep(m, value, result, flag, clocked=True)
    _assert_equals_reference(values, results, flags, from_frac, fmt, rounding, overflow)
