"""The model IR: a quantised ``nn.LSTM`` or ``nn.GRU`` (plus optional Linear head) as frozen
dataclasses.

This is the only object that crosses from software to the hardware generator and the
simulator. It holds integer weights in PyTorch's gate order (i, f, g, o for an LSTM; r, z, n
for a GRU, :attr:`LstmModel.cell_type`), a format for every tensor, and the model shape;
hardware choices (lanes, output mode, maximum sequence length) are deliberately not part of
it. A GRU direction's bias has ``4H`` entries ``[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]``.
With :class:`AttentionPooling` (``LstmModel.attention``) the head takes the pooled context
(``docs/attention.md``).

Layer directions are stored in PyTorch's order: ``l0``, ``l0_reverse``, ``l1``, ... The input
of layer ``k > 0`` is the concatenation ``[h_forward ; h_reverse]`` of layer ``k - 1``.

Saved as two files next to each other: ``NAME.json`` (readable: schema version, shape,
formats, array shapes) and ``NAME.npz`` (the integer arrays).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .numerics import (
    AttentionDatapath,
    AttentionFormats,
    FixedFormat,
    FormatWidthError,
    GruDatapath,
    GruFormats,
    HeadDatapath,
    HeadFormats,
    LstmDatapath,
    LstmFormats,
    LstmpFormats,
    Overflow,
    Rounding,
    cell_formats,
    check_format_chain,
)
from .schema import read_versioned_json
from .shape import CellType, LstmShape, lstm_shape

__all__ = [
    "GATES",
    "GRU_GATES",
    "SCHEMA_VERSION",
    "AttentionPooling",
    "IRError",
    "IRFormatWidthError",
    "LayerDirection",
    "LinearHead",
    "LstmModel",
]

#: Version of the saved JSON layout; bumped on any incompatible change.
SCHEMA_VERSION = 1
#: PyTorch's gate order inside ``weight_ih``/``weight_hh``/biases.
GATES = ("i", "f", "g", "o")
#: PyTorch's gate order inside an ``nn.GRU``'s ``weight_ih``/``weight_hh``.
GRU_GATES = ("r", "z", "n")


class IRError(ValueError):
    """An IR object or file is inconsistent; the message names the field and the fix."""


def _frozen_int_array(value, name: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise IRError(f"{name} must hold integers, got dtype {array.dtype}")
    array = array.astype(np.int64)  # always a copy: the IR owns its arrays
    array.setflags(write=False)
    return array


def _check_shape(array: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if array.shape != shape:
        raise IRError(f"{name} has shape {array.shape}, expected {shape}")


def _check_range(array: np.ndarray, fmt: FixedFormat, name: str) -> None:
    if array.size and (array.min() < fmt.min_int or array.max() > fmt.max_int):
        raise IRError(
            f"{name} holds values in [{array.min()}, {array.max()}] outside its format {fmt} "
            f"([{fmt.min_int}, {fmt.max_int}])"
        )


class IRFormatWidthError(IRError, FormatWidthError):
    """The formats need an intermediate wider than the reference computes exactly
    (``tensor`` names the format to change, ``width`` the bits needed)."""


def _check_exact(name: str, datapath) -> None:
    try:
        datapath.check_exact(name)
    except FormatWidthError as error:
        raise IRFormatWidthError(str(error), error.tensor, error.width) from None
    except ValueError as error:  # a bias with more fraction bits than its products
        raise IRError(f"{name}: {error}") from None


def _arrays_equal(a, b) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


@dataclass(frozen=True, eq=False)
class LayerDirection:
    """One direction of one layer: ``W_ih`` (GH x I_k), ``W_hh`` (GH x R), bias (4H), and
    for an LSTMP the projection ``W_hr`` (R x H).

    ``G`` is 4 for an LSTM (``formats`` an :class:`LstmFormats`) and 3 for a GRU (a
    :class:`GruFormats`). An LSTM's ``bias`` is ``b_ih + b_hh``, a GRU's
    ``[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]``, quantised to ``formats.bias`` (zeros for
    ``bias=False``). ``R`` is ``H`` unless the LSTM projects (``nn.LSTM(proj_size=R)``):
    then ``formats`` is an :class:`LstmpFormats` and ``w_hr`` holds ``W_hr``, else ``w_hr``
    is ``None``.
    """

    layer: int
    reverse: bool
    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    formats: LstmFormats | GruFormats
    w_hr: np.ndarray | None = None

    def __post_init__(self):
        name = self.name
        for field in ("w_ih", "w_hh", "bias"):
            object.__setattr__(
                self, field, _frozen_int_array(getattr(self, field), f"{name}.{field}")
            )
        if self.w_ih.ndim != 2 or self.w_hh.ndim != 2 or self.bias.ndim != 1:
            raise IRError(
                f"{name}: w_ih and w_hh must be 2-D and bias 1-D, got shapes "
                f"{self.w_ih.shape}, {self.w_hh.shape}, {self.bias.shape}"
            )
        if not isinstance(self.formats, LstmFormats | GruFormats):
            raise IRError(
                f"{name}.formats must be an LstmFormats or GruFormats, not {type(self.formats)}"
            )
        projected = isinstance(self.formats, LstmpFormats)
        if projected != (self.w_hr is not None):
            raise IRError(
                f"{name}: an LSTM with a projection has LstmpFormats and w_hr, one without "
                f"has neither; got {type(self.formats).__name__} and "
                f"w_hr={'None' if self.w_hr is None else 'an array'}"
            )
        G = self.cell_type.gates
        rows = self.w_hh.shape[0]
        if projected:
            object.__setattr__(self, "w_hr", _frozen_int_array(self.w_hr, f"{name}.w_hr"))
            if self.w_hr.ndim != 2 or rows != G * self.w_hr.shape[1]:
                raise IRError(
                    f"{name}.w_hr has shape {self.w_hr.shape}, expected (R, H) with "
                    f"w_hh's {rows} rows = {G}*H"
                )
            _check_shape(self.w_hh, (rows, self.w_hr.shape[0]), f"{name}.w_hh")
            _check_range(self.w_hr, self.formats.w_hr, f"{name}.w_hr")
        elif rows % G or self.w_hh.shape[1] * G != rows:
            raise IRError(f"{name}.w_hh has shape {self.w_hh.shape}, expected ({G}*H, H)")
        _check_shape(self.w_ih, (rows, self.w_ih.shape[1]), f"{name}.w_ih")
        _check_shape(self.bias, (4 * self.hidden_size,), f"{name}.bias")
        _check_range(self.w_ih, self.formats.w_ih, f"{name}.w_ih")
        _check_range(self.w_hh, self.formats.w_hh, f"{name}.w_hh")
        _check_range(self.bias, self.formats.bias, f"{name}.bias")
        _check_exact(name, self.datapath())

    @property
    def name(self) -> str:
        """PyTorch's parameter suffix: ``l0``, ``l0_reverse``, ..."""
        return f"l{self.layer}{'_reverse' if self.reverse else ''}"

    @property
    def cell_type(self) -> CellType:
        """:attr:`CellType.GRU` for :class:`GruFormats`, else :attr:`CellType.LSTM`."""
        return CellType.GRU if isinstance(self.formats, GruFormats) else CellType.LSTM

    @property
    def input_size(self) -> int:
        return self.w_ih.shape[1]

    @property
    def hidden_size(self) -> int:
        """``H``: units of the cell (``c_t``), ``w_hh`` has ``G * H`` rows."""
        return self.w_hh.shape[0] // self.cell_type.gates

    @property
    def proj_size(self) -> int:
        """``R`` of an LSTMP (rows of ``w_hr``), 0 without a projection."""
        return 0 if self.w_hr is None else self.w_hr.shape[0]

    @property
    def real_hidden_size(self) -> int:
        """Features of ``h_t``: ``proj_size`` for an LSTMP, else ``hidden_size``."""
        return self.w_hh.shape[1]

    def datapath(
        self, rounding=Rounding.HALF_UP, overflow=Overflow.SATURATE
    ) -> LstmDatapath | GruDatapath:
        sizes = (self.input_size, self.hidden_size)
        if self.w_hr is not None:
            sizes += (self.proj_size,)
        return self.formats.datapath(*sizes, rounding=rounding, overflow=overflow)

    def __eq__(self, other):
        if not isinstance(other, LayerDirection):
            return NotImplemented
        return (
            (self.layer, self.reverse, self.formats) == (other.layer, other.reverse, other.formats)
            and _arrays_equal(self.w_ih, other.w_ih)
            and _arrays_equal(self.w_hh, other.w_hh)
            and _arrays_equal(self.bias, other.bias)
            and (self.w_hr is None) == (other.w_hr is None)
            and (self.w_hr is None or _arrays_equal(self.w_hr, other.w_hr))
        )

    __hash__ = None


