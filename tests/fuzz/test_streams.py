"""Stream-protocol properties under random idle cycles and backpressure, long sequences and
state carried across sequences, through the public ``simulate``/``compare`` API.

A lost beat shifts every later value of its stream and a duplicated one adds a value, so
integer equality of every output and state value with the reference, together with the
exact beat and packet counts checked here, rules both out."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sw.numerics import Overflow, Rounding
from lstm_fpga.testing import random_sequences, random_state

from .bounds import float_error_bound
from .campaign import Configuration, random_model
from .profiles import PROFILE

pytestmark = pytest.mark.slow


def _config(**changes) -> Configuration:
    base = dict(
        input_size=4,
        hidden_size=2,
        layers=1,
        bidirectional=False,
        head=0,
        output="all",
        width=16,
        lanes=12,
        input_elements=1,
        rounding=Rounding.HALF_UP,
        overflow=Overflow.SATURATE,
        max_seq_len=1,
    )
    return Configuration(**(base | changes))


def test_no_beat_lost_or_duplicated_under_idle_and_backpressure(sim_cache):
    config = _config()
    model = random_model(config, seed=11, scale=0.5)
    design = compile_model(model, config.hardware(), cache_dir=sim_cache)
    I, H = model.input_size, model.hidden_size
    rng = np.random.default_rng(12)
    lengths, beats = [], 0
    while beats < PROFILE.stream_beats:
        n = int(rng.integers(1, 300))
        lengths.append(n)
        beats += n * (I + H) + H  # x, y and (h_n, c_n) beats of the sequence
    result = simulate(
        design,
        random_sequences(model, lengths, 13),
        carry_state=True,
        read_state=True,
        input_pacing=Pacing(0.3, 4, seed=14),
        output_pacing=Pacing(0.3, 4, seed=15),
    )
    report = compare(result)
    assert report.bit_exact, str(report)
    # Every value accounted for: a y vector per step, h_n and c_n of every sequence.
    values = sum(lengths) * H + 2 * len(lengths) * H
    assert sum(check.compared for check in report.checks) == values
    assert result.outputs.shape == (max(lengths), len(lengths), H)
    assert result.h_n.shape == (1, len(lengths), H)


@pytest.mark.parametrize(
    "changes",
    [
        dict(layers=2, head=2, input_size=3, hidden_size=5, lanes=8),
        dict(layers=1, head=0, input_size=2, hidden_size=3, lanes=5, width=8),
    ],
    ids=["stacked-head-16b", "single-8b"],
)
def test_long_sequence_and_state_carried_across_sequences(changes, sim_cache):
    config = _config(**changes)
    model = random_model(config, seed=21, scale=0.3)
    design = compile_model(model, config.hardware(), cache_dir=sim_cache)
    lengths = [5000, 700, 1, 40]
    h0, c0 = random_state(model, 22)
    result = simulate(
        design, random_sequences(model, lengths, 23), h0, c0, carry_state=True, read_state=True
    )
    report = compare(result)
    assert report.bit_exact, str(report)
    assert report.saturations.reference.total == 0  # so the float bound applies
    check = float_error_bound(
        model,
        result.inputs,
        result.lengths,
        result.h0,
        result.c0,
        carry_state=True,
        head_on="all",
    )
    assert check.holds, check
