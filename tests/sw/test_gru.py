"""``nn.GRU`` through the software flow: import, float model, calibration, IR, integer
reference, report, and the refusals where GRU support ends (hardware, fine-tuning)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from lstm_fpga.hw import HardwareConfig, HardwareConfigError, check_supported
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
    GruDatapath,
    GruFormats,
    dequantize,
    overflow_count,
    quantize,
    rescale,
    shift_round,
)
from lstm_fpga.sw.reference import quantize_input, run_float, run_reference
from lstm_fpga.sw.shape import CellType
from lstm_fpga.sw.torch_import import from_module, from_state_dict, import_model
from lstm_fpga.testing import gru_formats, random_model, random_state

Q = FixedFormat.parse


def torch_gru(I, H, L=1, bidirectional=False, bias=True, head=0, seed=0):
    torch.manual_seed(seed)
    gru = nn.GRU(I, H, L, bias=bias, bidirectional=bidirectional).double()
    linear = nn.Linear(H * (2 if bidirectional else 1), head).double() if head else None
    return gru, linear


class GruClassifier(nn.Module):
    def __init__(self, I, H, L, bidirectional, out):
        super().__init__()
        self.gru = nn.GRU(I, H, L, bidirectional=bidirectional, batch_first=True)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(H * (2 if bidirectional else 1), out)


SHAPES = [
    # I, H, layers, bidirectional, bias, head
    (3, 5, 1, False, True, 0),
    (7, 4, 2, False, True, 2),
    (5, 9, 1, True, True, 3),
    (1, 3, 3, True, False, 1),
    (11, 1, 2, True, True, 0),
]


# -- import and the float model --------------------------------------------------------------
@pytest.mark.parametrize(("I", "H", "L", "bidirectional", "bias", "head"), SHAPES)
def test_float_model_is_pytorch_gru(I, H, L, bidirectional, bias, head):
    gru, linear = torch_gru(I, H, L, bidirectional, bias, head)
    fm = from_module(gru, head=linear)
    assert fm.cell_type is CellType.GRU
    assert (fm.input_size, fm.hidden_size, fm.num_layers) == (I, H, L)
    assert (fm.bidirectional, fm.bias) == (bidirectional, bias)
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 2, (6, 3, I))
    h0 = rng.uniform(-1, 1, (L * fm.num_directions, 3, H))
    out, (h_n, c_n), y = fm.forward(x, h0, head_on="all" if head else "last")
    ref_out, ref_h = gru(torch.tensor(x), torch.tensor(h0))
    assert c_n is None
    np.testing.assert_allclose(out, ref_out.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(h_n, ref_h.detach().numpy(), atol=1e-12)
    if head:
        np.testing.assert_allclose(y, linear(ref_out).detach().numpy(), atol=1e-12)


def test_import_sources_agree(tmp_path):
    torch.manual_seed(3)
    model = GruClassifier(4, 6, 2, True, 3)
    path = tmp_path / "gru.pt"
    torch.save(model.state_dict(), path)
    a = import_model(model)
    b = from_state_dict(model.state_dict())
    c = import_model(path)
    for other in (b, c):
        assert other.cell_type is CellType.GRU
        for d, e in zip(a.directions, other.directions, strict=True):
            np.testing.assert_array_equal(d.w_ih, e.w_ih)
            np.testing.assert_array_equal(d.bias, e.bias)
        np.testing.assert_array_equal(a.head.weight, other.head.weight)
    # b_hn stays apart from b_in: the GRU's bias has 4H entries [b_r, b_z, b_in, b_hn].
    H, sd = 6, model.gru.state_dict()
    b_ih, b_hh = sd["bias_ih_l0"].double().numpy(), sd["bias_hh_l0"].double().numpy()
    np.testing.assert_allclose(a.directions[0].bias[: 2 * H], (b_ih + b_hh)[: 2 * H])
    np.testing.assert_allclose(a.directions[0].bias[2 * H : 3 * H], b_ih[2 * H :])
    np.testing.assert_allclose(a.directions[0].bias[3 * H :], b_hh[2 * H :])


def test_float_model_save_load(tmp_path):
    fm = from_module(*torch_gru(3, 4, 2, True, head=2))
    loaded = type(fm).load(fm.save(tmp_path / "f.npz"))
    assert loaded.cell_type is CellType.GRU
    x = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    np.testing.assert_array_equal(fm.forward(x)[0], loaded.forward(x)[0])


def test_gru_has_no_cell_state():
    fm = from_module(torch_gru(3, 4)[0])
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"nn.GRU has no cell state"):
        fm.forward(x, c0=np.zeros((1, 4)))
    with pytest.raises(CalibrationError, match=r"nn.GRU has no cell state: give h0 only"):
        calibrate(fm, x, c0=np.zeros((1, 4)))


# -- calibration, IR, reference against PyTorch ---------------------------------------------
def _range_error(model, gru, linear, x, h0=None):
    """Largest |integer reference - PyTorch| of the output (and head), as a fraction of the
    float output's range."""
    xq = quantize_input(model, x)
    h0q = None
    if h0 is not None:
        h0q = np.stack([quantize(h0[k], d.formats.hidden) for k, d in enumerate(model.directions)])
    result = run_reference(model, xq, h0q, head_on="all" if linear is not None else "last")
    h0t = None if h0 is None else torch.tensor(h0)
    ref_out, ref_h = gru(torch.tensor(x), h0t)
    ref_out = ref_out.detach().numpy()
    got = dequantize(result.output, model.output_format)
    errors = [np.abs(got - ref_out).max() / np.ptp(ref_out)]
    h_n = np.stack(
        [dequantize(result.h_n[k], d.formats.hidden) for k, d in enumerate(model.directions)]
    )
    errors.append(np.abs(h_n - ref_h.detach().numpy()).max() / np.ptp(ref_out))
    if linear is not None:
        ref_y = linear(torch.tensor(ref_out)).detach().numpy()
        got_y = dequantize(result.head, model.head.formats.output)
        errors.append(np.abs(got_y - ref_y).max() / np.ptp(ref_y))
    assert result.c_n is None and result.saturations.cell == 0
    return max(errors), result


