"""What limits a design (lstm_fpga.hw.limits): the figures against the contract, the weight
map and the model, and the compute/memory bound."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_fpga.hw import EnginePlan, HardwareConfig, TopInterface, cycle_bound
from lstm_fpga.hw.banks import weight_location
from lstm_fpga.hw.limits import (
    NOMINAL_CLOCK_MHZ,
    Clock,
    check_memory_gbps,
    design_limits,
    measured_clock,
)
from lstm_fpga.testing import random_model

#: (I, H, layers, bidirectional, head, output)
SHAPES = [
    (5, 16, 1, False, 1, "last"),  # the demo's shape
    (3, 5, 1, False, None, "all"),
    (7, 6, 2, False, None, "all"),
    (4, 3, 1, True, None, "all"),
    (6, 5, 1, False, 3, "all"),  # head every step
    (9, 4, 2, True, 2, "last"),
]
LANES = [1, 3, 7, 16, 40]  # odd, below 4H, above it (column groups)
FORMATS = ["q16", "q12", "mixed"]  # mixed: 8-bit W_ih in a 16-bit bank word


def _plan(shape, lanes, formats="q16"):
    I, H, layers, bidirectional, head, output = shape
    model = random_model(I, H, layers, bidirectional, head=head, formats=formats)
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=6 if bidirectional else None)
    return EnginePlan(model, config)


@pytest.mark.parametrize("formats", FORMATS)
@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_figures_follow_the_contract_and_the_model(shape, lanes, formats):
    plan = _plan(shape, lanes, formats)
    interface = TopInterface(plan)
    limits = design_limits(plan)
    head = plan.head_matrix
    every_step = head is not None and plan.output_mode == "all"
    extra = head.bound if every_step else 0
    # Cycles: the contract's recurrence bound, the lane bound the published cycle_bound.
    assert limits.cycles_per_step == interface.recurrence_step_bound + extra
    assert limits.lane_bound == cycle_bound(plan.model, lanes=lanes) + extra
    assert limits.cycles_per_step >= limits.lane_bound
    # Multiplies: 4H(I_k + H) per layer direction (and O * D*H for a head every step).
    H = plan.hidden_size
    macs = sum(4 * H * (d.input_size + H) for d in plan.model.directions)
    if every_step:
        macs += head.real_rows * head.columns
    assert limits.macs_per_step == macs
    assert limits.lane_utilisation == pytest.approx(macs / (plan.lanes * limits.cycles_per_step))
    # The model's own weight bits at their formats' widths.
    model_bits = sum(
        d.w_ih.size * d.formats.w_ih.width + d.w_hh.size * d.formats.w_hh.width
        for d in plan.model.directions
    )
    if every_step:
        model_bits += plan.model.head.weight.size * plan.model.head.formats.weight.width
    assert limits.model_bytes_per_step == model_bits / 8
    # What the lanes read: the real weights and the structural zeros, W bits each.
    W = plan.weight_shape.width
    assert limits.weight_width == W
    assert limits.bytes_per_step == limits.zero_bytes_per_step + macs * W / 8
    assert limits.zero_bytes_per_step >= 0
    assert limits.gbps_needed == pytest.approx(
        limits.bytes_per_step * NOMINAL_CLOCK_MHZ * 1e6 / limits.cycles_per_step / 1e9
    )


@pytest.mark.parametrize("lanes", [3, 5, 16, 70])
@pytest.mark.parametrize("shape", [(5, 7, 1, False, None, "all"), (3, 2, 2, False, 3, "all")])
def test_bytes_read_are_the_weight_map_plus_its_padding(shape, lanes):
    """Every real weight has one (lane, address) in the words the lanes read per step
    (weight_location); the other words of those addresses are the structural zeros."""
    plan = _plan(shape, lanes)
    limits = design_limits(plan)
    per_step = plan.lstm_matrices + ((plan.head_matrix,) if limits.head_every_step else ())
    read = {
        (lane, address)
        for mp in per_step
        for address in range(mp.weight_base, mp.weight_base + mp.words)
        for lane in range(plan.lanes)
    }
    real = set()
    for mp in per_step:
        for row in range(mp.real_rows):
            for column in range(mp.columns):
                where = weight_location(plan, row, column, mp.index)
                real.add((where.lane, where.address))
    assert real <= read and len(real) == limits.macs_per_step
    W = plan.weight_shape.width
    assert limits.bytes_per_step == len(read) * W / 8
    assert limits.zero_bytes_per_step == (len(read) - len(real)) * W / 8


def test_demo_shape_figures():
    """LSTM(5, 16) + Linear(16, 1), output last, 16-bit weights, P = 16 at 100 MHz."""
    limits = design_limits(_plan(SHAPES[0], 16))
    assert limits.lane_bound == 84
    assert limits.bytes_per_step == 4 * 16 * 21 * 2  # 2688 bytes, no padding
    assert limits.zero_bytes_per_step == 0
    assert limits.head is not None and not limits.head_every_step
    slow = limits.with_memory(0.2)  # 16-bit SDRAM at 100 MHz
    assert slow.memory_bound and slow.us_per_step == pytest.approx(2688 / 200)
    assert not limits.with_memory(12.8).memory_bound


@settings(max_examples=40, deadline=None)
@given(
    I=st.integers(1, 12),
    H=st.integers(1, 12),
    lanes=st.integers(1, 70),
    mhz=st.floats(1, 1000),
    gbps=st.floats(1e-3, 1e3),
)
def test_memory_bound_iff_the_memory_needs_longer(I, H, lanes, mhz, gbps):
    plan = EnginePlan(random_model(I, H), HardwareConfig(lanes=lanes))
    limits = design_limits(plan, Clock(mhz, True, "test"))
    m = limits.with_memory(gbps)
    compute_s = limits.cycles_per_step / (mhz * 1e6)
    memory_s = limits.bytes_per_step / (gbps * 1e9)
    assert m.memory_bound == (memory_s > compute_s * (1 + 1e-12))
    assert m.us_per_step == pytest.approx(max(compute_s, memory_s) * 1e6)
    assert m.bound == ("memory" if m.memory_bound else "compute")
    assert 0 < m.utilisation <= limits.lane_utilisation * (1 + 1e-12) <= 1 + 1e-12
    assert m.utilisation == pytest.approx(limits.lane_utilisation * compute_s * 1e6 / m.us_per_step)
    # Exactly the bandwidth needed: the two times are equal.
    tie = limits.with_memory(limits.gbps_needed)
    assert tie.memory_us == pytest.approx(tie.compute_us)


def test_json_names_the_clock_and_the_basis():
    limits = design_limits(_plan(SHAPES[1], 3))
    data = limits.to_json_dict([0.2, 50])
    assert data["clock"] == {
        "mhz": NOMINAL_CLOCK_MHZ,
        "measured": False,
        "source": Clock.nominal().source,
    }
    assert "not simulated" in data["basis"]
    assert [m["memory_gbps"] for m in data["memory"]] == [0.2, 50]
    assert data["memory"][0]["bound"] == "memory" and data["memory"][1]["bound"] == "compute"
    assert data["weight_bytes_per_step"] == limits.bytes_per_step
    lines = limits.describe([0.2])
    assert "nominal 100 MHz" in lines[0] and "memory-bound" in lines[-1]


def test_measured_clock_takes_the_lowest_fmax():
    assert measured_clock(None) == Clock.nominal()
    assert measured_clock({"ecp5": {"target": "ecp5", "fmax_mhz": None}}) == Clock.nominal()
    timing = {
        "ecp5": {"target": "ecp5", "part": "LFE5U-85F", "speed": 6, "fmax_mhz": 112.5},
        "other": {"target": "other", "fmax_mhz": 90.0},
    }
    clock = measured_clock(timing)
    assert clock.mhz == 90.0 and clock.measured and "measured Fmax 90 MHz" in clock.source
    clock = measured_clock({"ecp5": timing["ecp5"]})
    assert clock.source == "measured Fmax 112.5 MHz (LFE5U-85F speed 6, synth)"


@pytest.mark.parametrize("bad", [0, -1, "x", "nan", math.inf, None])
def test_bad_bandwidths_are_refused(bad):
    with pytest.raises(ValueError, match="GB/s"):
        check_memory_gbps(bad)
    with pytest.raises(ValueError, match="GB/s"):
        design_limits(_plan(SHAPES[1], 3)).with_memory(bad)


@pytest.mark.parametrize("bad", [0, -5, math.nan])
def test_bad_clocks_are_refused(bad):
    with pytest.raises(ValueError, match="MHz"):
        Clock(bad, False, "x")
