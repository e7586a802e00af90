"""The integer reference against float PyTorch, within a bound derived from the formats."""

import numpy as np
import pytest
import torch

from lstm_fpga.sw.float_model import TensorRecorder
from lstm_fpga.sw.numerics import dequantize, quantize
from lstm_fpga.sw.reference import (
    SequenceTooLongError,
    cell_update,
    gate_accumulators,
    quantize_input,
    run_float,
    run_reference,
)
from tests.conftest import float_from_torch, quantize_with, torch_lstm

#: Activation tables are within 2^-10 of the exact functions (tests/sw/test_numerics.py).
TABLE_ERROR = 2.0**-10


def derived_error_bound(model, fm, x_float, lengths):
    """First-order worst-case propagation of every rounding in the numeric contract.

    Per direction and step, with e_x the input error, e_h/e_c the state errors and ||.|| the
    max-row-abs-sum norm:
      e_pre  = ||W_ih|| e_x + ||W_hh|| e_h                    (error carried in)
             + lsb_w/2 (|x|_1 + e_x I) + lsb_w/2 H + lsb_b/2   (weight/bias quantisation)
             + lsb_pre/2                                       (pre-activation rescale)
      e_sig  = e_pre / 4 + eps,  e_tanh = e_pre + eps          (slopes <= 1/4 and 1, tables)
      e_c   <- e_c + |c|max e_sig + e_tanh + e_sig + lsb_c/2   (f*c + i*g, |i|,|f|,|g| <= 1)
      e_h    = e_sig + e_c + eps + lsb_h/2                     (o * tanh(c))
    Layer k > 0 takes the previous layer's largest e_h as e_x. Returns the bound on |h|.
    """
    recorder = TensorRecorder()
    fm.forward(x_float, lengths=lengths, recorder=recorder)
    x_abs = np.abs(np.asarray(x_float))
    T = x_abs.shape[0]
    e_x = model.input_format.lsb / 2
    x_l1 = x_abs.sum(axis=-1).max()
    bound = 0.0
    for layer in range(model.num_layers):
        layer_bound = 0.0
        for reverse in (False, True)[: model.num_directions]:
            q = model.direction(layer, reverse).formats
            d = fm.direction(layer, reverse)
            n_ih = np.abs(d.w_ih).sum(axis=1).max()
            n_hh = np.abs(d.w_hh).sum(axis=1).max()
            c_max = np.abs(recorder.get(f"{d.name}.cell")).max()
            I, H = d.w_ih.shape[1], d.w_hh.shape[1]
            e_h = e_c = 0.0
            for _ in range(T):
                e_pre = (
                    n_ih * e_x
                    + n_hh * e_h
                    + q.w_ih.lsb / 2 * (x_l1 + e_x * I)
                    + q.w_hh.lsb / 2 * H
                    + q.bias.lsb / 2
                    + q.preact.lsb / 2
                )
                e_sig, e_tanh = e_pre / 4 + TABLE_ERROR, e_pre + TABLE_ERROR
                e_c = e_c + c_max * e_sig + e_tanh + e_sig + q.cell.lsb / 2
                e_h = e_sig + e_c + TABLE_ERROR + q.hidden.lsb / 2
                layer_bound = max(layer_bound, e_h)
        e_x, x_l1, bound = layer_bound, model.output_size, layer_bound
    return bound


CONFIGS = [
    # I, H, L, bidirectional, bias, batch_first
    (5, 11, 1, False, True, False),
    (5, 11, 2, True, True, True),
    (3, 4, 3, False, False, False),
    (8, 6, 2, True, False, True),
    (1, 1, 1, True, True, False),
]


@pytest.mark.parametrize(("I", "H", "L", "bidirectional", "bias", "batch_first"), CONFIGS)
def test_reference_tracks_torch_within_derived_bound(I, H, L, bidirectional, bias, batch_first):
    seed = I * 100 + H * 10 + L
    lstm, _ = torch_lstm(I, H, L, bidirectional, bias, seed=seed, batch_first=batch_first)
    fm = float_from_torch(lstm)
    model = quantize_with(fm)
    rng = np.random.default_rng(seed)
    T, B = 6, 3
    shape = (B, T, I) if batch_first else (T, B, I)
    x = rng.uniform(-2, 2, size=shape)
    expected, (h_t, _c_t) = lstm(torch.tensor(x, dtype=torch.float32))
    result = run_reference(model, quantize_input(model, x), batch_first=batch_first)
    assert result.output.shape == tuple(expected.shape)
    assert result.h_n.shape == tuple(h_t.shape) == result.c_n.shape
    assert result.saturations.total == 0
    output = dequantize(result.output, model.output_format)
    error = np.abs(output - expected.detach().numpy()).max()
    x_time_major = x.transpose(1, 0, 2) if batch_first else x
    bound = derived_error_bound(model, fm, x_time_major, None)
    assert error <= bound, (error, bound)
    h_n = dequantize(result.h_n, model.output_format)
    assert np.abs(h_n[-1] - h_t.detach().numpy()[-1]).max() <= bound


