"""Two multiplies per DSP (issue 13 item 4) on the generated Verilog: packed builds are
bit-exact against the NumPy integer reference (Verilator, and Icarus once), and at the same
DSP count they take at most ``ceil(bound / 2) + 4`` cycles per step, ``bound`` being the
unpacked build's lane bound (measured in the Verilator harness as benchmarks/cycles.py
does)."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig, TopInterface, write_build
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sim.verilator_harness import run_harness
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import random_sequences
from tests.hw.test_dsp_packing import packed_model

#: Cycles per step over ``ceil(bound / 2)`` the issue allows packed builds.
SLACK = 4


@pytest.mark.parametrize(
    "simulator, I, H, layers, bidirectional, head, output, lanes, weight_bits, element_bits",
    [
        # odd P: lanes (0,1), (2,3) packed, lane 4 on its own multiplier; 8-bit everything
        ("verilator", 5, 6, 2, False, 3, "all", 5, 8, 8),
        # bidirectional with a head, output "last"
        pytest.param("verilator", 3, 4, 1, True, 2, "last", 6, 8, 8, marks=pytest.mark.slow),
        # 4-bit weights against 16-bit activations and states
        pytest.param("verilator", 4, 5, 1, False, None, "all", 7, 4, 16, marks=pytest.mark.slow),
        pytest.param("icarus", 3, 3, 1, False, 2, "all", 3, 8, 8, marks=pytest.mark.slow),
    ],
)
def test_packed_builds_are_bit_exact(
    sim_cache,
    simulator,
    I,
    H,
    layers,
    bidirectional,
    head,
    output,
    lanes,
    weight_bits,
    element_bits,
):
    model = packed_model(
        I,
        H,
        layers,
        bidirectional,
        head=head,
        weight_bits=weight_bits,
        element_bits=element_bits,
        seed=lanes + weight_bits,
        scale=1.5,
    )
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=6, dsp_packing=2)
    plan = EnginePlan(model, config)
    assert plan.lane_dsps == -(-lanes // 2)
    design = compile_model(model, config, simulator, cache_dir=sim_cache)
    sequences = random_sequences(model, (4, 1, 6), rng=lanes)
    report = compare(simulate(design, sequences))
    assert report.bit_exact, str(report)


@pytest.mark.parametrize(
    "I, H, dsps",
    [
        (12, 8, 4),  # 8 packed lanes on 4 DSPs; 2D divides 4H: whole passes
        pytest.param(9, 7, 3, marks=pytest.mark.slow),  # odd H; 6 lanes on 3 DSPs
    ],
)
def test_packed_cycles_per_step_at_the_same_dsp_count(tmp_path, I, H, dsps):
    model = packed_model(I, H, seed=dsps)
    unpacked = TopInterface(EnginePlan(model, HardwareConfig(lanes=dsps)))
    config = HardwareConfig(lanes=2 * dsps, dsp_packing=2)
    build = write_build(model, config, tmp_path, memory_init="readmemh")
    interface = build.interface
    assert interface.plan.lane_dsps == dsps
    sequences = random_sequences(model, (12,), rng=3)
    run = run_harness(build, sequences)
    # Bit-exact against the integer reference, beat by beat.
    expected = run_reference(model, sequences[0][:, None, :]).output[:, 0, :]
    np.testing.assert_array_equal(run.outputs[0], expected)
    step_ends = run.output_cycles[H - 1 :: H]
    # Every step after the first takes the contract's recurrence bound ...
    assert set(np.diff(step_ends)[1:].tolist()) == {interface.recurrence_step_bound}
    # ... which is half the unpacked build's at the same DSP count, plus the slack
    assert interface.step_bound == -(-unpacked.step_bound // 2)
    assert interface.recurrence_step_bound <= -(-unpacked.recurrence_step_bound // 2) + SLACK
    if 4 * H % (2 * dsps) == 0:  # ... and within ceil(bound / 2) + 4 with whole passes (with
        # a part-filled last pass both builds also pay for its idle lanes)
        assert interface.recurrence_step_bound <= -(-unpacked.step_bound // 2) + SLACK
