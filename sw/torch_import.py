"""PyTorch import: an ``nn.LSTM`` or ``nn.GRU`` (plus optional ``nn.Linear`` head) to a
:class:`FloatLstm` (its ``cell_type`` says which).

Three sources are accepted (see ``docs/import_and_calibration.md`` for the details):

* an ``nn.LSTM`` module, optionally with an explicit ``nn.Linear`` head
  (:func:`from_module`);
* a wrapper ``nn.Module`` holding exactly one ``nn.LSTM`` or ``nn.GRU`` and at most one
  ``nn.Linear``
  (the usual forecaster or classifier; dropout and containers are allowed around them);
* an attention classifier: a module with children ``lstm``, ``attention`` (``W``, ``v``) and
  ``fc`` (:class:`lstm_fpga.sw.modules.AttentionClassifier`'s layout, ``docs/attention.md``);
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
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .float_model import FloatLstm
from .state_dict import ModelImportError, parse_state_dict

__all__ = [
    "ModelImportError",
    "from_file",
    "from_module",
    "from_state_dict",
    "import_model",
    "lstm_batch_first",
]


# Modules that may sit next to the LSTM and head without changing inference.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_INERT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)


#: The recurrent modules lstm-fpga imports.
_RECURRENT = (nn.LSTM, nn.GRU)


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
    if isinstance(source, _RECURRENT):
        return bool(source.batch_first)
    if isinstance(source, nn.Module) and _has_attention(source):
        _check_attention_module(source)
        return bool(source.lstm.batch_first)
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
        if not isinstance(module, _RECURRENT):
            _check_not_other_rnn("the module", module)
            raise ModelImportError(
                f"head= is only accepted with an nn.LSTM or nn.GRU, not with a "
                f"{type(module).__name__}"
            )
        if not isinstance(head, nn.Linear):
            raise ModelImportError(f"head must be an nn.Linear, not a {type(head).__name__}")
        state = {**module.state_dict(), **_prefixed("head.", head.state_dict())}
        return from_state_dict(state)
    if isinstance(module, _RECURRENT):
        return from_state_dict(module.state_dict())
    _check_not_other_rnn("the module", module)
    if _has_attention(module):
        _check_attention_module(module)
        return from_state_dict(module.state_dict())
    _find_lstm(module)
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
    return parse_state_dict(state_dict)


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


def _check_not_other_rnn(what: str, module: nn.Module) -> None:
    if isinstance(module, nn.RNNBase | nn.RNNCellBase) and not isinstance(module, _RECURRENT):
        kind = type(module).__name__
        raise ModelImportError(
            f"{what} is an nn.{kind}; lstm-fpga imports nn.LSTM and nn.GRU only ({kind} is not "
            f"supported)"
        )


def _find_lstm(module: nn.Module) -> tuple[str, nn.LSTM | nn.GRU]:
    """The one nn.LSTM or nn.GRU of a wrapper module, after checking nothing else changes
    inference."""
    lstms, linears = [], []
    for name, child in module.named_modules():
        if child is module:
            continue
        _check_not_other_rnn(f"submodule {name!r}", child)
        if isinstance(child, _RECURRENT):
            lstms.append((name, child))
        elif isinstance(child, nn.Linear):
            linears.append((name, child))
        elif not isinstance(child, _CONTAINERS + _INERT):
            raise ModelImportError(
                f"submodule {name!r} is an nn.{type(child).__name__}; a model may hold only "
                f"one nn.LSTM or nn.GRU, one nn.Linear head, dropout and containers, because "
                f"lstm-fpga does not inspect forward(). Import the parts explicitly: "
                f"from_module(model.<lstm>, head=model.<linear>)"
            )
    if not lstms:
        raise ModelImportError(f"the {type(module).__name__} holds no nn.LSTM or nn.GRU")
    if len(lstms) > 1:
        names = ", ".join(repr(name) for name, _ in lstms)
        raise ModelImportError(
            f"the {type(module).__name__} holds {len(lstms)} nn.LSTM/nn.GRU modules ({names}); "
            f"lstm-fpga imports exactly one: pass it with from_module(model.<lstm>)"
        )
    if len(linears) > 1:
        names = ", ".join(repr(name) for name, _ in linears)
        raise ModelImportError(
            f"the {type(module).__name__} holds {len(linears)} nn.Linear modules ({names}); "
            f"the head is ambiguous: pass it with from_module(model.<lstm>, head=model.<linear>)"
        )
    lstm_name, lstm = lstms[0]
    kind = f"nn.{type(lstm).__name__}"
    linear_name = linears[0][0] if linears else None
    owned = {f"{lstm_name}.{key}" for key, _ in lstm.named_parameters()}
    if linear_name is not None:
        owned |= {f"{linear_name}.{key}" for key, _ in linears[0][1].named_parameters()}
    for key, _ in module.named_parameters():
        if key not in owned:
            raise ModelImportError(
                f"parameter {key!r} belongs to neither the {kind} nor the nn.Linear head; "
                f"lstm-fpga cannot tell how forward() uses it"
            )
    for key, _ in module.named_buffers():
        raise ModelImportError(
            f"buffer {key!r} belongs to neither the {kind} nor the nn.Linear head; "
            f"lstm-fpga cannot tell how forward() uses it"
        )
    return lstm_name, lstm


def _has_attention(module: nn.Module) -> bool:
    """Does ``module`` claim the attention layout (a child named ``attention``)?"""
    return any(name == "attention" for name, _ in module.named_children())


def _check_attention_module(module: nn.Module) -> None:
    """The attention classifier's module layout (``docs/attention.md``), or an error naming
    it: children ``lstm`` (``nn.LSTM``/``nn.GRU``), ``attention`` holding exactly ``W``
    (``nn.Linear`` with bias) and ``v`` (``nn.Linear`` to 1 feature, no bias), ``fc``
    (``nn.Linear``), otherwise only dropout and ``nn.Identity``; no other parameters or
    buffers. The shapes are the state_dict parser's to check."""
    name = type(module).__name__
    children = dict(module.named_children())
    expected = {"lstm": _RECURRENT, "attention": nn.Module, "fc": nn.Linear}
    for child, kind in expected.items():
        if child not in children:
            raise ModelImportError(f"the {name} has no child {child!r}: {_MODULE_LAYOUT}")
        if not isinstance(children[child], kind):
            _check_not_other_rnn(f"submodule {child!r}", children[child])
            raise ModelImportError(
                f"submodule {child!r} is an nn.{type(children[child]).__name__}: {_MODULE_LAYOUT}"
            )
    for child, value in children.items():
        if child not in expected and not isinstance(value, _INERT):
            raise ModelImportError(
                f"submodule {child!r} is an nn.{type(value).__name__}, which the attention "
                f"layout does not have (lstm-fpga does not inspect forward()): {_MODULE_LAYOUT}"
            )
    attention = children["attention"]
    parts = dict(attention.named_children())
    W, v = parts.get("W"), parts.get("v")
    if (
        set(parts) != {"W", "v"}
        or not isinstance(W, nn.Linear)
        or not isinstance(v, nn.Linear)
        or W.bias is None
        or v.bias is not None
        or v.out_features != 1
    ):
        found = ", ".join(f"{k}: nn.{type(c).__name__}" for k, c in parts.items()) or "nothing"
        raise ModelImportError(
            f"submodule 'attention' holds {found}; expected W = nn.Linear(F, A) with bias and "
            f"v = nn.Linear(A, 1, bias=False): {_MODULE_LAYOUT}"
        )
    for key, _ in module.named_parameters(recurse=False):
        raise ModelImportError(
            f"parameter {key!r} belongs to none of lstm, attention and fc: {_MODULE_LAYOUT}"
        )
    for key, _ in [*module.named_buffers(), *attention.named_parameters(recurse=False)]:
        raise ModelImportError(
            f"{key!r} belongs to none of lstm, attention.W, attention.v and fc: {_MODULE_LAYOUT}"
        )


_MODULE_LAYOUT = (
    "lstm-fpga imports attention pooling in one module layout: children lstm (nn.LSTM or "
    "nn.GRU), attention (W = nn.Linear(F, A) with bias, v = nn.Linear(A, 1, bias=False)) and "
    "fc (nn.Linear(F, O)), F the LSTM's output features, dropout beside them "
    "(lstm_fpga.sw.modules.AttentionClassifier; docs/attention.md)"
)