def test_float_path_matches_torch_for_unquantised_weights():
    lstm, linear = torch_lstm(5, 11, 2, True, True, head=3, seed=7)
    fm = float_from_torch(lstm, linear)
    x = np.random.default_rng(7).standard_normal((9, 4, 5))
    out, (h_n, c_n), head = fm.forward(x)
    t_out, (t_h, t_c) = lstm(torch.tensor(x, dtype=torch.float32))
    t_head = linear(t_out[-1])
    for ours, theirs in ((out, t_out), (h_n, t_h), (c_n, t_c), (head, t_head)):
        assert np.abs(ours - theirs.detach().numpy()).max() < 1e-5


def test_gate_order_regression():
    """Gates come from PyTorch's row blocks i, f, g, o, and the cell uses each correctly.

    At step 0 (h = c = 0) every gate is a function of ``W_ih x + b`` alone, so each recorded
    gate can be checked against its own row block; a model reading the blocks in another
    order differs by far more than the quantisation error."""
    I, H = 3, 4
    lstm, _ = torch_lstm(I, H, seed=3)
    with torch.no_grad():  # make the four gates clearly different
        lstm.bias_ih_l0.copy_(torch.tensor([2.0] * H + [-2.0] * H + [1.0] * H + [0.5] * H))
    x = np.random.default_rng(3).uniform(-1, 1, size=(5, 1, I))
    model = quantize_with(float_from_torch(lstm))
    recorder = TensorRecorder()
    run_reference(model, quantize_input(model, x), recorder=recorder)
    gates = recorder.get("l0.gate").reshape(-1, 5 * H)  # i, f, g, o, tanh(c) per step
    cells = recorder.get("l0.cell").reshape(-1, H)
    w = lstm.weight_ih_l0.detach().double().numpy()
    b = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach().double().numpy()
    pre = w @ x[0, 0] + b
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    expected = {
        "i": sigmoid(pre[:H]),
        "f": sigmoid(pre[H : 2 * H]),
        "g": np.tanh(pre[2 * H : 3 * H]),
        "o": sigmoid(pre[3 * H :]),
    }
    for k, name in enumerate("ifgo"):
        assert np.abs(gates[0, k * H : (k + 1) * H] - expected[name]).max() < 0.01, name
    i, f, g = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H]
    previous = np.vstack([np.zeros((1, H)), cells[:-1]])
    assert np.abs(cells - (f * previous + i * g)).max() < 0.01


def test_initial_state_in_and_final_state_out():
    lstm, _ = torch_lstm(4, 5, 2, True, True, seed=11)
    model = quantize_with(float_from_torch(lstm))
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, size=(7, 2, 4))
    h0 = rng.uniform(-0.5, 0.5, size=(4, 2, 5))
    c0 = rng.uniform(-1, 1, size=(4, 2, 5))
    h0_q = quantize(h0, model.output_format)
    c0_q = quantize(c0, model.cell_formats[0])
    result = run_reference(model, quantize_input(model, x), h0_q, c0_q)
    _t_out, (t_h, t_c) = lstm(
        torch.tensor(x, dtype=torch.float32),
        (torch.tensor(h0, dtype=torch.float32), torch.tensor(c0, dtype=torch.float32)),
    )
    assert np.abs(dequantize(result.h_n, model.output_format) - t_h.detach().numpy()).max() < 0.02
    assert np.abs(dequantize(result.c_n, model.cell_formats[0]) - t_c.detach().numpy()).max() < 0.02
    # The last forward step and the first reverse step are h_n.
    H = 5
    assert np.array_equal(result.output[-1, :, :H], result.h_n[2])
    assert np.array_equal(result.output[0, :, H:], result.h_n[3])
    zero_state = run_reference(model, quantize_input(model, x))
    assert not np.array_equal(zero_state.output, result.output)


