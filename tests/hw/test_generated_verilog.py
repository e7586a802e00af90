"""The generated Verilog itself (Verilator harness) equals the reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig, write_build
from lstm_fpga.sim.verilator_harness import run_harness
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import random_input, random_model


@pytest.mark.parametrize(
    "memory_init, lanes, elements",
    [
        ("inline", 3, 1),
        pytest.param("readmemh", 8, 1, marks=pytest.mark.slow),
        # Two column groups of 44 lanes, two input elements per beat.
        pytest.param("inline", 100, 2, marks=pytest.mark.slow),
    ],
)
def test_verilog_build_matches_reference_with_stalls(tmp_path, memory_init, lanes, elements):
    model = random_model(5, 11, seed=lanes, scale=4.0, formats="tight")
    sequences = [random_input(model, steps, steps) for steps in (13, 1, 8)]
    config = HardwareConfig(lanes=lanes, input_elements=elements)
    build = write_build(model, config, tmp_path, memory_init=memory_init)
    run = run_harness(build, sequences, idle=0.3, stall=0.3, seed=2)
    for k, (seq, got) in enumerate(zip(sequences, run.outputs, strict=True)):
        expected = run_reference(model, seq[:, None, :]).output[:, 0, :]
        assert (got == expected).all(), f"sequence {k} differs"
    assert run.last_flags.sum() == len(sequences)
    assert not run.busy_at_end
    # cycles = (cycle of the last y handshake) - (cycle of the first x handshake).
    last_beats = run.output_cycles[run.last_flags == 1]
    expected_cycles = [
        int(end - start) for start, end in zip(run.start_cycles, last_beats, strict=True)
    ]
    assert run.sequence_cycles == expected_cycles


def _assert_outputs(model, sequences, run, output):
    """Each sequence's ``y`` equals the reference (the head's outputs when there is one)."""
    for k, (seq, got) in enumerate(zip(sequences, run.outputs, strict=True)):
        ref = run_reference(model, seq[:, None, :], head_on=output)
        if model.head is not None:
            expected = ref.head[:, 0, :] if output == "all" else ref.head
        else:
            expected = ref.output[:, 0, :] if output == "all" else ref.output[-1]
        np.testing.assert_array_equal(got, expected, err_msg=f"sequence {k}")


@pytest.mark.parametrize(
    "layers, bidirectional, head, output, lanes",
    [
        (2, True, 3, "last", 5),  # stacked bidirectional classifier
        pytest.param(3, False, None, "all", 4, marks=pytest.mark.slow),
        pytest.param(2, False, 2, "all", 64, marks=pytest.mark.slow),  # column groups
    ],
)
def test_full_model_verilog_matches_reference(tmp_path, layers, bidirectional, head, output, lanes):
    model = random_model(
        5, 4, layers, bidirectional, head=head, formats=("q16", "tight"), seed=layers, scale=3.0
    )
    rng = np.random.default_rng(layers)
    sequences = [random_input(model, steps, rng) for steps in (6, 1, 4)]
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=6)
    build = write_build(model, config, tmp_path, memory_init="readmemh")
    run = run_harness(build, sequences, idle=0.3, stall=0.3, seed=layers)
    _assert_outputs(model, sequences, run, output)
    assert run.last_flags.sum() == len(sequences)
    assert not run.busy_at_end


@pytest.mark.parametrize(
    "input_size, elements, head, output",
    [
        (1, 1, 2, "last"),  # I = 1: every step is one beat
        (3, 4, None, "all"),  # input_elements >= I, outputs through the output reader
    ],
)
def test_cycles_register_with_one_beat_bidirectional_sequences(
    tmp_path, input_size, elements, head, output
):
    """``cycles`` counts from a sequence's first ``x`` handshake to its last ``y`` handshake
    (docs/hardware.md) for every sequence of a bidirectional model, one-beat ones included
    (those once counted from the previous sequence's first beat)."""
    model = random_model(input_size, 4, 1, True, head=head, seed=input_size)
    rng = np.random.default_rng(input_size)
    lengths = (1, 5, 1, 3, 6, 8, 1)
    sequences = [random_input(model, steps, rng) for steps in lengths]
    config = HardwareConfig(lanes=4, output=output, max_seq_len=8, input_elements=elements)
    build = write_build(model, config, tmp_path, memory_init="readmemh")
    run = run_harness(build, sequences)
    _assert_outputs(model, sequences, run, output)
    last_beats = run.output_cycles[run.last_flags == 1]
    expected_cycles = [
        int(end - start) for start, end in zip(run.start_cycles, last_beats, strict=True)
    ]
    assert run.sequence_cycles == expected_cycles


@pytest.mark.parametrize(
    "input_size, hidden_size, lanes",
    [
        (5, 16, 16),  # the demo's LSTM: the loop limits it (a cycle per step over the lanes)
        (7, 9, 3),  # odd lanes: units straddle passes
        (12, 8, 4),  # the loop fits: at the lane bound
        pytest.param(8, 8, 5, marks=pytest.mark.slow),
        pytest.param(6, 8, 64, marks=pytest.mark.slow),  # column groups: loop-limited
    ],
)
def test_cycles_per_step_are_the_recurrence_bound(tmp_path, input_size, hidden_size, lanes):
    """Free-flowing streams: every step after the first takes exactly the interface's
    recurrence bound (the lane bound where the recurrence loop fits in a step), and the
    outputs stay bit-exact."""
    model = random_model(input_size, hidden_size, seed=lanes, formats="q16_even")
    build = write_build(model, HardwareConfig(lanes=lanes), tmp_path, memory_init="readmemh")
    interface = build.interface
    sequences = [random_input(model, 12, 3)]
    run = run_harness(build, sequences)
    _assert_outputs(model, sequences, run, "all")
    step_ends = run.output_cycles[hidden_size - 1 :: hidden_size]
    assert set(np.diff(step_ends)[1:]) == {interface.recurrence_step_bound}
    assert interface.recurrence_step_bound >= interface.step_bound
    loop = interface.loop_latencies.loop
    plan = interface.plan
    # Where a step's slack (the input columns and the units before the last pass) covers
    # the loop, the lane bound holds (and with whole passes it is the lanes' busy cycles).
    last_pass_first_unit = (plan.matrices[0].passes - 1) * plan.row_lanes // 4
    if input_size + last_pass_first_unit >= loop and plan.row_lanes % 4 == 0:
        assert interface.recurrence_step_bound == plan.matrices[0].mac_cycles