@pytest.mark.parametrize(("I", "H", "L", "bidirectional", "bias", "head"), SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_reference_close_to_pytorch_at_16_bits(I, H, L, bidirectional, bias, head, seed):
    gru, linear = torch_gru(I, H, L, bidirectional, bias, head, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (12, 8, I))
    h0 = rng.uniform(-0.9, 0.9, (L * (2 if bidirectional else 1), 8, H))
    source = gru if linear is None else {**gru.state_dict(), **_head(linear)}
    model, report = quantize_from_torch(
        source, x, h0=h0, head_on="all" if head else "last", width=16
    )
    assert model.cell_type is CellType.GRU
    error, result = _range_error(model, gru, linear, x, h0)
    assert error <= 2**-8, error
    assert result.saturations.total == 0  # calibrated on this data: nothing clamps
    assert report.total_saturations == 0
    assert "l0.cell" not in {t.name for t in report.tensors}


def _head(linear):
    return {f"fc.{k}": v for k, v in linear.state_dict().items()}


def test_range_calibration_bounds_the_data():
    gru, _ = torch_gru(4, 6, 2, True, seed=4)
    fm = from_module(gru)
    calibration = calibrate_from_range(fm, (-1.5, 1.5))
    x = np.random.default_rng(4).uniform(-1.5, 1.5, (20, 5, 4))
    model = quantize_model(fm, calibration)
    result = run_reference(model, quantize_input(model, x))
    assert result.saturations.total == 0
    error, _ = _range_error(model, gru, None, x)
    assert error <= 2**-7, error


def test_variable_lengths_match_single_sequences():
    model = random_model(3, 5, 2, True, head=2, seed=5, cell_type="gru")
    rng = np.random.default_rng(5)
    lengths = [4, 1, 7]
    seqs = [quantize(rng.uniform(-2, 2, (n, 3)), model.input_format) for n in lengths]
    padded = np.stack([np.pad(s, ((0, 7 - len(s)), (0, 0))) for s in seqs], axis=1)
    together = run_reference(model, padded, lengths=lengths)
    for b, s in enumerate(seqs):
        alone = run_reference(model, s)
        np.testing.assert_array_equal(together.output[: len(s), b], alone.output)
        np.testing.assert_array_equal(together.output[len(s) :, b], 0)
        np.testing.assert_array_equal(together.h_n[:, b], alone.h_n)
        np.testing.assert_array_equal(together.head[b], alone.head)


# -- the integer step, written out element by element ---------------------------------------
def _scalar_step(dp: GruDatapath, d, x, h):
    """One GRU step for one sequence, one unit at a time with Python ints: the definition of
    :class:`GruDatapath` spelled out (rescales, tables, ``1 - z``) and its saturations."""
    f, H, acc = dp.formats, d.hidden_size, dp.gate_acc
    sx, sh = acc.shifts
    saturated = {"preact": 0, "hidden": 0}

    def to(value, frac, fmt, kind):
        v = np.array([value], dtype=np.int64)
        saturated[kind] += overflow_count(shift_round(v, frac - fmt.frac, dp.rounding), fmt)
        return int(rescale(v, frac, fmt, dp.rounding, dp.overflow)[0])

    def row(w, v, j):
        return sum(int(w[j, k]) * int(v[k]) for k in range(len(v)))

    out = []
    for j in range(H):
        pre = []
        for gate in (0, 1):
            k = gate * H + j
            a = (row(d.w_ih, x, k) << sx) + (row(d.w_hh, h, k) << sh)
            a += int(d.bias[k]) << acc.bias_shift
            pre.append(to(a, acc.frac, f.preact, "preact"))
        r, z = (int(dp.sigmoid.evaluate(np.array([p]))[0]) for p in pre)
        xn_acc = (row(d.w_ih, x, 2 * H + j) << sx) + (int(d.bias[2 * H + j]) << acc.bias_shift)
        hn_acc = (row(d.w_hh, h, 2 * H + j) << sh) + (int(d.bias[3 * H + j]) << acc.bias_shift)
        xn = to(xn_acc, acc.frac, f.preact, "preact")
        hn = to(hn_acc, acc.frac, f.preact, "preact")
        n_acc = r * hn + (xn << f.gate.frac)
        n = int(dp.tanh_gate.evaluate(np.array([to(n_acc, dp.n_acc.frac, f.preact, "preact")]))[0])
        one = 1 << f.gate.frac
        shifts = dp.update_acc.shifts
        update = (((one - z) * n) << shifts[0]) + ((z * int(h[j])) << shifts[1])
        out.append(to(update, dp.update_acc.frac, f.hidden, "hidden"))
    return out, saturated


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    I=st.integers(1, 6),
    H=st.integers(1, 5),
    formats=st.sampled_from(["q16", "q12", "mixed", "tight"]),
    scale=st.sampled_from([1.0, 4.0]),
    seed=st.integers(0, 2**16),
)
def test_reference_step_matches_scalar_definition(I, H, formats, scale, seed):
    model = random_model(I, H, formats=formats, scale=scale, seed=seed, cell_type="gru")
    d, dp = model.directions[0], model.datapath(0)
    rng = np.random.default_rng(seed)
    x = quantize(rng.uniform(-1, 1, (1, I)) * d.formats.x.max_value, d.formats.x)
    h0, c0 = random_state(model, rng)
    assert c0 is None
    result = run_reference(model, x, h0)
    expected, saturated = _scalar_step(dp, d, x[0], h0[0])
    assert result.output[0].tolist() == expected
    assert result.saturations.preact == saturated["preact"]
    assert result.saturations.hidden == saturated["hidden"]


