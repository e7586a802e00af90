"""WeightMemory: initial contents, conflict-free parallel reads, run-time writes."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig, bias_location, weight_location
from lstm_fpga.hw.memory import WeightMemory, WeightTarget
from lstm_fpga.testing import random_model


@pytest.mark.parametrize("lanes", [1, 3, 8, 40])  # 40: two-level write and address trees
def test_reads_initial_contents_and_run_time_writes(lanes):
    model = random_model(3, 5, seed=lanes, formats="mixed", scale=1.5)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    g = plan.matrices[0]
    images = plan.images
    dut = WeightMemory(images)
    rng = np.random.default_rng(lanes)
    expected_w = images.weights.copy()
    expected_b = images.biases.copy()
    result = {}

    async def read_everything(ctx):
        weights, biases = [], []
        for address in range(plan.bank_depth):
            ctx.set(dut.weight_address, address)
            ctx.set(dut.bias_address, address % g.passes)
            await ctx.tick().repeat(dut.weight_latency)
            weights.append([int(v) for v in ctx.get(dut.weights)])
            biases.append([int(v) for v in ctx.get(dut.biases)])
        return np.array(weights).T, np.array(biases).T

    async def bench(ctx):
        result["initial"] = await read_everything(ctx)
        # Reload random words through the write port (PyTorch-order coordinates).
        for _ in range(40):
            row, col = int(rng.integers(g.rows)), int(rng.integers(g.columns))
            value = int(rng.integers(-(1 << 7), 1 << 7))
            loc = weight_location(plan, row, col)
            expected_w[loc.lane, loc.address] = value
            payload = {
                "target": WeightTarget.WEIGHT,
                "lane": loc.lane,
                "address": loc.address,
                "data": value & 0xFFFF,
            }
            ctx.set(dut.write.payload, payload)
            ctx.set(dut.write.valid, 1)
            await ctx.tick()
            bias_loc = bias_location(plan, row)
            expected_b[bias_loc.lane, bias_loc.address] = -value
            ctx.set(
                dut.write.payload,
                {
                    "target": WeightTarget.BIAS,
                    "lane": bias_loc.lane,
                    "address": bias_loc.address,
                    "data": -value & 0xFFFF,
                },
            )
            await ctx.tick()
        ctx.set(dut.write.valid, 0)
        # Protocol: reads that must see the writes wait for them to land.
        waited = 0
        while ctx.get(dut.write_pending):
            await ctx.tick()
            waited += 1
        assert waited == dut.write_latency
        result["reloaded"] = await read_everything(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    weights, biases = result["initial"]
    np.testing.assert_array_equal(weights, images.weights)
    np.testing.assert_array_equal(biases[:, : g.passes], images.biases)
    weights, biases = result["reloaded"]
    np.testing.assert_array_equal(weights, expected_w)
    np.testing.assert_array_equal(biases[:, : g.passes], expected_b)
