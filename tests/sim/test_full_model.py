"""The whole nn.LSTM under cocotb: Linear head, output modes, stacked and bidirectional
layers, h0/c0 in and h_n/c_n out, state modes, sequence-length overflow, saturation counters.

Every check is integer equality against the reference (``compare`` runs it with the state,
state mode and output mode the simulation used; some tests also call ``run_reference``
directly so that ``compare`` itself is checked)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sim.phases import (
    Stimulus,
    clear_status_phase,
    plan_for,
    reload_phase,
    stimulus_phase,
)
from lstm_fpga.sim.result import decode_phase
from lstm_fpga.sim.stimulus import run_plan
from lstm_fpga.sw.numerics import FixedFormat, quantize
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import padded, random_sequences
from tests.conftest import float_from_torch, quantize_with, torch_lstm


def _model(I, H, L=1, bidirectional=False, bias=True, head=0, seed=0, width=16):
    lstm, linear = torch_lstm(I, H, L, bidirectional, bias, head, seed=seed)
    return quantize_with(float_from_torch(lstm, linear), width), lstm, linear


def _states(model, batch, seed=2):
    """Random ``(h0, c0)`` of shape ``(L*D, B, H)`` inside each direction's formats."""
    rng = np.random.default_rng(seed)
    shape = (batch, model.hidden_size)
    h0 = [quantize(rng.uniform(-0.9, 0.9, shape), d.formats.hidden) for d in model.directions]
    c0 = [quantize(rng.uniform(-2, 2, shape), d.formats.cell) for d in model.directions]
    return np.stack(h0), np.stack(c0)


def _expected_y(model, reference, lengths, mode):
    if model.head is not None:
        return reference.head
    if mode == "last":
        return reference.output[np.asarray(lengths) - 1, np.arange(len(lengths))]
    return reference.output


@pytest.fixture(scope="module")
def forecaster(sim_cache):
    """The product demo: LSTM(5, 16) + Linear(16, 1) on the last step."""
    model, lstm, linear = _model(5, 16, head=1, seed=5)
    config = HardwareConfig(lanes=8, output="last")
    return compile_model(model, config, "verilator", cache_dir=sim_cache), lstm, linear


@pytest.mark.parametrize("paced", [False, True])
def test_forecaster_head_on_the_last_step(forecaster, paced):
    design, lstm, linear = forecaster
    model = design.model
    sequences = random_sequences(model, [12, 3, 7, 1], 11)
    pacing = Pacing(0.3, 4, seed=3) if paced else Pacing()
    result = simulate(design, sequences, input_pacing=pacing, output_pacing=pacing)
    lengths = [len(s) for s in sequences]
    reference = run_reference(model, padded(sequences), lengths=lengths, head_on="last")
    assert result.head.shape == (4, 1)
    np.testing.assert_array_equal(result.head, reference.head)
    np.testing.assert_array_equal(result.h_n, reference.h_n)
    np.testing.assert_array_equal(result.c_n, reference.c_n)
    # Against PyTorch: the float inputs the integers came from, the torch modules' weights.
    float_inputs = [s * model.input_format.lsb for s in sequences]
    report = compare(result, float_model=float_from_torch(lstm, linear), float_inputs=float_inputs)
    assert report.bit_exact, str(report)
    assert [c.tensor for c in report.checks] == ["head", "h_n", "c_n"]
    assert report.saturations is not None and report.saturations.agrees
    head_error = report.float_errors[0]
    assert head_error.tensor == "head" and head_error.count == 4
    assert head_error.max_abs < 64 * head_error.lsb, str(report)
    assert "head max |err|" in str(report)


def test_forecaster_state_modes_back_to_back(forecaster):
    """Stateful streaming: with carry_state each sequence continues from the previous one's
    final state; without it each starts from the loaded (h0, c0)."""
    design, _, _ = forecaster
    model = design.model
    sequences = random_sequences(model, [4, 6, 2], 12)
    h0, c0 = _states(model, 1, seed=13)
    h0, c0 = h0[:, 0], c0[:, 0]
    reset = simulate(design, sequences, h0=h0, c0=c0)
    carried = simulate(design, sequences, h0=h0, c0=c0, carry_state=True)
    for result in (reset, carried):
        report = compare(result)
        assert report.bit_exact, str(report)
    # Independently: chain the reference by hand for the carry-over mode.
    h, c, heads = h0[:, None], c0[:, None], []
    for seq in sequences:
        ref = run_reference(model, seq[:, None], h, c, head_on="last")
        heads.append(ref.head[0])
        h, c = ref.h_n, ref.c_n
    np.testing.assert_array_equal(carried.head, np.stack(heads))
    np.testing.assert_array_equal(carried.h_n[:, -1], h[:, 0])
    assert not np.array_equal(carried.head[1:], reset.head[1:])


