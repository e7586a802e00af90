"""PyTorch import: an ``nn.LSTM`` (plus optional ``nn.Linear`` head) to a :class:`FloatLstm`.

Three sources are accepted (see ``docs/import_and_calibration.md`` for the details):

* an ``nn.LSTM`` module, optionally with an explicit ``nn.Linear`` head
  (:func:`from_module`);
* a wrapper ``nn.Module`` holding exactly one ``nn.LSTM`` and at most one ``nn.Linear``
  (the usual forecaster or classifier; dropout and containers are allowed around them);
* a ``state_dict`` -- a mapping or a ``.pt``/``.pth`` file written with
  ``torch.save(model.state_dict(), path)`` -- from which ``num_layers``, ``bidirectional``
  and ``bias`` are inferred (:func:`from_state_dict`, :func:`from_file`). Files are loaded
  with ``torch.load(weights_only=True)``: a file from the internet cannot run code.

Only weights are imported. ``batch_first`` does not change them (it is an argument of
calibration and of the reference instead), and dropout does nothing at inference.
Anything lstm-fpga cannot represent raises :class:`ModelImportError` naming the key or
module and the problem.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .float_model import FloatDirection, FloatHead, FloatLstm

__all__ = [
    "ModelImportError",
    "from_file",
    "from_module",
    "from_state_dict",
    "import_model",
    "lstm_batch_first",
]


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
# Modules that may sit next to the LSTM and head without changing inference.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_INERT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)


# -- public entry points ---------------------------------------------------------------------
def import_model(source) -> FloatLstm:
    """Import ``source``: an ``nn.Module``, a state_dict mapping or a path to a state_dict file."""
    if isinstance(source, nn.Module):
        return from_module(source)
    if isinstance(source, Mapping):
        return from_state_dict(source)
    if isinstance(source, str | os.PathLike):
        return from_file(source)
    raise ModelImportError(
        f"cannot import an object of type {type(source).__name__}: pass an nn.LSTM, a module "
        f"holding one, a state_dict or the path of a state_dict file (.pt/.pth)"
    )


def lstm_batch_first(source) -> bool:
    """``batch_first`` of the ``nn.LSTM`` in ``source``; ``False`` for state_dicts and files.

    Only layouts of input data depend on it, never the weights: a state_dict does not
    record it, so callers pass it explicitly for those.
    """
    if isinstance(source, nn.LSTM):
        return bool(source.batch_first)
    if isinstance(source, nn.Module):
        return bool(_find_lstm(source)[1].batch_first)
    return False


def from_module(module: nn.Module, head: nn.Linear | None = None) -> FloatLstm:
    """Import an ``nn.LSTM`` (with an optional ``head``) or a module holding one LSTM.

    A wrapper module may contain exactly one ``nn.LSTM``, at most one ``nn.Linear`` (the
    head, applied to the LSTM output) and otherwise only dropout, ``nn.Identity`` and
    containers. ``forward()`` is not inspected, so any other submodule, parameter or buffer
    is refused: import such a model with ``from_module(model.lstm, head=model.fc)``.
    """
    if not isinstance(module, nn.Module):
        raise ModelImportError(
            f"expected an nn.Module, got an object of type {type(module).__name__}"
        )
    if head is not None:
        if not isinstance(module, nn.LSTM):
            _check_not_other_rnn("the module", module)
            raise ModelImportError(
                f"head= is only accepted with an nn.LSTM, not with a {type(module).__name__}"
            )
        if not isinstance(head, nn.Linear):
            raise ModelImportError(f"head must be an nn.Linear, not a {type(head).__name__}")
        _check_proj("the nn.LSTM", module)
        state = {**module.state_dict(), **_prefixed("head.", head.state_dict())}
        return from_state_dict(state)
    if isinstance(module, nn.LSTM):
        _check_proj("the nn.LSTM", module)
        return from_state_dict(module.state_dict())
    _check_not_other_rnn("the module", module)
    lstm_name, lstm = _find_lstm(module)
    _check_proj(f"nn.LSTM {lstm_name!r}", lstm)
    return from_state_dict(module.state_dict())


def from_state_dict(state_dict: Mapping) -> FloatLstm:
    """Import a state_dict (parameter name -> tensor), inferring the LSTM's configuration.

    Accepted keys: the parameters of one ``nn.LSTM`` (``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, with ``_reverse`` for the second direction), bare or
    under one dotted prefix (``lstm.``, ``model.encoder.``, ...), plus optionally the
    ``weight`` (and ``bias``) of one ``nn.Linear`` head under another prefix (``fc.``,
    ``head.``, ...). ``num_layers``, ``bidirectional`` and ``bias`` come from the keys,
    ``input_size``/``hidden_size`` from the shapes.
    """
    if not isinstance(state_dict, Mapping):
        raise ModelImportError(
            f"a state_dict must be a mapping of parameter names to tensors, not a "
            f"{type(state_dict).__name__}"
        )
    if not state_dict:
        raise ModelImportError("the state_dict is empty: it holds no nn.LSTM parameters")
    arrays = _tensors(state_dict)
    layout = _parse_layout(arrays)
    for key in layout.keys():
        _check_dtype(key, arrays[key])
    shape = _infer_shape(layout, arrays)
    _check_missing(layout, shape)
    _check_shapes(layout, shape, arrays)
    for key in layout.keys():
        _check_finite(key, arrays[key])
    return _build(layout, shape, arrays)


def from_file(path) -> FloatLstm:
    """Load a state_dict file (``torch.save(model.state_dict(), path)``) and import it.

    The file is read with ``torch.load(path, weights_only=True, map_location="cpu")``, so it
    can only hold tensors and plain containers; a pickled module is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelImportError(f"{path}: no such file")
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        if "weights only" not in str(error).lower():
            raise ModelImportError(
                f"{path}: not a file torch.load can read (is it a PyTorch .pt/.pth file?)"
            ) from None
        raise ModelImportError(
            f"{path}: not a plain state_dict: it pickles Python objects (for example a whole "
            f"module saved with torch.save(model)), which torch.load(weights_only=True) refuses "
            f"because loading them can run code. Save the weights only: "
            f"torch.save(model.state_dict(), path)"
        ) from error
    except Exception:  # torch raises KeyError, EOFError, RuntimeError... for non-torch files
        raise ModelImportError(
            f"{path}: not a file torch.load can read (is it a PyTorch .pt/.pth file?)"
        ) from None
    if not isinstance(loaded, Mapping):
        raise ModelImportError(
            f"{path}: holds an object of type {type(loaded).__name__}, not a state_dict; save "
            f"the weights with torch.save(model.state_dict(), path)"
        )
    try:
        return from_state_dict(loaded)
    except ModelImportError as error:
        raise ModelImportError(f"{path}: {error}") from None


