"""The generated LSTMP accelerator (``nn.LSTM(proj_size=R)`` on the lanes) under cocotb:
bit-exact against the integer reference (:func:`lstm_fpga.sw.reference.run_reference`):
``y`` (``h_t`` of ``R`` features, or the head), ``h_n`` (``R``) and ``c_n`` (``H``), the
saturation counters, ``h0``/``c0`` in and sequences carried over."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig, cycle_bound
from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.testing import random_lstmp_model


def _state(model, seed):
    """Random integer ``(h0 (L*D, R), c0 (L*D, H))`` spanning 80 % of each format."""
    rng = np.random.default_rng(seed)
    h0 = [
        quantize(rng.uniform(-0.8, 0.8, model.proj_size) * f.max_value, f)
        for f in (d.formats.hidden for d in model.directions)
    ]
    c0 = [
        quantize(rng.uniform(-0.8, 0.8, model.hidden_size) * f.max_value, f)
        for f in (d.formats.cell for d in model.directions)
    ]
    return np.stack(h0), np.stack(c0)


def _check(design, x, lengths=None, *, h0=None, c0=None, carry_state=False, **pacing):
    model = design.model
    xq = quantize_input(model, x)
    result = simulate(design, xq, h0=h0, c0=c0, lengths=lengths, carry_state=carry_state, **pacing)
    report = compare(result)
    assert report.bit_exact, str(report)
    assert report.cycles.dut_counter_agrees, str(report)
    if not carry_state:
        B = xq.shape[1]
        start = (None, None)
        if h0 is not None:
            start = (np.repeat(h0[:, None], B, axis=1), np.repeat(c0[:, None], B, axis=1))
        ref = run_reference(model, xq, *start, lengths=lengths)
        if model.head is None and design.output_mode == "all":
            np.testing.assert_array_equal(result.outputs, ref.output)
            assert result.outputs.shape[-1] == model.num_directions * model.proj_size
        np.testing.assert_array_equal(result.h_n, ref.h_n)
        np.testing.assert_array_equal(result.c_n, ref.c_n)
    assert result.h_n.shape[-1] == model.proj_size
    assert result.c_n.shape[-1] == model.hidden_size
    return result, report


@pytest.mark.parametrize(
    ("I", "H", "R", "lanes"),
    [(3, 5, 2, 4), (4, 8, 3, 3), (2, 3, 1, 24)],
    ids=["I3_H5_R2_P4", "I4_H8_R3_P3", "I2_H3_R1_P24"],
)
def test_one_layer_lstmp_bit_exact(sim_cache, I, H, R, lanes):
    """The first slice: one layer, no head, lanes that divide neither 4H nor I + R (P = 3)
    or do (P = 4), or two column groups (P = 24 >= 8H) with R = 1; h0/c0 in, h_n (R) and
    c_n (H) out, variable lengths, carried state."""
    model, x = random_lstmp_model(I, H, R, seed=I + H)
    design = compile_model(model, HardwareConfig(lanes=lanes), "verilator", cache_dir=sim_cache)
    _, report = _check(design, x)
    # The walk model with the projection stage predicts the step (32 steps back to back: the
    # pipeline's fill and drain at the ends add under 1.5 cycles per step).
    model_step = design.interface.recurrence_step_bound
    assert model_step <= report.cycles.cycles_per_step < model_step + 1.5
    h0, c0 = _state(model, 5)
    _check(design, x, lengths=np.array([8, 3, 1, 6]), h0=h0, c0=c0)
    _check(design, x[:5], carry_state=True)


def test_lstmp_bit_exact_on_icarus(sim_cache):
    model, x = random_lstmp_model(3, 5, 2, seed=8)
    design = compile_model(model, HardwareConfig(lanes=4), "icarus", cache_dir=sim_cache)
    h0, c0 = _state(model, 6)
    _check(design, x[:4, :2], h0=h0, c0=c0)


@pytest.mark.parametrize(
    ("I", "H", "R", "layers", "head", "lanes", "output"),
    [
        (7, 4, 3, 2, 0, 5, "all"),  # two layers, P = 5
        (4, 6, 5, 2, 2, 7, "all"),  # two layers and a head on every step, P = 7
        # a head on the last step, P = 16 (two passes of the gates)
        pytest.param(3, 5, 2, 1, 3, 16, "last", marks=pytest.mark.slow),
    ],
    ids=["L2_P5", "L2_head_all_P7", "L1_head_last_P16"],
)
def test_lstmp_layers_and_head(sim_cache, I, H, R, layers, head, lanes, output):
    model, x = random_lstmp_model(I, H, R, num_layers=layers, head=head, seed=I * H)
    config = HardwareConfig(lanes=lanes, output=output)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    h0, c0 = _state(model, 7)
    _check(design, x, lengths=np.array([8, 2, 5, 7]), h0=h0, c0=c0)


@pytest.mark.parametrize(
    ("I", "H", "R", "layers", "lanes", "interleave"),
    [(3, 5, 2, 1, 4, 2), pytest.param(7, 4, 3, 2, 5, 3, marks=pytest.mark.slow)],
    ids=["I3_H5_R2_P4_B2", "L2_P5_B3"],
)
def test_interleaved_lstmp(sim_cache, I, H, R, layers, lanes, interleave):
    """``--interleave B``: B sequences take turns step by step on the lanes, each with its
    own h (R) and c (H); h0/c0 in, h_n/c_n out, carried state."""
    model, x = random_lstmp_model(I, H, R, num_layers=layers, seed=I + H + interleave)
    config = HardwareConfig(lanes=lanes, interleave=interleave)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    h0, c0 = _state(model, 9)
    _check(design, x[:, : interleave * (x.shape[1] // interleave)], h0=h0, c0=c0)
    _check(design, x[:5, :interleave], carry_state=True)


@pytest.mark.parametrize(
    ("layers", "lanes", "interleave"), [(2, 5, 1), (1, 4, 2)], ids=["L2_P5", "L1_P4_B2"]
)
def test_lstmp_under_idle_input_and_backpressure(sim_cache, layers, lanes, interleave):
    """Idle cycles on ``x`` and long backpressure on ``y``: the projection stage stalls on
    its output queue while the next gate job's cell writes may run; still bit-exact (and
    the announcements of both producers keep the sequencer's lead)."""
    model, x = random_lstmp_model(5, 4, 3, num_layers=layers, seed=3)
    config = HardwareConfig(lanes=lanes, interleave=interleave)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    _check(
        design,
        x,
        input_pacing=Pacing(0.4, 5, seed=3),
        output_pacing=Pacing(0.6, 40, seed=4),
    )


