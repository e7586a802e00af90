"""PyTorch import: round trips against nn.LSTM, accepted layouts, and every refusal's message."""

import numpy as np
import pytest
import torch
from torch import nn

from lstm_fpga.sw.torch_import import (
    ModelImportError,
    from_file,
    from_module,
    from_state_dict,
    import_model,
    lstm_batch_first,
)

I, H = 5, 11


class Forecaster(nn.Module):
    """The usual shape: LSTM, dropout, Linear head on the last step."""

    def __init__(self, num_layers=2, bidirectional=True, bias=True, out=3, head_bias=True):
        super().__init__()
        self.lstm = nn.LSTM(
            I, H, num_layers, bias=bias, bidirectional=bidirectional, batch_first=True
        )
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(H * (2 if bidirectional else 1), out, bias=head_bias)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(self.dropout(out[:, -1]))


class Classifier(nn.Module):
    """Nested layout: the LSTM inside an encoder, the head inside a Sequential."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.ModuleDict({"rnn": nn.LSTM(I, H)})
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(H, 4))


def import_error(function, *args, **kwargs) -> str:
    """The message of the :class:`ModelImportError` that ``function(*args, **kwargs)`` raises."""
    with pytest.raises(ModelImportError) as info:
        function(*args, **kwargs)
    return str(info.value)


def seeded(module_factory, seed=0):
    torch.manual_seed(seed)
    return module_factory().eval()


def torch_outputs(lstm, x):
    with torch.no_grad():
        out, (h, c) = lstm(torch.as_tensor(x, dtype=next(lstm.parameters()).dtype))
    return out.double().numpy(), h.double().numpy(), c.double().numpy()


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_torch(num_layers, bidirectional, bias):
    torch.manual_seed(num_layers * 4 + bidirectional * 2 + bias)
    lstm = nn.LSTM(I, H, num_layers, bias=bias, bidirectional=bidirectional)
    fm = from_module(lstm)
    assert (fm.input_size, fm.hidden_size, fm.num_layers) == (I, H, num_layers)
    assert (fm.bidirectional, fm.bias) == (bidirectional, bias)
    x = np.random.default_rng(7).normal(size=(9, 3, I))
    out, (h, c), _ = fm.forward(x)
    # float64 torch: only summation order differs.
    t_out, t_h, t_c = torch_outputs(lstm.double(), x)
    np.testing.assert_allclose(out, t_out, atol=1e-12)
    np.testing.assert_allclose(h, t_h, atol=1e-12)
    np.testing.assert_allclose(c, t_c, atol=1e-12)
    # float32 torch (what users train): float32 rounding only.
    t_out, t_h, t_c = torch_outputs(lstm.float(), x)
    np.testing.assert_allclose(out, t_out, atol=1e-5)
    np.testing.assert_allclose(c, t_c, atol=1e-5)


def test_batch_first_does_not_change_weights():
    torch.manual_seed(3)
    a = nn.LSTM(I, H, 2, batch_first=False)
    b = nn.LSTM(I, H, 2, batch_first=True)
    b.load_state_dict(a.state_dict())
    fa, fb = from_module(a), from_module(b)
    for da, db in zip(fa.directions, fb.directions, strict=True):
        np.testing.assert_array_equal(da.w_ih, db.w_ih)
        np.testing.assert_array_equal(da.w_hh, db.w_hh)
        np.testing.assert_array_equal(da.bias, db.bias)
    assert (lstm_batch_first(a), lstm_batch_first(b)) == (False, True)
    assert lstm_batch_first(seeded(Forecaster)) is True
    assert lstm_batch_first(a.state_dict()) is False
    x = np.random.default_rng(1).normal(size=(3, 6, I))  # (B, T, I)
    out, _, _ = fb.forward(x, batch_first=True)
    t_out, _, _ = torch_outputs(b.double(), x)
    np.testing.assert_allclose(out, t_out, atol=1e-12)


@pytest.mark.parametrize("gate", range(4))
def test_gate_order(gate):
    """PyTorch's rows are i, f, g, o: perturbing one gate's rows moves exactly that block,
    and only the forget gate is invisible on the first step (it multiplies c_0 = 0)."""
    torch.manual_seed(11)
    lstm = nn.LSTM(I, H).double()
    base = from_module(lstm)
    rows = slice(gate * H, (gate + 1) * H)
    with torch.no_grad():
        lstm.bias_hh_l0[rows] += 1.5
        lstm.weight_ih_l0[rows] *= -1.0
    moved = from_module(lstm)
    (b0,), (m0,) = base.directions, moved.directions
    changed = np.flatnonzero(np.any(b0.w_ih != m0.w_ih, axis=1))
    np.testing.assert_array_equal(changed, np.arange(rows.start, rows.stop))
    np.testing.assert_allclose(m0.bias - b0.bias, np.where(np.arange(4 * H) // H == gate, 1.5, 0))
    x = np.random.default_rng(2).normal(size=(4, 2, I))
    out_base, _, _ = base.forward(x)
    out_moved, _, _ = moved.forward(x)
    first_step_changed = not np.allclose(out_base[0], out_moved[0])
    assert first_step_changed == (gate != 1)  # f only acts through c_{t-1}
    assert not np.allclose(out_base[1:], out_moved[1:])
    np.testing.assert_allclose(out_moved, torch_outputs(lstm, x)[0], atol=1e-12)


@pytest.mark.parametrize(
    ("factory", "lstm_of", "head_of"),
    [
        (Forecaster, lambda m: m.lstm, lambda m: m.fc),
        (lambda: Forecaster(1, False, False, 1, False), lambda m: m.lstm, lambda m: m.fc),
        (Classifier, lambda m: m.encoder["rnn"], lambda m: m.head[1]),
    ],
)
def test_wrapper_module_and_its_state_dict_file(tmp_path, factory, lstm_of, head_of):
    model = seeded(factory)
    lstm, fc = lstm_of(model), head_of(model)
    x = np.random.default_rng(5).normal(size=(7, 2, I))
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    imported = [from_module(model), from_file(path), import_model(str(path)), import_model(model)]
    imported.append(from_module(lstm, head=fc))
    batch_first = lstm.batch_first
    x_in = x.transpose(1, 0, 2) if batch_first else x
    t_out, t_h, _ = torch_outputs(lstm.double(), x_in)
    last = t_out[:, -1] if batch_first else t_out[-1]
    with torch.no_grad():
        t_head = fc.double()(torch.as_tensor(last)).numpy()
    for fm in imported:
        assert fm.head is not None
        out, (h, _), head = fm.forward(x_in, batch_first=batch_first)
        np.testing.assert_allclose(out, t_out, atol=1e-12)
        np.testing.assert_allclose(h, t_h, atol=1e-12)
        np.testing.assert_allclose(head, t_head, atol=1e-12)


@pytest.mark.parametrize("prefix", ["", "lstm.", "module.model.encoder."])
def test_state_dict_prefixes(tmp_path, prefix):
    torch.manual_seed(4)
    lstm = nn.LSTM(I, H, 2, bidirectional=True)
    head = nn.Linear(2 * H, 2)
    state = {prefix + k: v for k, v in lstm.state_dict().items()}
    state |= {"out_proj.weight": head.weight.detach(), "out_proj.bias": head.bias.detach()}
    torch.save(state, tmp_path / "w.pth")
    for fm in (from_state_dict(state), from_file(tmp_path / "w.pth")):
        assert (fm.num_layers, fm.bidirectional, fm.bias) == (2, True, True)
        np.testing.assert_array_equal(fm.head.weight, head.weight.detach().double().numpy())
        d = fm.direction(1, True)
        expected = lstm.state_dict()["bias_ih_l1_reverse"] + lstm.state_dict()["bias_hh_l1_reverse"]
        np.testing.assert_allclose(d.bias, expected.double().numpy(), rtol=1e-7)


def test_half_precision_and_numpy_values_are_accepted():
    torch.manual_seed(9)
    lstm = nn.LSTM(I, H)
    half = {k: v.to(torch.bfloat16) for k, v in lstm.state_dict().items()}
    fm = from_state_dict(half)
    np.testing.assert_array_equal(fm.directions[0].w_hh, half["weight_hh_l0"].double().numpy())
    as_numpy = {k: v.numpy() for k, v in lstm.state_dict().items()}
    np.testing.assert_array_equal(
        from_state_dict(as_numpy).directions[0].w_ih, lstm.weight_ih_l0.detach().double().numpy()
    )


# -- refusals: every message word for word ---------------------------------------------------
def lstm_state(num_layers=2, bidirectional=False, bias=True, seed=0):
    torch.manual_seed(seed)
    return dict(nn.LSTM(I, H, num_layers, bias=bias, bidirectional=bidirectional).state_dict())


def edited(change, **kwargs):
    state = lstm_state(**kwargs)
    change(state)
    return state


class TwoLstms(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.LSTM(I, H), nn.LSTM(H, H)


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc1, self.fc2 = nn.LSTM(I, H), nn.Linear(H, H), nn.Linear(H, 1)


class WithRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.head = nn.LSTM(I, H), nn.Sequential(nn.ReLU(), nn.Linear(H, 1))


class WithGru(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.rnn = nn.LSTM(I, H), nn.GRU(H, H)


class WithScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(I, H)
        self.scale = nn.Parameter(torch.ones(1))


class WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(I, H)
        self.register_buffer("mean", torch.zeros(I))


class NoLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(I, 1)


class WrongHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(I, H, bidirectional=True), nn.Linear(H, 1)


ONLY_LSTM = "lstm-fpga imports nn.LSTM and nn.GRU only"
FOUR_GATES = "lstm-fpga imports nn.LSTM (4 gates: i, f, g, o) and nn.GRU (3 gates: r, z, n)"
ONE_LSTM_ONE_HEAD = (
    "a state_dict may hold one nn.LSTM or nn.GRU (keys like 'weight_ih_l0') and one nn.Linear "
    "head "
    "(keys like 'fc.weight', 'fc.bias')"
)
FLOAT = "expected a floating-point tensor (float16, bfloat16, float32 or float64)"
EXPLICIT = "Import the parts explicitly: from_module(model.<lstm>, head=model.<linear>)"
UNKNOWN_USE = "lstm-fpga cannot tell how forward() uses it"


def nan_at(key, index, value):
    def change(state):
        state[key] = state[key].clone()
        state[key].view(-1)[index] = value

    return change


MODULE_ERRORS = [
    (lambda: nn.RNN(I, H), f"the module is an nn.RNN; {ONLY_LSTM} (RNN is not supported)"),
    (
        lambda: nn.LSTMCell(I, H),
        f"the module is an nn.LSTMCell; {ONLY_LSTM} (LSTMCell is not supported)",
    ),
    (
        WithGru,
        "the WithGru holds 2 nn.LSTM/nn.GRU modules ('lstm', 'rnn'); lstm-fpga imports exactly "
        "one: pass it with from_module(model.<lstm>)",
    ),
    (
        TwoLstms,
        "the TwoLstms holds 2 nn.LSTM/nn.GRU modules ('a', 'b'); lstm-fpga imports exactly "
        "one: pass it with from_module(model.<lstm>)",
    ),
    (
        TwoHeads,
        "the TwoHeads holds 2 nn.Linear modules ('fc1', 'fc2'); the head is ambiguous: pass it "
        "with from_module(model.<lstm>, head=model.<linear>)",
    ),
    (
        WithRelu,
        "submodule 'head.0' is an nn.ReLU; a model may hold only one nn.LSTM or nn.GRU, one "
        "nn.Linear head, dropout and containers, because lstm-fpga does not inspect forward(). "
        f"{EXPLICIT}",
    ),
    (
        WithScale,
        f"parameter 'scale' belongs to neither the nn.LSTM nor the nn.Linear head; {UNKNOWN_USE}",
    ),
    (
        WithBuffer,
        f"buffer 'mean' belongs to neither the nn.LSTM nor the nn.Linear head; {UNKNOWN_USE}",
    ),
    (NoLstm, "the NoLstm holds no nn.LSTM or nn.GRU"),
    (
        WrongHead,
        "key 'fc.weight' has shape (1, 11), expected (1, 22): the nn.Linear head must take the "
        "LSTM's 22 output features",
    ),
]


@pytest.mark.parametrize(("factory", "message"), MODULE_ERRORS)
def test_module_errors(factory, message):
    assert import_error(from_module, factory()) == message


def test_explicit_head_errors():
    assert (
        import_error(from_module, nn.LSTM(I, H), head=nn.Conv1d(H, 1, 1))
        == "head must be an nn.Linear, not a Conv1d"
    )
    assert (
        import_error(from_module, nn.RNN(I, H), head=nn.Linear(H, 1))
        == f"the module is an nn.RNN; {ONLY_LSTM} (RNN is not supported)"
    )
    assert (
        import_error(from_module, Forecaster(), head=nn.Linear(H, 1))
        == "head= is only accepted with an nn.LSTM or nn.GRU, not with a Forecaster"
    )
    assert import_error(from_module, nn.LSTM(I, H), head=nn.Linear(H + 1, 2)) == (
        "key 'head.weight' has shape (2, 12), expected (2, 11): the nn.Linear head must take "
        "the LSTM's 11 output features"
    )


STATE_ERRORS = [
    (
        edited(lambda s: s.update(weight_hr_l0=torch.zeros(H, 3))),
        "key 'weight_hr_l0' has shape (11, 3), expected (proj_size, hidden_size) with "
        "0 < proj_size < hidden_size",
    ),
    (
        dict(nn.RNN(I, H).state_dict()),
        f"key 'weight_hh_l0' has shape (11, 11): 1 gate per unit is an nn.RNN; {FOUR_GATES}",
    ),
    (
        edited(lambda s: s.update(weight_hh_l0=torch.zeros(40, 8))),
        "key 'weight_hh_l0' has shape (40, 8), expected (4*hidden_size, hidden_size) for an "
        "nn.LSTM or (3*hidden_size, hidden_size) for an nn.GRU",
    ),
    (
        edited(lambda s: s.pop("bias_hh_l1")),
        "missing key(s) 'bias_hh_l1': the other keys describe an nn.LSTM with num_layers=2, "
        "bidirectional=False, bias=True",
    ),
    (
        edited(lambda s: s.pop("weight_hh_l1_reverse"), bidirectional=True),
        "missing key(s) 'weight_hh_l1_reverse': the other keys describe an nn.LSTM with "
        "num_layers=2, bidirectional=True, bias=True",
    ),
    (
        edited(
            lambda s: [s.pop(k) for k in ("weight_ih_l1", "weight_hh_l1")],
            num_layers=3,
            bias=False,
        ),
        "missing key(s) 'weight_ih_l1', 'weight_hh_l1': the other keys describe an nn.LSTM "
        "with num_layers=3, bidirectional=False, bias=False",
    ),
    (
        edited(lambda s: s.pop("weight_hh_l0")),
        "missing key 'weight_hh_l0': every nn.LSTM and nn.GRU has it (layer 0, forward direction)",
    ),
    (
        edited(lambda s: s.update({"bn.running_mean": torch.zeros(H)})),
        f"unexpected key 'bn.running_mean': {ONE_LSTM_ONE_HEAD}",
    ),
    (
        edited(lambda s: s.update({"weight": torch.zeros(1, H)})),
        f"unexpected key 'weight': {ONE_LSTM_ONE_HEAD}",
    ),
    (
        {f"lstm.{k}": v for k, v in lstm_state(1).items()} | {"lstm.weight": torch.zeros(2, H)},
        "unexpected key 'lstm.weight': a state_dict may hold one nn.LSTM or nn.GRU (keys like "
        "'lstm.weight_ih_l0') and one nn.Linear head (keys like 'fc.weight', 'fc.bias')",
    ),
    (
        {f"enc.{k}": v for k, v in lstm_state(1).items()}
        | {f"dec.{k}": v for k, v in lstm_state(1).items()},
        "found nn.LSTM/nn.GRU parameters under 2 prefixes ('enc.', 'dec.'); lstm-fpga imports "
        "exactly one nn.LSTM or nn.GRU",
    ),
    (
        lstm_state(1) | {"fc.weight": torch.zeros(2, H), "out.weight": torch.zeros(1, 2)},
        "found nn.Linear-like parameters under 2 prefixes ('fc.', 'out.'); lstm-fpga imports "
        "at most one nn.Linear head",
    ),
    (
        lstm_state(1) | {"fc.bias": torch.zeros(2)},
        "missing key 'fc.weight': the head has a bias but no weight",
    ),
    (
        edited(lambda s: s.update(weight_ih_l1=torch.zeros(44, 12))),
        "key 'weight_ih_l1' has shape (44, 12), expected (44, 11)",
    ),
    (
        edited(lambda s: s.update(bias_ih_l0=torch.zeros(44, 1))),
        "key 'bias_ih_l0' has shape (44, 1), expected (44,)",
    ),
    (
        lstm_state(1) | {"norm.weight": torch.ones(H), "norm.bias": torch.zeros(H)},
        "key 'norm.weight' has shape (11,), expected (out_features, 11): the nn.Linear head "
        "must take the LSTM's 11 output features",
    ),
    (
        lstm_state(1) | {"fc.weight": torch.zeros(2, H), "fc.bias": torch.zeros(3)},
        "key 'fc.bias' has shape (3,), expected (2,)",
    ),
    (
        edited(lambda s: s.update(weight_ih_l0=s["weight_ih_l0"].to(torch.int8))),
        f"key 'weight_ih_l0' has dtype torch.int8, {FLOAT}",
    ),
    (
        edited(lambda s: s.update(bias_hh_l1=np.zeros(44, dtype=np.int32))),
        f"key 'bias_hh_l1' has dtype int32, {FLOAT}",
    ),
    (
        lstm_state(1) | {"fc.weight": torch.zeros(2, H, dtype=torch.complex64)},
        f"key 'fc.weight' has dtype torch.complex64, {FLOAT}",
    ),
    (
        edited(nan_at("weight_hh_l1", 17, float("nan"))),
        "key 'weight_hh_l1' holds 1 NaN or infinite value(s); lstm-fpga needs finite weights",
    ),
    (
        edited(nan_at("bias_ih_l0", 3, float("-inf"))),
        "key 'bias_ih_l0' holds 1 NaN or infinite value(s); lstm-fpga needs finite weights",
    ),
    (
        lstm_state(1) | {"fc.weight": torch.full((2, H), float("inf"))},
        "key 'fc.weight' holds 22 NaN or infinite value(s); lstm-fpga needs finite weights",
    ),
    ({}, "the state_dict is empty: it holds no nn.LSTM parameters"),
    (
        {"fc.weight": torch.zeros(1, H), "fc.bias": torch.zeros(1)},
        "no nn.LSTM or nn.GRU parameters found (keys: 'fc.weight', 'fc.bias'); expected keys "
        "like "
        "'weight_ih_l0' or 'lstm.weight_ih_l0'",
    ),
    (
        {"epoch": 3, "model": lstm_state(1)},
        "key 'model' holds a nested dict, not a tensor: this looks like a training checkpoint; "
        "import checkpoint['model'] (the model's state_dict) instead",
    ),
    (
        lstm_state(1) | {"step": 3},
        "key 'step' holds a Python int, not a tensor; a state_dict maps parameter names to tensors",
    ),
    ({0: torch.zeros(1)}, "state_dict keys must be strings, got 0"),
]


@pytest.mark.parametrize(("state", "message"), STATE_ERRORS)
def test_state_dict_errors(state, message):
    assert import_error(from_state_dict, state) == message


def test_file_errors(tmp_path):
    missing = tmp_path / "missing.pt"
    assert import_error(from_file, missing) == f"{missing}: no such file"

    pickled = tmp_path / "whole_module.pt"
    torch.save(seeded(Forecaster), pickled)  # pickles the class: refused by weights_only
    assert import_error(from_file, pickled) == (
        f"{pickled}: not a plain state_dict: it pickles Python objects (for example a whole "
        f"module saved with torch.save(model)), which torch.load(weights_only=True) refuses "
        f"because loading them can run code. Save the weights only: "
        f"torch.save(model.state_dict(), path)"
    )

    for name, content in (("junk.pt", b"hello world"), ("empty.pt", b"")):
        junk = tmp_path / name
        junk.write_bytes(content)
        assert import_error(from_file, junk) == (
            f"{junk}: not a file torch.load can read (is it a PyTorch .pt/.pth file?)"
        )

    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    assert import_error(from_file, tensor) == (
        f"{tensor}: holds an object of type Tensor, not a state_dict; save the weights with "
        f"torch.save(model.state_dict(), path)"
    )

    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model_state_dict": seeded(Forecaster).state_dict()}, checkpoint)
    assert import_error(from_file, checkpoint) == (
        f"{checkpoint}: key 'model_state_dict' holds a nested OrderedDict, not a tensor: this "
        f"looks like a training checkpoint; import checkpoint['model_state_dict'] (the model's "
        f"state_dict) instead"
    )

    rnn = tmp_path / "rnn.pt"
    torch.save(nn.RNN(I, H).state_dict(), rnn)
    assert import_error(import_model, rnn) == (
        f"{rnn}: key 'weight_hh_l0' has shape (11, 11): 1 gate per unit is an nn.RNN; {FOUR_GATES}"
    )


def test_import_model_rejects_other_objects():
    assert import_error(import_model, 42) == (
        "cannot import an object of type int: pass an nn.LSTM, a module holding one, a "
        "state_dict or the path of a state_dict file (.pt/.pth)"
    )
    assert import_error(from_state_dict, [("weight_ih_l0", torch.zeros(4))]) == (
        "a state_dict must be a mapping of parameter names to tensors, not a list"
    )
    assert issubclass(ModelImportError, ValueError)