def test_step_functions_compose_into_run_reference():
    lstm, _ = torch_lstm(5, 11, seed=5)
    model = quantize_with(float_from_torch(lstm))
    x = quantize_input(model, np.random.default_rng(5).uniform(-1, 1, size=(4, 2, 5)))
    d, dp = model.direction(0, False), model.datapath(0)
    h = np.zeros((2, 11), dtype=np.int64)
    c = np.zeros((2, 11), dtype=np.int64)
    outputs = []
    for t in range(4):
        h, c = cell_update(dp, gate_accumulators(dp, d, x[t], h), c)
        outputs.append(h)
    result = run_reference(model, x)
    assert np.array_equal(np.stack(outputs), result.output)
    assert np.array_equal(c, result.c_n[0])


def test_variable_lengths_equal_separate_runs():
    lstm, linear = torch_lstm(3, 6, 2, True, True, head=2, seed=9)
    model = quantize_with(float_from_torch(lstm, linear))
    x = quantize_input(model, np.random.default_rng(9).uniform(-1, 1, size=(6, 3, 3)))
    lengths = [6, 2, 4]
    batch = run_reference(model, x, lengths=lengths)
    for b, n in enumerate(lengths):
        alone = run_reference(model, x[:n, b])
        assert np.array_equal(batch.output[:n, b], alone.output)
        assert not np.any(batch.output[n:, b])
        assert np.array_equal(batch.h_n[:, b], alone.h_n)
        assert np.array_equal(batch.c_n[:, b], alone.c_n)
        assert np.array_equal(batch.head[b], alone.head)


def test_head_on_all_steps_and_last():
    lstm, linear = torch_lstm(4, 5, seed=2, head=3)
    fm = float_from_torch(lstm, linear)
    model = quantize_with(fm)
    x = np.random.default_rng(2).uniform(-1, 1, size=(2, 6, 4))
    xq = quantize_input(model, x)
    last = run_reference(model, xq, batch_first=True, head_on="last")
    every = run_reference(model, xq, batch_first=True, head_on="all")
    assert last.head.shape == (2, 3) and every.head.shape == (2, 6, 3)
    assert np.array_equal(every.head[:, -1], last.head)
    float_head = fm.forward(x, batch_first=True)[2]
    assert np.abs(dequantize(last.head, model.head.formats.output) - float_head).max() < 0.02


def test_float_path_of_quantised_model_is_close_to_integer_path():
    lstm, _ = torch_lstm(5, 11, 2, seed=4)
    model = quantize_with(float_from_torch(lstm))
    x = np.random.default_rng(4).uniform(-1, 1, size=(8, 2, 5))
    integer = run_reference(model, quantize_input(model, x))
    floating, _, _ = run_float(model, dequantize(quantize_input(model, x), model.input_format))
    assert np.abs(dequantize(integer.output, model.output_format) - floating).max() < 0.01


def test_bad_inputs_are_named():
    lstm, _ = torch_lstm(5, 4, seed=1)
    model = quantize_with(float_from_torch(lstm))
    with pytest.raises(TypeError) as info:
        run_reference(model, np.zeros((3, 5)))
    assert str(info.value) == (
        "input must be integers in format Q3.12; quantize floats first "
        "(lstm_fpga.sw.reference.quantize_input)"
    )
    with pytest.raises(ValueError) as info:
        run_reference(model, np.zeros((3, 4), dtype=np.int64))
    assert str(info.value) == "input has 4 features per time step but the model expects 5"
    with pytest.raises(SequenceTooLongError) as info:
        run_reference(model, np.zeros((9, 5), dtype=np.int64), max_seq_len=8)
    assert str(info.value) == (
        "a sequence has 9 steps but max_seq_len is 8; split the sequence or generate the "
        "hardware with a larger max_seq_len"
    )


def test_float_model_save_load(tmp_path):
    fm = float_from_torch(*torch_lstm(3, 4, 2, True, True, head=2, seed=8))
    loaded = type(fm).load(fm.save(tmp_path / "float.npz"))
    x = np.random.default_rng(8).standard_normal((5, 2, 3))
    for ours, theirs in zip(fm.forward(x)[0:1], loaded.forward(x)[0:1], strict=True):
        assert np.array_equal(ours, theirs)
    assert np.array_equal(fm.forward(x)[2], loaded.forward(x)[2])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad.npz: not a float model saved by lstm-fpga"):
        type(fm).load(tmp_path / "bad.npz")
