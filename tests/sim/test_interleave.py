"""Interleaved sequences (``HardwareConfig(interleave=B)``, ``--interleave B``) under cocotb:
every sequence bit-exact against the integer reference run on its own."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import padded, random_model, random_sequences

# (B, lanes, input_size, hidden_size, options): odd lane counts, layers and a head.
CASES = [
    (2, 7, 3, 5, {}),
    (3, 5, 4, 6, {"num_layers": 2}),
    (4, 16, 5, 16, {}),
    (2, 9, 3, 4, {"head": 3}),
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