@dataclass(frozen=True, eq=False)
class LinearHead:
    """``nn.Linear`` after the LSTM: ``weight`` (O x D), ``bias`` (O), integer."""

    weight: np.ndarray
    bias: np.ndarray
    formats: HeadFormats

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen_int_array(self.weight, "head.weight"))
        object.__setattr__(self, "bias", _frozen_int_array(self.bias, "head.bias"))
        if self.weight.ndim != 2:
            raise IRError(f"head.weight must be 2-D (out x in), got shape {self.weight.shape}")
        _check_shape(self.bias, (self.weight.shape[0],), "head.bias")
        if not isinstance(self.formats, HeadFormats):
            raise IRError(f"head.formats must be a HeadFormats, not {type(self.formats)}")
        _check_range(self.weight, self.formats.weight, "head.weight")
        _check_range(self.bias, self.formats.bias, "head.bias")
        _check_exact("head", self.datapath())

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def datapath(self, rounding=Rounding.HALF_UP, overflow=Overflow.SATURATE) -> HeadDatapath:
        return self.formats.datapath(self.in_features, rounding=rounding, overflow=overflow)

    def __eq__(self, other):
        if not isinstance(other, LinearHead):
            return NotImplemented
        return (
            self.formats == other.formats
            and _arrays_equal(self.weight, other.weight)
            and _arrays_equal(self.bias, other.bias)
        )

    __hash__ = None