def test_tight_formats_count_saturations():
    """Every clamp is counted (nothing silent): tight formats and large weights saturate."""
    model = random_model(4, 6, 2, formats="tight", scale=6.0, seed=2, cell_type="gru")
    x = quantize(np.random.default_rng(2).uniform(-3, 3, (10, 4)), model.input_format)
    result = run_reference(model, x)
    assert result.saturations.preact > 0
    assert result.saturations.hidden > 0
    assert result.saturations.total == sum(s.total for s in result.direction_saturations.values())


def test_dequantized_float_path_runs_the_gru():
    model = random_model(3, 4, 1, True, head=2, seed=7, cell_type="gru")
    x = np.random.default_rng(7).uniform(-1, 1, (5, 3))
    out, (h_n, c_n), y = run_float(model, x)
    assert out.shape == (5, 8) and h_n.shape == (2, 4) and c_n is None and y.shape == (2,)


# -- IR ------------------------------------------------------------------------------------------
def test_ir_save_load_round_trip(tmp_path):
    model = random_model(5, 3, 2, True, head=2, seed=1, cell_type="gru")
    json_path, _ = model.save(tmp_path / "m")
    meta = json.loads(json_path.read_text())
    assert meta["cell_type"] == "gru"
    assert "cell" not in meta["directions"][0]["formats"]
    loaded = LstmModel.load(tmp_path / "m")
    assert loaded == model and loaded.cell_type is CellType.GRU


