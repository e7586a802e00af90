"""The one-layer engine against ``run_reference``: bit-exact outputs with random stalls."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw import (
    EnginePlan,
    HardwareConfig,
    LstmEngine,
    LstmTop,
    TopInterface,
    cycle_bound,
)
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import random_input, random_model
from tests.hw.conftest import receive_beats, send_beats
from tests.hw.engine_driver import x_payloads


def _reference_outputs(model, sequences):
    return [run_reference(model, seq[:, None, :]).output[:, 0, :] for seq in sequences]


def _input_beats(interface, sequences):
    """The ``x`` payloads of ``sequences`` streamed back to back."""
    return [beat for seq in sequences for beat in x_payloads(interface, seq)]


def _run_engine(model, lanes, sequences, seed, idle, stall, elements=1):
    """Stream ``sequences`` through the engine; returns (y beats, cycles, busy at the end)."""
    plan = EnginePlan(model, HardwareConfig(lanes=lanes, input_elements=elements))
    dut = LstmEngine(plan)
    rng = np.random.default_rng(seed)
    beats = _input_beats(TopInterface(plan), sequences)
    total = sum(len(s) for s in sequences) * model.hidden_size
    result = {}

    async def source(ctx):
        await send_beats(ctx, dut.x, beats, rng, idle)

    async def sink(ctx):
        result["y"] = await receive_beats(ctx, dut.y, total, rng, stall, fields=("data", "last"))
        await ctx.tick().repeat(2)
        result["cycles"] = ctx.get(dut.cycles)
        result["busy"] = ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    return result


def _check(model, sequences, result):
    expected = _reference_outputs(model, sequences)
    H = model.hidden_size
    got = np.array([beat["data"] for beat in result["y"]])
    lasts = np.array([beat["last"] for beat in result["y"]])
    offset = 0
    for k, ref in enumerate(expected):
        block = got[offset : offset + ref.size].reshape(ref.shape)
        mismatch = np.argwhere(block != ref)
        assert mismatch.size == 0, (
            f"sequence {k}: first mismatch at (step, unit) {tuple(mismatch[0])}: "
            f"hardware {block[tuple(mismatch[0])]} reference {ref[tuple(mismatch[0])]}"
        )
        offset += ref.size
    expected_lasts = np.zeros(len(got), dtype=int)
    expected_lasts[np.cumsum([s.shape[0] * H for s in sequences]) - 1] = 1
    np.testing.assert_array_equal(lasts, expected_lasts)
    assert result["busy"] == 0


def _sequences(model, lengths, seed):
    return [random_input(model, n, seed + k) for k, n in enumerate(lengths)]


@pytest.mark.parametrize(
    "input_size, hidden_size, formats, scale, lanes",
    [
        (5, 11, "q16", 1.5, 3),  # P does not divide 4H
        (5, 11, "q16", 4.0, 1),  # one lane
        (5, 11, "q16", 1.5, 8),
        (5, 11, "q16", 4.0, 64),  # P > 4H
        (5, 11, "tight", 4.0, 4),  # every rescale saturates now and then
        (3, 4, "q12", 4.0, 5),  # narrow formats
        (4, 2, "mixed", 4.0, 2),  # 8-bit x / W_ih next to 16-bit state
        (1, 1, "q16", 1.5, 1),  # degenerate sizes
        (5, 3, "tight", 4.0, 24),  # P = 8H: two column groups
        (4, 2, "q16", 4.0, 27),  # three column groups, I + H not a multiple of 3
        (3, 1, "q12", 4.0, 64),  # four groups of one-cycle passes
        # One group beyond 16 lanes: the element tree and the sums from the accumulators
        (7, 5, "q16", 4.0, 20),
        (4, 9, "tight", 4.0, 36),
    ],
)
def test_engine_matches_reference_with_stalls(input_size, hidden_size, formats, scale, lanes):
    model = random_model(input_size, hidden_size, seed=lanes, scale=scale, formats=formats)
    sequences = _sequences(model, [13, 1, 8], seed=10 * lanes)
    result = _run_engine(model, lanes, sequences, seed=lanes, idle=0.3, stall=0.3)
    _check(model, sequences, result)


@pytest.mark.parametrize(
    "input_size, hidden_size, formats, lanes, elements",
    [
        (5, 11, "q16", 3, 2),  # the last beat of a step carries one element and padding
        (5, 3, "tight", 24, 2),  # two column groups
        (8, 2, "q12", 32, 4),  # four column groups, four elements per beat
        (3, 4, "mixed", 5, 4),  # I < k: one padded beat per step
    ],
)
def test_several_input_elements_per_beat(input_size, hidden_size, formats, lanes, elements):
    model = random_model(input_size, hidden_size, seed=lanes, scale=4.0, formats=formats)
    sequences = _sequences(model, [9, 1, 5], seed=lanes)
    result = _run_engine(model, lanes, sequences, lanes, 0.3, 0.3, elements=elements)
    _check(model, sequences, result)


def test_engine_without_stalls_reaches_the_cycle_budget():
    """Free-flowing streams: a long sequence takes about steps * passes * (I + H) cycles."""
    model = random_model(5, 11, seed=3, formats="q16", scale=1.5)
    lanes, steps = 4, 20
    sequences = _sequences(model, [steps], seed=3)
    result = _run_engine(model, lanes, sequences, seed=0, idle=0.0, stall=0.0)
    _check(model, sequences, result)
    bound = cycle_bound(model, lanes=lanes)
    # Steady state at the bound, plus the pipeline fill/drain of one sequence.
    assert steps * bound <= result["cycles"] <= steps * (bound + 16) + 64


def test_many_short_sequences_under_heavy_backpressure():
    """Up to 4 sequences in flight: one-step sequences pile up behind a slow consumer."""
    model = random_model(2, 1, seed=9, scale=4.0, formats="q12")
    lengths = [1, 1, 2, 1, 1, 1, 3, 1, 1, 2, 1, 1]
    sequences = _sequences(model, lengths, seed=9)
    result = _run_engine(model, 4, sequences, seed=9, idle=0.0, stall=0.85)
    _check(model, sequences, result)


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [2, 7, 16])
def test_engine_longer_sequences(lanes):
    model = random_model(9, 6, seed=lanes, scale=3.0, formats="tight")
    sequences = _sequences(model, [30, 2, 21], seed=lanes)
    result = _run_engine(model, lanes, sequences, seed=lanes, idle=0.5, stall=0.5)
    _check(model, sequences, result)


def test_top_axi_ports_stream_the_same_outputs():
    """``lstm_top``'s AXI-named ports: tdata/tvalid/tready/tlast, cycles and busy."""
    model = random_model(5, 11, seed=5, formats="q16", scale=1.5)
    top = LstmTop(EnginePlan(model, HardwareConfig(lanes=6)))
    sequences = _sequences(model, [4, 3], seed=5)
    beats = _input_beats(top.interface, sequences)
    total = sum(len(s) for s in sequences) * model.hidden_size
    rng = np.random.default_rng(5)
    got, state = [], {}

    async def source(ctx):
        for beat in beats:
            ctx.set(top.x.tdata, beat["data"])
            ctx.set(top.x.tlast, beat["last"])
            ctx.set(top.x.tvalid, 1)
            await ctx.tick().until(top.x.tready)
        ctx.set(top.x.tvalid, 0)

    async def sink(ctx):
        while len(got) < total:
            ready = rng.random() < 0.7
            ctx.set(top.y.tready, ready)
            _, _, valid, data, last, busy = await ctx.tick().sample(
                top.y.tvalid, top.y.tdata, top.y.tlast, top.busy
            )
            state.setdefault("busy_seen", 0)
            state["busy_seen"] |= busy
            if valid and ready:
                got.append({"data": data, "last": last})
        ctx.set(top.y.tready, 0)
        await ctx.tick().repeat(2)
        state["cycles"], state["busy"] = ctx.get(top.cycles), ctx.get(top.busy)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    _check(model, sequences, {"y": got, "busy": state["busy"]})
    assert state["busy_seen"] == 1
    # The last sequence: 3 steps, so at least 3 step bounds passed between first and last beat.
    assert state["cycles"] >= 3 * cycle_bound(model, lanes=6)