@dataclass(frozen=True, eq=False)
class AttentionPooling:
    """Attention pooling over time between the LSTM and the head: ``w`` (A x F), ``bias`` (A)
    and ``v`` (A), integer, with their :class:`AttentionFormats` (``F`` the LSTM's output
    features; ``docs/attention.md``)."""

    w: np.ndarray
    bias: np.ndarray
    v: np.ndarray
    formats: AttentionFormats

    def __post_init__(self):
        for name in ("w", "bias", "v"):
            object.__setattr__(
                self, name, _frozen_int_array(getattr(self, name), f"attention.{name}")
            )
        if self.w.ndim != 2 or self.w.shape[0] < 1:
            raise IRError(f"attention.w must be 2-D (A x features), got shape {self.w.shape}")
        _check_shape(self.bias, (self.w.shape[0],), "attention.bias")
        _check_shape(self.v, (self.w.shape[0],), "attention.v")
        if not isinstance(self.formats, AttentionFormats):
            raise IRError(f"attention.formats must be AttentionFormats, not {type(self.formats)}")
        for name in ("w", "bias", "v"):
            _check_range(getattr(self, name), getattr(self.formats, name), f"attention.{name}")
        _check_exact("attention", self.datapath())

    @property
    def attention_size(self) -> int:
        return self.w.shape[0]

    @property
    def features(self) -> int:
        return self.w.shape[1]

    def datapath(self, rounding=Rounding.HALF_UP, overflow=Overflow.SATURATE) -> AttentionDatapath:
        return self.formats.datapath(
            self.features, self.attention_size, rounding=rounding, overflow=overflow
        )

    def score_head(self) -> LinearHead:
        """The score pre-activation ``u_t = rescale(W h_t + b, preact)`` as a Linear layer
        (``A`` rows over the ``F`` features, output format ``attention.preact``): the same
        accumulator (:meth:`AttentionDatapath.score_acc` is :meth:`HeadDatapath.acc` of these
        formats) and rescale, so the lanes compute it as a head job (``docs/attention.md``)."""
        f = self.formats
        formats = HeadFormats(x=f.x, weight=f.w, bias=f.bias, output=f.preact)
        return LinearHead(self.w, self.bias, formats)

    def __eq__(self, other):
        if not isinstance(other, AttentionPooling):
            return NotImplemented
        return (
            self.formats == other.formats
            and _arrays_equal(self.w, other.w)
            and _arrays_equal(self.bias, other.bias)
            and _arrays_equal(self.v, other.v)
        )

    __hash__ = None


