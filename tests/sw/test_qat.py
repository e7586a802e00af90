"""Quantisation-aware fine-tuning (issue 13): the fake-quantised forward pass of
:class:`QatLstm` produces exactly the integers of ``run_reference`` on the exported IR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_fpga.sw.calibrate import calibrate
from lstm_fpga.sw.numerics import Overflow, Rounding
from lstm_fpga.sw.qat import EXACT_FLOAT_BITS, QatError, QatLstm, finetune, prepare_qat
from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.sw.torch_import import from_module

# (layers, bidirectional, head outputs or None, head_on, rounding, overflow, weight bits)
CASES = [
    (layers, bidirectional, head, head_on, rounding, overflow, weight_bits)
    for layers, bidirectional, head, head_on, rounding, overflow, weight_bits in [
        (1, False, 1, "last", Rounding.HALF_UP, Overflow.SATURATE, None),
        (1, False, 3, "all", Rounding.HALF_UP, Overflow.SATURATE, 8),
        (1, False, None, "last", Rounding.FLOOR, Overflow.SATURATE, 4),
        (1, True, 2, "last", Rounding.HALF_UP, Overflow.SATURATE, 6),
        (1, True, None, "all", Rounding.HALF_UP, Overflow.WRAP, None),
        (2, False, 1, "last", Rounding.FLOOR, Overflow.WRAP, 12),
        (2, False, 4, "all", Rounding.HALF_UP, Overflow.SATURATE, 5),
        (2, True, 2, "last", Rounding.HALF_UP, Overflow.SATURATE, 8),
        (2, True, 3, "all", Rounding.FLOOR, Overflow.SATURATE, 16),
        (3, False, None, "last", Rounding.HALF_UP, Overflow.SATURATE, 7),
        (1, False, 2, "last", Rounding.HALF_UP, Overflow.SATURATE, 4),
        (2, True, None, "last", Rounding.FLOOR, Overflow.SATURATE, 9),
    ]
    for _ in (0, 1)
]
WIDTHS = (16, 12, 8, 10, 6, 14)


def _case(index: int):
    layers, bidirectional, head_size, head_on, rounding, overflow, weight_bits = CASES[index]
    rng = np.random.default_rng(index)
    torch.manual_seed(index)
    input_size, hidden = int(rng.integers(1, 6)), int(rng.integers(1, 7))
    lstm = torch.nn.LSTM(
        input_size, hidden, layers, bias=index % 5 != 4, bidirectional=bidirectional
    )
    with torch.no_grad():  # larger weights than the default init: saturating pre-activations
        for p in lstm.parameters():
            p.mul_(float(rng.uniform(1.0, 4.0)))
    head = None if head_size is None else torch.nn.Linear(hidden * (1 + bidirectional), head_size)
    width = WIDTHS[index % len(WIDTHS)]
    weight_bits = None if weight_bits is None else min(weight_bits, width)
    samples = rng.normal(size=(5, 3, input_size))
    qat = prepare_qat(
        lstm,
        samples,
        head=head,
        width=width,
        weight_bits=weight_bits,
        head_on=head_on,
        rounding=rounding,
        overflow=overflow,
    )
    # Inputs three times the calibration data's scale: input, state and output saturation.
    steps, batch = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    x = rng.normal(scale=3.0, size=(steps, batch, input_size))
    lengths = rng.integers(1, steps + 1, batch)
    return qat, x, lengths, rng


def _assert_equal_to_reference(qat: QatLstm, x, lengths, h0=None, c0=None):
    model = qat.export()
    x_int = quantize_input(model, x)
    assert np.array_equal(qat.quantize_input(x).numpy(), x_int)
    reference = run_reference(
        model, x_int, h0, c0, lengths=lengths, head_on=qat.head_on, batch_first=qat.batch_first
    )
    output, head = qat(qat.quantize_input(x), lengths=lengths, h0=h0, c0=c0)
    # The QAT tensors hold integers (float64): compare them as integers, not with a tolerance.
    for ours, theirs in ((output, reference.output), (head, reference.head)):
        if theirs is None:
            assert ours is None
            continue
        values = ours.detach().numpy()
        assert np.array_equal(values, np.round(values)), "a QAT value is not an integer"
        assert np.array_equal(values.astype(np.int64), theirs)
    return reference


def _random_state(rng, model, kind: str, batch: int) -> np.ndarray:
    """Random integer initial states ``(L*D, B, H)`` spanning each direction's ``kind`` format."""
    formats = [getattr(d.formats, kind) for d in model.directions]
    shape = (batch, model.hidden_size)
    return np.stack([rng.integers(f.min_int, f.max_int + 1, shape) for f in formats])


@pytest.mark.parametrize("index", range(len(CASES)))
def test_qat_forward_is_the_integer_reference(index):
    qat, x, lengths, rng = _case(index)
    # Exact by construction: every intermediate value fits a float64 significand.
    for _, _, name, dp, _ in qat._datapaths:
        assert max(w.width for w in dp.intermediate_widths()) <= EXACT_FLOAT_BITS, name
    model = qat.export()
    h0, c0 = (_random_state(rng, model, kind, len(lengths)) for kind in ("hidden", "cell"))
    reference = _assert_equal_to_reference(qat, x, lengths, h0, c0)
    _assert_equal_to_reference(qat, x, lengths)
    assert reference.saturations.total >= 0


def test_cases_exercise_saturation_and_every_mode():
    saturated = 0
    for index in range(len(CASES)):
        qat, x, lengths, _ = _case(index)
        model = qat.export()
        result = run_reference(
            model, quantize_input(model, x), lengths=lengths, head_on=qat.head_on
        )
        saturated += result.saturations.total > 0
    assert saturated >= len(CASES) // 2
    assert {c[4] for c in CASES} == set(Rounding) and {c[5] for c in CASES} == set(Overflow)


@pytest.mark.parametrize("index", [0, 7])
def test_fine_tuning_keeps_the_forward_pass_exact_and_lowers_the_loss(index):
    qat, x, lengths, _ = _case(index)
    batch_first_x = x.transpose(1, 0, 2)
    qat.batch_first = True
    with torch.no_grad():
        target = np.full(qat.predict(batch_first_x).shape, 0.25)  # reachable through the bias
    history = finetune(qat, batch_first_x, target, epochs=8, lr=2e-2, batch_size=2, seed=index)
    assert history.losses[-1] < history.losses[0]
    grads = [p.grad for p in qat.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    _assert_equal_to_reference(qat, batch_first_x, lengths)


def test_formats_too_wide_for_float64_are_refused():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4)
    calibration = calibrate(
        from_module(lstm), np.random.default_rng(0).normal(size=(4, 2, 3)), width=24
    )
    with pytest.raises(QatError, match="53 bits"):
        QatLstm(lstm, None, calibration.formats)


def test_bad_finetune_arguments_are_named():
    qat, x, *_ = _case(0)
    with pytest.raises(QatError, match="loss must be"):
        finetune(qat, x, np.zeros(x.shape[1]), loss="hinge")
    with pytest.raises(QatError, match="epochs"):
        finetune(qat, x, np.zeros(x.shape[1]), epochs=0)
    with pytest.raises(QatError, match="targets"):
        finetune(qat, x, np.zeros(x.shape[1] + 1))
