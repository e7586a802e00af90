"""The device capacity model: plan-derived block RAMs and DSPs, fit checks, smallest parts."""

import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig
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
from lstm_fpga.testing import random_model


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