@dataclass(frozen=True, eq=False)
class LstmModel(LstmShape):
    """A quantised ``nn.LSTM`` (with or without ``proj_size``) or ``nn.GRU`` (``cell_type``)
    with an optional Linear head; with ``attention`` pooling between them (then the head is
    required and takes the context)."""

    directions: tuple[LayerDirection, ...]
    head: LinearHead | None = None
    rounding: Rounding = Rounding.HALF_UP
    overflow: Overflow = Overflow.SATURATE
    cell_type: CellType = CellType.LSTM
    attention: AttentionPooling | None = None

    def __post_init__(self):
        object.__setattr__(self, "directions", tuple(self.directions))
        try:
            object.__setattr__(self, "cell_type", CellType.parse(self.cell_type))
        except ValueError as error:
            raise IRError(str(error)) from None
        for field in ("input_size", "hidden_size", "num_layers"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise IRError(f"{field} must be a positive int, not {value!r}")
        R = self.proj_size
        if not isinstance(R, int) or isinstance(R, bool) or not 0 <= R < self.hidden_size:
            raise IRError(
                f"proj_size must be an int from 0 to hidden_size - 1 = {self.hidden_size - 1} "
                f"(as nn.LSTM requires), not {R!r}"
            )
        if R and self.cell_type is not CellType.LSTM:
            raise IRError(f"proj_size is an nn.LSTM argument; an {self.cell_type.module} has none")
        if not isinstance(self.rounding, Rounding):
            raise IRError(f"rounding must be a Rounding, not {self.rounding!r}")
        if not isinstance(self.overflow, Overflow):
            raise IRError(f"overflow must be an Overflow, not {self.overflow!r}")
        expected = [
            (layer, reverse)
            for layer in range(self.num_layers)
            for reverse in ((False, True) if self.bidirectional else (False,))
        ]
        got = [(d.layer, d.reverse) for d in self.directions]
        if got != expected:
            names = lambda pairs: [f"l{k}{'_reverse' if r else ''}" for k, r in pairs]  # noqa: E731
            raise IRError(
                f"directions are {names(got)}, expected {names(expected)} for num_layers="
                f"{self.num_layers}, bidirectional={self.bidirectional}"
            )
        H, G, Hr = self.hidden_size, self.cell_type.gates, self.real_hidden_size
        for d in self.directions:
            in_size = self.layer_input_size(d.layer)
            if d.cell_type is not self.cell_type:
                raise IRError(
                    f"{d.name} has {type(d.formats).__name__} but the model's cell_type is "
                    f"{self.cell_type.value!r}; use {cell_formats(self.cell_type).__name__}"
                )
            if d.proj_size != R:
                raise IRError(
                    f"{d.name} has proj_size={d.proj_size} (w_hr and LstmpFormats) but the "
                    f"model has proj_size={R}"
                )
            if d.w_hh.shape != (G * H, Hr):
                raise IRError(f"{d.name}.w_hh has shape {d.w_hh.shape}, expected {(G * H, Hr)}")
            if d.w_ih.shape != (G * H, in_size):
                raise IRError(
                    f"{d.name}.w_ih has shape {d.w_ih.shape}, expected {(G * H, in_size)}"
                )
            if not self.bias and np.any(d.bias):
                raise IRError(f"{d.name}.bias is non-zero but the model has bias=False")
        head_formats = self.head.formats if isinstance(self.head, LinearHead) else None
        if self.attention is not None:
            if not isinstance(self.attention, AttentionPooling):
                raise IRError(
                    f"attention must be an AttentionPooling or None, not {type(self.attention)}"
                )
            if self.attention.features != self.output_size:
                raise IRError(
                    f"attention.w has {self.attention.features} inputs but the "
                    f"{self.cell_type.module} outputs {self.output_size} features"
                )
            if self.head is None:
                raise IRError("attention pooling needs the Linear head after it (head=None)")
        try:
            check_format_chain(
                self.num_layers,
                self.bidirectional,
                [d.formats for d in self.directions],
                head_formats,
                None if self.attention is None else self.attention.formats,
            )
        except ValueError as error:
            raise IRError(str(error)) from None
        if self.head is not None:
            if not isinstance(self.head, LinearHead):
                raise IRError(f"head must be a LinearHead or None, not {type(self.head)}")
            if self.head.in_features != self.output_size:
                raise IRError(
                    f"head.weight has {self.head.in_features} inputs but the "
                    f"{self.cell_type.module} outputs {self.output_size} features"
                )

    # -- shape -------------------------------------------------------------------------------
    @property
    def output_size(self) -> int:
        """Features of the LSTM ``output`` (before the head): ``num_directions * H``
        (``num_directions * proj_size`` for an LSTMP)."""
        return self.num_directions * self.real_hidden_size

    @property
    def input_format(self) -> FixedFormat:
        return self.directions[0].formats.x

    @property
    def output_format(self) -> FixedFormat:
        return self.layer_hidden_format(self.num_layers - 1)

    @property
    def cell_formats(self) -> tuple[FixedFormat, ...]:
        """The cell-state format per direction (an LSTM's; a GRU has no cell state)."""
        if self.cell_type is not CellType.LSTM:
            raise IRError(f"a {self.cell_type.module} has no cell state (no cell formats)")
        return tuple(d.formats.cell for d in self.directions)

    def layer_hidden_format(self, layer: int) -> FixedFormat:
        return self.direction(layer, False).formats.hidden

    def direction(self, layer: int, reverse: bool) -> LayerDirection:
        if not 0 <= layer < self.num_layers:
            raise IRError(f"layer {layer} does not exist (num_layers={self.num_layers})")
        if reverse and not self.bidirectional:
            raise IRError("the model is not bidirectional: it has no reverse direction")
        return self.directions[layer * self.num_directions + int(reverse)]

    def datapath(self, layer: int, reverse: bool = False) -> LstmDatapath | GruDatapath:
        return self.direction(layer, reverse).datapath(self.rounding, self.overflow)

    def head_datapath(self) -> HeadDatapath | None:
        return None if self.head is None else self.head.datapath(self.rounding, self.overflow)

    def attention_datapath(self) -> AttentionDatapath | None:
        if self.attention is None:
            return None
        return self.attention.datapath(self.rounding, self.overflow)

    def __eq__(self, other):
        if not isinstance(other, LstmModel):
            return NotImplemented
        return (
            self._meta() == other._meta()
            and self.directions == other.directions
            and (self.head == other.head)
            and (self.attention == other.attention)
        )

    __hash__ = None

    # -- persistence -------------------------------------------------------------------------
    def _meta(self) -> dict:
        # "cell_type" only for a GRU, "proj_size" only for an LSTMP: an LSTM's file (and model
        # hash) is as before GRU and proj_size support.
        gru = {"cell_type": self.cell_type.value} if self.cell_type is CellType.GRU else {}
        shape = lstm_shape(self)
        if not self.proj_size:
            del shape["proj_size"]
        return {
            **shape,
            "rounding": self.rounding.value,
            "overflow": self.overflow.value,
            **gru,
        }

    def to_json_dict(self) -> dict:
        """The readable half of the saved IR (formats and shapes; arrays go in the npz)."""
        directions = [
            {
                "name": d.name,
                "layer": d.layer,
                "reverse": d.reverse,
                "formats": {k: str(v) for k, v in d.formats.items()},
                "shapes": {
                    "w_ih": list(d.w_ih.shape),
                    "w_hh": list(d.w_hh.shape),
                    **({} if d.w_hr is None else {"w_hr": list(d.w_hr.shape)}),
                },
            }
            for d in self.directions
        ]
        head = None
        if self.head is not None:
            head = {
                "in_features": self.head.in_features,
                "out_features": self.head.out_features,
                "formats": {k: str(v) for k, v in self.head.formats.items()},
            }
        # "attention" only with attention pooling: other models' files are as before.
        attention = {}
        if self.attention is not None:
            attention["attention"] = {
                "features": self.attention.features,
                "attention_size": self.attention.attention_size,
                "formats": {k: str(v) for k, v in self.attention.formats.items()},
            }
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "lstm-fpga model IR",
            **self._meta(),
            "directions": directions,
            "head": head,
            **attention,
        }

    def save(self, path) -> tuple[Path, Path]:
        """Write ``path.json`` and ``path.npz`` (an existing suffix is replaced) atomically."""
        stem = _stem(path)
        stem.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for d in self.directions:
            arrays[f"{d.name}.w_ih"] = d.w_ih
            arrays[f"{d.name}.w_hh"] = d.w_hh
            arrays[f"{d.name}.bias"] = d.bias
            if d.w_hr is not None:
                arrays[f"{d.name}.w_hr"] = d.w_hr
        if self.head is not None:
            arrays["head.weight"] = self.head.weight
            arrays["head.bias"] = self.head.bias
        if self.attention is not None:
            for name in ("w", "bias", "v"):
                arrays[f"attention.{name}"] = getattr(self.attention, name)
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        _atomic_write(npz_path, lambda f: np.savez(f, **arrays))
        text = json.dumps(self.to_json_dict(), indent=2) + "\n"
        _atomic_write(json_path, lambda f: f.write(text.encode()))
        return json_path, npz_path

    @classmethod
    def load(cls, path) -> LstmModel:
        """Load an IR saved by :meth:`save` from ``NAME``, ``NAME.json`` or ``NAME.npz``."""
        stem = _stem(path)
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        for p in (json_path, npz_path):
            if not p.is_file():
                raise IRError(f"{p}: no such file; an IR is saved as NAME.json + NAME.npz")
        fix = "regenerate the IR with this version"
        meta = read_versioned_json(json_path.read_text(), SCHEMA_VERSION, json_path, IRError, fix)
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}

        def array(key):
            if key not in arrays:
                raise IRError(f"{npz_path}: missing array {key!r}")
            return arrays[key]

        try:
            # Files written before GRU support hold LSTMs and no "cell_type".
            cell_type = CellType.parse(meta.get("cell_type", "lstm"))
            # Files written before proj_size support hold no "proj_size" (no projection).
            proj_size = meta.get("proj_size", 0)
            formats_class = LstmpFormats if proj_size else cell_formats(cell_type)
            directions = []
            for d in meta["directions"]:
                parsed = {k: FixedFormat.parse(v) for k, v in d["formats"].items()}
                formats = formats_class(**parsed)
                directions.append(
                    LayerDirection(
                        layer=d["layer"],
                        reverse=d["reverse"],
                        w_ih=array(f"{d['name']}.w_ih"),
                        w_hh=array(f"{d['name']}.w_hh"),
                        bias=array(f"{d['name']}.bias"),
                        formats=formats,
                        w_hr=array(f"{d['name']}.w_hr") if proj_size else None,
                    )
                )
            head = None
            if meta["head"] is not None:
                formats = HeadFormats(
                    **{k: FixedFormat.parse(v) for k, v in meta["head"]["formats"].items()}
                )
                head = LinearHead(array("head.weight"), array("head.bias"), formats)
            attention = None
            if meta.get("attention") is not None:
                formats = AttentionFormats(
                    **{k: FixedFormat.parse(v) for k, v in meta["attention"]["formats"].items()}
                )
                weights = [array(f"attention.{name}") for name in ("w", "bias", "v")]
                attention = AttentionPooling(*weights, formats)
            return cls(
                input_size=meta["input_size"],
                hidden_size=meta["hidden_size"],
                num_layers=meta["num_layers"],
                bidirectional=meta["bidirectional"],
                bias=meta["bias"],
                directions=tuple(directions),
                head=head,
                rounding=Rounding(meta["rounding"]),
                overflow=Overflow(meta["overflow"]),
                cell_type=cell_type,
                attention=attention,
                proj_size=proj_size,
            )
        except ValueError as error:
            if isinstance(error, IRError):
                raise
            raise IRError(f"{json_path}: {error}") from None
        except KeyError as error:
            raise IRError(f"{json_path}: missing key {error}") from None
        except TypeError as error:
            raise IRError(f"{json_path}: malformed entry ({error})") from None


def _stem(path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npz") else path


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