# -- modules ---------------------------------------------------------------------------------
def _prefixed(prefix: str, state: Mapping) -> dict:
    return {prefix + key: value for key, value in state.items()}


def _check_proj(what: str, lstm: nn.LSTM) -> None:
    if getattr(lstm, "proj_size", 0) > 0:
        raise ModelImportError(
            f"{what} has proj_size={lstm.proj_size}: LSTMs with projections (proj_size > 0) "
            f"are not supported; lstm-fpga implements proj_size=0 only"
        )


def _check_not_other_rnn(what: str, module: nn.Module) -> None:
    if isinstance(module, nn.RNNBase | nn.RNNCellBase) and not isinstance(module, nn.LSTM):
        kind = type(module).__name__
        raise ModelImportError(
            f"{what} is an nn.{kind}; lstm-fpga imports nn.LSTM only ({kind} is not supported)"
        )


def _find_lstm(module: nn.Module) -> tuple[str, nn.LSTM]:
    """The one nn.LSTM of a wrapper module, after checking nothing else changes inference."""
    lstms, linears = [], []
    for name, child in module.named_modules():
        if child is module:
            continue
        _check_not_other_rnn(f"submodule {name!r}", child)
        if isinstance(child, nn.LSTM):
            lstms.append((name, child))
        elif isinstance(child, nn.Linear):
            linears.append((name, child))
        elif not isinstance(child, _CONTAINERS + _INERT):
            raise ModelImportError(
                f"submodule {name!r} is an nn.{type(child).__name__}; a model may hold only "
                f"one nn.LSTM, one nn.Linear head, dropout and containers, because lstm-fpga "
                f"does not inspect forward(). Import the parts explicitly: "
                f"from_module(model.<lstm>, head=model.<linear>)"
            )
    if not lstms:
        raise ModelImportError(f"the {type(module).__name__} holds no nn.LSTM")
    if len(lstms) > 1:
        names = ", ".join(repr(name) for name, _ in lstms)
        raise ModelImportError(
            f"the {type(module).__name__} holds {len(lstms)} nn.LSTM modules ({names}); "
            f"lstm-fpga imports exactly one: pass it with from_module(model.<lstm>)"
        )
    if len(linears) > 1:
        names = ", ".join(repr(name) for name, _ in linears)
        raise ModelImportError(
            f"the {type(module).__name__} holds {len(linears)} nn.Linear modules ({names}); "
            f"the head is ambiguous: pass it with from_module(model.<lstm>, head=model.<linear>)"
        )
    lstm_name, lstm = lstms[0]
    linear_name = linears[0][0] if linears else None
    owned = {f"{lstm_name}.{key}" for key, _ in lstm.named_parameters()}
    if linear_name is not None:
        owned |= {f"{linear_name}.{key}" for key, _ in linears[0][1].named_parameters()}
    for key, _ in module.named_parameters():
        if key not in owned:
            raise ModelImportError(
                f"parameter {key!r} belongs to neither the nn.LSTM nor the nn.Linear head; "
                f"lstm-fpga cannot tell how forward() uses it"
            )
    for key, _ in module.named_buffers():
        raise ModelImportError(
            f"buffer {key!r} belongs to neither the nn.LSTM nor the nn.Linear head; "
            f"lstm-fpga cannot tell how forward() uses it"
        )
    return lstm_name, lstm


