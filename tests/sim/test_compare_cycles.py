"""``compare``'s cycle report: throughput of the whole run and per-sequence latency apart,
every matrix the lanes compute (layer directions and head) in the bound, utilisation of the
lanes actually built (issue 15 item 1, issue 16 ``--lanes 100000``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sim.compare import CYCLE_SLACK
from lstm_fpga.sw.numerics import quantize
from tests.conftest import float_from_torch, quantize_with, torch_lstm


def _run(sim_cache, I, H, L, bidirectional, head, output, lanes, lengths, seed):
    lstm, linear = torch_lstm(I, H, L, bidirectional, True, head, seed=seed)
    model = quantize_with(float_from_torch(lstm, linear))
    max_len = max(lengths) if bidirectional else None
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=max_len)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    rng = np.random.default_rng(seed)
    fmt = model.input_format
    sequences = [quantize(rng.uniform(-0.9, 0.9, (n, I)) * fmt.max_value, fmt) for n in lengths]
    return model, compare(simulate(design, sequences))


def _expected_jobs(model, output, lengths, lanes):
    """(name, rows, columns, runs, bound) of every matrix, from the model's shape alone."""
    H, steps = model.hidden_size, sum(lengths)
    jobs = [
        (d.name, 4 * H, d.input_size + H, steps, math.ceil(4 * H * (d.input_size + H) / lanes))
        for d in model.directions
    ]
    if model.head is not None:
        O, F = model.head.out_features, model.head.in_features
        runs = steps if output == "all" else len(lengths)
        jobs.append(("head", O, F, runs, math.ceil(O * F / lanes)))
    return jobs


CASES = [
    # I, H, L, bidirectional, head, output, lanes, lengths
    # H=8: every job (88 and 152 cycles) is longer than the gate and cell pipeline. With H=4
    # (28-cycle jobs) the recurrence through the pipeline is exposed: 183 cycles/step against
    # a bound of 152, reported as such (not within the bound).
    pytest.param(3, 8, 2, True, 0, "all", 4, (3, 2, 4, 1, 2), id="L2-bidir-short-seqs"),
    pytest.param(5, 6, 1, False, 2, "all", 7, (4, 5, 3), id="head-on-every-step"),
    pytest.param(4, 5, 1, False, 3, "last", 5, (6, 2, 5), id="head-on-last"),
    pytest.param(3, 4, 1, False, 0, "all", 1000, (5, 4), id="lanes-1000-built-112"),
]


@pytest.mark.parametrize("I, H, L, bidirectional, head, output, lanes, lengths", CASES)
def test_throughput_latency_and_jobs(
    sim_cache, I, H, L, bidirectional, head, output, lanes, lengths
):
    model, report = _run(sim_cache, I, H, L, bidirectional, head, output, lanes, lengths, I + H)
    assert report.bit_exact, str(report)
    c = report.cycles
    jobs = [(j.name, j.rows, j.columns, j.runs, j.bound) for j in c.jobs]
    assert jobs == _expected_jobs(model, output, lengths, lanes)
    steps = sum(lengths)
    assert c.steps == steps and c.cycles_per_step == c.run_cycles / steps
    assert c.bound_cycles == sum(j.bound * j.runs for j in c.jobs)
    # Sequences overlap: the run is shorter than the sum of latencies.
    assert c.run_cycles < sum(c.sequence_cycles)
    assert c.run_cycles >= max(c.sequence_cycles)
    assert (c.latency_min, c.latency_max) == (min(c.sequence_cycles), max(c.sequence_cycles))
    # The lanes cannot finish before their busy cycles, nor those before the bound.
    assert c.run_cycles >= sum(j.mac_cycles * j.runs for j in c.jobs) >= c.bound_cycles
    assert c.within_bound == (c.run_cycles <= c.bound_cycles + CYCLE_SLACK * steps)
    if bidirectional:  # issue 15: reported at 47 % while running within the bound
        assert c.within_bound, str(report)
    rows = 4 * H
    groups = max(1, min(lanes // rows, max(d.input_size + H for d in model.directions)))
    assert (c.lanes, c.lanes_requested) == (groups * min(lanes, rows), lanes)
    useful = sum(j.rows * j.columns * j.runs for j in c.jobs)
    assert c.lane_utilization == useful / (c.lanes * c.run_cycles) <= 1
    text = str(report)
    assert f"{c.run_cycles} cycles for {steps} steps" in text and "latency" in text
    saved = report.to_dict()["cycles"]
    assert [j["name"] for j in saved["jobs"]] == [j[0] for j in jobs]