@pytest.mark.parametrize(
    ("I", "H", "R", "layers", "head", "lanes", "output", "simulator"),
    [
        (3, 5, 2, 1, 0, 4, "all", "verilator"),  # one layer: y of 2R per step
        (3, 5, 2, 1, 0, 3, "last", "icarus"),  # P = 3 divides neither 4H nor I + R
        (4, 6, 3, 2, 0, 5, "all", "verilator"),  # layer 1 reads 2R = 6 (P = 5)
        # three layers, a head over 2R on every step, P = 7 (4H = 12)
        pytest.param(5, 3, 2, 3, 3, 7, "all", "verilator", marks=pytest.mark.slow),
        # a head on the last step; two column groups (P = 24 >= 8H, R = 1)
        pytest.param(2, 3, 1, 2, 2, 24, "last", "verilator", marks=pytest.mark.slow),
    ],
    ids=["L1_P4", "L1_last_P3_icarus", "L2_P5", "L3_head_all_P7", "L2_head_last_P24"],
)
def test_bidirectional_lstmp(sim_cache, I, H, R, layers, head, lanes, output, simulator):
    """A bidirectional LSTMP (the buffered schedule, a projection job per direction):
    layer ``k > 0`` reads both directions' ``h_t`` (``2R``), ``h_n`` of ``R`` and ``c_n``
    of ``H`` per layer direction; h0/c0 in, variable lengths, carried state."""
    model, x = random_lstmp_model(
        I, H, R, num_layers=layers, head=head, seed=I + H + R, bidirectional=True
    )
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=8)
    design = compile_model(model, config, simulator, cache_dir=sim_cache)
    h0, c0 = _state(model, 11)
    _check(design, x, lengths=np.array([8, 3, 1, 6]), h0=h0, c0=c0)
    if simulator == "verilator":
        _check(design, x[:5, :2], carry_state=True)


def test_bidirectional_lstmp_under_idle_input_and_backpressure(sim_cache):
    """Idle cycles on ``x``, long backpressure on ``y`` and ``state`` (its ``h_n`` rows come
    from the projection stage, which must not fall behind the cell pipeline's writes)."""
    model, x = random_lstmp_model(5, 4, 3, num_layers=2, seed=4, bidirectional=True)
    config = HardwareConfig(lanes=5, max_seq_len=8)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    h0, c0 = _state(model, 12)
    _check(
        design,
        x,
        h0=h0,
        c0=c0,
        input_pacing=Pacing(0.4, 5, seed=5),
        output_pacing=Pacing(0.6, 40, seed=6),
    )


def test_lstmp_cycle_bound_is_the_plan_bound():
    """``cycle_bound(model, lanes=P)`` of an LSTMP is the plan's per-step bound (gates with
    R recurrent columns plus the projection), the figure ``compare`` measures against."""
    from lstm_fpga.hw import EnginePlan

    for I, H, R, layers, lanes in [(3, 5, 2, 1, 4), (4, 8, 3, 1, 3), (7, 4, 3, 2, 5)]:
        model, _ = random_lstmp_model(I, H, R, num_layers=layers)
        plan = EnginePlan(model, HardwareConfig(lanes=lanes))
        assert plan.step_bound() == cycle_bound(model, lanes=lanes)
