"""Attention pooling (``lstm``, ``attention``, ``fc``) through the software flow: import,
float model, calibration, IR, the integer softmax and reference, report, and the refusals
where support ends (other layouts, hardware, fine-tuning)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from lstm_fpga.hw import HardwareConfig, check_supported
from lstm_fpga.hw.compatibility import AttentionNotSupportedError
from lstm_fpga.sw.calibrate import (
    CalibrationError,
    calibrate_from_range,
    quantize_from_torch,
    quantize_model,
)
from lstm_fpga.sw.float_model import FloatLstm
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.modules import AttentionClassifier, AttentionPooling
from lstm_fpga.sw.numerics import (
    EXP_SEGMENTS_PER_UNIT,
    RECIP_GUARD_BITS,
    AttentionFormats,
    FixedFormat,
    Overflow,
    Rounding,
    dequantize,
    exp_domain,
    exp_table,
    rescale,
)
from lstm_fpga.sw.qat import QatError, modules_from_float
from lstm_fpga.sw.reference import head_forward, quantize_input, run_float, run_reference
from lstm_fpga.sw.state_dict import ATTENTION_LAYOUT
from lstm_fpga.sw.torch_import import ModelImportError, from_module, from_state_dict

Q = FixedFormat.parse

SHAPES = [
    # I, H, A, O, layers, bidirectional, proj_size
    (3, 5, 4, 2, 1, False, 0),
    (4, 8, 6, 3, 2, True, 0),
    (5, 6, 3, 1, 1, True, 3),
    (2, 4, 5, 4, 3, False, 0),
    (6, 12, 8, 5, 1, False, 4),
]


def classifier(I, H, A, O, L, bidirectional, R, seed=0, peaky=1.0):
    torch.manual_seed(seed)
    net = AttentionClassifier(I, H, A, O, num_layers=L, bidirectional=bidirectional, proj_size=R)
    with torch.no_grad():
        net.attention.v.weight.mul_(peaky)  # sharper attention: scores spread wider
    return net.double()


def batch(I, seed, B=8, T=10):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (B, T, I))
    lengths = rng.integers(1, T + 1, B)
    lengths[0] = T
    return x, lengths


def torch_logits(net, x, lengths):
    with torch.no_grad():
        return net(torch.tensor(x), torch.tensor(lengths)).numpy()


# -- import and the float model --------------------------------------------------------------
@pytest.mark.parametrize(("I", "H", "A", "O", "L", "bidirectional", "R"), SHAPES)
def test_float_model_is_pytorch_attention_classifier(I, H, A, O, L, bidirectional, R):
    net = classifier(I, H, A, O, L, bidirectional, R)
    fm = from_module(net)
    assert fm.attention.attention_size == A
    assert fm.attention.features == (2 if bidirectional else 1) * (R or H)
    x, lengths = batch(I, seed=1)
    _, _, head = fm.forward(x, batch_first=True, lengths=lengths)
    np.testing.assert_allclose(head, torch_logits(net, x, lengths), atol=1e-12)
    assert from_state_dict(net.state_dict()).attention.v.tolist() == fm.attention.v.tolist()


class _GruAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.GRU(3, 4, batch_first=True)
        self.drop = nn.Dropout(0.2)
        self.attention = AttentionPooling(4, 5)
        self.fc = nn.Linear(4, 2)


def test_gru_with_attention_imports_and_matches_pytorch():
    torch.manual_seed(3)
    net = _GruAttention().double().eval()
    x, _ = batch(3, seed=2, B=1, T=7)
    with torch.no_grad():
        context, _ = net.attention(net.lstm(torch.tensor(x))[0])
        expected = net.fc(context).numpy()
    fm = from_module(net)
    _, _, head = fm.forward(x, batch_first=True)
    np.testing.assert_allclose(head, expected, atol=1e-12)


# -- the integer reference against PyTorch ---------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("peaky", [1.0, 12.0])
@pytest.mark.parametrize(("I", "H", "A", "O", "L", "bidirectional", "R"), SHAPES)
def test_reference_within_2_to_minus_8_of_pytorch(I, H, A, O, L, bidirectional, R, peaky, seed):
    net = classifier(I, H, A, O, L, bidirectional, R, seed=seed, peaky=peaky)
    x, lengths = batch(I, seed=seed + 10)
    model, report = quantize_from_torch(net, x, lengths=lengths)
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    got = dequantize(result.head, model.head.formats.output)
    expected = torch_logits(net, x, lengths)
    assert np.abs(got - expected).max() <= 2**-8 * np.ptp(expected)
    assert result.total_saturations == 0 == report.total_saturations
    alpha = result.attention.alpha
    valid = np.arange(x.shape[1])[:, None] < lengths[None, :]
    assert np.all(alpha[~valid] == 0)
    one = 1 << model.attention.formats.alpha.frac
    assert np.all(np.abs(alpha.sum(axis=0) - one) <= lengths)  # one rounding per step


def test_float_path_of_the_ir_is_close_to_the_reference():
    net = classifier(4, 8, 6, 3, 2, True, 0, peaky=5.0)
    x, lengths = batch(4, seed=4)
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    _, _, head = run_float(model, quantize_input(model, x) * model.input_format.lsb,
                           batch_first=True, lengths=lengths)  # fmt: skip
    got = dequantize(result.head, model.head.formats.output)
    assert np.abs(got - head).max() <= 2**-9 * np.ptp(head)


# -- variable lengths: the softmax covers each sequence's valid steps only -------------------
@pytest.mark.parametrize(("I", "H", "A", "O", "L", "bidirectional", "R"), SHAPES[:3])
def test_padded_batch_equals_single_runs_whatever_the_padding(I, H, A, O, L, bidirectional, R):
    net = classifier(I, H, A, O, L, bidirectional, R, peaky=6.0)
    x, lengths = batch(I, seed=5, B=6, T=9)
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    xq = quantize_input(model, x)
    garbage = xq.copy()
    for b, n in enumerate(lengths):
        garbage[b, n:] = model.input_format.max_int  # padding values take no part
    padded = run_reference(model, garbage, batch_first=True, lengths=lengths)
    for b, n in enumerate(lengths):
        single = run_reference(model, xq[b, :n])  # unbatched, time-major
        assert np.array_equal(padded.head[b], single.head)
        assert np.array_equal(padded.attention.alpha[:n, b], single.attention.alpha[:, 0])
        assert np.array_equal(padded.attention.context[b], single.attention.context[0])


def test_one_step_sequence_has_alpha_one_and_context_its_output():
    net = classifier(3, 5, 4, 2, 1, False, 0)
    x, _ = batch(3, seed=6, B=3, T=4)
    model, _ = quantize_from_torch(net, x)
    lengths = np.array([1, 1, 1])
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    f = model.attention.formats
    assert result.attention.alpha[0].tolist() == [1 << f.alpha.frac] * 3
    # alpha = 1: the context is the step's output, rescaled to the context format.
    h = result.output[:, 0]  # (B, F): batch_first output, step 0; hidden format
    expected = rescale(h << f.alpha.frac, f.alpha.frac + f.x.frac, f.context)
    assert np.array_equal(result.attention.context, expected)


# -- the integer softmax: its definition, checked against a naive model ----------------------
def _naive_softmax(scores, score_fmt, exp_fmt, alpha_fmt, rounding):
    """docs/attention.md's softmax for one sequence, in Python integers."""
    table = exp_table(FixedFormat(score_fmt.width + 1, score_fmt.frac), exp_fmt, rounding)
    peak = max(scores)
    p = [int(table.evaluate(np.array([e - peak]))[0]) for e in scores]
    total = sum(p)
    k = total.bit_length() - 1 + alpha_fmt.width + RECIP_GUARD_BITS
    half = rounding is Rounding.HALF_UP
    r = ((1 << k) + (total // 2 if half else 0)) // total
    shift = k - alpha_fmt.frac
    alpha = [(pi * r + ((1 << (shift - 1)) if half else 0)) >> shift for pi in p]
    return p, alpha


def _formats(width, score_frac):
    unit = FixedFormat(width, width - 1, signed=False)
    h = FixedFormat(width, width - 1)
    return AttentionFormats(
        x=h, w=h, bias=h, preact=h, tanh=h, v=h, score=FixedFormat(width, score_frac),
        exp=unit, alpha=unit, context=h,
    )  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(6, 20),
    score_int_bits=st.integers(-2, 6),
    rounding=st.sampled_from(list(Rounding)),
    data=st.data(),
)
def test_softmax_is_its_definition(width, score_int_bits, rounding, data):
    formats = _formats(width, width - 1 - score_int_bits)
    dp = formats.datapath(1, 1, rounding=rounding)
    # Up to the longest sequence these formats compute exactly (narrow ones: 32 steps);
    # longer ones are refused (test_softmax_refuses_sequences_longer_than_exact).
    steps = data.draw(st.integers(1, min(40, dp.max_steps)))
    fmt = formats.score
    B = 3
    scores = np.array(
        data.draw(
            st.lists(
                st.lists(st.integers(fmt.min_int, fmt.max_int), min_size=B, max_size=B),
                min_size=steps,
                max_size=steps,
            )
        )
    )
    lengths = np.array(data.draw(st.lists(st.integers(1, steps), min_size=B, max_size=B)))
    valid = np.arange(steps)[:, None] < lengths[None, :]
    got = dp.softmax(scores, valid)
    one = 1 << formats.exp.frac
    for b, n in enumerate(lengths):
        p, alpha = _naive_softmax(scores[:n, b].tolist(), fmt, formats.exp, formats.alpha, rounding)
        assert got.p[:n, b].tolist() == p
        assert got.alpha[:n, b].tolist() == alpha
        assert not got.p[n:, b].any() and not got.alpha[n:, b].any()
        assert one in p  # the largest score weighs exactly 1
        assert abs(sum(alpha) - (1 << formats.alpha.frac)) <= n
    assert got.saturations == 0


@pytest.mark.parametrize("width", [6, 8, 12])
def test_softmax_refuses_sequences_longer_than_exact(width):
    dp = _formats(width, width - 1).datapath(1, 1, rounding=Rounding.FLOOR)
    n = dp.max_steps
    scores = np.zeros((n + 1, 2), dtype=np.int64)
    valid = np.ones((n + 1, 2), dtype=bool)
    assert dp.softmax(scores[:n], valid[:n]).saturations == 0  # the longest exact one runs
    with pytest.raises(ValueError, match=f"a sequence of {n + 1} steps is longer .* \\({n}\\)"):
        dp.softmax(scores, valid)


@pytest.mark.parametrize("width", [8, 12, 16, 20])
def test_exp_table_within_its_interpolation_bound_over_every_input(width):
    """|table - exp| <= h^2/8 (linear interpolation, exp'' <= 1 on [-E, 0]) + 1 LSB (the
    entries' and the interpolation's rounding), h the segment length."""
    score = FixedFormat(width, width - 5)
    fmt = FixedFormat(width, width - 1, signed=False)
    table = exp_table(FixedFormat(width + 1, score.frac), fmt)
    d = np.arange(-(1 << width), 1, dtype=np.int64)
    got = dequantize(table.evaluate(d), fmt)
    exact = np.exp(np.ldexp(d.astype(np.float64), -score.frac))
    h = 2.0 ** (table.segment_shift - score.frac)
    assert h == max(1 / EXP_SEGMENTS_PER_UNIT, score.lsb)
    assert np.abs(got - exact).max() <= h * h / 8 + fmt.lsb
    assert table.evaluate(np.array([0]))[0] == 1 << fmt.frac
    assert np.exp(-exp_domain(fmt)) < fmt.lsb / 2  # the clamp below the domain loses nothing


def test_exp_and_alpha_must_hold_one():
    h = Q("Q0.15")
    with pytest.raises(ValueError, match=r"attention.alpha is UQ0.16, which cannot hold 1.0"):
        AttentionFormats(h, h, h, h, h, h, h, Q("UQ1.15"), Q("UQ0.16"), h)


# -- IR, formats, report ---------------------------------------------------------------------
def test_ir_round_trip_and_file_layout(tmp_path):
    net = classifier(4, 8, 6, 3, 2, True, 0)
    x, lengths = batch(4, seed=7)
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    json_path, _ = model.save(tmp_path / "ir")
    loaded = LstmModel.load(json_path)
    assert loaded == model
    meta = json.loads(json_path.read_text())
    assert meta["attention"]["attention_size"] == 6
    assert meta["attention"]["formats"]["exp"] == "UQ1.15"
    xq = quantize_input(model, x)
    a = run_reference(model, xq, batch_first=True, lengths=lengths)
    b = run_reference(loaded, xq, batch_first=True, lengths=lengths)
    assert np.array_equal(a.head, b.head)
    plain, _ = quantize_from_torch(net.lstm, x.transpose(1, 0, 2))
    assert "attention" not in plain.to_json_dict()  # other models' files are unchanged
    fm = from_module(net)
    again = FloatLstm.load(fm.save(tmp_path / "float.npz"))
    for name in ("w", "bias", "v"):
        assert np.array_equal(getattr(again.attention, name), getattr(fm.attention, name))


@pytest.mark.parametrize("rounding", [Rounding.HALF_UP, Rounding.FLOOR])
@pytest.mark.parametrize("overflow", [Overflow.SATURATE, Overflow.WRAP])
def test_score_head_is_the_reference_score_matrix(rounding, overflow):
    """``AttentionPooling.score_head()`` (what the lanes' score job computes: a Linear head
    with output format ``attention.preact``) has the score accumulator and gives the
    reference's ``u_t`` and preact clamps exactly, narrow preact formats included."""
    net = classifier(3, 5, 4, 2, 1, False, 0, peaky=12.0)
    x, lengths = batch(3, seed=9)
    model, _ = quantize_from_torch(
        net,
        x,
        lengths=lengths,
        overrides={"attention.preact": "Q-2.9"},
        width=12,
        rounding=rounding,
        overflow=overflow,
    )
    ad = model.attention_datapath()
    score = model.attention.score_head()
    hd = score.datapath(model.rounding, model.overflow)
    assert hd.acc == ad.score_acc
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    h = result.output  # (B, T, F)
    valid = np.arange(h.shape[1])[None, :] < lengths[:, None]
    counts = {"head": 0}
    u = head_forward(hd, score.weight, score.bias, h[valid], counts)
    acc = ad.score_acc.accumulate([h[valid] @ model.attention.w.T], model.attention.bias)
    expected = rescale(acc, ad.score_acc.frac, ad.formats.preact, rounding, overflow)
    np.testing.assert_array_equal(u, expected)
    assert counts["head"] == result.attention.saturations["preact"] > 0


def test_report_covers_attention_and_counts_its_saturations():
    net = classifier(3, 5, 4, 2, 1, False, 0, peaky=12.0)
    x, lengths = batch(3, seed=8)
    model, report = quantize_from_torch(net, x, lengths=lengths)
    names = [t.name for t in report.tensors]
    expected = ["w", "bias", "preact", "tanh", "v", "score", "exp", "alpha", "context"]
    assert names[-12:-3] == [f"attention.{n}" for n in expected]
    assert report.tensor("attention.alpha").count == lengths.sum()
    assert report.tensor("attention.context").count == len(lengths) * 5  # B x F
    # A score format too narrow for the scores: every clamp is counted, in the report and in
    # the reference's counters.
    score = model.attention.formats.score
    narrow = FixedFormat(score.width, score.frac + 3)
    model, report = quantize_from_torch(
        net, x, lengths=lengths, overrides={"attention.score": narrow}
    )
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    clamped = report.tensor("attention.score").saturations
    assert clamped > 0
    assert result.attention.saturations["score"] == clamped
    # (the hardware's sat_attention counts them all: score, preact, alpha, context)
    assert result.saturations.attention == sum(result.attention.saturations.values()) == clamped
    assert result.total_saturations == result.saturations.total == clamped


def test_formats_from_an_input_range_without_data():
    net = classifier(4, 8, 6, 3, 2, True, 2)
    fm = from_module(net)
    calibration = calibrate_from_range(fm, (-1, 1))
    model = quantize_model(fm, calibration)
    f = model.attention.formats
    assert f.x == model.output_format and f.exp == Q("UQ1.15") and f.alpha == Q("UQ1.15")
    assert f.context.max_value >= 1.0 or f.context == model.output_format
    x, _ = batch(4, seed=9)
    run_reference(model, quantize_input(model, np.clip(x, -1, 1)), batch_first=True)


def test_head_on_all_is_refused_with_attention():
    net = classifier(3, 5, 4, 2, 1, False, 0)
    x, _ = batch(3, seed=10)
    model, _ = quantize_from_torch(net, x)
    message = "with attention pooling the head runs once per sequence"
    with pytest.raises(ValueError, match=message):
        run_reference(model, quantize_input(model, x), batch_first=True, head_on="all")
    with pytest.raises(ValueError, match=message):
        from_module(net).forward(x, batch_first=True, head_on="all")


# -- refusals --------------------------------------------------------------------------------
def _state(net):
    return dict(net.state_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update({"attention.v.bias": torch.zeros(1)}),
         f"unexpected key 'attention.v.bias': {ATTENTION_LAYOUT}"),
        (lambda s: s.pop("attention.W.bias"),
         f"missing key 'attention.W.bias': {ATTENTION_LAYOUT}"),
        (lambda s: s.pop("fc.weight"), f"missing key 'fc.weight': {ATTENTION_LAYOUT}"),
        (lambda s: s.update({"norm.weight": torch.ones(5)}),
         f"unexpected key 'norm.weight': {ATTENTION_LAYOUT}"),
        (lambda s: s.update({"attention.W.weight": torch.zeros(4, 6)}),
         "key 'attention.W.weight' has shape (4, 6), expected (A, 5): W takes the LSTM's 5 "
         f"output features; {ATTENTION_LAYOUT}"),
        (lambda s: s.update({"attention.v.weight": torch.zeros(2, 4)}),
         "key 'attention.v.weight' has shape (2, 4), expected (1, 4)"),
    ],
)  # fmt: skip
def test_state_dict_layouts_other_than_the_documented_one_are_refused(change, message):
    state = _state(classifier(3, 5, 4, 2, 1, False, 0))
    change(state)
    with pytest.raises(ModelImportError) as error:
        from_state_dict(state)
    assert str(error.value) == message


