"""``nn.LSTM(proj_size > 0)`` (LSTMP) through the software flow: import, float model,
calibration, IR, integer reference, report, and the refusals where support ends (hardware,
fine-tuning)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from lstm_fpga.hw import HardwareConfig, HardwareConfigError, check_supported
from lstm_fpga.hw.compatibility import INTERLEAVE_BIDIRECTIONAL, ProjectionNotSupportedError
from lstm_fpga.hw.plan import cycle_bound
from lstm_fpga.sw.calibrate import (
    CalibrationError,
    calibrate,
    calibrate_from_range,
    quantize_from_torch,
    quantize_model,
)
from lstm_fpga.sw.ir import IRError, LstmModel
from lstm_fpga.sw.numerics import (
    FixedFormat,
    LstmpDatapath,
    LstmpFormats,
    dequantize,
    quantize,
    rescale,
)
from lstm_fpga.sw.qat import QatError, modules_from_float
from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.sw.torch_import import ModelImportError, from_module, from_state_dict, import_model

Q = FixedFormat.parse


def torch_lstmp(I, H, R, L=1, bidirectional=False, bias=True, head=0, seed=0):
    torch.manual_seed(seed)
    lstm = nn.LSTM(I, H, L, bias=bias, bidirectional=bidirectional, proj_size=R).double()
    linear = nn.Linear(R * (2 if bidirectional else 1), head).double() if head else None
    return lstm, linear


class Classifier(nn.Module):
    def __init__(self, I, H, R, L, bidirectional, out):
        super().__init__()
        self.lstm = nn.LSTM(I, H, L, bidirectional=bidirectional, proj_size=R, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(R * (2 if bidirectional else 1), out)


SHAPES = [
    # I, H, R, layers, bidirectional, bias, head
    (3, 5, 2, 1, False, True, 0),
    (7, 4, 3, 2, False, True, 2),
    (5, 9, 4, 1, True, True, 3),
    (1, 3, 1, 3, True, False, 1),
    (6, 11, 7, 2, True, True, 0),
    (4, 8, 5, 3, False, True, 0),
]


def _head(linear):
    return {f"fc.{k}": v for k, v in linear.state_dict().items()}


# -- import and the float model --------------------------------------------------------------
@pytest.mark.parametrize(("I", "H", "R", "L", "bidirectional", "bias", "head"), SHAPES)
def test_float_model_is_pytorch_lstmp(I, H, R, L, bidirectional, bias, head):
    lstm, linear = torch_lstmp(I, H, R, L, bidirectional, bias, head)
    fm = from_module(lstm, head=linear)
    assert (fm.input_size, fm.hidden_size, fm.proj_size, fm.num_layers) == (I, H, R, L)
    assert (fm.bidirectional, fm.bias, fm.real_hidden_size) == (bidirectional, bias, R)
    D = fm.num_directions
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (6, 3, I))
    h0 = rng.uniform(-1, 1, (L * D, 3, R))
    c0 = rng.uniform(-1, 1, (L * D, 3, H))
    out, (h_n, c_n), y = fm.forward(x, h0, c0, head_on="all" if head else "last")
    ref_out, (ref_h, ref_c) = lstm(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    assert out.shape == (6, 3, D * R) and h_n.shape == (L * D, 3, R) and c_n.shape == (L * D, 3, H)
    np.testing.assert_allclose(out, ref_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(h_n, ref_h.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(c_n, ref_c.detach().numpy(), atol=1e-12)
    if head:
        np.testing.assert_allclose(y, linear(ref_out).detach().numpy(), atol=1e-12)


def test_import_sources_agree(tmp_path):
    torch.manual_seed(3)
    model = Classifier(4, 6, 3, 2, True, 3)
    path = tmp_path / "lstmp.pt"
    torch.save(model.state_dict(), path)
    a = import_model(model)
    b = from_state_dict(model.state_dict())
    c = import_model(path)
    assert a.proj_size == 3
    for other in (b, c):
        assert (other.proj_size, other.hidden_size) == (3, 6)
        for d, e in zip(a.directions, other.directions, strict=True):
            np.testing.assert_array_equal(d.w_ih, e.w_ih)
            np.testing.assert_array_equal(d.w_hh, e.w_hh)
            np.testing.assert_array_equal(d.w_hr, e.w_hr)
        np.testing.assert_array_equal(a.head.weight, other.head.weight)


def test_float_model_save_load(tmp_path):
    fm = from_module(*torch_lstmp(3, 5, 2, 2, True, head=2))
    loaded = type(fm).load(fm.save(tmp_path / "f.npz"))
    assert loaded.proj_size == 2
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    np.testing.assert_array_equal(fm.forward(x)[0], loaded.forward(x)[0])


STATE_ERRORS = [
    (
        lambda s: s.update(weight_hh_l0=torch.zeros(20, 4)),
        "key 'weight_hh_l0' has shape (20, 4), expected (20, 2): an nn.LSTM with "
        "hidden_size=5, proj_size=2 (from 'weight_hr_l0')",
    ),
    (
        lambda s: s.update(weight_hr_l0=torch.zeros(5, 5)),
        "key 'weight_hr_l0' has shape (5, 5), expected (proj_size, hidden_size) with "
        "0 < proj_size < hidden_size",
    ),
    (
        lambda s: s.pop("weight_hr_l1"),
        "missing key(s) 'weight_hr_l1': the other keys describe an nn.LSTM with num_layers=2, "
        "bidirectional=False, bias=True, proj_size=2",
    ),
    (
        lambda s: s.update(weight_hr_l1=torch.zeros(2, 4)),
        "key 'weight_hr_l1' has shape (2, 4), expected (2, 5)",
    ),
    (
        lambda s: s.update(weight_ih_l1=torch.zeros(20, 5)),
        "key 'weight_ih_l1' has shape (20, 5), expected (20, 2)",
    ),
]


@pytest.mark.parametrize(("edit", "message"), STATE_ERRORS)
def test_state_dict_errors_name_the_projection(edit, message):
    state = dict(nn.LSTM(3, 5, 2, proj_size=2).state_dict())
    edit(state)
    with pytest.raises(ModelImportError) as error:
        from_state_dict(state)
    assert str(error.value) == message


def test_state_dict_gru_shape_with_projection_is_refused():
    state = dict(nn.GRU(3, 5).state_dict())
    state["weight_hh_l0"] = torch.zeros(15, 2)
    state["weight_hr_l0"] = torch.zeros(2, 5)
    with pytest.raises(ModelImportError) as error:
        from_state_dict(state)
    assert str(error.value) == (
        "key 'weight_hr_l0' is a projection, which only nn.LSTM has, but 'weight_hh_l0' has "
        "shape (15, 2) (an nn.GRU's 3*hidden_size rows)"
    )


# -- calibration, IR, reference against PyTorch ---------------------------------------------
def _range_error(model, lstm, linear, x, h0, c0):
    """Largest |integer reference - PyTorch| of the output, h_n, c_n (and head), as a fraction
    of the float output's range."""
    dirs = model.directions
    h0q = np.stack([quantize(h0[k], d.formats.hidden) for k, d in enumerate(dirs)])
    c0q = np.stack([quantize(c0[k], d.formats.cell) for k, d in enumerate(dirs)])
    xq = quantize_input(model, x)
    result = run_reference(model, xq, h0q, c0q, head_on="all" if linear is not None else "last")
    ref_out, (ref_h, ref_c) = lstm(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    ref_out = ref_out.detach().numpy()
    scale = np.ptp(ref_out)
    errors = [np.abs(dequantize(result.output, model.output_format) - ref_out).max() / scale]
    h_n = np.stack([dequantize(result.h_n[k], d.formats.hidden) for k, d in enumerate(dirs)])
    c_n = np.stack([dequantize(result.c_n[k], d.formats.cell) for k, d in enumerate(dirs)])
    errors.append(np.abs(h_n - ref_h.detach().numpy()).max() / scale)
    errors.append(np.abs(c_n - ref_c.detach().numpy()).max() / np.ptp(ref_c.detach().numpy()))
    if linear is not None:
        ref_y = linear(torch.tensor(ref_out)).detach().numpy()
        got_y = dequantize(result.head, model.head.formats.output)
        errors.append(np.abs(got_y - ref_y).max() / np.ptp(ref_y))
    return max(errors), result


@pytest.mark.parametrize(("I", "H", "R", "L", "bidirectional", "bias", "head"), SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_close_to_pytorch_at_16_bits(I, H, R, L, bidirectional, bias, head, seed):
    lstm, linear = torch_lstmp(I, H, R, L, bidirectional, bias, head, seed=seed)
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (12, 8, I))
    h0 = rng.uniform(-0.5, 0.5, (L * D, 8, R))
    c0 = rng.uniform(-0.9, 0.9, (L * D, 8, H))
    source = lstm if linear is None else {**lstm.state_dict(), **_head(linear)}
    model, report = quantize_from_torch(
        source, x, h0=h0, c0=c0, head_on="all" if head else "last", width=16
    )
    assert model.proj_size == R and model.output_size == D * R
    error, result = _range_error(model, lstm, linear, x, h0, c0)
    assert error <= 2**-8, error
    assert result.output.shape == (12, 8, D * R)
    assert result.h_n.shape == (L * D, 8, R) and result.c_n.shape == (L * D, 8, H)
    assert result.saturations.total == 0  # calibrated on this data: nothing clamps
    assert report.total_saturations == 0
    names = {t.name for t in report.tensors}
    assert {"l0.w_hr", "l0.proj_in", "l0.hidden", "l0.cell"} <= names


def test_range_calibration_bounds_the_data():
    lstm, linear = torch_lstmp(4, 6, 3, 2, True, head=2, seed=2)
    fm = from_module(lstm, head=linear)
    calibration = calibrate_from_range(fm, (-1, 1))
    model = quantize_model(fm, calibration)
    x = np.random.default_rng(0).uniform(-1, 1, (20, 16, 4))
    result = run_reference(model, quantize_input(model, x))
    assert result.saturations.total == 0
    # The projected h is bounded by W_hr's largest absolute row sum, not by 1.
    bound = max(float(np.abs(d.w_hr).sum(axis=1).max()) for d in fm.directions[:2])
    assert calibration.range("l0.hidden").max == pytest.approx(bound)


def _scalar_step(dp: LstmpDatapath, d, x, h, c):
    """One LSTMP step written out unit by unit with Python integers from the datapath's
    pieces (the naive model): ``(h_t, c_t)``."""
    f, acc = dp.formats, dp.gate_acc
    H, R = d.hidden_size, d.proj_size
    sx, sh = acc.shifts
    pre = []
    for row in range(4 * H):
        total = int(d.bias[row]) << acc.bias_shift
        total += sum(int(d.w_ih[row, j]) * int(x[j]) for j in range(len(x))) << sx
        total += sum(int(d.w_hh[row, j]) * int(h[j]) for j in range(R)) << sh
        pre.append(int(rescale(np.int64(total), acc.frac, f.preact, dp.rounding, dp.overflow)))
    m, c_new = [], []
    for u in range(H):
        i, ff, g, o = (pre[k * H + u] for k in range(4))
        i, ff, o = (int(dp.sigmoid.evaluate(np.int64(v))) for v in (i, ff, o))
        g = int(dp.tanh_gate.evaluate(np.int64(g)))
        cs = dp.cell_acc.shifts
        cell = ((ff * int(c[u])) << cs[0]) + ((i * g) << cs[1])
        cu = int(rescale(np.int64(cell), dp.cell_acc.frac, f.cell, dp.rounding, dp.overflow))
        t = int(dp.tanh_cell.evaluate(np.int64(cu)))
        product = np.int64(o * t)
        m.append(int(rescale(product, dp.hidden_product_frac, f.proj_in, dp.rounding)))
        c_new.append(cu)
    h_new = []
    for r in range(R):
        total = sum(int(d.w_hr[r, u]) * m[u] for u in range(H)) << dp.proj_acc.shifts[0]
        h_new.append(int(rescale(np.int64(total), dp.proj_acc.frac, f.hidden, dp.rounding)))
    return h_new, c_new


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    I=st.integers(1, 5),
    H=st.integers(2, 7),
    data=st.data(),
    L=st.integers(1, 3),
    bidirectional=st.booleans(),
    T=st.integers(1, 5),
    B=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_shapes_and_step_definition(I, H, data, L, bidirectional, T, B, seed):
    """Any shape: nn.LSTM's result shapes (output D*R, h_n R, c_n H), the IR round trip, and
    the first step of layer 0 equal to the unit-by-unit definition."""
    R = data.draw(st.integers(1, H - 1), label="R")
    lstm, _ = torch_lstmp(I, H, R, L, bidirectional, seed=seed)
    D = 2 if bidirectional else 1
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (T, B, I))
    model, _ = quantize_from_torch(lstm, x, width=12)
    xq = quantize_input(model, x)
    result = run_reference(model, xq)
    assert result.output.shape == (T, B, D * R)
    assert result.h_n.shape == (L * D, B, R) and result.c_n.shape == (L * D, B, H)
    assert model.directions[-1].w_hh.shape == (4 * H, R)
    assert all(d.input_size == (I if d.layer == 0 else D * R) for d in model.directions)
    d, dp = model.direction(0, False), model.datapath(0, False)
    h, c = _scalar_step(dp, d, xq[0, 0], np.zeros(R, dtype=int), np.zeros(H, dtype=int))
    one = run_reference(model, xq[:1, :1])
    assert list(one.h_n[0, 0]) == h  # l0 after its one step
    assert list(one.c_n[0, 0]) == c


