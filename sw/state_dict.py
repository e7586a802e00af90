"""The state_dict parser of the PyTorch import: keys and shapes to a :class:`FloatLstm`.

Finds one ``nn.LSTM``'s or ``nn.GRU``'s parameters (and at most one ``nn.Linear`` head) in a
state_dict, infers the cell type (4 or 3 gate blocks in ``weight_hh_l0``), ``num_layers``,
``bidirectional``, ``bias`` and the sizes, and checks every key, dtype, shape and value;
:mod:`.torch_import` calls it for modules, mappings and files. A state_dict with
``attention.`` keys is the attention classifier's layout (:data:`ATTENTION_LAYOUT`) and
nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from .float_model import FloatAttention, FloatDirection, FloatHead, FloatLstm
from .shape import CellType, lstm_shape

__all__ = ["ATTENTION_KEYS", "ATTENTION_LAYOUT", "ModelImportError", "parse_state_dict"]


class ModelImportError(ValueError):
    """A model or weight file cannot be imported; the message names the key and the fix."""


# A parameter of an nn.LSTM: optional dotted module prefix, kind, layer, direction.
_LSTM_KEY = re.compile(
    r"^(?P<prefix>(?:[^.]+\.)*)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"_l(?P<layer>\d+)(?P<reverse>_reverse)?$"
)
# A parameter of an nn.Linear: a non-empty dotted prefix, then weight or bias.
_LINEAR_KEY = re.compile(r"^(?P<prefix>(?:[^.]+\.)+)(?P<kind>weight|bias)$")
_FLOAT_DTYPES = "float16, bfloat16, float32 or float64"

#: The attention pooling keys of an attention classifier's state_dict.
ATTENTION_KEYS = ("attention.W.weight", "attention.W.bias", "attention.v.weight")
#: The one attention layout lstm-fpga imports, for messages (docs/attention.md).
ATTENTION_LAYOUT = (
    "lstm-fpga imports attention pooling in one layout: keys 'lstm.*' (one nn.LSTM or nn.GRU), "
    "'attention.W.weight' (A, F), 'attention.W.bias' (A,), 'attention.v.weight' (1, A) and "
    "'fc.weight' (O, F) with optional 'fc.bias' (O,), F the LSTM's output features "
    "(lstm_fpga.sw.modules.AttentionClassifier; docs/attention.md)"
)


def parse_state_dict(state_dict: Mapping) -> FloatLstm:
    """A non-empty mapping of parameter names to tensors as a :class:`FloatLstm`."""
    arrays = _tensors(state_dict)
    if any(key.startswith("attention.") for key in arrays):
        return _parse_attention(arrays)
    layout = _parse_layout(arrays)
    for key in layout.keys():
        _check_dtype(key, arrays[key])
    shape = _infer_shape(layout, arrays)
    _check_missing(layout, shape)
    _check_shapes(layout, shape, arrays)
    for key in layout.keys():
        _check_finite(key, arrays[key])
    return _build(layout, shape, arrays)


def _tensors(state_dict: Mapping) -> dict[str, torch.Tensor | np.ndarray]:
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise ModelImportError(f"state_dict keys must be strings, got {key!r}")
        if isinstance(value, Mapping):
            raise ModelImportError(
                f"key {key!r} holds a nested {type(value).__name__}, not a tensor: this looks "
                f"like a training checkpoint; import checkpoint[{key!r}] (the model's "
                f"state_dict) instead"
            )
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor | np.ndarray):
            raise ModelImportError(
                f"key {key!r} holds a Python {type(value).__name__}, not a tensor; a state_dict "
                f"maps parameter names to tensors"
            )
        if isinstance(value, torch.Tensor) and value.is_meta:
            raise ModelImportError(
                f"key {key!r} is a meta tensor (a shape without values): save the state_dict "
                f"of a model whose weights are loaded"
            )
        if isinstance(value, torch.Tensor) and value.layout != torch.strided:
            raise ModelImportError(
                f"key {key!r} is a {value.layout} tensor; save dense weights "
                f"(tensor.to_dense()) in the state_dict"
            )
    return dict(state_dict)


@dataclass(frozen=True)
class _Layout:
    """Where the LSTM and head parameters sit in a state_dict."""

    prefix: str
    lstm: dict[tuple[str, int, bool], str]  # (kind, layer, reverse) -> key
    head_prefix: str | None
    head_weight: str | None
    head_bias: str | None

    def keys(self) -> list[str]:
        keys = list(self.lstm.values())
        keys += [k for k in (self.head_weight, self.head_bias) if k is not None]
        return keys


@dataclass(frozen=True)
class _Shape:
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    cell_type: CellType = CellType.LSTM
    proj_size: int = 0


def _parse_layout(arrays: Mapping[str, object]) -> _Layout:
    lstm_keys: dict[str, dict[tuple[str, int, bool], str]] = {}
    linear_keys: dict[str, dict[str, str]] = {}
    unknown = []
    for key in arrays:
        match = _LSTM_KEY.match(key)
        if match is not None:
            part = (match["kind"], int(match["layer"]), match["reverse"] is not None)
            lstm_keys.setdefault(match["prefix"], {})[part] = key
            continue
        match = _LINEAR_KEY.match(key)
        if match is not None:
            linear_keys.setdefault(match["prefix"], {})[match["kind"]] = key
            continue
        unknown.append(key)
    if not lstm_keys:
        shown = ", ".join(repr(k) for k in list(arrays)[:4])
        raise ModelImportError(
            f"no nn.LSTM or nn.GRU parameters found (keys: {shown}"
            f"{', ...' if len(arrays) > 4 else ''}); expected keys like 'weight_ih_l0' or "
            f"'lstm.weight_ih_l0'"
        )
    if len(lstm_keys) > 1:
        raise _several_prefixes("nn.LSTM/nn.GRU", lstm_keys, "exactly one nn.LSTM or nn.GRU")
    ((prefix, lstm),) = lstm_keys.items()
    # A key like 'lstm.weight' shares the LSTM's prefix: it is not a Linear head.
    if prefix and prefix in linear_keys:
        unknown += list(linear_keys.pop(prefix).values())
    if unknown:
        raise ModelImportError(
            f"unexpected key {unknown[0]!r}: a state_dict may hold one nn.LSTM or nn.GRU (keys "
            f"like '{prefix}weight_ih_l0') and one nn.Linear head (keys like 'fc.weight', "
            f"'fc.bias')"
        )
    if len(linear_keys) > 1:
        raise _several_prefixes("nn.Linear-like", linear_keys, "at most one nn.Linear head")
    head_prefix = head_weight = head_bias = None
    if linear_keys:
        ((head_prefix, head),) = linear_keys.items()
        head_weight = head.get("weight")
        head_bias = head.get("bias")
        if head_weight is None:
            raise ModelImportError(
                f"missing key {head_prefix + 'weight'!r}: the head has a bias but no weight"
            )
    return _Layout(prefix, lstm, head_prefix, head_weight, head_bias)


def _several_prefixes(what: str, prefixes, allowed: str) -> ModelImportError:
    """The error for parameters of ``what`` found under more than one key prefix."""
    names = ", ".join(repr(p) for p in prefixes)
    return ModelImportError(
        f"found {what} parameters under {len(prefixes)} prefixes ({names}); "
        f"lstm-fpga imports {allowed}"
    )


def _dtype_name(array) -> str:
    return str(array.dtype)


def _is_float(array) -> bool:
    if isinstance(array, torch.Tensor):
        return array.dtype.is_floating_point
    return array.dtype.kind == "f"


def _check_dtype(key: str, array) -> None:
    if not _is_float(array):
        raise ModelImportError(
            f"key {key!r} has dtype {_dtype_name(array)}, expected a floating-point tensor "
            f"({_FLOAT_DTYPES})"
        )


def _as_float64(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(array, dtype=np.float64)


def _check_finite(key: str, array) -> None:
    values = _as_float64(array)
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ModelImportError(
            f"key {key!r} holds {bad} NaN or infinite value(s); lstm-fpga needs finite weights"
        )


def _shape_of(array) -> tuple[int, ...]:
    return tuple(int(n) for n in array.shape)


def _infer_shape(layout: _Layout, arrays) -> _Shape:
    p = layout.prefix
    hh_key = layout.lstm.get(("weight_hh", 0, False))
    ih_key = layout.lstm.get(("weight_ih", 0, False))
    for key, name in ((hh_key, "weight_hh_l0"), (ih_key, "weight_ih_l0")):
        if key is None:
            raise ModelImportError(
                f"missing key {p + name!r}: every nn.LSTM and nn.GRU has it (layer 0, forward "
                f"direction)"
            )
    hh = _shape_of(arrays[hh_key])
    hr_key = layout.lstm.get(("weight_hr", 0, False))
    if hr_key is not None:
        return _infer_projected_shape(layout, arrays, hh_key, ih_key, hr_key)
    if len(hh) != 2 or hh[1] < 1 or hh[0] % hh[1]:
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}, expected (4*hidden_size, hidden_size) for an "
            f"nn.LSTM or (3*hidden_size, hidden_size) for an nn.GRU"
        )
    gates = hh[0] // hh[1]
    if gates == 1:
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}: 1 gate per unit is an nn.RNN; lstm-fpga imports "
            f"nn.LSTM (4 gates: i, f, g, o) and nn.GRU (3 gates: r, z, n)"
        )
    if gates not in (3, 4):
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}, expected (4*hidden_size, hidden_size) for an "
            f"nn.LSTM or (3*hidden_size, hidden_size) for an nn.GRU"
        )
    cell_type = CellType.LSTM if gates == 4 else CellType.GRU
    return _layered_shape(layout, arrays, ih_key, hh[0], hidden_size=hh[1], cell_type=cell_type)


def _layered_shape(layout: _Layout, arrays, ih_key, rows: int, **fields) -> _Shape:
    """The ``_Shape`` of a stack whose layer-0 input matrix is ``ih_key`` (``rows`` rows):
    input size from it, layers, directions and bias from the keys, the rest from ``fields``."""
    ih = _shape_of(arrays[ih_key])
    if len(ih) != 2 or ih[1] < 1:
        raise ModelImportError(f"key {ih_key!r} has shape {ih}, expected ({rows}, input_size)")
    parts = layout.lstm.keys()
    return _Shape(
        input_size=ih[1],
        num_layers=1 + max(layer for _, layer, _ in parts),
        bidirectional=any(reverse for _, _, reverse in parts),
        bias=any(kind.startswith("bias") for kind, _, _ in parts),
        **fields,
    )


def _infer_projected_shape(layout: _Layout, arrays, hh_key, ih_key, hr_key) -> _Shape:
    """The shape of an ``nn.LSTM(proj_size=R)``: ``weight_hr_l0`` is (R, H), ``weight_hh_l0``
    (4H, R)."""
    hr, hh = _shape_of(arrays[hr_key]), _shape_of(arrays[hh_key])
    if len(hr) != 2 or not 1 <= hr[0] < hr[1]:
        raise ModelImportError(
            f"key {hr_key!r} has shape {hr}, expected (proj_size, hidden_size) with "
            f"0 < proj_size < hidden_size"
        )
    R, H = hr
    if hh == (3 * H, R):
        raise ModelImportError(
            f"key {hr_key!r} is a projection, which only nn.LSTM has, but {hh_key!r} has "
            f"shape {hh} (an nn.GRU's 3*hidden_size rows)"
        )
    if hh != (4 * H, R):
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}, expected {(4 * H, R)}: an nn.LSTM with "
            f"hidden_size={H}, proj_size={R} (from {hr_key!r})"
        )
    return _layered_shape(layout, arrays, ih_key, hh[0], hidden_size=H, proj_size=R)


def _expected_parts(shape: _Shape):
    """(kind, layer, reverse) -> expected tensor shape, in PyTorch's key order."""
    H, D = shape.hidden_size, 2 if shape.bidirectional else 1
    R = shape.proj_size or H  # features of h_t
    G = shape.cell_type.gates
    kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if shape.bias else ())
    kinds += ("weight_hr",) if shape.proj_size else ()
    expected = {}
    for layer in range(shape.num_layers):
        for reverse in (False, True)[:D]:
            in_size = shape.input_size if layer == 0 else D * R
            for kind in kinds:
                expected[(kind, layer, reverse)] = {
                    "weight_ih": (G * H, in_size),
                    "weight_hh": (G * H, R),
                    "bias_ih": (G * H,),
                    "bias_hh": (G * H,),
                    "weight_hr": (shape.proj_size, H),
                }[kind]
    return expected


