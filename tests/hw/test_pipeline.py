"""Pipeline building blocks: fan-out trees, delay lines, the registered multiplier and the
per-family hooks."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Fragment, Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError, generate_verilog
from lstm_fpga.hw.pipeline import (
    DSP_FANOUT,
    FANOUT,
    ECP5Target,
    Multiplier,
    RegisteredProduct,
    Target,
    broadcast,
    fanout_levels,
    kept_delay,
    target,
)
from lstm_fpga.testing import random_model
from tests.conftest import CELL_MULTIPLIERS, ecp5_multipliers


@pytest.mark.parametrize(
    "consumers, levels",
    [(1, 1), (FANOUT, 1), (FANOUT + 1, 2), (FANOUT**2, 2), (FANOUT**2 + 1, 3)],
)
def test_fanout_levels(consumers, levels):
    assert fanout_levels(consumers) == levels


class _Tree(Elaboratable):
    def __init__(self, consumers, levels, leaf_fanout=FANOUT):
        self.value = Signal(8)
        self.consumers, self.levels, self.leaf_fanout = consumers, levels, leaf_fanout
        self.outputs = [Signal(8, name=f"out{c}") for c in range(consumers)]

    def elaborate(self, platform):
        m = Module()
        copies = broadcast(
            m,
            platform,
            self.value,
            self.consumers,
            self.levels,
            "tree",
            leaf_fanout=self.leaf_fanout,
        )
        m.d.comb += [out.eq(copy) for out, copy in zip(self.outputs, copies, strict=True)]
        self.copies = copies
        return m


@pytest.mark.parametrize("control", [False, True])
@pytest.mark.parametrize("cycles", [1, 2, 3])
def test_kept_delay_delays_and_a_control_chain_clears_on_reset(cycles, control):
    """``kept_delay`` is ``cycles`` registers; a ``control`` chain holds 0 in the cycle
    after a reset, as reset registers would, and a data chain keeps what it had. (That
    the registers are kept apart in Verilog: the next test.)"""
    value = Signal(8)
    sim_m = Module()
    sim_m.domains.sync = domain = ClockDomain()
    sim_out = kept_delay(sim_m, None, value, cycles, "chain", control=control)
    assert sim_out.shape() == value.shape()
    seen = []

    async def bench(ctx):
        for v in [5, 9, 200, 7, 1, 2, 3]:
            ctx.set(value, v)
            await ctx.tick()
            seen.append(ctx.get(sim_out))
        ctx.set(value, 77)
        for _ in range(cycles + 1):
            await ctx.tick()
        assert ctx.get(sim_out) == 77
        # A reset: the chain's registers take 0 (control) or keep shifting their input.
        ctx.set(value, 0)
        await ctx.tick()
        ctx.set(value, 44)
        ctx.set(domain.rst, 1)
        for _ in range(cycles):
            await ctx.tick()
        ctx.set(domain.rst, 0)
        seen.append(ctx.get(sim_out))

    sim = Simulator(sim_m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    inputs = [5, 9, 200, 7, 1, 2, 3]
    assert seen[cycles - 1 : 7] == inputs[: 8 - cycles]
    assert seen[-1] == (0 if control else 44)


class _Chains(Elaboratable):
    """Two identical ``kept_delay`` chains of one input (synthesis would merge plain ones)."""

    def __init__(self, cycles, control):
        self.value = Signal(8)
        self.outputs = [Signal(8, name=f"out{k}") for k in range(2)]
        self.cycles, self.control = cycles, control

    def elaborate(self, platform):
        m = Module()
        for k, out in enumerate(self.outputs):
            chain = kept_delay(
                m, platform, self.value, self.cycles, f"chain{k}", control=self.control
            )
            m.d.comb += out.eq(chain)
        return m


@pytest.mark.parametrize("control", [False, True])
@pytest.mark.parametrize("cycles", [1, 3])
def test_kept_delay_registers_are_kept_modules_in_verilog(cycles, control):
    """With a Verilog target every register of every chain is its own instance of the
    target's ``keep`` register module, which carries ``(* keep *)`` (the form Yosys does not
    merge), so sibling chains stay apart."""
    from amaranth.back import verilog

    platform = Target()
    dut = _Chains(cycles, control)
    text = verilog.convert(dut, platform=platform, ports=[dut.value, *dut.outputs])
    kept = re.findall(r"^\s*lstm_top_keep_reg #\(.*?\) (\w+) \(", text, re.M | re.S)
    assert sorted(kept) == sorted(
        f"chain{k}_k{c + 1}_keep" for k in range(2) for c in range(cycles)
    )
    assert "(* keep *) always" in platform.verilog_modules()


@pytest.mark.parametrize("leaf_fanout", [FANOUT, DSP_FANOUT, 1])
@pytest.mark.parametrize("consumers", [1, 5, FANOUT, 40, 64, 300])
def test_broadcast_delays_every_copy_and_bounds_the_fanout(consumers, leaf_fanout):
    levels = fanout_levels(consumers)
    dut = _Tree(consumers, levels, leaf_fanout)
    seen = {}

    async def bench(ctx):
        values = [3, 200, 17, 99, 0, 255]
        history = []
        for value in values + [0] * levels:
            ctx.set(dut.value, value)
            history.append([ctx.get(out) for out in dut.outputs])
            await ctx.tick()
        seen["history"] = history

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    history = np.array(seen["history"])
    values = [3, 200, 17, 99, 0, 255]
    for k, value in enumerate(values):
        assert (history[k + levels] == value).all()
    # No leaf register drives more than ``leaf_fanout`` consumers, and the leaves are as
    # few as that allows (each register is one more flip-flop per bit).
    names = [copy.name for copy in dut.copies]
    assert max(names.count(n) for n in set(names)) <= leaf_fanout
    assert len(set(names)) == -(-consumers // leaf_fanout)


@pytest.mark.parametrize("leaf_fanout", [0, FANOUT + 1])
def test_broadcast_rejects_a_leaf_fanout_out_of_range(leaf_fanout):
    m = Module()
    with pytest.raises(ValueError, match="leaf_fanout"):
        broadcast(m, None, Signal(4), 8, 1, "tree", leaf_fanout=leaf_fanout)
    m._MustUse__silence = True  # (never elaborated: the call raised before adding to it)


def _random_values(shape, rng, count=30):
    low = -(1 << (shape.width - 1)) if shape.signed else 0
    high = (1 << (shape.width - 1)) if shape.signed else 1 << shape.width
    return [int(v) for v in rng.integers(low, high, count)]


def _assert_products(dut, latency: int, seed: int):
    """Random operands every cycle: ``dut.product`` is ``a * b`` exactly ``latency`` cycles
    later."""
    rng = np.random.default_rng(seed)
    a_values = _random_values(dut.a.shape(), rng)
    b_values = _random_values(dut.b.shape(), rng)
    got = []

    async def bench(ctx):
        for k in range(len(a_values) + latency):
            if k < len(a_values):
                ctx.set(dut.a, a_values[k])
                ctx.set(dut.b, b_values[k])
            if k >= latency:
                got.append(ctx.get(dut.product))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [a * b for a, b in zip(a_values, b_values, strict=True)]


@pytest.mark.parametrize(
    "a_shape, b_shape",
    [(signed(16), signed(16)), (unsigned(7), signed(12)), (signed(20), unsigned(9))],
)
def test_multiplier_latency_and_products(a_shape, b_shape):
    _assert_products(Multiplier(a_shape, b_shape), Multiplier.LATENCY, a_shape.width)


@pytest.mark.parametrize("input_registers", [True, False])
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [(signed(16), signed(18)), (unsigned(5), signed(11)), (signed(21), unsigned(4))],
)
def test_registered_product_latency_and_products(a_shape, b_shape, input_registers):
    dut = RegisteredProduct(a_shape, b_shape, input_registers=input_registers)
    assert dut.latency == (2 if input_registers else 1)
    _assert_products(dut, dut.latency, a_shape.width + input_registers)


@pytest.mark.parametrize("input_registers", [True, False])
@pytest.mark.parametrize(
    "a_shape, fits", [(signed(18), True), (unsigned(17), True), (unsigned(18), False)]
)
def test_ecp5_registered_product_uses_the_dsp_registers_of_its_stages(
    a_shape, fits, input_registers
):
    product = RegisteredProduct(a_shape, unsigned(6), input_registers=input_registers)
    primitive = ECP5Target().get_registered_product(product)
    assert (primitive is not None) == fits
    Fragment.get(product, None)  # elaborated: no unused-elaboratable warning
    if primitive is None:
        return
    params = Fragment.get(primitive, None).subfragments[0][0].parameters
    used = {
        r for r in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT") if params[f"REG_{r}_CLK"] != "NONE"
    }
    assert used == ({"INPUTA", "INPUTB", "OUTPUT"} if input_registers else {"OUTPUT"})


@pytest.mark.parametrize(
    "a_shape, fits",
    [(signed(18), True), (unsigned(17), True), (signed(19), False), (unsigned(18), False)],
)
def test_ecp5_hook_takes_only_operands_that_fit_the_dsp(a_shape, fits):
    multiplier = Multiplier(a_shape, signed(10))
    primitive = ECP5Target().get_registered_product(multiplier)
    assert (primitive is not None) == fits
    for elaboratable in (multiplier, primitive):  # elaborated: no unused-elaboratable warning
        if elaboratable is not None:
            Fragment.get(elaboratable, None)


def test_targets_and_refusal():
    assert type(target(None)) is Target and type(target("ecp5")) is ECP5Target
    with pytest.raises(ValueError, match="family must be one of generic, ecp5"):
        target("ice40")
    model = random_model(3, 4, seed=1)
    with pytest.raises(HardwareConfigError, match="family must be one of"):
        generate_verilog(model, 2, family="xc7")


@pytest.mark.parametrize("lanes, family", [(3, "generic"), (40, "ecp5")])
def test_generated_verilog_keeps_replicas_and_uses_the_family_multiplier(lanes, family):
    model = random_model(3, 5, seed=lanes)
    text = generate_verilog(model, HardwareConfig(lanes=lanes), family=family)
    assert "(* keep *) always @(posedge clk) q <= d;" in text
    dsp_instances = text.count("MULT18X18D #(")
    lanes_built = EnginePlan(model, HardwareConfig(lanes=lanes)).lanes
    # One layer direction: the lanes, the cell's f*c, i*g and o*tanh(c), and the
    # interpolation multiply of each activation unit (i, f, g, o, tanh c); the cell's and
    # the interpolation multiplies with the output register only.
    ecp5 = family == "ecp5"
    assert dsp_instances == (ecp5_multipliers(lanes_built) if ecp5 else 0)
    assert text.count('.REG_INPUTA_CLK("NONE")') == (CELL_MULTIPLIERS if ecp5 else 0)
    if family == "ecp5":
        assert "`ifndef SYNTHESIS" in text
