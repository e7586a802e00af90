"""WeightMemory: initial contents, conflict-free parallel reads, run-time writes."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig, bias_location, weight_location
from lstm_fpga.hw.banks import bank_packing
from lstm_fpga.hw.memory import WeightMemory, WeightTarget
from lstm_fpga.testing import random_model


@pytest.mark.parametrize(
    ("lanes", "formats", "packed"),
    [
        (1, "mixed", False),
        (3, "mixed", False),
        (8, "mixed", False),
        (40, "mixed", False),  # 40: two-level write and address trees
        (1, "q16", True),
        (3, "q16", True),
        (7, "q12", True),
        (8, "mixed", True),
        (40, "q16", True),
    ],
)
def test_reads_initial_contents_and_run_time_writes(lanes, formats, packed):
    model = random_model(3, 5, seed=lanes, formats=formats, scale=1.5)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    g = plan.matrices[0]
    images = plan.images
    packing = bank_packing(plan) if packed else None
    dut = WeightMemory(images, packing=packing)
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
            assert dut.packing.stores(loc.lane, loc.address)
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


@pytest.mark.parametrize("data_delay", [0, 1])
@pytest.mark.parametrize(("lanes", "formats"), [(1, "q16"), (5, "q12"), (16, "mixed"), (6, "q16")])
def test_packed_banks_with_a_head_read_structural_zeros_and_reload_every_slot(
    lanes, formats, data_delay
):
    """A packed memory whose groups store fewer words than the bank (the head's one row lives
    in lane 0 only): reads past a group's words are 0, a reload of every weight through the
    write port (one lane slot of a shared word at a time) reads back bit-exactly; with
    ``data_delay`` registers behind the read, the words and the zero mask one cycle later."""
    model = random_model(4, 3, seed=lanes, formats=formats, head=1, scale=1.5)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    images = plan.images
    packing = bank_packing(plan)
    assert any(g.depth < images.depth for g in packing.groups) or lanes == 1
    dut = WeightMemory(images, packing=packing, data_delay=data_delay)
    assert dut.weight_latency == WeightMemory.READ_LATENCY + data_delay
    width = images.weight_width
    rng = np.random.default_rng(lanes)
    # New values for every stored word: each lane's slot is written on its own.
    reloaded = np.zeros_like(images.weights)
    writes = []
    for lane in range(plan.lanes):
        for address in range(packing.group_of(lane).depth):
            value = int(rng.integers(-(1 << (width - 1)), 1 << (width - 1)))
            reloaded[lane, address] = value
            writes.append((lane, address, value))
    order = rng.permutation(len(writes))
    result = {}

    async def read_everything(ctx):
        # A new address every cycle, as the engine reads: word ``a`` is on ``weights``
        # ``weight_latency`` cycles after its address (and so is its structural-zero mask).
        weights = []
        latency = dut.weight_latency
        for cycle in range(plan.bank_depth + latency - 1):
            ctx.set(dut.weight_address, min(cycle, plan.bank_depth - 1))
            await ctx.tick()
            if cycle + 1 >= latency:
                weights.append([int(v) for v in ctx.get(dut.weights)])
        return np.array(weights).T

    async def bench(ctx):
        result["initial"] = await read_everything(ctx)
        ctx.set(dut.write.valid, 1)
        for k in order:
            lane, address, value = writes[k]
            payload = {"target": WeightTarget.WEIGHT, "lane": lane, "address": address}
            ctx.set(dut.write.payload, {**payload, "data": value & ((1 << width) - 1)})
            await ctx.tick()
        ctx.set(dut.write.valid, 0)
        while ctx.get(dut.write_pending):
            await ctx.tick()
        result["reloaded"] = await read_everything(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(result["initial"], images.weights)
    np.testing.assert_array_equal(result["reloaded"], reloaded)