def _key_name(prefix: str, part: tuple[str, int, bool]) -> str:
    kind, layer, reverse = part
    return f"{prefix}{kind}_l{layer}{'_reverse' if reverse else ''}"


def _check_missing(layout: _Layout, shape: _Shape) -> None:
    expected = _expected_parts(shape)
    missing = [_key_name(layout.prefix, part) for part in expected if part not in layout.lstm]
    extra = [key for part, key in layout.lstm.items() if part not in expected]
    if extra and not missing:  # e.g. weight_hr_l1 without weight_hr_l0
        raise ModelImportError(
            f"unexpected key {extra[0]!r}: the other keys describe an {shape.cell_type.module} "
            f"with num_layers={shape.num_layers}, bidirectional={shape.bidirectional}, "
            f"bias={shape.bias}, proj_size={shape.proj_size}"
        )
    if missing:
        names = ", ".join(repr(k) for k in missing)
        raise ModelImportError(
            f"missing key(s) {names}: the other keys describe an {shape.cell_type.module} with "
            f"num_layers="
            f"{shape.num_layers}, bidirectional={shape.bidirectional}, bias={shape.bias}"
            + (f", proj_size={shape.proj_size}" if shape.proj_size else "")
        )


def _check_shapes(layout: _Layout, shape: _Shape, arrays) -> None:
    for part, expected in _expected_parts(shape).items():
        key = layout.lstm[part]
        got = _shape_of(arrays[key])
        if got != expected:
            raise ModelImportError(f"key {key!r} has shape {got}, expected {expected}")
    if layout.head_weight is None:
        return
    features = (2 if shape.bidirectional else 1) * (shape.proj_size or shape.hidden_size)
    got = _shape_of(arrays[layout.head_weight])
    if len(got) != 2 or got[1] != features:
        out = got[0] if len(got) == 2 else "out_features"
        raise ModelImportError(
            f"key {layout.head_weight!r} has shape {got}, expected ({out}, {features}): the "
            f"nn.Linear head must take the {shape.cell_type.module[3:]}'s {features} output "
            f"features"
        )
    if layout.head_bias is not None:
        got_bias = _shape_of(arrays[layout.head_bias])
        if got_bias != (got[0],):
            raise ModelImportError(
                f"key {layout.head_bias!r} has shape {got_bias}, expected {(got[0],)}"
            )


