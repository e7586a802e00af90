"""GruUnitPipeline: every unit's ``h_t`` and saturation flags equal the integer reference's
GRU step (:func:`lstm_fpga.sw.reference.gru_update`), bit for bit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw.gru_cell import GruUnitPipeline
from lstm_fpga.sw.numerics import Overflow, Rounding, quantize
from lstm_fpga.sw.reference import gru_accumulators, gru_update
from lstm_fpga.testing import random_model


def _simulate(dp, beats, idle_every: int):
    """Feed ``beats`` (dicts of the input ports) one per cycle, with a bubble every
    ``idle_every`` cycles; collect ``(h_new, saturated_preact, saturated_hidden)`` of each
    ``out_valid`` cycle."""
    dut = GruUnitPipeline(dp)
    got = []

    async def bench(ctx):
        pending = list(beats)
        cycle = 0
        while len(got) < len(beats):
            if pending and (idle_every == 0 or cycle % idle_every != idle_every - 1):
                for port, value in pending.pop(0).items():
                    ctx.set(getattr(dut, port), int(value))
                ctx.set(dut.valid, 1)
            else:
                ctx.set(dut.valid, 0)
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.out_valid):
                got.append(
                    (
                        ctx.get(dut.h_new),
                        ctx.get(dut.saturated_preact),
                        ctx.get(dut.saturated_hidden),
                    )
                )
            assert cycle < 4 * len(beats) + 2 * dut.latency, "the pipeline lost a unit"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize(
    ("formats", "scale", "rounding", "overflow", "idle_every"),
    [
        ("q16", 1.0, Rounding.HALF_UP, Overflow.SATURATE, 0),
        ("mixed", 2.0, Rounding.FLOOR, Overflow.SATURATE, 3),
        ("tight", 6.0, Rounding.HALF_UP, Overflow.SATURATE, 0),
        ("q12", 6.0, Rounding.HALF_UP, Overflow.WRAP, 2),
    ],
)
def test_units_equal_the_reference_step(formats, scale, rounding, overflow, idle_every):
    I, H, B = 5, 7, 6  # odd sizes
    model = random_model(I, H, formats=formats, scale=scale, seed=11, cell_type="gru")
    model = replace(model, rounding=rounding, overflow=overflow)
    d, dp = model.directions[0], model.datapath(0)
    rng = np.random.default_rng(11)
    x = quantize(rng.uniform(-1, 1, (B, I)) * d.formats.x.max_value, d.formats.x)
    h = quantize(rng.uniform(-1, 1, (B, H)) * d.formats.hidden.max_value, d.formats.hidden)
    acc_rz, acc_xn, acc_hn = gru_accumulators(dp, d, x, h)
    beats = [
        dict(
            acc_r=acc_rz[b, j],
            acc_z=acc_rz[b, H + j],
            acc_xn=acc_xn[b, j],
            acc_hn=acc_hn[b, j],
            h=h[b, j],
        )
        for b in range(B)
        for j in range(H)
    ]
    got = _simulate(dp, beats, idle_every)
    expected = gru_update(dp, d, x, h).ravel()
    assert [g[0] for g in got] == expected.tolist()
    # Saturations, sequence by sequence, as the reference counts them (its mask).
    for b in range(B):
        counts = {"preact": 0, "cell": 0, "hidden": 0}
        gru_update(dp, d, x, h, counts, mask=np.arange(B) == b)
        units = got[b * H : (b + 1) * H]
        assert sum(g[1] for g in units) == counts["preact"], b
        assert sum(g[2] for g in units) == counts["hidden"], b
    if formats == "tight":
        assert sum(g[1] + g[2] for g in got) > 0  # the case exercises the clamps


def test_verilog_lints_clean(tmp_path):
    from amaranth.back import verilog

    from lstm_fpga.eda import lint_verilog

    model = random_model(3, 5, formats="mixed", seed=2, cell_type="gru")
    path = tmp_path / "gru_unit.v"
    path.write_text(verilog.convert(GruUnitPipeline(model.datapath(0)), name="gru_unit"))
    assert lint_verilog(path, "gru_unit").errors == ()


def test_refuses_an_lstm_datapath():
    with pytest.raises(TypeError, match="datapath must be a GruDatapath, not LstmDatapath"):
        GruUnitPipeline(random_model(3, 5, seed=2).datapath(0))
