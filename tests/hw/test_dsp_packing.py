"""Two multiplies per DSP (issue 13 item 4) in the Amaranth blocks: the packed multiplier's
products and latency, the lane pairs of a plan, and the matrix-vector unit with packed lanes
against the reference accumulators (the same integers as unpacked)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Signal
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError
from lstm_fpga.hw.mvu import pass_latency
from lstm_fpga.hw.pipeline import Multiplier, PackedMultiplier
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.numerics import DSP_PORTS, FixedFormat, dsp_packing
from lstm_fpga.testing import random_model, width_formats
from tests.hw.test_mvu import check_units


def packed_model(*shape, weight_bits=8, element_bits=8, **options) -> LstmModel:
    """A random model of ``element_bits`` activations/states and ``weight_bits`` weights
    (head included)."""
    layer, head = width_formats(element_bits)
    w = FixedFormat(weight_bits, weight_bits - 2)
    layer = layer.__class__(**{**layer.__dict__, "w_ih": w, "w_hh": w})
    return random_model(*shape, formats=layer, head_formats={**head, "weight": w}, **options)


def _extremes(bits: int, rng, count: int) -> list[int]:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    values = [low, high, -1, 0, low, low, high]
    return values + [int(v) for v in rng.integers(low, high + 1, count)]


@pytest.mark.parametrize(
    "weight_bits, element_bits, dsp", [(8, 8, "DSP48E1"), (4, 16, "DSP48E1"), (9, 8, "DSP48E2")]
)
def test_packed_multiplier_gives_both_products_after_its_latency(weight_bits, element_bits, dsp):
    packed = dsp_packing(weight_bits, element_bits, dsp)
    dut = PackedMultiplier(packed)
    rng = np.random.default_rng(weight_bits * element_bits)
    evens = _extremes(weight_bits, rng, 40)
    odds = _extremes(weight_bits, rng, 40)[::-1]
    xs = _extremes(element_bits, rng, 40)
    got = []

    async def bench(ctx):
        latency = PackedMultiplier.LATENCY
        for k in range(len(xs) + latency):
            if k < len(xs):
                ctx.set(dut.a_even, evens[k])
                ctx.set(dut.a_odd, odds[k])
                ctx.set(dut.b, xs[k])
            if k >= latency:
                got.append((ctx.get(dut.even), ctx.get(dut.odd)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [(e * x, o * x) for e, o, x in zip(evens, odds, xs, strict=True)]
    # The product shape is the unpacked multiplier's.
    assert dut.even.shape() == (Signal(dut.a_even.shape()) * Signal(dut.b.shape())).shape()


@pytest.mark.parametrize("lanes, pairs, dsps", [(1, 0, 1), (5, 2, 3), (8, 4, 4), (100, 48, 48)])
def test_lane_pairs_and_dsp_count(lanes, pairs, dsps):
    model = packed_model(3, 6, head=2)  # 4H = 24 rows: P = 100 gives 4 groups of 24
    plan = EnginePlan(model, HardwareConfig(lanes=lanes, dsp_packing=2))
    assert len(plan.lane_pairs) == pairs and plan.lane_dsps == dsps
    assert plan.lane_dsps == -(-plan.lanes // 2)
    for even, odd in plan.lane_pairs:  # the two lanes of a pair see the same element
        assert odd == even + 1 and even // plan.row_lanes == odd // plan.row_lanes
    unpacked = EnginePlan(model, HardwareConfig(lanes=lanes))
    assert unpacked.lane_dsps == unpacked.lanes and unpacked.lane_pairs == ()
    # The bound counts logical lanes: the same for both; so does the pipeline.
    assert plan.step_bound() == unpacked.step_bound()
    assert pass_latency(plan) == pass_latency(unpacked)
    assert PackedMultiplier.LATENCY == Multiplier.LATENCY


def test_same_dsp_count_halves_the_bound():
    """At the same DSP count D, a packed build has 2D lanes: ceil(bound(D) / 2)."""
    model = packed_model(7, 9, num_layers=2)
    for dsps in (1, 3, 4, 16):
        unpacked = EnginePlan(model, HardwareConfig(lanes=dsps))
        packed = EnginePlan(model, HardwareConfig(lanes=2 * dsps, dsp_packing=2))
        assert packed.lane_dsps == dsps
        bound = sum(-(-m.bound // 2) for m in unpacked.lstm_matrices)
        assert packed.step_bound() == bound <= -(-unpacked.step_bound() // 2) + 2


@pytest.mark.parametrize(
    "weight_bits, element_bits, dsp, message",
    [
        (8, 16, "DSP48E1", "33-bit packed operand"),
        (16, 16, "DSP48E2", "49-bit packed operand"),
        (4, 8, "MULT18X18D", "MULT9X9D"),
    ],
)
def test_plan_refuses_widths_that_do_not_fit(weight_bits, element_bits, dsp, message):
    model = packed_model(3, 2, weight_bits=weight_bits, element_bits=element_bits)
    with pytest.raises(HardwareConfigError, match=message):
        EnginePlan(model, HardwareConfig(lanes=4, dsp_packing=2, dsp=dsp))
    assert EnginePlan(model, HardwareConfig(lanes=4)).packed_product is None


@pytest.mark.parametrize("bad", [0, 3, True, "2"])
def test_config_refuses_other_packing_factors(bad):
    with pytest.raises(HardwareConfigError, match="dsp_packing must be one of 1, 2"):
        HardwareConfig(dsp_packing=bad)


@pytest.mark.parametrize(
    "layers, bidirectional, head, lanes, weight_bits, element_bits",
    [
        (2, False, 3, 3, 8, 8),  # odd P: one lane keeps its own multiplier
        (1, True, 5, 6, 8, 8),
        (2, False, None, 5, 4, 16),
        (1, False, 7, 17, 8, 8),  # two column groups of 4H = 8 lanes, one unbuilt lane
    ],
)
def test_packed_units_equal_reference_accumulators(
    layers, bidirectional, head, lanes, weight_bits, element_bits
):
    model = packed_model(
        3,
        2,
        layers,
        bidirectional,
        head=head,
        weight_bits=weight_bits,
        element_bits=element_bits,
        seed=lanes,
        scale=2.0,
    )
    config = HardwareConfig(lanes=lanes, max_seq_len=4, dsp_packing=2)
    plan = EnginePlan(model, config)
    assert plan.packed_product.packed_bits <= DSP_PORTS["DSP48E1"][0]
    check_units(plan, seed=lanes)