# -- state_dict parsing ----------------------------------------------------------------------
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


def _parse_layout(arrays: Mapping[str, object]) -> _Layout:
    lstm_keys: dict[str, dict[tuple[str, int, bool], str]] = {}
    linear_keys: dict[str, dict[str, str]] = {}
    unknown = []
    for key in arrays:
        match = _LSTM_KEY.match(key)
        if match is not None:
            if match["kind"] == "weight_hr":
                raise ModelImportError(
                    f"key {key!r}: LSTMs with projections (proj_size > 0) are not supported; "
                    f"lstm-fpga implements proj_size=0 only"
                )
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
            f"no nn.LSTM parameters found (keys: {shown}{', ...' if len(arrays) > 4 else ''}); "
            f"expected keys like 'weight_ih_l0' or 'lstm.weight_ih_l0'"
        )
    if len(lstm_keys) > 1:
        names = ", ".join(repr(p) for p in lstm_keys)
        raise ModelImportError(
            f"found nn.LSTM parameters under {len(lstm_keys)} prefixes ({names}); "
            f"lstm-fpga imports exactly one nn.LSTM"
        )
    ((prefix, lstm),) = lstm_keys.items()
    # A key like 'lstm.weight' shares the LSTM's prefix: it is not a Linear head.
    if prefix and prefix in linear_keys:
        unknown += list(linear_keys.pop(prefix).values())
    if unknown:
        raise ModelImportError(
            f"unexpected key {unknown[0]!r}: a state_dict may hold one nn.LSTM (keys like "
            f"'{prefix}weight_ih_l0') and one nn.Linear head (keys like 'fc.weight', 'fc.bias')"
        )
    if len(linear_keys) > 1:
        names = ", ".join(repr(p) for p in linear_keys)
        raise ModelImportError(
            f"found nn.Linear-like parameters under {len(linear_keys)} prefixes ({names}); "
            f"lstm-fpga imports at most one nn.Linear head"
        )
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
                f"missing key {p + name!r}: every nn.LSTM has it (layer 0, forward direction)"
            )
    hh = _shape_of(arrays[hh_key])
    if len(hh) != 2 or hh[1] < 1 or hh[0] % hh[1]:
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}, expected (4*hidden_size, hidden_size)"
        )
    gates = hh[0] // hh[1]
    if gates == 3:
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}: 3 gates per unit is an nn.GRU; lstm-fpga imports "
            f"nn.LSTM only (4 gates: i, f, g, o)"
        )
    if gates == 1:
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}: 1 gate per unit is an nn.RNN; lstm-fpga imports "
            f"nn.LSTM only (4 gates: i, f, g, o)"
        )
    if gates != 4:
        raise ModelImportError(
            f"key {hh_key!r} has shape {hh}, expected (4*hidden_size, hidden_size)"
        )
    ih = _shape_of(arrays[ih_key])
    if len(ih) != 2 or ih[1] < 1:
        raise ModelImportError(f"key {ih_key!r} has shape {ih}, expected ({hh[0]}, input_size)")
    parts = layout.lstm.keys()
    return _Shape(
        input_size=ih[1],
        hidden_size=hh[1],
        num_layers=1 + max(layer for _, layer, _ in parts),
        bidirectional=any(reverse for _, _, reverse in parts),
        bias=any(kind.startswith("bias") for kind, _, _ in parts),
    )


