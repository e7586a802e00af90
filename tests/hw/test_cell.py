"""GateCellPipeline against ``cell_update`` for every layer direction of a plan (each with its
own formats and tables), with the c state carried per layer direction, c0 loads, the output
queues under back-pressure and the saturation counts."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.cell import EXTRA_STAGES, GateCellPipeline
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import cell_update, gate_accumulators
from lstm_fpga.testing import random_model
from tests.hw.conftest import receive_beats, send_beats


def _accumulators(plan, m, rng):
    """Realistic accumulators of matrix ``m`` from random x and h, some pushed to the
    extremes of the accumulator width so that pre-activations saturate."""
    d, dp = plan.model.directions[m], plan.datapaths[m]
    f = d.formats
    x = quantize(rng.uniform(-1, 1, (1, d.input_size)) * f.x.max_value, f.x)
    h = quantize(rng.uniform(-1, 1, (1, d.hidden_size)) * f.hidden.max_value, f.hidden)
    acc = gate_accumulators(dp, d, x, h)[0]
    extreme = rng.random(acc.shape) < 0.1
    half = 1 << (dp.gate_acc.width - 1)
    acc[extreme] = rng.integers(-half, half, int(extreme.sum()))
    return acc


@pytest.mark.parametrize(
    "hidden_size, layers, bidirectional, formats, queue_depth",
    [
        (11, 1, False, ("q16",), 16),
        (4, 2, True, ("q12", "tight"), 16),  # four layer directions, two format sets
        (7, 3, False, ("tight", "mixed", "q16"), 3),
        (1, 1, True, ("mixed",), 1),
    ],
)
@pytest.mark.parametrize("extra_stages", [False, True])
def test_hidden_and_cell_equal_cell_update(
    hidden_size, layers, bidirectional, formats, queue_depth, extra_stages
):
    model = random_model(
        3, hidden_size, layers, bidirectional, formats=formats, seed=hidden_size, scale=4.0
    )
    plan = EnginePlan(model, HardwareConfig(lanes=4, max_seq_len=4))
    H, LD = hidden_size, len(plan.lstm_matrices)
    rng = np.random.default_rng(hidden_size)
    c0 = np.array(
        [
            quantize(rng.uniform(-1, 1, H) * d.formats.cell.max_value, d.formats.cell)
            for d in model.directions
        ]
    )
    jobs = []  # (matrix, accumulators, init, emit_y, emit_state)
    for _ in range(14):
        m = int(rng.integers(LD))
        jobs.append((m, _accumulators(plan, m, rng), *(rng.random(3) < (0.3, 0.5, 0.3))))
    dut = GateCellPipeline(plan, queue_depth=queue_depth, extra_stages=extra_stages)
    beats = [
        {
            "gates": [int(acc[gate * H + u]) for gate in range(4)],
            "unit": u,
            "job": {
                "matrix": m,
                "vector_base": 0,
                "init": int(init),
                "final": int(state),
                "emit_state": int(state),
                "emit_y": int(emit),
                "y_last": int(emit),
                "parity": 1,
            },
        }
        for m, acc, init, emit, state in jobs
        for u in range(H)
    ]
    emitted = sum(int(emit) for *_, emit, _ in jobs) * H
    states = sum(int(state) for *_, state in jobs) * H
    result = {"writes": [], "saturations": np.zeros(3, dtype=int)}

    async def source(ctx):
        for k in range(LD * H):  # c0 loads before the first unit
            ctx.set(dut.c0_write.payload, {"address": k, "value": int(c0.reshape(-1)[k])})
            ctx.set(dut.c0_write.valid, 1)
            await ctx.tick()
        ctx.set(dut.c0_write.valid, 0)
        for k in range(len(jobs)):
            # Protocol (kept by the sequencer through the recurrent dependency): a unit enters
            # only after the previous step's same unit has left the pipeline.
            await ctx.tick().repeat(max(0, dut.latency + 2 - H))
            await send_beats(ctx, dut.units, beats[k * H : (k + 1) * H], rng, idle=0.3)
        await ctx.tick().repeat(dut.latency + 2)  # the last units leave

    async def sinks(ctx):
        result["hidden"] = await receive_beats(
            ctx, dut.hidden, emitted, rng, stall=0.4, fields=("data", "last")
        )

    async def state_sink(ctx):
        result["state"] = await receive_beats(
            ctx, dut.state, states, rng, stall=0.4, fields=("h", "c", "last")
        )

    async def monitor(ctx):
        write, sat = dut.hidden_write, dut.saturations
        async for _, _, valid, value, final, state_address, *counts in ctx.tick().sample(
            write.valid,
            write.payload.value,
            write.payload.final,
            write.payload.state_address,
            sat.preact,
            sat.cell,
            sat.hidden,
        ):
            result["saturations"] += counts
            if valid:
                result["writes"].append((value, final, state_address))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(sinks)
    sim.add_testbench(state_sink)
    sim.add_process(monitor)
    sim.run()

    c = np.zeros((LD, H), dtype=np.int64)
    writes = iter(result["writes"])
    hidden = iter(result["hidden"])
    state = iter(result["state"])
    counts = {"preact": 0, "cell": 0, "hidden": 0}
    for k, (m, acc, init, emit, final) in enumerate(jobs):
        previous = c0[m] if init else c[m]
        h_new, c_new = cell_update(plan.datapaths[m], acc[None], previous[None], counts)
        c[m] = c_new[0]
        for u in range(H):
            value, is_final, state_address = next(writes)
            assert value == h_new[0, u], (k, m, u)
            assert is_final == final
            assert state_address == 2 * LD * H + m * H + u
            if emit:
                beat = next(hidden)
                assert (beat["data"], beat["last"]) == (h_new[0, u], int(u == H - 1))
            if final:
                beat = next(state)
                last = int(m == LD - 1 and u == H - 1)
                assert (beat["h"], beat["c"], beat["last"]) == (h_new[0, u], c_new[0, u], last)
    assert list(result["saturations"]) == [counts["preact"], counts["cell"], counts["hidden"]]


@pytest.mark.parametrize("lead_offset", [-1, 1])
def test_engine_refuses_a_producer_announcing_at_another_lead(lead_offset):
    """The sequencer's scoreboards count an ``h`` row complete from its announcement, so every
    producer must announce ``Sequencer.ANNOUNCE_LEAD`` ahead; the engine checks it (a shorter
    lead would let reads in before the write: wrong values, not a stall)."""
    from lstm_fpga.hw.engine import _check_announce_leads
    from lstm_fpga.hw.sequencer import Sequencer

    plan = EnginePlan(random_model(3, 4, seed=1), HardwareConfig(lanes=3))
    lead = Sequencer.ANNOUNCE_LEAD
    _check_announce_leads(Sequencer, GateCellPipeline(plan, announce=lead))
    with pytest.raises(ValueError, match=f"announces {lead + lead_offset} cycles ahead"):
        _check_announce_leads(Sequencer, GateCellPipeline(plan, announce=lead + lead_offset))


@pytest.mark.parametrize("extra_stages", [False, True])
@pytest.mark.parametrize("announce", [0, 3])
def test_write_and_announcement_come_latency_and_lead_after_the_handshake(extra_stages, announce):
    """A unit accepted in cycle 0 is written (``hidden_write``) in cycle ``latency`` and
    announced ``announce`` cycles before; the input register adds exactly one cycle."""
    plan = EnginePlan(random_model(3, 5, seed=2), HardwareConfig(lanes=4))
    dut = GateCellPipeline(plan, announce=announce, extra_stages=extra_stages)
    assert dut.latency == GateCellPipeline.LATENCY + EXTRA_STAGES * extra_stages
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.units.payload.unit, 2)
        ctx.set(dut.units.valid, 1)
        assert ctx.get(dut.units.ready)
        await ctx.tick()
        ctx.set(dut.units.valid, 0)
        for cycle in range(1, dut.latency + 4):
            for port in ("hidden_write", "announce"):
                if ctx.get(getattr(dut, port).valid):
                    seen.setdefault(port, []).append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert seen == {"hidden_write": [dut.latency], "announce": [dut.latency - announce]}