def test_recurrent_keys_under_another_prefix_are_refused():
    state = {
        k.replace("lstm.", "encoder."): v
        for k, v in _state(classifier(3, 5, 4, 2, 1, False, 0)).items()
    }
    with pytest.raises(ModelImportError, match=r"unexpected key 'encoder\.weight_ih_l0'"):
        from_state_dict(state)


class _Custom(nn.Module):
    def __init__(self, attention, extra=None):
        super().__init__()
        self.lstm = nn.LSTM(3, 5)
        self.attention = attention
        self.fc = nn.Linear(5, 2)
        if extra is not None:
            self.extra = extra


class _TwoLayerScore(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Linear(5, 4)
        self.v = nn.Linear(4, 1)  # with a bias


def test_module_layouts_other_than_the_documented_one_are_refused():
    with pytest.raises(ModelImportError, match=r"holds W: nn.Linear, v: nn.Linear; expected W"):
        from_module(_Custom(_TwoLayerScore()))
    with pytest.raises(ModelImportError, match=r"submodule 'extra' is an nn.LayerNorm"):
        from_module(_Custom(AttentionPooling(5, 4), nn.LayerNorm(5)))
    bad = _Custom(AttentionPooling(5, 4))
    bad.lstm = nn.RNN(3, 5)
    with pytest.raises(ModelImportError, match=r"submodule 'lstm' is an nn.RNN"):
        from_module(bad)
    assert from_module(_Custom(AttentionPooling(5, 4), nn.Dropout(0.1))).attention is not None


@pytest.mark.parametrize(
    ("config", "what"),
    [
        (dict(), "--output all"),
        (dict(output="last"), "no --max-seq-len"),
        (dict(output="last", max_seq_len=8, weights="external"), "--weights external"),
        (dict(output="last", max_seq_len=8, interleave=2), "--interleave 2"),
        (dict(output="last", max_seq_len=10**9), "--max-seq-len 1000000000 (above"),
    ],
)
def test_hardware_refuses_what_it_does_not_run_with_attention(config, what):
    net = classifier(3, 5, 4, 2, 1, False, 0)
    x, _ = batch(3, seed=11)
    model, _ = quantize_from_torch(net, x)
    with pytest.raises(AttentionNotSupportedError, match=re.escape(what)):
        check_supported(model, HardwareConfig(lanes=4, **config))
    check_supported(model, HardwareConfig(lanes=4, output="last", max_seq_len=8))


def test_fine_tuning_refuses_attention():
    net = classifier(3, 5, 4, 2, 1, False, 0)
    with pytest.raises(QatError, match="not attention pooling"):
        modules_from_float(from_module(net))


def test_formats_of_another_model_are_refused():
    net = classifier(3, 5, 4, 2, 1, False, 0)
    plain = from_state_dict({k: v for k, v in net.state_dict().items() if "attention" not in k})
    calibration = calibrate_from_range(plain, (-1, 1))
    with pytest.raises(CalibrationError, match="without attention pooling but the model has it"):
        quantize_model(from_module(net), calibration)
