"""Calibration, quantisation and the report: formats, overrides, saturations, error bounds."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from lstm_fpga.sw import samples as samples_module
from lstm_fpga.sw.calibrate import (
    Calibration,
    CalibrationError,
    ModelFormats,
    QuantizationReport,
    calibrate,
    choose_formats,
    parse_format_overrides,
    quantization_report,
    quantize_from_torch,
    quantize_model,
    tensor_names,
)
from lstm_fpga.sw.float_model import TensorRecorder
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.numerics import (
    Activation,
    FixedFormat,
    LstmDatapath,
    LstmFormats,
    Rounding,
    dequantize,
)
from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.sw.shape import lstm_shape
from lstm_fpga.sw.torch_import import from_module

Q = FixedFormat.parse
I, H = 5, 11
#: float32 PyTorch vs exact arithmetic on these sizes: test_torch_import checks 1e-5.
FLOAT32_SLACK = 1e-5

# I=5, H=11 throughout; (num_layers, bidirectional, bias, head outputs, width, seed)
CONFIGS = [
    (1, False, True, 0, 16, 0),
    (1, True, False, 2, 16, 1),
    (2, False, False, 1, 16, 2),
    (2, True, True, 3, 16, 3),
    (3, True, True, 0, 16, 4),
    (3, False, True, 2, 12, 5),
    (1, True, True, 1, 10, 6),
]
CONFIG_IDS = [
    f"L{c[0]}-{'bi' if c[1] else 'uni'}-{'b' if c[2] else 'nob'}-o{c[3]}-w{c[4]}" for c in CONFIGS
]


def make_torch(num_layers, bidirectional, bias, out, seed):
    torch.manual_seed(seed)
    lstm = nn.LSTM(I, H, num_layers, bias=bias, bidirectional=bidirectional).double()
    head = nn.Linear(H * (2 if bidirectional else 1), out).double() if out else None
    return lstm, head


def samples(seed, T=6, B=4, scale=1.5):
    return np.random.default_rng(100 + seed).normal(size=(T, B, I)) * scale


def torch_forward(lstm, head, x):
    """Float32 PyTorch, as users run it."""
    lstm32 = nn.LSTM(**lstm_shape(lstm))
    lstm32.load_state_dict({k: v.float() for k, v in lstm.state_dict().items()})
    with torch.no_grad():
        out, _ = lstm32(torch.as_tensor(x, dtype=torch.float32))
        y = None
        if head is not None:
            head32 = nn.Linear(head.in_features, head.out_features)
            head32.load_state_dict({k: v.float() for k, v in head.state_dict().items()})
            y = head32(out[-1]).double().numpy()
    return out.double().numpy(), y


def rescale_error(from_frac: int, fmt: FixedFormat, rounding: Rounding) -> float:
    """Largest error of one rescale from ``from_frac`` fraction bits to ``fmt`` (no clamp)."""
    if from_frac <= fmt.frac:
        return 0.0
    return fmt.lsb / 2 if rounding is Rounding.HALF_UP else fmt.lsb


def monotone_spread(function, centre, delta, low=None, high=None):
    """max |f(centre) - f(v)| over v in [centre - delta, centre + delta] for monotone f;
    ``low``/``high`` masks open the interval to -inf/+inf (a saturated value)."""
    lo = centre - delta
    hi = centre + delta
    if low is not None:
        lo = np.where(low, -np.inf, lo)
    if high is not None:
        hi = np.where(high, np.inf, hi)
    f_c = function(centre)
    with np.errstate(over="ignore"):
        return np.maximum(np.abs(f_c - function(lo)), np.abs(function(hi) - f_c))


def a_posteriori_bound(fm, model, x, recorder, calibration):
    """Element-wise bound on |reference - exact float| for every output, derived from the
    formats and the reference's own (known) integer values.

    Hats are the reference's dequantised values, d_* bounds on |hat - exact|. Weight errors
    dW = W_hat - W and the input error are known exactly. Per direction and step
    (|.| element-wise, @ a matrix product, exact identities such as
    W_hat x_hat - W x = dW x_hat + W (x_hat - x)):

      d_p  = r_pre + |dW_ih| @ |x_hat| + |W_ih| @ d_x + |dW_hh| @ |h_hat| + |W_hh| @ d_h + |db|
             r_pre: rounding of the accumulator -> preact rescale (lsb/2 half-up);
             saturation only moves p_hat towards the exact value while the exact p lies in the
             format; where calibration saw p beyond it (the +-8 cap) and p_hat sits at that
             bound, the exact p may lie anywhere beyond (interval opened to +-inf).
      d_a  = |table(p_hat) - a(p_hat)| + max |a(p_hat) - a(v)| over v in [p_hat +- d_p]
             (a = sigmoid or tanh is monotone, so the max sits at an interval end)
      d_c  = r_cell + |c_hat_prev| d_f + min(1, |f_hat| + d_f) d_c_prev
                    + |g_hat| d_i + min(1, |i_hat| + d_i) d_g          (f c + i g, |f|,|i| < 1)
      d_t  = |table(c_hat) - tanh(c_hat)| + max |tanh(c_hat) - tanh(v)| over [c_hat +- d_c]
      d_h  = r_hidden + |t_hat| d_o + min(1, |o_hat| + d_o) d_t  (+ lsb_h where h_hat sits at
             the format's top: |h| < 1 may exceed max_value = 1 - lsb_h by less than lsb_h)
    Cell and head values of the exact model lie inside their formats (calibrated on these
    samples, asserted by the caller), so their saturation can only reduce the error. Layer
    k > 0 takes [d_h_forward ; d_h_reverse] as d_x. Head: d_y = r_head + |dW| @ |x_hat| +
    |W| @ d_x + |db|.
    """
    sigmoid, tanh = Activation.SIGMOID, Activation.TANH
    T, B, _ = x.shape
    x_hat = dequantize(quantize_input(model, x), model.input_format)
    d_x = np.abs(x_hat - x)
    for layer in range(model.num_layers):
        outs, bounds = [], []
        for reverse in (False, True)[: model.num_directions]:
            q, f_dir, dp = (
                model.direction(layer, reverse),
                fm.direction(layer, reverse),
                model.datapath(layer, reverse),
            )
            f = q.formats
            W_ih, W_hh, b = f_dir.w_ih, f_dir.w_hh, f_dir.bias
            dW_ih = np.abs(dequantize(q.w_ih, f.w_ih) - W_ih)
            dW_hh = np.abs(dequantize(q.w_hh, f.w_hh) - W_hh)
            db = np.abs(dequantize(q.bias, f.bias) - b)
            r_pre = rescale_error(dp.gate_acc.frac, f.preact, model.rounding)
            r_cell = rescale_error(dp.cell_acc.frac, f.cell, model.rounding)
            r_hid = rescale_error(dp.hidden_product_frac, f.hidden, model.rounding)
            n = q.name
            pre = recorder.get(f"{n}.preact").reshape(T, B, 4 * H)
            gates = recorder.get(f"{n}.gate").reshape(T, B, 5 * H)
            cells = recorder.get(f"{n}.cell").reshape(T, B, H)
            hiddens = recorder.get(f"{n}.hidden").reshape(T, B, H)
            order = range(T - 1, -1, -1) if reverse else range(T)
            h_prev = c_prev = d_h = d_c = np.zeros((B, H))
            out = np.zeros((T, B, H))
            bound = np.zeros((T, B, H))
            for step, t in enumerate(order):
                p, g_all, c, h = pre[step], gates[step], cells[step], hiddens[step]
                d_p = (
                    r_pre
                    + np.abs(x_hat[t]) @ dW_ih.T
                    + d_x[t] @ np.abs(W_ih).T
                    + np.abs(h_prev) @ dW_hh.T
                    + d_h @ np.abs(W_hh).T
                    + db
                )
                # Exact p beyond the format only if calibration saw it there (|p| > 8 cap).
                seen = calibration.range(f"{n}.preact")
                at_max = (p >= f.preact.max_value) & (seen.max > f.preact.max_value)
                at_min = (p <= f.preact.min_value) & (seen.min < f.preact.min_value)
                d_act = []
                for k, function in enumerate((sigmoid, sigmoid, tanh, sigmoid)):
                    cols = slice(k * H, (k + 1) * H)
                    table_error = np.abs(g_all[:, cols] - function(p[:, cols]))
                    spread = monotone_spread(
                        function, p[:, cols], d_p[:, cols], at_min[:, cols], at_max[:, cols]
                    )
                    d_act.append(table_error + spread)
                d_i, d_f, d_g, d_o = d_act
                i_hat, f_hat, g_hat, o_hat, t_hat = np.split(g_all, 5, axis=1)
                d_c = (
                    r_cell
                    + np.abs(c_prev) * d_f
                    + np.minimum(1, np.abs(f_hat) + d_f) * d_c
                    + np.abs(g_hat) * d_i
                    + np.minimum(1, np.abs(i_hat) + d_i) * d_g
                )
                d_t = np.abs(t_hat - tanh(c)) + monotone_spread(tanh, c, d_c)
                d_h = (
                    r_hid
                    + np.abs(t_hat) * d_o
                    + np.minimum(1, np.abs(o_hat) + d_o) * d_t
                    + np.where(h >= f.hidden.max_value, f.hidden.lsb, 0.0)
                )
                out[t], bound[t] = h, d_h
                h_prev, c_prev = h, c
            outs.append(out)
            bounds.append(bound)
        x_hat, d_x = np.concatenate(outs, axis=2), np.concatenate(bounds, axis=2)
    head_bound = None
    if model.head is not None:
        hf, hd = model.head.formats, model.head_datapath()
        W, b = fm.head.weight, fm.head.bias
        dW = np.abs(dequantize(model.head.weight, hf.weight) - W)
        db = np.abs(dequantize(model.head.bias, hf.bias) - b)
        head_bound = (
            rescale_error(hd.acc.frac, hf.output, model.rounding)
            + np.abs(x_hat[-1]) @ dW.T
            + d_x[-1] @ np.abs(W).T
            + db
        )
    return d_x, head_bound


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "bias", "out", "width", "seed"), CONFIGS, ids=CONFIG_IDS
)
def test_quantized_reference_within_derived_bound(
    num_layers, bidirectional, bias, out, width, seed
):
    lstm, head = make_torch(num_layers, bidirectional, bias, out, seed)
    fm = from_module(lstm, head=head) if head is not None else from_module(lstm)
    x = samples(seed)
    calibration = calibrate(fm, x, width=width)
    model = quantize_model(fm, calibration)
    assert isinstance(model, LstmModel)
    for name in [n for n in calibration.formats.names if n.endswith((".cell", "head.output"))]:
        r, fmt = calibration.range(name), calibration.formats[name]
        assert fmt.min_value <= r.min and r.max <= fmt.max_value  # premise of the bound
    recorder = TensorRecorder()
    result = run_reference(model, quantize_input(model, x), recorder=recorder)
    out_bound, head_bound = a_posteriori_bound(fm, model, x, recorder, calibration)
    t_out, t_head = torch_forward(lstm, head, x)
    error = np.abs(dequantize(result.output, model.output_format) - t_out)
    assert np.all(error <= out_bound + FLOAT32_SLACK), (error - out_bound).max()
    if head is not None:
        y = dequantize(result.head, model.head.formats.output)
        assert np.all(np.abs(y - t_head) <= head_bound + FLOAT32_SLACK)
    # The bound has teeth: a gate-order bug (i and f rows swapped in layer 0) breaks it.
    broken = swap_gate_rows(model, 0, 1)
    broken_out = run_reference(broken, quantize_input(broken, x)).output
    broken_error = np.abs(dequantize(broken_out, model.output_format) - t_out)
    assert np.any(broken_error > out_bound + FLOAT32_SLACK)


def swap_gate_rows(model, a, b):
    """``model`` with gate blocks ``a`` and ``b`` exchanged in every layer-0 direction."""
    rows = np.arange(4 * H)
    rows[a * H : (a + 1) * H], rows[b * H : (b + 1) * H] = (
        np.arange(b * H, (b + 1) * H),
        np.arange(a * H, (a + 1) * H),
    )
    directions = tuple(
        dataclasses.replace(d, w_ih=d.w_ih[rows], w_hh=d.w_hh[rows], bias=d.bias[rows])
        if d.layer == 0
        else d
        for d in model.directions
    )
    return dataclasses.replace(model, directions=directions)


# -- format choice ---------------------------------------------------------------------------
def calibrated(num_layers=2, bidirectional=True, bias=True, out=2, seed=0, width=16, **kwargs):
    lstm, head = make_torch(num_layers, bidirectional, bias, out, seed)
    fm = from_module(lstm, head=head) if head is not None else from_module(lstm)
    x = samples(seed)
    return fm, x, calibrate(fm, x, width=width, **kwargs)


def holds(fmt, r):
    return fmt.min_value <= r.min and r.max <= fmt.max_value


def most_fraction_bits(r, width):
    """Independent search over every fraction count for the finest format holding ``r``."""
    fitting = [f for f in range(-64, 65) if holds(FixedFormat(width, f), r)]
    return max(fitting)


def test_tensor_names():
    assert tensor_names(1, False, False) == (
        "x",
        "l0.w_ih",
        "l0.w_hh",
        "l0.bias",
        "l0.preact",
        "l0.gate",
        "l0.cell",
        "l0.hidden",
    )
    names = tensor_names(2, True, True)
    directions = ["l0", "l0_reverse", "l1", "l1_reverse"]
    kinds = ["w_ih", "w_hh", "bias", "preact", "gate", "cell", "hidden"]
    expected = ["x", *[f"{d}.{k}" for d in directions for k in kinds]]
    assert names == (*expected, "head.weight", "head.bias", "head.output")


@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "bias", "out", "width", "seed"), CONFIGS, ids=CONFIG_IDS
)
def test_chosen_formats_follow_the_rules(num_layers, bidirectional, bias, out, width, seed):
    fm, x, calibration = calibrated(num_layers, bidirectional, bias, out, seed, width)
    formats = calibration.formats
    assert calibration.width == width
    assert [r.name for r in calibration.ranges] == list(formats.names)
    for name, fmt in formats.items():
        r = calibration.range(name)
        kind = name.split(".")[-1]
        assert fmt.width == width and fmt.signed, name
        if kind in ("gate", "hidden"):
            assert fmt == FixedFormat(width, width - 1), name
        elif kind == "preact":
            assert fmt.frac == max(most_fraction_bits(r, width), width - 4), name
        elif kind == "bias":
            owner = name.split(".")[0]
            if owner == "head":
                f = formats.head
                acc_frac = f.weight.frac + f.x.frac
            else:
                f = formats.directions[[d.name for d in fm.directions].index(owner)]
                acc_frac = max(f.w_ih.frac + f.x.frac, f.w_hh.frac + f.hidden.frac)
            best = most_fraction_bits(r, width) if r.abs_max else width - 1
            assert fmt.frac == min(best, acc_frac), name
        elif r.abs_max == 0:
            assert fmt.frac == width - 1, name
        else:
            assert fmt.frac == most_fraction_bits(r, width), name
    model = quantize_model(fm, calibration)  # the IR validates the chaining rules itself
    for layer in range(1, num_layers):
        for reverse in (False, True)[: model.num_directions]:
            assert model.direction(layer, reverse).formats.x == model.layer_hidden_format(layer - 1)
    report = quantization_report(fm, model, x)
    for t in report.tensors:
        if not t.name.endswith((".preact", ".gate", ".hidden")):
            assert t.saturations == 0, t.name  # calibrated on these very samples


def test_bias_free_and_zero_tensors():
    lstm, _ = make_torch(1, False, False, 0, 3)
    with torch.no_grad():
        lstm.weight_hh_l0.zero_()
    fm = from_module(lstm)
    calibration = calibrate(fm, samples(3))
    assert calibration.formats["l0.w_hh"] == Q("Q0.15")
    assert calibration.formats["l0.bias"] == Q("Q0.15")
    report = quantization_report(fm, quantize_model(fm, calibration), samples(3))
    for name in ("l0.w_hh", "l0.bias"):
        t = report.tensor(name)
        assert (t.min, t.max, t.sqnr_db, t.max_abs_error) == (0.0, 0.0, math.inf, 0.0)


def test_weight_sqnr_meets_the_rounding_bound():
    """Round to nearest: every weight error is at most lsb/2, so the noise power is at most
    N (lsb/2)^2 and SQNR >= 10 log10(sum w^2 / (N lsb^2 / 4))."""
    fm, x, calibration = calibrated(2, True, True, 3, 1)
    report = quantization_report(fm, quantize_model(fm, calibration), x)
    weights = {d.name: d for d in fm.directions}
    for t in report.tensors:
        owner, _, kind = t.name.partition(".")
        if kind not in ("w_ih", "w_hh", "bias", "weight"):
            continue
        values = getattr(fm.head if owner == "head" else weights[owner], kind)
        lsb = t.format.lsb
        assert t.max_abs_error <= lsb / 2
        floor = 10 * math.log10(np.sum(values**2) / (values.size * lsb**2 / 4))
        assert t.sqnr_db >= floor, t.name
        assert t.count == values.size


def test_headroom_bits():
    _, _, plain = calibrated()
    _, _, roomy = calibrated(headroom_bits=2)
    for name, fmt in plain.formats.items():
        kind = name.split(".")[-1]
        if kind in ("x", "cell", "output"):
            assert roomy.formats[name].frac == fmt.frac - 2, name
        elif kind == "preact":
            assert roomy.formats[name].frac == max(fmt.frac - 2, 12), name
        elif kind != "bias":
            assert roomy.formats[name] == fmt, name


# -- overrides -------------------------------------------------------------------------------
def test_overrides_apply_and_chain():
    overrides = {
        "x": "Q4.11",
        "l0_reverse.hidden": Q("Q1.14"),
        "l1.cell": "Q5.10",
        "l1.w_ih": "Q1.10",  # a narrower tensor in a 16-bit model is fine
        "head.weight": "Q1.14",
        "head.output": "Q6.9",
    }
    fm, _, calibration = calibrated(overrides=overrides)
    f = calibration.formats
    assert f["x"] == Q("Q4.11") and f.directions[0].x == f.directions[1].x == Q("Q4.11")
    assert f["l0.hidden"] == f["l0_reverse.hidden"] == Q("Q1.14")  # shared by both directions
    assert f.directions[2].x == f.directions[3].x == Q("Q1.14")  # layer 1 input follows
    assert f["l1.cell"] == Q("Q5.10") and f["l1_reverse.cell"] != Q("Q5.10")
    assert f["l1.w_ih"] == Q("Q1.10")
    assert f["head.weight"] == Q("Q1.14") and f["head.output"] == Q("Q6.9")
    assert f.head.x == f["l1.hidden"]
    model = quantize_model(fm, calibration)
    assert model.input_format == Q("Q4.11")
    # Re-choosing from the recorded ranges needs no new forward pass and gives the same.
    again = choose_formats(fm, calibration.ranges, overrides=overrides)
    assert again == calibration.formats


def test_parse_format_overrides():
    assert parse_format_overrides(["l0.cell=Q4.11", " x = Q3.12 ", "head.bias=UQ2.6"]) == {
        "l0.cell": Q("Q4.11"),
        "x": Q("Q3.12"),
        "head.bias": FixedFormat(8, 6, signed=False),
    }
    for item, message in (
        ("l0.cell", "format override 'l0.cell' must look like TENSOR=Qm.n, e.g. l0.cell=Q4.11"),
        ("=Q4.11", "format override '=Q4.11' must look like TENSOR=Qm.n, e.g. l0.cell=Q4.11"),
        (
            "l0.cell=Q4",
            "format override l0.cell=Q4: cannot parse fixed-point format 'Q4': write Qm.n "
            "(signed, 1+m+n bits) or UQm.n (unsigned, m+n bits), e.g. Q3.12",
        ),
    ):
        with pytest.raises(CalibrationError) as info:
            parse_format_overrides([item])
        assert str(info.value) == message
    with pytest.raises(CalibrationError) as info:
        parse_format_overrides(["x=Q3.12", "x=Q2.13"])
    assert str(info.value) == "format override for 'x' is given twice"


def override_error(overrides, **kwargs):
    with pytest.raises(CalibrationError) as info:
        calibrated(overrides=overrides, **kwargs)
    return str(info.value)


def test_override_errors():
    names = ", ".join(tensor_names(2, True, True))
    assert override_error({"l0.cel": "Q4.11"}) == (
        f"unknown tensor 'l0.cel' in format overrides; valid names: {names}"
    )
    assert override_error({"input": "Q4.11"}) == (
        f"unknown tensor 'input' in format overrides; valid names: {names}"
    )
    assert override_error({"l2.cell": "Q4.11"}) == (
        f"unknown tensor 'l2.cell' in format overrides; valid names: {names}"
    )
    assert override_error({"head.weight": "Q1.14"}, out=0) == (
        f"unknown tensor 'head.weight' in format overrides; valid names: "
        f"{', '.join(tensor_names(2, True, False))}"
    )
    assert override_error({"l1.x": "Q1.14"}) == (
        "'l1.x' cannot be overridden: a layer's input format is 'x' for layer 0 and the "
        "previous layer's hidden format ('l<k-1>.hidden') otherwise"
    )
    assert override_error({"l0.cell": "Q4,11"}) == (
        "format override l0.cell=Q4,11: cannot parse fixed-point format 'Q4,11': write Qm.n "
        "(signed, 1+m+n bits) or UQm.n (unsigned, m+n bits), e.g. Q3.12"
    )
    assert override_error({"l0.cell": "Q70.11"}) == (
        "format override l0.cell=Q70.11: format width must be between 2 and 62 bits, not 82"
    )
    assert override_error({"l0.cell": 3.5}) == (
        "format override l0.cell must be a FixedFormat or a string like 'Q3.12', not float"
    )
    assert override_error({"l1.hidden": "Q0.15", "l1_reverse.hidden": "Q1.14"}) == (
        "l1.hidden=Q0.15 and l1_reverse.hidden=Q1.14 conflict: both directions of layer 1 "
        "share one hidden format"
    )
    # l0's accumulator has max(w_ih.frac + x.frac, w_hh.frac + hidden.frac) = max(15 + 12,
    # 15 + 15) = 30 fraction bits: a 30-bit bias fraction fits, 31 does not.
    fixed = {"x": "Q3.12", "l0.w_ih": "Q0.15", "l0.w_hh": "Q0.15"}
    calibrated(overrides=fixed | {"l0.bias": "Q-15.30"})
    assert override_error(fixed | {"l0.bias": "Q-16.31"}) == (
        "format override l0.bias=Q-16.31: bias format Q-16.31 has 31 fraction bits but the "
        "products it is added to have only 30; use a bias format with at most 30 fraction bits"
    )
    assert override_error({"head.weight": "Q0.15", "head.bias": "Q-16.31"}) == (
        "format override head.bias=Q-16.31: bias format Q-16.31 has 31 fraction bits but the "
        "products it is added to have only 30; use a bias format with at most 30 fraction bits"
    )


def test_calibration_argument_errors():
    fm, x, _ = calibrated()
    for kwargs, message in (
        ({"width": 3}, "width must be an int from 4 to 30, not 3"),
        ({"width": 31}, "width must be an int from 4 to 30, not 31"),
        ({"width": 16.0}, "width must be an int from 4 to 30, not 16.0"),
        ({"headroom_bits": -1}, "headroom_bits must be an int >= 0, not -1"),
    ):
        with pytest.raises(CalibrationError) as info:
            calibrate(fm, x, **kwargs)
        assert str(info.value) == message
    bad = x.copy()
    bad[2, 1, 3] = np.nan
    for args, kwargs, message in (
        ((bad,), {}, "calibration samples contain NaN or infinite values"),
        (
            (x[..., :4],),
            {},
            "calibration samples: input has 4 features per time step but the model expects 5",
        ),
        (
            ([x[:, 0], x[:3, 1]],),
            {"lengths": [6, 3]},
            "give lengths only with a padded array, not with a list",
        ),
        (
            ([x[:, 0], x[:3, 1, :4]],),
            {},
            "sample sequences must each be (T, 5), got shapes [(6, 5), (3, 4)]",
        ),
    ):
        with pytest.raises(CalibrationError) as info:
            calibrate(fm, *args, **kwargs)
        assert str(info.value) == message
    with pytest.raises(CalibrationError) as info:
        choose_formats(fm, [r for r in calibrate(fm, x).ranges if r.name != "l1.cell"])
    assert str(info.value) == (
        "no calibration range for l1.cell; ranges must come from calibrate() on this model"
    )


def test_accumulator_width_limit():
    """A tiny recurrent weight scale gives w_hh many fraction bits: the two products of the
    gate accumulator are then too far apart for an exact 62-bit sum."""
    lstm, _ = make_torch(1, False, True, 0, 8)
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(1e-12)
    fm = from_module(lstm)
    overrides = {"x": "Q3.12", "l0.w_ih": "Q0.15", "l0.bias": "Q0.15"}
    with pytest.raises(CalibrationError) as info:
        calibrate(fm, samples(8), overrides=overrides)
    w_hh = calibrate(fm, samples(8), overrides=overrides | {"l0.w_hh": "Q0.15"}).range("l0.w_hh")
    w_hh_format = FixedFormat(16, most_fraction_bits(w_hh, 16))
    formats = LstmFormats(
        Q("Q3.12"),
        Q("Q0.15"),
        w_hh_format,
        Q("Q0.15"),
        Q("Q0.15"),
        Q("Q0.15"),
        Q("Q0.15"),
        Q("Q0.15"),
    )
    width = LstmDatapath(formats, I, H).gate_acc.width
    assert width > 62
    assert str(info.value) == (
        f"l0: the gate accumulator (w_ih Q0.15 * x Q3.12 + w_hh {w_hh_format} * hidden Q0.15) "
        f"needs {width} bits, more than 62: its products' fraction bits differ too much; "
        f"override the finest format with fewer fraction bits"
    )


def fine_bias(formats):
    """``formats`` with a bias one fraction bit finer than its accumulator (16 bits wide)."""
    return dataclasses.replace(formats, bias=FixedFormat(16, formats.accumulator_frac + 1))


def test_model_formats_validation():
    _, _, calibration = calibrated(1, True, True, 1)
    f = calibration.formats
    l0, l0r = f.directions
    with pytest.raises(CalibrationError) as info:
        ModelFormats(1, True, (l0,), f.head)
    assert str(info.value) == (
        "ModelFormats has 1 direction formats, expected 2 for num_layers=1, bidirectional=True"
    )
    with pytest.raises(CalibrationError) as info:
        ModelFormats(1, True, (l0, dataclasses.replace(l0r, hidden=Q("Q1.14"))), None)
    assert str(info.value) == (
        "l0_reverse.hidden is Q1.14 but l0.hidden is Q0.15; both directions of a layer share "
        "the hidden format"
    )
    with pytest.raises(CalibrationError) as info:
        ModelFormats(1, True, (l0, l0r), dataclasses.replace(f.head, x=Q("Q1.14")))
    assert str(info.value) == "head.x is Q1.14 but the last layer's hidden format is Q0.15"
    with pytest.raises(CalibrationError) as info:
        ModelFormats(1, True, (l0, dataclasses.replace(l0r, x=Q("Q7.8"))), None)
    assert str(info.value) == (
        f"l0_reverse.x is Q7.8 but the model input format is {l0.x}; a layer's input format "
        f"must equal what feeds it"
    )
    # The bias rule (one home: sw.numerics.check_bias_frac) for a direction and the head.
    for directions, head, owner in (
        ((l0, fine_bias(l0r)), f.head, "l0_reverse"),
        ((l0, l0r), fine_bias(f.head), "head"),
    ):
        bad = head if owner == "head" else directions[1]
        acc = bad.accumulator_frac
        with pytest.raises(CalibrationError) as info:
            ModelFormats(1, True, directions, head)
        assert str(info.value) == (
            f"{owner}: bias format {bad.bias} has {acc + 1} fraction bits but the products it "
            f"is added to have only {acc}; use a bias format with at most {acc} fraction bits"
        )
    fm2, _, other = calibrated(2, True, True, 1)
    with pytest.raises(CalibrationError) as info:
        quantize_model(fm2, calibration)
    assert str(info.value) == (
        "the formats are for num_layers=1, bidirectional=True, head=True but the model has "
        "num_layers=2, bidirectional=True, head=True"
    )
    assert dict(other.formats.items())["head.bias"] == other.formats.head.bias


# -- report ----------------------------------------------------------------------------------
def float_saturations(values, fmt):
    """Values whose nearest integer lies outside ``fmt`` (independent of the module)."""
    ints = np.floor(np.asarray(values) * 2.0**fmt.frac + 0.5)
    return int(np.sum((ints < fmt.min_int) | (ints > fmt.max_int)))


def test_forced_narrow_formats_saturate():
    """Ragged bidirectional batch with too-narrow formats: every kind of saturation counts,
    per direction, and agrees with run_reference's totals."""
    lstm, head = make_torch(2, True, True, 2, 12)
    fm = from_module(lstm, head=head)
    rng = np.random.default_rng(12)
    seqs = [rng.normal(size=(n, I)) * 2 for n in (7, 3, 5, 1)]
    narrow = {
        "x": "Q0.15",
        "l0.w_hh": "Q-3.18",
        "l0_reverse.cell": "Q-2.17",
        "l1.preact": "Q-2.17",
        "l0.hidden": "Q-3.18",
        "head.output": "Q-8.23",
    }
    calibration = calibrate(fm, seqs, overrides=narrow)
    model = quantize_model(fm, calibration)
    report = quantization_report(fm, model, seqs)
    assert report.sequences == 4 and report.time_steps == 16
    x = np.concatenate(seqs)
    assert report.tensor("x").saturations == float_saturations(x, Q("Q0.15")) > 0
    assert (
        report.tensor("l0.w_hh").saturations
        == float_saturations(fm.direction(0, False).w_hh, Q("Q-3.18"))
        > 0
    )
    for name in ("l0_reverse.cell", "l1.preact", "l0.hidden", "l0_reverse.hidden", "head.output"):
        assert report.tensor(name).saturations > 0, name
    for name in ("l0.w_ih", "l0_reverse.w_hh", "l1.cell", "l0.gate"):
        assert report.tensor(name).saturations == 0, name
    padded = np.zeros((7, 4, I))
    for b, s in enumerate(seqs):
        padded[: len(s), b] = s
    lengths = [len(s) for s in seqs]
    totals = run_reference(model, quantize_input(model, padded), lengths=lengths).saturations
    for kind in ("preact", "cell", "hidden"):
        per_direction = [t.saturations for t in report.tensors if t.name.endswith("." + kind)]
        assert sum(per_direction) == getattr(totals, kind), kind
    assert report.tensor("head.output").saturations == totals.head
    assert report.total_saturations == sum(t.saturations for t in report.tensors)
    # The padded array with lengths is the same calibration as the list of sequences.
    assert calibrate(fm, padded, lengths=lengths, overrides=narrow) == calibration
    assert quantization_report(fm, model, padded, lengths=lengths) == report


def test_report_table_and_json_round_trip(tmp_path):
    fm, x, calibration = calibrated(2, True, False, 2, 4)
    report = quantization_report(fm, quantize_model(fm, calibration), x)
    table = str(report)
    lines = table.splitlines()
    assert lines[0] == (
        "quantization report: 4 sequence(s), 24 time step(s) from zero initial states, "
        "0 saturation(s)"
    )
    assert lines[1].split() == [
        "tensor",
        "format",
        "values",
        "min",
        "max",
        "saturated",
        "SQNR",
        "dB",
        "max",
        "|err|",
    ]
    assert [line.split()[:2] for line in lines[3:]] == [
        [name, str(fmt)] for name, fmt in calibration.formats.items()
    ]
    assert all(len(line) <= 100 for line in lines)
    assert report.tensor("l1.bias").sqnr_db == math.inf  # bias=False: exact zeros
    text = report.to_json()
    assert '"sqnr_db": "inf"' in text
    assert QuantizationReport.from_json(text) == report
    path = report.save(tmp_path / "out" / "report.json")
    assert QuantizationReport.load(path) == report
    with pytest.raises(CalibrationError) as info:
        QuantizationReport.from_json(text.replace('"schema_version": 1', '"schema_version": 7'))
    assert str(info.value) == (
        "quantization report: schema_version is 7, this lstm-fpga reads version 1"
    )
    with pytest.raises(CalibrationError) as info:
        QuantizationReport.load(tmp_path / "nothing.json")
    assert str(info.value) == f"{tmp_path / 'nothing.json'}: no such file"


def test_report_sqnr_and_errors_match_their_definitions():
    fm, x, calibration = calibrated(1, False, True, 1, 2)
    model = quantize_model(fm, calibration)
    report = quantization_report(fm, model, x)
    float_rec, ref_rec = TensorRecorder(), TensorRecorder()
    fm.forward(x, recorder=float_rec)
    run_reference(model, quantize_input(model, x), recorder=ref_rec)
    for name in ("l0.preact", "l0.gate", "l0.cell", "l0.hidden", "head.output"):
        exact, approx = float_rec.get(name), ref_rec.get(name)
        t = report.tensor(name)
        assert t.count == exact.size
        assert (t.min, t.max) == (exact.min(), exact.max())
        assert t.max_abs_error == np.abs(exact - approx).max()
        sqnr = 10 * np.log10(np.sum(exact**2) / np.sum((exact - approx) ** 2))
        assert t.sqnr_db == pytest.approx(sqnr, rel=1e-12)


# -- pipeline --------------------------------------------------------------------------------
class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(I, H, 2, batch_first=True)
        self.head = nn.Linear(H, 1)


def test_quantize_from_torch(tmp_path):
    torch.manual_seed(21)
    net = Forecaster()
    x_bt = np.random.default_rng(21).normal(size=(3, 8, I))  # (B, T, I): the module's layout
    model, report = quantize_from_torch(net, x_bt, overrides={"l1.cell": "Q2.13"})
    fm = from_module(net)
    calibration = calibrate(fm, x_bt, batch_first=True, overrides={"l1.cell": "Q2.13"})
    assert isinstance(calibration, Calibration)
    assert model == quantize_model(fm, calibration)
    assert report == quantization_report(fm, model, x_bt, batch_first=True)
    assert model.direction(1, False).formats.cell == Q("Q2.13")
    # A state_dict file does not know batch_first: the default is time-major samples.
    path = tmp_path / "forecaster.pt"
    torch.save(net.state_dict(), path)
    from_file_model, from_file_report = quantize_from_torch(
        path, x_bt.transpose(1, 0, 2), overrides={"l1.cell": "Q2.13"}
    )
    assert from_file_model == model and from_file_report == report
    again, _ = quantize_from_torch(str(path), x_bt, batch_first=True, width=12)
    assert again.input_format.width == 12


def test_head_on_every_step():
    torch.manual_seed(22)
    net = Forecaster()
    seqs = [np.random.default_rng(n).normal(size=(n, I)) for n in (4, 9, 2)]
    model, report = quantize_from_torch(net, seqs, head_on="all")
    head = report.tensor("head.output")
    assert model.head is not None and report.time_steps == 15 and head.count == 15
    fm = from_module(net)
    last_only = calibrate(fm, seqs).range("head.output")
    every_step = calibrate(fm, seqs, head_on="all").range("head.output")
    assert last_only.count == 3 and every_step.count == 15
    assert (every_step.min, every_step.max) == (head.min, head.max)
    assert every_step.min <= last_only.min and last_only.max <= every_step.max


def test_chunked_passes_equal_one_pass(monkeypatch):
    """Batches run in chunks of CHUNK_SEQUENCES sequences; the statistics do not depend on
    the chunking (ragged lengths, so chunks are trimmed to different lengths)."""
    lstm, head = make_torch(2, True, True, 2, 30)
    fm = from_module(lstm, head=head)
    rng = np.random.default_rng(30)
    seqs = [rng.normal(size=(n, I)) * 2 for n in (5, 2, 8, 3, 1, 6, 4)]
    narrow = {"l0.cell": "Q-1.16", "l1.preact": "Q-1.16"}  # some saturations to count
    whole = calibrate(fm, seqs, overrides=narrow)
    model = quantize_model(fm, whole)
    report = quantization_report(fm, model, seqs)
    monkeypatch.setattr(samples_module, "CHUNK_SEQUENCES", 3)
    chunked = calibrate(fm, seqs, overrides=narrow)
    # Float results depend on BLAS blocking, which depends on the batch size: the float
    # statistics agree to rounding, everything integer (formats, counts, the integer
    # reference's saturations) exactly.
    assert chunked.formats == whole.formats
    for a, b in zip(whole.ranges, chunked.ranges, strict=True):
        assert (a.name, a.count) == (b.name, b.count)
        assert (a.min, a.max) == (pytest.approx(b.min, rel=1e-12), pytest.approx(b.max, rel=1e-12))
    chunked_report = quantization_report(fm, model, seqs)
    assert report.total_saturations > 0
    for a, b in zip(report.tensors, chunked_report.tensors, strict=True):
        assert (a.name, a.format, a.count, a.saturations) == (
            b.name,
            b.format,
            b.count,
            b.saturations,
        )
        floats = (a.min, a.max, a.max_abs_error)
        assert floats == pytest.approx((b.min, b.max, b.max_abs_error), rel=1e-12, abs=1e-15)
        assert a.sqnr_db == pytest.approx(b.sqnr_db, rel=1e-12)


# -- mixed precision: weight_bits ---------------------------------------------------------------
_WEIGHTS = ("w_ih", "w_hh", "weight")


@pytest.mark.parametrize(("width", "weight_bits"), [(16, 8), (16, 4), (12, 5), (10, 16), (16, 16)])
def test_weight_bits_set_the_weight_matrices_only(width, weight_bits):
    """Weights get ``weight_bits`` with the most fraction bits their range allows; every other
    tensor keeps the formats of a plain ``width`` calibration."""
    fm, x, plain = calibrated(width=width)
    mixed = calibrate(fm, x, width=width, weight_bits=weight_bits).formats
    for name, fmt in mixed.items():
        if name.split(".")[-1] in _WEIGHTS:
            r = plain.range(name)
            assert fmt == FixedFormat(weight_bits, most_fraction_bits(r, weight_bits)), name
        elif name.split(".")[-1] != "bias":
            assert fmt == plain.formats[name], name
        else:  # a bias is capped by its accumulator, whose fraction bits follow the weights
            assert fmt.width == width, name
    model = quantize_model(fm, mixed)
    reference = run_reference(model, quantize_input(model, x), head_on="last")
    assert reference.head.shape == (x.shape[1], 2)


def test_weight_bits_default_to_width_and_overrides_win():
    fm, x, plain = calibrated(width=12)
    assert calibrate(fm, x, width=12, weight_bits=None).formats == plain.formats
    chosen = calibrate(fm, x, weight_bits=6, overrides={"l1.w_hh": "Q1.10"}).formats
    assert chosen["l1.w_hh"] == Q("Q1.10") and chosen["l0.w_hh"].width == 6


@pytest.mark.parametrize("weight_bits", [3, 31, 8.0, True])
def test_weight_bits_out_of_range_are_refused(weight_bits):
    fm, x, _ = calibrated()
    with pytest.raises(CalibrationError, match="weight_bits must be an int from 4 to 30"):
        calibrate(fm, x, weight_bits=weight_bits)
