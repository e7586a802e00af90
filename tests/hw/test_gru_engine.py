"""nn.GRU on the lanes in the Amaranth simulator: the whole engine (layers, directions, head,
``h0``/``h_n``, stateful streaming, weight reload) bit-exact against the GRU integer reference,
the lane-row layout of the weight banks, and the cycle bound ``ceil(3H(I+H)/P)``."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import (
    EnginePlan,
    HardwareConfig,
    TopInterface,
    bias_location,
    cycle_bound,
    weight_location,
)
from lstm_fpga.hw.banks import gru_hn_biases
from lstm_fpga.hw.gru_cell import GruCellPipeline
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.testing import random_model, random_sequences
from tests.hw.engine_driver import (
    InitLoad,
    Sequence,
    WeightLoad,
    expected_results,
    run_engine,
)


def _gru(I, H, layers=1, bidirectional=False, head=None, seed=0, **options):
    options.setdefault("scale", 2.0)
    return random_model(
        I,
        H,
        num_layers=layers,
        bidirectional=bidirectional,
        head=head,
        seed=seed,
        cell_type="gru",
        **options,
    )


def _h0(model, seed):
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            quantize(rng.uniform(-0.9, 0.9, model.hidden_size) * f.max_value, f)
            for f in (d.formats.hidden for d in model.directions)
        ]
    )


def _check(model, config, operations, seed=0):
    got = run_engine(model, config, operations, seed=seed)
    expected = expected_results(model, config, operations)
    assert len(got["y"]) == len(expected.y)
    for hw, ref in zip(got["y"], expected.y, strict=True):
        np.testing.assert_array_equal(hw, ref)
    assert len(got["states"]) == len(expected.states)
    for (h, c), (h_ref, _) in zip(got["states"], expected.states, strict=True):
        assert c is None
        np.testing.assert_array_equal(h, h_ref)
    sat = expected.saturations
    assert got["saturations"] == {
        "preact": sat.preact,
        "cell": 0,
        "hidden": sat.hidden,
        "head": sat.head,
        "attention": 0,
    }
    assert not got["busy"]
    return got, expected


@pytest.mark.parametrize(
    ("I", "H", "layers", "bidirectional", "head", "lanes", "output"),
    [
        (3, 5, 1, False, None, 1, "all"),
        (3, 5, 1, False, None, 3, "last"),
        (3, 5, 2, False, 4, 7, "all"),
        (4, 5, 3, False, 3, 16, "last"),
        (5, 3, 3, False, None, 7, "all"),
        (3, 5, 2, True, 2, 3, "last"),
        (3, 5, 1, True, None, 16, "all"),
        (2, 3, 2, True, None, 1, "all"),
        # Column groups (P >= 6H): 2 groups of 6 lanes; 4 groups of 3 lanes, where group 0
        # of layer 0 reads input columns only (0 and 4 of [x; h]).
        (3, 2, 1, False, 2, 16, "all"),
        (5, 1, 2, False, None, 12, "all"),
        # gru_lane_layout: 24 rows on 16 lanes as 2 groups of 8 (3 passes of 12 and 8
        # cycles, not 2 of 24 and 16), passes starting mid-unit.
        (16, 8, 2, False, 3, 16, "last"),
        # One group beyond 16 lanes (18 and 21 rows per pass): the element tree, the drain's
        # row-strobe tree and the sums from the accumulators
        (4, 6, 2, False, 3, 20, "all"),
        (5, 7, 1, True, None, 21, "last"),
    ],
)
def test_gru_engine_matches_the_reference(I, H, layers, bidirectional, head, lanes, output):
    """Odd sizes, P in {1, 3, 7, 16} (7 and 16 dividing neither 3H nor I + H), stalls on every
    stream: outputs, ``h_n`` and saturation counts equal the reference's; a sequence from
    the default zero state, one from a loaded ``h0``, one carrying the previous ``h_n``."""
    model = _gru(I, H, layers, bidirectional, head, seed=I * H + layers + lanes)
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=6 if bidirectional else None)
    xs = random_sequences(model, [4, 3, 5], rng=lanes)
    operations = [
        Sequence(xs[0], read_state=True),
        InitLoad(_h0(model, lanes)),
        Sequence(xs[1], read_state=True),
        Sequence(xs[2], carry=True, read_state=True),
    ]
    _check(model, config, operations, seed=lanes)


@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_gru_engine_counts_saturations(overflow):
    """Tight formats and large weights: the clamps happen, and are counted as the reference
    counts them (pre-activations of r, z, xn, hn and n; the update)."""
    from dataclasses import replace

    from lstm_fpga.sw.numerics import Overflow

    model = _gru(3, 5, layers=2, seed=7, formats="tight", scale=6.0)
    model = replace(model, overflow=Overflow(overflow))
    config = HardwareConfig(lanes=3)
    xs = random_sequences(model, [6, 4], rng=3)
    _, expected = _check(model, config, [Sequence(x) for x in xs])
    assert expected.saturations.preact > 0 and expected.saturations.hidden > 0


def test_gru_weights_reload():
    """New integer weights (same formats) through the weight port replace every weight and
    bias, b_hn in the bias banks' second half included; the state carried across the reload
    too."""
    first = _gru(3, 5, layers=2, head=2, seed=1, formats=("q16", "tight"))
    second = _gru(3, 5, layers=2, head=2, seed=2, formats=("q16", "tight"))
    xs = random_sequences(first, [3, 3, 2], rng=4)
    operations = [
        Sequence(xs[0], read_state=True),
        WeightLoad(second),
        Sequence(xs[1], carry=True, read_state=True),
        WeightLoad(first),
        Sequence(xs[2], carry=True, read_state=True),
    ]
    _check(first, HardwareConfig(lanes=7, output="all"), operations)


@pytest.mark.parametrize("lanes", [1, 3, 16, 64])
def test_gru_weights_sit_where_the_address_map_says(lanes):
    """Every weight of ``[W_ih | W_hh]`` (3H rows, PyTorch order) and every one of the 4H
    biases sits where weight_location / bias_location say (b_hn in the bias banks' second
    half); the rest of the weight banks (padding) is zero."""
    model = _gru(3, 2, layers=2, bidirectional=True, head=3, seed=lanes)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes, max_seq_len=2))
    images = plan.images
    seen = np.zeros(images.weights.shape, dtype=bool)
    for mp in plan.matrices:
        if mp.is_head:
            matrix, bias, rows = model.head.weight, model.head.bias, mp.real_rows
        else:
            d = model.directions[mp.index]
            matrix, bias, rows = np.concatenate([d.w_ih, d.w_hh], axis=1), d.bias, 3 * 2
            for row in range(4 * 2):
                loc = bias_location(plan, row, mp.index)
                assert images.biases[loc.lane, loc.address] == bias[row]
        for row in range(rows):
            for col in range(mp.columns):
                loc = weight_location(plan, row, col, mp.index)
                assert images.weights[loc.lane, loc.address] == matrix[row, col]
                seen[loc.lane, loc.address] = True
        if not mp.is_head:
            with pytest.raises(ValueError, match="outside"):
                weight_location(plan, rows, 0, mp.index)
    assert not images.weights[~seen].any()


def test_gru_n_rows_start_their_recurrent_sum_from_b_hn():
    """Three lane rows per unit (r, z, n): the n row's first bias is b_in, its second (the
    bias banks' second half) b_hn; the other rows' second bias is 0."""
    model = _gru(3, 4, seed=0)
    plan = EnginePlan(model, HardwareConfig(lanes=5))
    d, H = model.directions[0], 4
    mp = plan.matrices[0]
    assert mp.rows == 3 * H and mp.unit_rows == 3 and mp.units == H
    second = gru_hn_biases(plan, 0)
    np.testing.assert_array_equal(second[2::3], d.bias[3 * H :])
    assert not second[0::3].any() and not second[1::3].any()
    assert plan.images.split_biases and plan.images.bias_depth == 2 * plan.bias_depth


@pytest.mark.parametrize(("I", "H", "lanes"), [(5, 16, 16), (3, 5, 7), (40, 8, 3)])
def test_gru_bound_is_three_gates(I, H, lanes):
    """The bound form ceil(3H(I+H)/P) per layer direction, in the plan, the contract and
    cycle_bound; the lanes' schedule is the 3H-row one: passes times spans is the bound
    where P divides the rows or the columns (one column per cycle, row_lanes = min(P, 3H))."""
    model = _gru(I, H, layers=2, seed=1)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    expected = -(-3 * H * (I + H) // lanes) + -(-3 * H * (H + H) // lanes)
    assert plan.step_bound() == expected == cycle_bound(model, lanes=lanes)
    assert TopInterface(plan).step_bound == expected
    assert cycle_bound(I, H, lanes=lanes, gates=3) == -(-3 * H * (I + H) // lanes)
    for mp, columns in zip(plan.matrices, (I + H, 2 * H), strict=True):
        assert mp.rows == 3 * H
        assert mp.mac_cycles == -(-3 * H // plan.row_lanes) * -(-columns // plan.groups)
        assert mp.mac_cycles >= mp.bound
    latencies = TopInterface(plan).loop_latencies
    assert latencies.to_read == GruCellPipeline.LATENCY - 3 + 1


@pytest.mark.parametrize(
    ("I", "H", "lanes", "layout"),
    [(8, 24, 16, (8, 2)), (5, 16, 16, (16, 1)), (5, 16, 7, (7, 1)), (32, 32, 16, (16, 1))],
)
def test_gru_lane_layout_fills_the_passes(I, H, lanes, layout):
    """gru_lane_layout: 72 rows on 16 lanes as 2 groups of 8 (9 passes x 16 cycles, the
    bound, instead of 5 passes x 32 with the last half idle); the row-parallel layout
    where it is as good (P divides 3H) or where shorter passes would wait on the drain."""
    model = _gru(I, H, seed=0)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    assert (plan.row_lanes, plan.groups) == layout
    mp = plan.matrices[0]
    default = -(-3 * H // min(lanes, 3 * H)) * (I + H)
    assert mp.mac_cycles <= default
    if 3 * H % lanes == 0 or layout == (8, 2):
        assert mp.mac_cycles == mp.bound
