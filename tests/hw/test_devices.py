"""The device capacity model: plan-derived block RAMs and DSPs, fit checks, smallest parts."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from amaranth.hdl import Shape

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.activation import table_roms
from lstm_fpga.hw.banks import bank_packing, block_ram_primitives
from lstm_fpga.hw.devices import (
    DEVICES,
    FAMILIES,
    DeviceFitError,
    check_fit,
    device,
    estimate_resources,
    smallest_fits,
)
from lstm_fpga.hw.engine import attention_buffer_steps, attention_resources
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from lstm_fpga.testing import random_model

ROOT = Path(__file__).resolve().parents[2]


def _benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("I", "H", "P"), [(5, 16, 16), (16, 16, 3), (64, 64, 64), (24, 40, 7)])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_weight_banks_are_the_packed_memories_at_the_cheapest_aspect_ratio(I, H, P, family):
    plan = EnginePlan(random_model(I, H, seed=0), HardwareConfig(lanes=P))
    estimate = estimate_resources(plan, family)
    _name, width, _depth, primitives = estimate.memories[0]
    packing = bank_packing(plan)
    fam = FAMILIES[family]
    block = [g for g in packing.groups if g.block or fam.lutram_max_depth == 0]
    assert width == packing.lanes_per_group * plan.weight_shape.width
    assert primitives == sum(
        block_ram_primitives(fam, plan.weight_shape.width, g.lanes, g.depth) for g in block
    )
    # Never less than the bits of the block-RAM groups need.
    stored = sum(g.lanes * g.depth for g in block) * plan.weight_shape.width
    assert primitives * fam.bram_bits >= stored
    # P lane multipliers plus the gate/cell pipeline's (3 products, one per interpolating
    # activation): 16-bit operands fit one DSP tile of every family.
    assert estimate.dsps == plan.lanes + 8


def test_the_demo_model_fits_ecp5_12f_and_256_at_p64_does_not_fit_the_85f():
    demo = EnginePlan(random_model(5, 16, seed=0), HardwareConfig(lanes=16))
    assert check_fit(demo, device("ecp5-25")).fits
    assert smallest_fits(demo)[0].device.name == "ecp5-12"
    big = EnginePlan(random_model(256, 256, seed=0), HardwareConfig(lanes=64))
    fit = check_fit(big, device("ECP5-85"))
    assert fit.short == ["bram"]
    # 8192-deep banks: 8 DP16KD per lane; 5 activation units of 2 ROMs (values,
    # differences); x, vector, state buffers of 2 kbit or more
    assert fit.needed["bram"] == 64 * 8 + 2 * 5 + 3
    assert "block RAM 525/208 DP16KD" in fit.describe()
    assert all(f.fits for f in smallest_fits(big))


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(DeviceFitError, match="ecp5-12, ecp5-25, ecp5-45"):
        device("ecp5-10")
    assert all(d.source for d in DEVICES.values())


def _attention_plan(I=4, H=16, A=8, O=9, P=4, T=8) -> EnginePlan:
    """An untrained seeded ``AttentionClassifier``, calibrated, at ``P`` lanes and sequences of
    up to ``T`` steps."""
    torch.manual_seed(0)
    net = AttentionClassifier(I, H, A, O).double()
    model, _ = quantize_from_torch(net, np.random.default_rng(0).uniform(-2, 2, (4, T, I)))
    return EnginePlan(model, HardwareConfig(lanes=P, output="last", max_seq_len=T))


def test_the_estimate_lists_every_memory_and_product_of_the_attention_unit():
    plan = _attention_plan()
    unit = attention_resources(plan)
    estimate = estimate_resources(plan, "ecp5")
    memories = {name: (width, depth) for name, width, depth, _ in estimate.memories}
    for name, (shape, depth, _words) in unit.memories().items():
        label = "attention " + name.replace("_rom", " ROM").replace("_mem", " memory")
        assert memories[label] == (Shape.cast(shape).width, depth)
    for field, (shape, depth, _words) in table_roms(unit.tables).items():
        label = "attention table ROM" if field == "value" else "attention table delta ROM"
        assert memories[label] == (Shape.cast(shape).width, depth)
    # The FIFOs in front of the unit: one payload of each in the FIFO's output register.
    steps = attention_buffer_steps(plan)
    layouts = unit.stream_layouts()
    for port, per_step in (("h", plan.attention.features), ("u", plan.attention.attention_size)):
        width = Shape.cast(layouts[port]).width
        assert memories[f"attention {port} buffer"] == (width, steps * per_step - 1)
    attention = [m for m in estimate.memories if m[0].startswith("attention")]
    assert len(attention) == len(unit.memories()) + 2 + 2
    products = {name: (a, b) for name, a, b, _ in estimate.multipliers}
    for name, (a, b) in unit.products().items():
        assert products["attention " + name.replace("_", " ")] == tuple(
            s.width + (not s.signed) for s in (Shape.cast(a), Shape.cast(b))
        )
    assert "attention table interpolation" in products
    assert len([n for n in products if n.startswith("attention")]) == len(unit.products()) + 1


def test_the_attention_benchmark_estimate_is_its_synthesis_counts(monkeypatch):
    """benchmarks/fmax.py's "attention" build (LSTM(8, 32) + attention, 16 lanes): the
    estimate is the block RAMs and DSPs Yosys and nextpnr counted (benchmarks/results
    /fmax.json); it said 18 block RAMs (every activation ROM, none of the unit's, the state
    buffer in LUT RAM) and 24 DSPs before it counted the unit."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    fmax = _benchmark("fmax")
    rows = json.loads(fmax.RESULTS.read_text())
    row = next(r for r in rows if r["config"] == "attention" and r["family"] == "ecp5")
    I, H, head, P, _seeds = fmax.CONFIGS["attention"]
    model, config = fmax._config("attention", I, H, head, P)
    estimate = estimate_resources(EnginePlan(model, config), "ecp5")
    measured = {"bram": row["yosys"]["bram"], "dsp": row["yosys"]["dsp"]}
    assert measured == {"bram": row["bram"], "dsp": row["dsp"]}  # nextpnr packed the same
    assert {"bram": estimate.brams, "dsp": estimate.dsps} == measured