def _expected_parts(shape: _Shape):
    """(kind, layer, reverse) -> expected tensor shape, in PyTorch's key order."""
    H, D = shape.hidden_size, 2 if shape.bidirectional else 1
    kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if shape.bias else ())
    expected = {}
    for layer in range(shape.num_layers):
        for reverse in (False, True)[:D]:
            in_size = shape.input_size if layer == 0 else D * H
            for kind in kinds:
                expected[(kind, layer, reverse)] = {
                    "weight_ih": (4 * H, in_size),
                    "weight_hh": (4 * H, H),
                    "bias_ih": (4 * H,),
                    "bias_hh": (4 * H,),
                }[kind]
    return expected


def _key_name(prefix: str, part: tuple[str, int, bool]) -> str:
    kind, layer, reverse = part
    return f"{prefix}{kind}_l{layer}{'_reverse' if reverse else ''}"


def _check_missing(layout: _Layout, shape: _Shape) -> None:
    missing = [
        _key_name(layout.prefix, part) for part in _expected_parts(shape) if part not in layout.lstm
    ]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        raise ModelImportError(
            f"missing key(s) {names}: the other keys describe an nn.LSTM with num_layers="
            f"{shape.num_layers}, bidirectional={shape.bidirectional}, bias={shape.bias}"
        )


def _check_shapes(layout: _Layout, shape: _Shape, arrays) -> None:
    for part, expected in _expected_parts(shape).items():
        key = layout.lstm[part]
        got = _shape_of(arrays[key])
        if got != expected:
            raise ModelImportError(f"key {key!r} has shape {got}, expected {expected}")
    if layout.head_weight is None:
        return
    features = (2 if shape.bidirectional else 1) * shape.hidden_size
    got = _shape_of(arrays[layout.head_weight])
    if len(got) != 2 or got[1] != features:
        out = got[0] if len(got) == 2 else "out_features"
        raise ModelImportError(
            f"key {layout.head_weight!r} has shape {got}, expected ({out}, {features}): the "
            f"nn.Linear head must take the LSTM's {features} output features"
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

            bias = get("bias_ih") + get("bias_hh") if shape.bias else np.zeros(4 * H)
            directions.append(
                FloatDirection(layer, reverse, get("weight_ih"), get("weight_hh"), bias)
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
        input_size=shape.input_size,
        hidden_size=H,
        num_layers=shape.num_layers,
        bidirectional=shape.bidirectional,
        bias=shape.bias,
        directions=tuple(directions),
        head=head,
    )