def _build(layout: _Layout, shape: _Shape, arrays) -> FloatLstm:
    H = shape.hidden_size
    directions = []
    for layer in range(shape.num_layers):
        for reverse in (False, True)[: 2 if shape.bidirectional else 1]:

            def get(kind, layer=layer, reverse=reverse):
                return _as_float64(arrays[layout.lstm[(kind, layer, reverse)]])

            if shape.cell_type is CellType.GRU:
                bias = _gru_bias(get("bias_ih"), get("bias_hh")) if shape.bias else np.zeros(4 * H)
            else:
                bias = get("bias_ih") + get("bias_hh") if shape.bias else np.zeros(4 * H)
            w_hr = get("weight_hr") if shape.proj_size else None
            directions.append(
                FloatDirection(layer, reverse, get("weight_ih"), get("weight_hh"), bias, w_hr)
            )
    head = None
    if layout.head_weight is not None:
        weight = _as_float64(arrays[layout.head_weight])
        if layout.head_bias is not None:
            bias = _as_float64(arrays[layout.head_bias])
        else:
            bias = np.zeros(weight.shape[0])
        head = FloatHead(weight, bias)
    return FloatLstm(
        **lstm_shape(shape), directions=tuple(directions), head=head, cell_type=shape.cell_type
    )


