"""Weight bank images, address map, hex images, matrix geometry and configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_fpga.hw import (
    EnginePlan,
    HardwareConfig,
    HardwareConfigError,
    bank_images,
    bias_location,
    cycle_bound,
    weight_location,
)
from lstm_fpga.hw.banks import bank_packing, block_ram_primitives, hex_lines, live_depths
from lstm_fpga.hw.devices import FAMILIES
from lstm_fpga.testing import random_model


@pytest.mark.parametrize("lanes", [1, 3, 4, 16, 44, 100])
def test_every_weight_and_bias_is_where_the_address_map_says(lanes):
    model = random_model(5, 11, seed=lanes, formats="mixed", scale=1.5)
    d = model.direction(0, False)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    g = plan.matrices[0]
    images = bank_images(plan)
    assert images.weights.shape == (plan.lanes, g.words)
    assert images.biases.shape == (plan.lanes, g.passes)
    matrix = np.concatenate([d.w_ih, d.w_hh], axis=1)
    seen = np.zeros(images.weights.shape, dtype=bool)
    for row in range(g.rows):
        for col in range(g.columns):
            loc = weight_location(plan, row, col)
            assert images.weights[loc.lane, loc.address] == matrix[row, col]
            seen[loc.lane, loc.address] = True
        loc = bias_location(plan, row)
        assert images.biases[loc.lane, loc.address] == d.bias[row]
    # Everything not addressed is padding of the final pass and must be zero.
    assert not images.weights[~seen].any()


def test_unit_major_rows_put_a_units_four_gates_next_to_each_other():
    plan = EnginePlan(random_model(2, 3, scale=1.5), HardwareConfig(lanes=4))
    g = plan.matrices[0]
    # PyTorch rows of gate k of unit u are k*H + u; lane p of pass u holds gate p of unit u.
    for unit in range(3):
        for gate in range(4):
            loc = weight_location(plan, gate * 3 + unit, 0)
            assert (loc.lane, loc.address // g.columns) == (gate, unit)


@pytest.mark.parametrize("lanes", [1, 5, 24, 64])
def test_every_matrix_of_a_full_model_is_where_the_address_map_says(lanes):
    """Stacked, bidirectional, with a head: every weight of every matrix (layers above the
    first walk their recurrent columns first) sits where weight_location says."""
    model = random_model(3, 2, 2, bidirectional=True, head=3, seed=lanes, scale=2.0)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes, max_seq_len=2))
    images = plan.images
    seen = np.zeros(images.weights.shape, dtype=bool)
    for mp in plan.matrices:
        if mp.is_head:
            matrix, bias = model.head.weight, model.head.bias
        else:
            d = model.directions[mp.index]
            matrix, bias = np.concatenate([d.w_ih, d.w_hh], axis=1), d.bias
        for row in range(mp.real_rows):
            for col in range(mp.columns):
                loc = weight_location(plan, row, col, mp.index)
                assert images.weights[loc.lane, loc.address] == matrix[row, col]
                seen[loc.lane, loc.address] = True
            loc = bias_location(plan, row, mp.index)
            assert images.biases[loc.lane, loc.address] == bias[row]
    assert not images.weights[~seen].any()


def test_hex_images_are_twos_complement_words(tmp_path):
    assert hex_lines([0, 1, -1, -32768, 32767], 16) == "0000\n0001\nffff\n8000\n7fff\n"
    assert hex_lines([-1, 5], 12) == "fff\n005\n"
    model = random_model(3, 2, seed=0, formats="q12", scale=1.5)
    images = bank_images(EnginePlan(model, HardwareConfig(lanes=3)))
    paths = images.write_hex(tmp_path)
    assert len(paths) == 2 * 3
    # Unpacked (the default): one weight file per lane, as a group of one.
    words = (tmp_path / "weights_group1.hex").read_text().split()
    values = [int(w, 16) - (1 << 12) * (int(w, 16) >> 11) for w in words]
    np.testing.assert_array_equal(values, images.weights[1])


@pytest.mark.parametrize(
    "I, H, P, groups, lanes, passes, span, bound",
    [
        (5, 11, 3, 1, 3, 15, 16, 235),  # P does not divide 4H
        (5, 11, 64, 1, 44, 1, 16, 11),  # 4H < P < 8H: 44 lanes
        (8, 8, 64, 2, 64, 1, 8, 8),  # P = 8H: two column groups
        (3, 1, 64, 4, 16, 1, 1, 1),  # groups capped at I + H
        (256, 256, 64, 1, 64, 16, 512, 8192),
        (1, 1, 1, 1, 1, 4, 2, 8),
    ],
)
def test_geometry_and_cycle_bound(I, H, P, groups, lanes, passes, span, bound):
    plan = EnginePlan(random_model(I, H, scale=1.5), HardwareConfig(lanes=P))
    g = plan.matrices[0]
    assert (g.groups, plan.lanes, g.passes, g.span) == (groups, lanes, passes, span)
    assert plan.lanes <= P
    assert g.bound == bound == cycle_bound(I, H, lanes=P) == plan.step_bound()
    assert g.mac_cycles == passes * span


def test_cycle_bound_of_a_model():
    model = random_model(5, 11, scale=1.5)
    assert cycle_bound(model, lanes=4) == 44 * 16 // 4


@pytest.mark.parametrize("lanes", [0, -1, 2.0, True, "8"])
def test_bad_lane_counts_are_refused(lanes):
    with pytest.raises(HardwareConfigError, match="lanes must be a positive int"):
        HardwareConfig(lanes=lanes)


@pytest.mark.parametrize("elements", [0, 3, 6, 2.0])
def test_input_elements_must_be_a_power_of_two(elements):
    with pytest.raises(HardwareConfigError, match="input_elements must be a power of two"):
        HardwareConfig(lanes=4, input_elements=elements)


def test_address_map_refuses_rows_and_columns_outside_the_matrix():
    plan = EnginePlan(random_model(2, 3, scale=1.5), HardwareConfig(lanes=4))
    with pytest.raises(ValueError, match="row 12 outside"):
        weight_location(plan, 12, 0)
    with pytest.raises(ValueError, match="column 5 outside"):
        weight_location(plan, 0, 5)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    I=st.integers(1, 40),
    H=st.integers(1, 40),
    P=st.integers(1, 70),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    head=st.one_of(st.none(), st.integers(1, 5)),
    formats=st.sampled_from(["q16", "q12", "mixed"]),
)
def test_bank_packing_geometry(I, H, P, layers, bidirectional, head, formats):
    """Groups partition the lanes in order; every word past a group's depth is a structural
    zero of the images; every parameter lives inside its group; block RAMs never exceed the
    unpacked banks' nor undercut the bits of the block-RAM groups."""
    model = random_model(
        I, H, layers, bidirectional=bidirectional, head=head, seed=P, formats=formats
    )
    plan = EnginePlan(model, HardwareConfig(lanes=P, max_seq_len=4 if bidirectional else None))
    images, packing = plan.images, bank_packing(plan)
    fam = FAMILIES[packing.family]
    width = images.weight_width
    k = packing.lanes_per_group
    assert [g.first for g in packing.groups] == list(range(0, plan.lanes, k))
    assert all(g.lanes == k for g in packing.groups[:-1]) and packing.lanes == plan.lanes
    depths = live_depths(plan)
    for g in packing.groups:
        members = range(g.first, g.first + g.lanes)
        assert g.depth == max(1, max(depths[p] for p in members))
        assert not images.weights[g.first : g.first + g.lanes, g.depth :].any()
        assert g.primitives == block_ram_primitives(fam, width, g.lanes, g.depth)
        for p in members:
            assert packing.slot(p) == (g.index, p - g.first)
    for mp in plan.matrices:
        for row in range(mp.real_rows):
            for column in (0, mp.columns - 1):
                loc = weight_location(plan, row, column, mp.index)
                assert packing.stores(loc.lane, loc.address)
    unpacked = sum(block_ram_primitives(fam, width, 1, max(1, d)) for d in depths)
    shallow = [g for g in packing.groups if g.depth <= fam.lutram_max_depth]
    if not shallow:
        assert packing.block_rams <= unpacked and packing.lutram_lanes == 0
    else:
        assert packing.block_rams <= max(packing.minimum, unpacked)
    block_bits = sum(g.lanes * g.depth for g in packing.groups if g.block) * width
    assert packing.block_rams * fam.bram_bits >= block_bits