def test_ir_save_load_round_trip(tmp_path):
    lstm, linear = torch_lstmp(3, 6, 4, 2, True, head=2, seed=5)
    fm = from_module(lstm, head=linear)
    model = quantize_model(fm, calibrate_from_range(fm, (-1, 1)))
    json_path, _ = model.save(tmp_path / "ir")
    meta = json.loads(json_path.read_text())
    assert meta["proj_size"] == 4
    assert meta["directions"][0]["shapes"]["w_hr"] == [4, 6]
    assert set(meta["directions"][0]["formats"]) >= {"w_hr", "proj_in"}
    loaded = LstmModel.load(tmp_path / "ir")
    assert loaded == model and loaded.proj_size == 4
    assert isinstance(loaded.directions[0].formats, LstmpFormats)


def test_lstm_ir_file_has_no_proj_size(tmp_path):
    fm = from_module(nn.LSTM(3, 4).double())
    model = quantize_model(fm, calibrate_from_range(fm, (-1, 1)))
    json_path, _ = model.save(tmp_path / "ir")
    assert "proj_size" not in json.loads(json_path.read_text())


def test_ir_refuses_inconsistent_projection():
    lstm, _ = torch_lstmp(3, 5, 2)
    fm = from_module(lstm)
    model = quantize_model(fm, calibrate_from_range(fm, (-1, 1)))
    d = model.directions[0]
    with pytest.raises(IRError, match=r"proj_size must be an int from 0 to hidden_size - 1 = 4"):
        LstmModel(3, 5, 1, False, True, model.directions, proj_size=5)
    with pytest.raises(IRError, match=r"an LSTM with a projection has LstmpFormats and w_hr"):
        type(d)(d.layer, d.reverse, d.w_ih, d.w_hh, d.bias, d.formats)