def test_one_lsb_in_the_head_is_found(forecaster):
    """compare can fail: the reference of a model whose head bias differs by one LSB."""
    design, _, _ = forecaster
    model = design.model
    sequences = random_sequences(model, [3, 5], 14)
    result = simulate(design, sequences)
    head = model.head
    other = replace(model, head=replace(head, bias=head.bias + 1))
    report = compare(result, other)
    assert not report.bit_exact
    first = report.first_mismatch
    assert (first.tensor, first.sequence, first.step, first.unit) == ("head", 0, 2, 0)
    assert first.reference == first.hardware + 1
    assert "head of sequence 0, step 2, output feature 0" in str(report)


# (I, H, layers, bidirectional, bias, head, output, lanes, lengths); odd sizes everywhere.
FEATURES = [
    pytest.param(5, 11, 2, False, True, 3, "all", 3, [6, 2, 4], id="L2-head3-all-P3"),
    pytest.param(4, 7, 1, True, False, 0, "all", 5, [5, 1, 3], id="bidir-nobias-all-P5"),
    pytest.param(
        3, 6, 3, False, True, 0, "last", 7, [4, 7], id="L3-last-P7", marks=pytest.mark.slow
    ),
    pytest.param(
        5,
        5,
        2,
        True,
        True,
        2,
        "last",
        4,
        [3, 6, 2],
        id="L2-bidir-head2-last-P4",
        marks=pytest.mark.slow,
    ),
]


@pytest.mark.parametrize("I, H, L, bidirectional, bias, head, output, lanes, lengths", FEATURES)
def test_random_models_with_states(
    sim_cache, I, H, L, bidirectional, bias, head, output, lanes, lengths
):
    seed = I * 100 + H * 10 + L
    model, _, _ = _model(I, H, L, bidirectional, bias, head, seed=seed)
    max_len = max(lengths) if bidirectional else None
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=max_len)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    sequences = random_sequences(model, lengths, seed + 1)
    h0, c0 = _states(model, len(lengths), seed=seed + 2)
    pacing = Pacing(0.2, 3, seed=seed)
    result = simulate(design, sequences, h0=h0, c0=c0, input_pacing=pacing, output_pacing=pacing)
    reference = run_reference(model, padded(sequences), h0, c0, lengths=lengths, head_on=output)
    np.testing.assert_array_equal(result.outputs, _expected_y(model, reference, lengths, output))
    np.testing.assert_array_equal(result.h_n, reference.h_n)
    np.testing.assert_array_equal(result.c_n, reference.c_n)
    report = compare(result)
    assert report.bit_exact, str(report)
    assert report.saturations.agrees and not report.overflow


def test_bidirectional_overflow_drops_the_sequence_and_recovers(sim_cache):
    model, _, _ = _model(4, 7, 1, True, False, 0, seed=471)
    config = HardwareConfig(lanes=5, output="all", max_seq_len=6)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    too_long, clean = random_sequences(model, [9, 4], 21)
    with pytest.raises(ValueError, match="max_seq_len=6"):
        simulate(design, [too_long])
    refused = Stimulus.prepare(model, [too_long])
    accepted = Stimulus.prepare(model, [clean])
    phases = [
        stimulus_phase(design, refused),
        stimulus_phase(design, accepted, read_state=True),
        clear_status_phase(design),
        stimulus_phase(design, accepted, read_state=True),
    ]
    run = run_plan(design.sim_build, plan_for(design, phases))
    assert run.phases[0].sink("y").data.size == 0
    assert run.phases[0].sample("overflow") == 1
    result = decode_phase(design, accepted, run, 1)
    report = compare(result)
    # The flag stays set (status is sticky until clear_status); the data is still exact.
    assert result.overflow and not report.bit_exact
    assert all(check.mismatches == 0 for check in report.checks), str(report)
    assert "overflow flag SET" in str(report)
    # clear_status restarts the flag and the saturation counters.
    cleared = decode_phase(design, accepted, run, 3)
    assert cleared.overflow is False
    report = compare(cleared)
    assert report.bit_exact, str(report)


def test_saturation_counters_match_the_reference(sim_cache):
    """Weights at the top of their format drive pre-activations and the head into
    saturation; the hardware's counters equal the reference's counts."""
    model, _, _ = _model(5, 6, 1, False, True, 2, seed=31)
    d = model.directions[0]
    rng = np.random.default_rng(32)
    big = quantize(np.sign(rng.uniform(-1, 1, d.w_ih.shape)) * 1.9, d.formats.w_ih)
    head = model.head
    loud = quantize(np.sign(rng.uniform(-1, 1, head.weight.shape)) * 1.9, head.formats.weight)
    model = replace(
        model,
        directions=(replace(d, w_ih=big),),
        # Q2.13 (range [-4, 4)): narrower than the head's sums.
        head=replace(head, weight=loud, formats=replace(head.formats, output=FixedFormat(16, 13))),
    )
    design = compile_model(model, HardwareConfig(lanes=6, output="all"), cache_dir=sim_cache)
    sequences = random_sequences(model, [5, 3], 33)
    result = simulate(design, sequences)
    reference = run_reference(model, padded(sequences), lengths=[5, 3], head_on="all")
    assert reference.saturations.preact > 0 and reference.saturations.head > 0
    assert result.saturations == reference.saturations
    assert compare(result).bit_exact


