"""The generated GRU accelerator (``nn.GRU`` on the lanes) under cocotb: bit-exact against
the GRU integer reference (:func:`lstm_fpga.sw.reference.run_reference`)."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import padded, random_model, random_sequences


def _gru(I, H, *, layers=1, bidirectional=False, head=None, seed=0, formats="q16", scale=1.5):
    return random_model(
        I,
        H,
        num_layers=layers,
        bidirectional=bidirectional,
        head=head,
        seed=seed,
        scale=scale,
        formats=formats,
        cell_type="gru",
    )


def _h0(model, seed):
    rng = np.random.default_rng(seed)
    LD, H = len(model.directions), model.hidden_size
    return np.stack(
        [
            quantize(rng.uniform(-0.8, 0.8, H) * d.formats.hidden.max_value, d.formats.hidden)
            for d in model.directions
        ]
    ).reshape(LD, H)


def _run_and_check(design, lengths, seed, *, h0=None, carry_state=False):
    model = design.model
    sequences = random_sequences(model, lengths, seed)
    result = simulate(design, sequences, h0=h0, carry_state=carry_state)
    report = compare(result)
    assert report.bit_exact, str(report)
    if not carry_state:  # the reference run straight (compare chains carried sequences)
        batch = len(lengths)
        start = None if h0 is None else np.repeat(h0[:, None, :], batch, axis=1)
        ref = run_reference(model, padded(sequences), start, lengths=list(lengths))
        if model.head is None and design.output_mode == "all":  # else: compare's check
            np.testing.assert_array_equal(result.outputs, ref.output)
        np.testing.assert_array_equal(result.h_n, ref.h_n)
    assert result.c_n is None
    assert report.cycles.dut_counter_agrees, str(report)
    return result, report


def test_one_layer_gru_bit_exact(sim_cache):
    """The first slice: GRU(3, 5), one layer, no head, on 3 lanes (P divides 3H but not
    I + H), with h0 and h_n and stateful streaming."""
    model = _gru(3, 5, seed=1)
    design = compile_model(model, 3, "verilator", cache_dir=sim_cache)
    _run_and_check(design, (4, 1, 6), seed=2, h0=_h0(model, 3))
    _run_and_check(design, (3, 5), seed=4, carry_state=True)


@pytest.mark.parametrize(
    ("I", "H", "layers", "bidirectional", "head", "lanes", "output"),
    [
        (3, 5, 2, False, 4, 7, "all"),  # layers + head on every step, P = 7
        pytest.param(4, 5, 3, False, 3, 16, "last", marks=pytest.mark.slow),  # 3 layers, P=16
        pytest.param(3, 5, 2, True, 2, 1, "last", marks=pytest.mark.slow),  # bidirectional, P=1
        pytest.param(5, 3, 1, True, None, 3, "all", marks=pytest.mark.slow),  # bi, no head
        # 24 rows on 16 lanes as 2 column groups of 8 (gru_lane_layout), 3 passes per step
        (16, 8, 1, False, 3, 16, "last"),
    ],
    ids=["L2_head_all_P7", "L3_head_P16", "bi_L2_head_P1", "bi_nohead_P3", "groups_P16"],
)
def test_gru_layers_head_directions(sim_cache, I, H, layers, bidirectional, head, lanes, output):
    model = _gru(I, H, layers=layers, bidirectional=bidirectional, head=head, seed=I + H + layers)
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=8 if bidirectional else None)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    _run_and_check(design, (5, 2, 7), seed=layers, h0=_h0(model, 5))


def test_gru_saturations_counted(sim_cache):
    """Tight formats and large weights: the hardware's saturation counters equal the
    reference's (compare checks them), and some rescales do clamp."""
    model = _gru(3, 5, seed=7, formats="tight", scale=6.0)
    design = compile_model(model, 3, "verilator", cache_dir=sim_cache)
    result, report = _run_and_check(design, (6, 4), seed=8)
    assert result.saturations is not None and report.saturations.agrees
    assert report.saturations.reference.total > 0, str(report)


def test_gru_icarus(sim_cache):
    """The same hardware under Icarus: GRU(3, 5) with a head on 3 lanes."""
    model = _gru(3, 5, head=2, seed=9)
    design = compile_model(model, 3, "icarus", cache_dir=sim_cache)
    _run_and_check(design, (3, 2), seed=10, h0=_h0(model, 11))