def test_formats_of_another_model_are_refused():
    lstm, _ = torch_lstmp(3, 5, 2)
    plain = from_module(nn.LSTM(3, 5).double())
    formats = calibrate_from_range(plain, (-1, 1))
    with pytest.raises(CalibrationError, match=r"formats are for an nn.LSTM without proj_size"):
        quantize_model(from_module(lstm), formats)


def test_overrides_name_the_projection_tensors():
    lstm, _ = torch_lstmp(3, 5, 2)
    fm = from_module(lstm)
    x = np.random.default_rng(0).uniform(-1, 1, (6, 2, 3))
    calibration = calibrate(fm, x, overrides={"l0.proj_in": "Q1.14", "l0.w_hr": "Q1.14"})
    f = calibration.formats.directions[0]
    assert (f.proj_in, f.w_hr) == (Q("Q1.14"), Q("Q1.14"))


# -- where support ends ----------------------------------------------------------------------
def _proj_refusal(what: str) -> str:
    return (
        f"the model is an nn.LSTM with proj_size=2 and {what}: the generated hardware runs "
        f"LSTMs with projections with on-chip weights and --control stream (unidirectional "
        f"or bidirectional, any layers, lanes and Linear head; --interleave for "
        f"unidirectional ones). Drop --weights external and --control axi-lite, or run it "
        f"with the integer reference (lstm_fpga.sw.reference.run_reference; docs/lstmp.md)"
    )