@pytest.mark.parametrize(
    ("I", "H", "P", "head", "block_rams", "minimum", "lutram_lanes"),
    [
        (64, 64, 64, 1, 33, 29, 0),  # 512 words (lane 0: 576): 2 lanes per 512 x 36 word
        (5, 16, 16, 1, 2, 2, 12),  # 84-100 words: 2 DP16KD, the other lanes in LUT RAM
        (16, 16, 3, None, 3, 2, 0),  # 704 words, 3 lanes: one 1024 x 18 each (no pair fits 2)
        (32, 32, 16, None, 8, 8, 0),  # 512 words: 2 lanes per 512 x 36, the minimum
    ],
)
def test_packing_of_reference_shapes(I, H, P, head, block_rams, minimum, lutram_lanes):
    """Block RAMs of the packed banks against ``ceil(weight bits / 18 kbit)``: within 15 %
    when the banks are a whole number of 512-word block RAMs deep (the 704 words of 3 lanes
    need 3: no two lanes' 704 x 16 bits fit 2 DP16KD at one word per cycle)."""
    plan = EnginePlan(random_model(I, H, seed=0, head=head), HardwareConfig(lanes=P))
    packing = bank_packing(plan)
    assert (packing.block_rams, packing.minimum) == (block_rams, minimum)
    assert packing.lutram_lanes == lutram_lanes
    if all(g.depth % 512 == 0 for g in packing.groups[1:]):
        assert packing.block_rams <= 1.15 * packing.minimum
