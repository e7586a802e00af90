"""GateCellPipeline against ``cell_update`` with the c state carried across steps."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from conftest import make_model, random_input, receive_beats, send_beats

from lstm_fpga.hw.cell import GateCellPipeline
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import cell_update, gate_accumulators


def _accumulators(model, steps, rng):
    """Realistic accumulators from random x and h, with some pushed to the extremes of the
    accumulator width so that pre-activations saturate."""
    d, dp = model.direction(0, False), model.datapath(0)
    f = d.formats
    xs = random_input(model, steps, seed=int(rng.integers(1 << 16)))
    hs = quantize(rng.uniform(-1, 1, (steps, model.hidden_size)) * f.hidden.max_value, f.hidden)
    accs = gate_accumulators(dp, d, xs, hs)
    extreme = rng.random(accs.shape) < 0.1
    half = 1 << (dp.gate_acc.width - 1)
    accs[extreme] = rng.integers(-half, half, int(extreme.sum()))
    return accs


@pytest.mark.parametrize(
    "hidden_size, formats, queue_depth",
    [(11, "q16", 16), (4, "q12", 16), (7, "tight", 3), (1, "mixed", 1)],
)
def test_hidden_and_cell_equal_cell_update(hidden_size, formats, queue_depth):
    model = make_model(3, hidden_size, formats, seed=hidden_size, scale=4.0)
    dp = model.datapath(0)
    H = hidden_size
    rng = np.random.default_rng(hidden_size)
    steps = 12
    accs = _accumulators(model, steps, rng)
    firsts = rng.random(steps) < 0.25
    firsts[0] = True
    lasts = np.roll(firsts, -1)
    dut = GateCellPipeline(dp, queue_depth=queue_depth)
    beats = [
        {
            "gates": [int(accs[t, gate * H + u]) for gate in range(4)],
            "unit": u,
            "parity": t % 2,
            "first": int(firsts[t]),
            "last": int(lasts[t]),
        }
        for t in range(steps)
        for u in range(H)
    ]
    result = {"writes": []}

    async def source(ctx):
        await send_beats(ctx, dut.units, beats, rng, idle=0.3)

    async def sink(ctx):
        result["hidden"] = await receive_beats(
            ctx, dut.hidden, steps * H, rng, stall=0.4, fields=("data", "last")
        )

    async def monitor(ctx):
        write = dut.hidden_write
        async for _, _, valid, value, unit, parity in ctx.tick().sample(
            write.valid, write.payload.value, write.payload.unit, write.payload.parity
        ):
            if valid:
                result["writes"].append((value, unit, parity))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run()

    c = np.zeros((1, H), dtype=np.int64)
    hidden = np.array([b["data"] for b in result["hidden"]]).reshape(steps, H)
    last_flags = np.array([b["last"] for b in result["hidden"]]).reshape(steps, H)
    writes = result["writes"]
    assert len(writes) == steps * H
    for t in range(steps):
        if firsts[t]:
            c[:] = 0
        h_new, c = cell_update(dp, accs[t][None], c)
        np.testing.assert_array_equal(hidden[t], h_new[0], err_msg=f"step {t}")
        assert [w[0] for w in writes[t * H : (t + 1) * H]] == list(h_new[0])
        assert [w[1:] for w in writes[t * H : (t + 1) * H]] == [(u, t % 2) for u in range(H)]
        np.testing.assert_array_equal(last_flags[t], [lasts[t] and u == H - 1 for u in range(H)])