@pytest.mark.parametrize(
    ("bidirectional", "config"),
    [(True, dict(max_seq_len=8, weights="external")), (False, dict(weights="external"))],
)
def test_hardware_refuses_unsupported_lstmp(bidirectional, config):
    lstm, _ = torch_lstmp(3, 5, 2, bidirectional=bidirectional)
    fm = from_module(lstm)
    model = quantize_model(fm, calibrate_from_range(fm, (-1, 1)))
    with pytest.raises(ProjectionNotSupportedError) as error:
        check_supported(model, HardwareConfig(lanes=4, **config))
    assert isinstance(error.value, HardwareConfigError)
    assert str(error.value) == _proj_refusal("--weights external")
    check_supported(quantize_model(*_unidirectional(fm)), HardwareConfig(lanes=4))


def test_hardware_runs_bidirectional_lstmp_without_interleave():
    """A bidirectional LSTMP runs (on-chip weights, ``max_seq_len``); with ``--interleave``
    it is refused as every bidirectional model is."""
    lstm, _ = torch_lstmp(3, 5, 2, 2, True)
    fm = from_module(lstm)
    model = quantize_model(fm, calibrate_from_range(fm, (-1, 1)))
    check_supported(model, HardwareConfig(lanes=4, max_seq_len=8))
    with pytest.raises(HardwareConfigError) as error:
        check_supported(model, HardwareConfig(lanes=4, max_seq_len=8, interleave=2))
    assert str(error.value) == INTERLEAVE_BIDIRECTIONAL


