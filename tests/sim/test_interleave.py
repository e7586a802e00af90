"""Interleaved sequences (``HardwareConfig(interleave=B)``, ``--interleave B``) under cocotb:
every sequence bit-exact against the integer reference run on its own."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import padded, random_model, random_sequences, random_state

# (B, lanes, input_size, hidden_size, options): odd lane counts (one drain: passes that
# split units), layers and a head; whole-unit passes (two drain banks), several passes and
# column groups (P >= 8H).
CASES = [
    (2, 7, 3, 5, {}),
    (3, 5, 4, 6, {"num_layers": 2}),
    (4, 16, 5, 16, {}),
    (2, 9, 3, 4, {"head": 3}),
    (3, 8, 3, 5, {"num_layers": 2, "head": 2}),
    (2, 40, 3, 4, {}),
]


def _design(sim_cache, B, lanes, I, H, options, seed=0):
    model = random_model(I, H, seed=seed, **options)
    config = HardwareConfig(lanes=lanes, interleave=B)
    return compile_model(model, config, "verilator", cache_dir=sim_cache)


def _lengths(B, rng):
    """Two groups of B sequences, one length per group."""
    return [int(n) for n in rng.integers(1, 7, size=2) for _ in range(B)]


@pytest.mark.parametrize(("B", "lanes", "I", "H", "options"), CASES)
def test_interleaved_groups_are_bit_exact(sim_cache, B, lanes, I, H, options):
    design = _design(sim_cache, B, lanes, I, H, options)
    rng = np.random.default_rng(B * 100 + lanes)
    sequences = random_sequences(design.model, _lengths(B, rng), int(rng.integers(1000)))
    result = simulate(
        design,
        sequences,
        input_pacing=Pacing(0.3, 5, B),
        output_pacing=Pacing(0.3, 5, B + 50),
    )
    lengths = [len(s) for s in sequences]
    reference = run_reference(design.model, padded(sequences), lengths=lengths)
    if design.model.head is None:
        np.testing.assert_array_equal(result.outputs, reference.output)
    report = compare(result)
    assert report.bit_exact, str(report)
    np.testing.assert_array_equal(result.h_n, reference.h_n)
    np.testing.assert_array_equal(result.c_n, reference.c_n)


def test_interleaved_states_and_carry(sim_cache):
    """h0/c0 per sequence in, h_n/c_n per sequence out; ``carry_state``: each sequence goes
    on from the final state of the same place in the previous group."""
    B = 3
    design = _design(sim_cache, B, 5, 4, 6, {"num_layers": 2})
    rng = np.random.default_rng(7)
    sequences = random_sequences(design.model, [3] * B + [2] * B, 8)
    states = [random_state(design.model, rng) for _ in range(2 * B)]
    h0 = np.stack([h for h, _ in states], axis=1)
    c0 = np.stack([c for _, c in states], axis=1)
    for carry in (False, True):
        result = simulate(design, sequences, h0, c0, carry_state=carry)
        report = compare(result)
        assert report.bit_exact, str(report)
        assert result.h_n is not None and result.c_n is not None


@pytest.mark.parametrize(("B", "lanes"), [(4, 64), (2, 64)])
def test_interleave_hides_the_recurrence(sim_cache, B, lanes):
    """LSTM(5,16) at P=64: B=1 waits for the recurrence (38 cycles per step against a lane
    bound of 21); interleaved, the steady state reaches the documented bound
    (``TopInterface.recurrence_step_bound``, per sequence-step)."""
    design = _design(sim_cache, B, lanes, 5, 16, {})
    sequences = random_sequences(design.model, [16] * B, 3)
    result = simulate(design, sequences)
    report = compare(result)
    assert report.bit_exact, str(report)
    bound = design.interface.recurrence_step_bound
    assert bound == design.interface.step_bound == 21
    # per sequence-step: the spacing of a sequence's steps over B
    assert result.cycles_per_step / B <= bound + 0.5, result.cycles_per_step
