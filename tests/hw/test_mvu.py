"""MatrixVectorUnit: lanes + drain against ``gate_accumulators``, with stalls on both sides."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from conftest import make_model, random_input, receive_beats

from lstm_fpga.hw import PassGeometry, bank_images
from lstm_fpga.hw.mvu import MatrixVectorUnit
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import gate_accumulators


def _steps(model, steps, seed):
    """Random ``x_t`` and ``h_{t-1}`` (first step of each sequence: h = 0)."""
    rng = np.random.default_rng(seed)
    f = model.direction(0, False).formats
    xs = random_input(model, steps, seed)
    hs = quantize(rng.uniform(-1, 1, (steps, model.hidden_size)) * f.hidden.max_value, f.hidden)
    firsts = rng.random(steps) < 0.3
    firsts[0] = True
    hs[firsts] = 0
    lasts = np.roll(firsts, -1)
    return xs, hs, firsts, lasts


@pytest.mark.parametrize(
    "input_size, hidden_size, formats, lanes",
    [
        (5, 11, "q16", 3),
        (5, 11, "mixed", 1),
        (5, 11, "q16", 8),
        (5, 11, "q12", 64),  # P > 4H: 44 lanes, one group
        (2, 3, "q16", 6),
        (5, 3, "mixed", 24),  # P = 8H: two column groups
        (4, 2, "q16", 27),  # three column groups, I + H not a multiple of 3
    ],
)
def test_units_equal_gate_accumulators(input_size, hidden_size, formats, lanes):
    model = make_model(input_size, hidden_size, formats, seed=lanes, scale=4.0)
    d = model.direction(0, False)
    dp = model.datapath(0)
    g = PassGeometry(input_size, hidden_size, lanes)
    images = bank_images(g, d)
    dut = MatrixVectorUnit(dp, g)
    steps = 6
    xs, hs, firsts, lasts = _steps(model, steps, seed=lanes)
    rng = np.random.default_rng(lanes)
    H, I = hidden_size, input_size
    result = {}

    async def drive(ctx):
        for t in range(steps):
            vector = np.concatenate([xs[t], hs[t]])
            padded = np.zeros(g.span * g.groups, dtype=np.int64)
            padded[: g.columns] = vector
            for p in range(g.passes):
                ctx.set(dut.biases, [int(v) for v in images.biases[:, p]])
                for cycle in range(g.span):
                    while rng.random() < 0.3:  # idle cycles between beats
                        ctx.set(dut.column.valid, 0)
                        await ctx.tick()
                    last = cycle == g.span - 1
                    columns = [cycle * g.groups + grp for grp in range(g.groups)]
                    if last:  # protocol: a pass lands only in a free drain
                        ctx.set(dut.column.valid, 0)
                        while not ctx.get(dut.drain_free):
                            await ctx.tick()
                    ctx.set(dut.weights, [int(v) for v in images.weights[:, p * g.span + cycle]])
                    ctx.set(
                        dut.column.payload,
                        {
                            "elements": [int(padded[c]) for c in columns],
                            "segments": sum(int(c >= I) << k for k, c in enumerate(columns)),
                            "first": int(cycle == 0),
                            "last": int(last),
                            "final_pass": int(p == g.passes - 1),
                            "step_first": int(firsts[t]),
                            "step_last": int(lasts[t]),
                            "parity": t % 2,
                        },
                    )
                    ctx.set(dut.column.valid, 1)
                    await ctx.tick()
                    if last:  # the pass must land one cycle later
                        ctx.set(dut.column.valid, 0)
                        assert ctx.get(dut.loaded)
        ctx.set(dut.column.valid, 0)

    async def collect(ctx):
        result["units"] = await receive_beats(
            ctx,
            dut.units,
            steps * H,
            rng,
            stall=0.4,
            fields=("gates", "unit", "parity", "first", "last"),
        )

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect)
    sim.run()

    units = result["units"]
    for t in range(steps):
        acc = gate_accumulators(dp, d, xs[t][None], hs[t][None])[0]
        for u in range(H):
            beat = units[t * H + u]
            expected = [int(acc[gate * H + u]) for gate in range(4)]
            assert [int(v) for v in beat["gates"]] == expected, (t, u)
            assert (beat["unit"], beat["parity"]) == (u, t % 2)
            assert (beat["first"], beat["last"]) == (firsts[t], lasts[t])