def _unidirectional(fm):
    """A unidirectional LSTMP's (float model, calibration): the hardware runs it."""
    lstm, _ = torch_lstmp(3, 5, 2)
    fm = from_module(lstm)
    return fm, calibrate_from_range(fm, (-1, 1))


def test_finetune_refuses_lstmp():
    fm = from_module(torch_lstmp(3, 5, 2)[0])
    with pytest.raises(QatError, match=r"supports nn.LSTM without proj_size only"):
        modules_from_float(fm)


def test_cycle_bound_form_counts_the_projection():
    """The bound form of an LSTMP step: per direction ``ceil(4H(I_k + R)/P)`` for the gates
    and ``ceil(RH/P)`` for the projection (I=3, H=5, R=2, two layers, bidirectional: layer 1
    takes 2R = 4 inputs)."""
    lstm, _ = torch_lstmp(3, 5, 2, 2, True)
    fm = from_module(lstm)
    model = quantize_model(fm, calibrate_from_range(fm, (-1, 1)))
    P = 7
    per_direction = [-(-20 * (3 + 2) // P) + -(-10 // P)] * 2 + [
        -(-20 * (4 + 2) // P) + -(-10 // P)
    ] * 2
    assert cycle_bound(model, lanes=P) == sum(per_direction) == 2 * (15 + 2) + 2 * (18 + 2)
    assert cycle_bound(3, 5, lanes=P, proj_size=2) == 15 + 2


def test_variable_lengths_and_unbatched_match_single_sequences():
    lstm, linear = torch_lstmp(3, 6, 4, 2, True, head=2, seed=4)
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (7, 3, 3))
    model, _ = quantize_from_torch({**lstm.state_dict(), **_head(linear)}, x)
    xq = quantize_input(model, x)
    lengths = np.array([7, 3, 5])
    batch = run_reference(model, xq, lengths=lengths)
    for b, T in enumerate(lengths):
        one = run_reference(model, xq[:T, b])  # unbatched: (T, I)
        np.testing.assert_array_equal(batch.output[:T, b], one.output)
        np.testing.assert_array_equal(batch.output[T:, b], 0)
        np.testing.assert_array_equal(batch.h_n[:, b], one.h_n)
        np.testing.assert_array_equal(batch.c_n[:, b], one.c_n)
        np.testing.assert_array_equal(batch.head[b], one.head)
        assert one.h_n.shape == (4, 4) and one.c_n.shape == (4, 6)