def _gru_bias(b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """A GRU's ``4H`` bias: ``[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]`` (``b_hn`` is
    multiplied by the reset gate, so it cannot be folded into ``b_in``)."""
    H = b_ih.shape[0] // 3
    return np.concatenate([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :], b_hh[2 * H :]])


def _parse_attention(arrays: dict) -> FloatLstm:
    """An attention classifier's state_dict (:data:`ATTENTION_LAYOUT`) as a :class:`FloatLstm`
    with ``attention``; any other key, a missing one or a misshapen one is refused naming the
    layout."""
    for key in arrays:
        if key.startswith("attention.") and key not in ATTENTION_KEYS:
            raise ModelImportError(f"unexpected key {key!r}: {ATTENTION_LAYOUT}")
        if not key.startswith(("attention.", "lstm.", "fc.")):
            raise ModelImportError(f"unexpected key {key!r}: {ATTENTION_LAYOUT}")
    for key in (*ATTENTION_KEYS, "fc.weight"):
        if key not in arrays:
            raise ModelImportError(f"missing key {key!r}: {ATTENTION_LAYOUT}")
    rest = {key: value for key, value in arrays.items() if not key.startswith("attention.")}
    layout = _parse_layout(rest)
    if layout.prefix != "lstm." or layout.head_prefix != "fc.":
        raise ModelImportError(
            f"the recurrent parameters are under {layout.prefix!r}, not 'lstm.': {ATTENTION_LAYOUT}"
        )
    for key in (*layout.keys(), *ATTENTION_KEYS):
        _check_dtype(key, arrays[key])
    shape = _infer_shape(layout, rest)
    _check_missing(layout, shape)
    _check_shapes(layout, shape, rest)
    features = (2 if shape.bidirectional else 1) * (shape.proj_size or shape.hidden_size)
    w = _shape_of(arrays["attention.W.weight"])
    if len(w) != 2 or w[0] < 1 or w[1] != features:
        raise ModelImportError(
            f"key 'attention.W.weight' has shape {w}, expected (A, {features}): W takes the "
            f"{shape.cell_type.module[3:]}'s {features} output features; {ATTENTION_LAYOUT}"
        )
    A = w[0]
    for key, expected in (("attention.W.bias", (A,)), ("attention.v.weight", (1, A))):
        got = _shape_of(arrays[key])
        if got != expected:
            raise ModelImportError(f"key {key!r} has shape {got}, expected {expected}")
    for key in (*layout.keys(), *ATTENTION_KEYS):
        _check_finite(key, arrays[key])
    attention = FloatAttention(
        _as_float64(arrays["attention.W.weight"]),
        _as_float64(arrays["attention.W.bias"]),
        _as_float64(arrays["attention.v.weight"])[0],
    )
    return replace(_build(layout, shape, rest), attention=attention)