def test_lstm_ir_file_is_unchanged(tmp_path):
    model = random_model(3, 4, seed=1)
    assert "cell_type" not in model.to_json_dict()
    assert LstmModel.load(model.save(tmp_path / "m")[0]).cell_type is CellType.LSTM


def test_ir_refuses_mixed_cells():
    gru = random_model(3, 4, seed=1, cell_type="gru")
    lstm = random_model(3, 4, seed=1)
    with pytest.raises(IRError, match="has GruFormats but the model's cell_type is 'lstm'"):
        LstmModel(3, 4, 1, False, True, gru.directions)
    with pytest.raises(IRError, match=r"expected \(3\*H, H\)"):
        type(gru.directions[0])(
            0,
            False,
            lstm.directions[0].w_ih,
            lstm.directions[0].w_hh,
            lstm.directions[0].bias,
            gru.directions[0].formats,
        )
    with pytest.raises(IRError, match=r"a nn\.GRU has no cell state"):
        gru.cell_formats  # noqa: B018


def test_gru_formats_from_lstm_set():
    f = gru_formats(random_model(2, 2).directions[0].formats)
    assert isinstance(f, GruFormats) and not hasattr(f, "cell")
    assert f.datapath(2, 2).one == 1 << f.gate.frac


# -- where GRU support ends ----------------------------------------------------------------------
def test_hardware_supports_gru_as_lstm():
    """A GRU gets hardware (tests/hw/test_gru_engine.py, tests/sim/test_gru.py) on the same
    terms as an LSTM: a bidirectional one needs max_seq_len."""
    check_supported(random_model(3, 4, seed=1, cell_type="gru"), HardwareConfig(lanes=4))
    bidirectional = random_model(3, 4, bidirectional=True, seed=1, cell_type="gru")
    with pytest.raises(HardwareConfigError, match=r"max_seq_len"):
        check_supported(bidirectional, HardwareConfig(lanes=4))


def test_finetune_refuses_gru():
    from lstm_fpga.sw.qat import QatError, prepare_qat

    with pytest.raises(QatError, match=r"supports nn.LSTM models only, not nn.GRU"):
        prepare_qat(nn.GRU(3, 4), np.zeros((4, 3)))


def test_gru_preact_keeps_its_whole_range():
    """n's parts meet after the reset product: calibration does not cap a GRU's preact at
    the tables' [-8, 8) (an LSTM's it does), so data beyond it does not clamp."""
    from lstm_fpga.testing import random_float_model

    fm = random_float_model(6, 5, seed=3, scale=12.0, cell_type="gru")
    x = np.random.default_rng(3).uniform(-2, 2, (10, 4, 6))
    model = quantize_model(fm, calibrate(fm, x))
    assert calibrate(fm, x).range("l0.preact").abs_max > 8
    assert model.directions[0].formats.preact.int_bits > 3
    assert run_reference(model, quantize_input(model, x)).saturations.total == 0


def test_compare_refuses_a_float_model_of_the_other_cell():
    from lstm_fpga.sim.compare import _float_model
    from lstm_fpga.sw.torch_import import ModelImportError

    lstm = random_model(3, 4, seed=1)
    with pytest.raises(ModelImportError, match=r"the float model is an nn\.GRU but the hardware"):
        _float_model(lstm, nn.GRU(3, 4))


def test_overrides_name_the_gru_tensors():
    fm = from_module(torch_gru(3, 4)[0])
    x = np.random.default_rng(0).uniform(-1, 1, (5, 2, 3))
    model = quantize_model(fm, calibrate(fm, x, overrides={"l0.preact": "Q5.10"}))
    assert str(model.directions[0].formats.preact) == "Q5.10"
    with pytest.raises(CalibrationError) as error:
        calibrate(fm, x, overrides={"l0.cell": "Q4.11"})
    assert str(error.value) == (
        "unknown tensor 'l0.cell' in format overrides; valid names: x, l0.w_ih, l0.w_hh, "
        "l0.bias, l0.preact, l0.gate, l0.hidden"
    )
