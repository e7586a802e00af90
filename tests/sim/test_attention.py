"""The generated accelerator of an attention classifier (``lstm``, ``attention``, ``fc``; the
layers on the lanes, :class:`~lstm_fpga.hw.attention.AttentionUnit` after them) under cocotb:
the head's outputs, once per sequence, bit-exact against the integer reference
(:func:`lstm_fpga.sw.reference.run_reference`), with variable lengths, and the saturation
counters and ``h_n``/``c_n`` equal to the reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier, AttentionPooling
from lstm_fpga.sw.numerics import Rounding
from lstm_fpga.sw.reference import quantize_input, run_reference
from tests.conftest import ecp5_multipliers


def _classifier(I, H, A, O, bidirectional=False, R=0, seed=0, steps=5, batch=3):
    """A calibrated attention classifier's IR, time-major inputs (steps, batch, I) and their
    lengths (the longest, one step, one between)."""
    torch.manual_seed(seed)
    net = AttentionClassifier(
        I, H, A, O, bidirectional=bidirectional, proj_size=R, batch_first=False
    ).double()
    with torch.no_grad():
        net.attention.v.weight.mul_(8.0)  # sharper attention: spread scores
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (steps, batch, I))
    lengths = np.array([steps, 1, *rng.integers(2, steps + 1, batch - 2)])
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    return model, x, lengths


def _check(design, x, lengths, **pacing):
    model = design.model
    xq = quantize_input(model, x)
    result = simulate(design, xq, lengths=lengths, **pacing)
    report = compare(result)
    assert report.bit_exact, str(report)
    assert report.cycles.dut_counter_agrees, str(report)
    reference = run_reference(model, xq, lengths=lengths)
    np.testing.assert_array_equal(result.head, reference.head)
    # (compare checks them too) sat_attention: every attention pooling clamp of the run.
    assert result.saturations == reference.saturations, str(report)
    assert reference.saturations.attention == sum(reference.attention.saturations.values())
    assert result.head.shape == (x.shape[1], model.head.out_features)
    return result, report


@pytest.mark.parametrize(
    ("I", "H", "A", "O", "bidirectional", "R", "lanes"),
    [
        (3, 5, 4, 2, False, 0, 3),  # odd sizes, P divides neither 4H = 20 nor I + H = 8
        (2, 3, 7, 5, True, 0, 5),  # bidirectional: F = 6, A = 7, P = 5
    ],
    ids=["I3_H5_A4_O2_P3", "bidirectional_A7_O5_P5"],
)
def test_attention_classifier_bit_exact(sim_cache, I, H, A, O, bidirectional, R, lanes):
    model, x, lengths = _classifier(I, H, A, O, bidirectional, R, seed=I + H + A)
    config = HardwareConfig(lanes=lanes, output="last", max_seq_len=6)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    _check(design, x, lengths)


def test_attention_clamps_counted_by_sat_attention(sim_cache):
    """Narrow score pre-activation, score and context formats (FLOOR rounding, as in
    ``tests/hw/test_attention_unit.py``): attention pooling clamps, and the top's
    ``sat_attention`` equals the reference's total of those clamps (``preact`` + ``score`` +
    ``alpha`` + ``context``), ``sat_head`` the head's, each > 0."""
    torch.manual_seed(3)
    net = AttentionClassifier(3, 4, 5, 3, batch_first=False).double()
    with torch.no_grad():
        net.attention.v.weight.mul_(8.0)
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (6, 3, 3))
    lengths = np.array([6, 1, 4])
    overrides = {
        "attention.preact": "Q-2.9",
        "attention.score": "Q-3.10",
        "attention.context": "Q-2.7",
        "head.output": "Q-2.5",
    }
    model, _ = quantize_from_torch(
        net, x, lengths=lengths, width=12, overrides=overrides, rounding=Rounding.FLOOR
    )
    config = HardwareConfig(lanes=3, output="last", max_seq_len=6)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    result, report = _check(design, x, lengths)
    reference = run_reference(model, quantize_input(model, x), lengths=lengths)
    pooled = reference.attention.saturations
    assert pooled["preact"] > 0 and pooled["score"] > 0 and pooled["context"] > 0, pooled
    assert result.saturations.attention == sum(pooled.values()) > 0
    assert result.saturations.head == reference.saturations.head > 0
    assert report.saturations.agrees


def test_attention_lstmp_under_backpressure_on_icarus(sim_cache):
    """An LSTMP (F = R = 3) with one output, on Icarus, under idle x and y pacing."""
    model, x, lengths = _classifier(4, 6, 3, 1, R=3, seed=2, steps=4)
    config = HardwareConfig(lanes=4, output="last", max_seq_len=4)
    design = compile_model(model, config, "icarus", cache_dir=sim_cache)
    pacing = dict(input_pacing=Pacing(0.3, 3, seed=1), output_pacing=Pacing(0.5, 4, seed=2))
    _check(design, x, lengths, **pacing)


def test_attention_on_ecp5_multiplier_primitives_is_bit_exact(sim_cache, tmp_path):
    """``family="ecp5"``: the unit's two multiplies (the multiply-accumulate and alpha's) are
    MULT18X18D primitives with their input and output registers too (with their simulation
    model): the same outputs as the reference and the same cycles as the generic build."""
    from lstm_fpga.hw import write_build
    from lstm_fpga.sim.design import compile_build_directory

    model, x, lengths = _classifier(3, 5, 4, 2, seed=7)
    config = HardwareConfig(lanes=3, output="last", max_seq_len=6)
    counts, cycles = {}, []
    for family in ("generic", "ecp5"):
        written = write_build(
            model, config, tmp_path / family, memory_init="readmemh", family=family
        )
        text = written.verilog.read_text()
        counts[family] = text.count("MULT18X18D #(")
        design = compile_build_directory(
            written.directory, model, config, "verilator", cache_dir=sim_cache
        )
        cycles.append(_check(design, x, lengths)[1].cycles.dut_cycles)
    assert counts["generic"] == 0
    assert counts["ecp5"] == ecp5_multipliers(config.lanes, attention=True)
    assert cycles[0] == cycles[1]


class _GruAttention(nn.Module):
    """An ``nn.GRU`` under attention pooling (the layout's ``lstm`` child may be a GRU)."""

    def __init__(self, I, H, A, O):
        super().__init__()
        self.lstm = nn.GRU(I, H)
        self.attention = AttentionPooling(H, A)
        self.fc = nn.Linear(H, O)


def test_gru_attention_bit_exact(sim_cache):
    torch.manual_seed(5)
    net = _GruAttention(3, 4, 5, 3).double()
    with torch.no_grad():
        net.attention.v.weight.mul_(8.0)
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, (4, 3, 3))
    lengths = np.array([4, 1, 2])
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    config = HardwareConfig(lanes=5, output="last", max_seq_len=4)
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    _check(design, x, lengths)
