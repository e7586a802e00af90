"""MatrixVectorUnit: lanes + drain against the reference accumulators of every matrix of a
plan (layer directions with their own formats, and the head), with stalls on both sides."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.mvu import MatrixVectorUnit
from lstm_fpga.hw.pipeline import delay
from lstm_fpga.hw.plan import SegmentKind
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import gate_accumulators
from lstm_fpga.testing import random_model
from tests.hw.conftest import receive_beats


def _random_vector(plan, m, rng):
    """Random elements for matrix ``m`` in its column order, each in its format."""
    model = plan.model
    mp = plan.matrices[m]
    parts = []
    for segment in mp.segments:
        if segment.kind == SegmentKind.RECURRENT:
            fmt = model.directions[m].formats.hidden
        elif segment.kind == SegmentKind.HEAD:
            fmt = model.head.formats.x
        else:
            fmt = model.directions[m].formats.x
        parts.append(quantize(rng.uniform(-1, 1, segment.length) * fmt.max_value, fmt))
    return parts


def _expected_rows(plan, m, parts):
    """Accumulators of matrix ``m`` in drain order (unit-major rows; head rows in order)."""
    model = plan.model
    mp = plan.matrices[m]
    if mp.is_head:
        hd = plan.head_datapath
        acc = hd.acc.accumulate([model.head.weight @ parts[0]], model.head.bias)
        return np.concatenate([acc, np.zeros(mp.rows - mp.real_rows, dtype=np.int64)])
    d, dp = model.directions[m], plan.datapaths[m]
    by_kind = {s.kind: p for s, p in zip(mp.segments, parts, strict=True)}
    acc = gate_accumulators(
        dp, d, by_kind[SegmentKind.INPUT][None], by_kind[SegmentKind.RECURRENT][None]
    )[0]
    H = plan.hidden_size
    return np.array([acc[gate * H + u] for u in range(H) for gate in range(4)])


class _Lagged(Elaboratable):
    """The unit with its weights and biases delayed by its declared lags, so that the
    testbench sets them together with their beat (as a memory read would deliver them)."""

    def __init__(self, dut: MatrixVectorUnit):
        self.dut = dut
        self.weights = Signal.like(dut.weights)
        self.biases = Signal.like(dut.biases)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [
            dut.weights.eq(delay(m, self.weights, dut.weight_lag, "weights")),
            dut.biases.eq(delay(m, self.biases, dut.bias_lag, "biases")),
        ]
        return m


@pytest.mark.parametrize(
    "layers, bidirectional, head, lanes",
    [
        (2, False, 3, 3),  # P divides neither 4H nor any column count
        (1, True, 5, 1),
        (3, False, 2, 8),
        (2, True, None, 12),
        (1, False, 7, 100),  # two column groups of 4H lanes
        (2, False, 3, 27),  # three column groups
    ],
)
def test_units_equal_reference_accumulators(layers, bidirectional, head, lanes):
    model = random_model(
        3,
        2,
        layers,
        bidirectional,
        head=head,
        formats=("mixed", "q16", "tight"),
        seed=lanes,
        scale=2.0,
    )
    check_units(EnginePlan(model, HardwareConfig(lanes=lanes, max_seq_len=4)), seed=lanes)


def check_units(plan: EnginePlan, seed: int) -> None:
    """Ten random jobs of ``plan``'s matrices through its unit, with stalls: every unit
    equals the reference accumulators."""
    images = plan.images
    dut = MatrixVectorUnit(plan)
    bench_top = _Lagged(dut)
    rng = np.random.default_rng(seed)
    jobs = [int(m) for m in rng.integers(0, len(plan.matrices), 10)]
    vectors = [_random_vector(plan, m, rng) for m in jobs]
    G = plan.groups
    result = {}

    async def drive(ctx):
        for m, parts in zip(jobs, vectors, strict=True):
            mp = plan.matrices[m]
            vector = np.zeros(mp.span * G, dtype=np.int64)
            vector[: mp.columns] = np.concatenate(parts)
            first_length = mp.segments[0].length
            for p in range(mp.passes):
                ctx.set(bench_top.biases, [int(v) for v in images.biases[:, mp.bias_base + p]])
                for cycle in range(mp.span):
                    while rng.random() < 0.3:  # idle cycles between beats
                        ctx.set(dut.column.valid, 0)
                        await ctx.tick()
                    last = cycle == mp.span - 1
                    columns = [cycle * G + grp for grp in range(G)]
                    if last:  # protocol: a pass lands only in a free drain
                        ctx.set(dut.column.valid, 0)
                        while not ctx.get(dut.drain_free):
                            await ctx.tick()
                    address = mp.weight_base + p * mp.span + cycle
                    ctx.set(bench_top.weights, [int(v) for v in images.weights[:, address]])
                    ctx.set(
                        dut.column.payload,
                        {
                            "elements": [int(vector[c]) for c in columns],
                            "segments": sum(
                                int(c >= first_length) << k for k, c in enumerate(columns)
                            ),
                            "first": int(cycle == 0),
                            "last": int(last),
                            "final_pass": int(p == mp.passes - 1),
                            "job": {"matrix": m, "vector_base": m},
                        },
                    )
                    ctx.set(dut.column.valid, 1)
                    await ctx.tick()
                    if last:  # the pass must land load_latency cycles later
                        ctx.set(dut.column.valid, 0)
                        for _ in range(dut.load_latency - 1):
                            assert not ctx.get(dut.loaded)
                            await ctx.tick()
                        assert ctx.get(dut.loaded)
                        await ctx.tick()  # protocol: one last beat in flight at a time
        ctx.set(dut.column.valid, 0)

    async def collect(ctx):
        total = sum(plan.matrices[m].units for m in jobs)
        result["units"] = await receive_beats(
            ctx, dut.units, total, rng, stall=0.4, fields=("gates", "unit", "job")
        )

    sim = Simulator(bench_top)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect)
    sim.run()

    units = iter(result["units"])
    for k, (m, parts) in enumerate(zip(jobs, vectors, strict=True)):
        rows = _expected_rows(plan, m, parts)
        for u in range(plan.matrices[m].units):
            beat = next(units)
            assert [int(v) for v in beat["gates"]] == list(rows[4 * u : 4 * u + 4]), (k, m, u)
            assert beat["unit"] == u
            assert (beat["job"]["matrix"], beat["job"]["vector_base"]) == (m, m)