def test_small_full_model_on_icarus(sim_cache):
    model, _, _ = _model(3, 4, 2, False, True, 2, seed=41)
    design = compile_model(
        model, HardwareConfig(lanes=4, output="last"), "icarus", cache_dir=sim_cache
    )
    sequences = random_sequences(model, [3, 1, 4], 42)
    h0, c0 = _states(model, 3, seed=43)
    pacing = Pacing(0.3, 2, seed=4)
    result = simulate(design, sequences, h0=h0, c0=c0, input_pacing=pacing, output_pacing=pacing)
    reference = run_reference(model, padded(sequences), h0, c0, lengths=[3, 1, 4])
    np.testing.assert_array_equal(result.head, reference.head)
    np.testing.assert_array_equal(result.h_n, reference.h_n)
    report = compare(result)
    assert report.bit_exact, str(report)


def test_weight_reload_between_sequences(forecaster):
    """Sequences, a reload of another trained model through ``w``, sequences: each part is
    bit-exact against the reference of the weights loaded at the time."""
    design, _, _ = forecaster
    model = design.model
    other, _, _ = _model(5, 16, head=1, seed=6)
    before = Stimulus.prepare(model, random_sequences(model, [4, 2], 16))
    after = Stimulus.prepare(model, random_sequences(model, [3, 5], 17))
    phases = [
        stimulus_phase(design, before, read_state=True),
        reload_phase(design, other, Pacing(0.2, 2, seed=5)),
        stimulus_phase(design, after, read_state=True),
    ]
    run = run_plan(design.sim_build, plan_for(design, phases))
    first = decode_phase(design, before, run, 0)
    second = decode_phase(design, after, run, 2, weights=other)
    assert first.model is model and second.model is other
    for result in (first, second):
        report = compare(result)
        assert report.bit_exact, str(report)
    # The reload changed what the hardware computes: the old weights no longer fit.
    assert not compare(second, model).bit_exact


def test_one_lsb_through_the_reload_is_found_and_located(forecaster):
    """One weight of W_ih changed by one LSB and loaded at run time: compare against the
    original model says not bit-exact and points at the corrupted unit's state."""
    design, _, _ = forecaster
    model = design.model
    H, d = model.hidden_size, model.directions[0]
    sequences = random_sequences(model, [1, 1, 1], 15)  # one step from zero: no spreading
    x = padded(sequences)
    column = int(np.abs(x).max(axis=(0, 1)).argmax())
    for unit in range(H):
        w_ih = d.w_ih.copy()
        w_ih[2 * H + unit, column] += 1  # gate g of ``unit``
        corrupted = replace(model, directions=(replace(d, w_ih=w_ih),))
        predicted = run_reference(corrupted, x).c_n != run_reference(model, x).c_n
        if predicted.any():
            break
    else:
        pytest.fail("no single-LSB change of a g-gate weight reaches c_n")
    result = simulate(design, sequences, weights=corrupted)
    assert compare(result).bit_exact  # the hardware runs the reloaded weights exactly
    report = compare(result, model)
    assert not report.bit_exact
    c_check = next(check for check in report.checks if check.tensor == "c_n")
    b, _, u = (int(v) for v in np.argwhere(predicted.transpose(1, 0, 2))[0])
    first = c_check.first
    assert (first.sequence, first.layer, first.direction, first.unit) == (b, 0, "forward", unit)
    assert u == unit and c_check.mismatches == int(predicted.sum())


def test_reset_in_a_stacked_head_model_then_a_clean_run(sim_cache):
    """A reset in the middle of a sequence of a 2-layer model with a head: the sequences
    after it are exact (nothing of the interrupted one leaks into state or output)."""
    model, _, _ = _model(5, 11, 2, False, True, 3, seed=612)  # the L2-head3-all-P3 build
    design = compile_model(model, HardwareConfig(lanes=3, output="all"), cache_dir=sim_cache)
    interrupted = Stimulus.prepare(model, random_sequences(model, [8], 51))
    clean = Stimulus.prepare(model, random_sequences(model, [4, 3], 52))
    abort_at = 3 * design.cycle_bound + 11
    phases = [
        stimulus_phase(design, interrupted, abort_after_cycles=abort_at),
        stimulus_phase(design, clean, read_state=True),
    ]
    run = run_plan(design.sim_build, plan_for(design, phases))
    assert run.phases[0].aborted
    report = compare(decode_phase(design, clean, run, 1))
    assert report.bit_exact, str(report)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_wider_input_beats(sim_cache, simulator):
    """``input_elements = 2``: two elements of ``x_t`` per beat, the last beat of a step
    half empty (I = 5)."""
    model, _, _ = _model(5, 6, 1, False, True, 0, seed=61)
    config = HardwareConfig(lanes=8, input_elements=2)
    design = compile_model(model, config, simulator, cache_dir=sim_cache)
    sequences = random_sequences(model, [4, 1, 3], 62)
    pacing = Pacing(0.3, 2, seed=6)
    result = simulate(design, sequences, input_pacing=pacing, output_pacing=pacing)
    reference = run_reference(model, padded(sequences), lengths=[4, 1, 3])
    np.testing.assert_array_equal(result.outputs, reference.output)
    assert compare(result).bit_exact
