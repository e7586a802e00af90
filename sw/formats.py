"""Tensor names, fixed-point formats of a whole model, and how calibration chooses them.

Every tensor has a name (``docs/import_and_calibration.md``): ``x`` (model input), per layer
direction ``l{k}`` / ``l{k}_reverse`` the tensors ``.w_ih``, ``.w_hh``, ``.bias``,
``.preact``, ``.gate``, ``.cell`` (LSTM only), ``.hidden`` (and for an LSTMP, after
``.bias``, ``.w_hr`` and, after ``.cell``, ``.proj_in``), with attention pooling
``attention.w``, ``.bias``, ``.preact``, ``.tanh``, ``.v``, ``.score``, ``.exp``, ``.alpha``,
``.context``, and for the head ``head.weight``, ``head.bias``, ``head.output``. The same
names key the recorders of :meth:`FloatLstm.forward` and :func:`run_reference`, the format
overrides and the report.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .float_model import FloatLstm
from .numerics import (
    ACTIVATION_DOMAIN,
    DEFAULT_WIDTH,
    MAX_EXACT_WIDTH,
    AttentionFormats,
    FixedFormat,
    FormatWidthError,
    GruFormats,
    HeadFormats,
    LstmFormats,
    LstmpFormats,
    check_format_chain,
)
from .shape import CellType, LayerStack

__all__ = [
    "ATTENTION_TENSORS",
    "MAX_WIDTH",
    "MIN_WIDTH",
    "Calibration",
    "CalibrationError",
    "CalibrationFormatWidthError",
    "ModelFormats",
    "TensorRange",
    "choose_formats",
    "parse_format_overrides",
    "tensor_names",
]

#: Tensor widths calibration accepts. The cell accumulator sums two products of two
#: ``width``-bit values (``2 * width + 2`` bits at least) within the widest exact intermediate;
#: a model's own limit can be lower (longer sums, differently scaled products) and is then
#: named by :func:`choose_formats`.
MIN_WIDTH, MAX_WIDTH = 4, (MAX_EXACT_WIDTH - 2) // 2

_DIRECTION_TENSORS = ("w_ih", "w_hh", "bias", "preact", "gate", "cell", "hidden")
_HEAD_TENSORS = ("weight", "bias", "output")
#: Attention pooling's tensors (``attention.<name>``), in report order.
ATTENTION_TENSORS = ("w", "bias", "preact", "tanh", "v", "score", "exp", "alpha", "context")
# Integer bits that cover the activation tables' whole input domain [-8, 8).
_PREACT_INT_BITS = math.ceil(math.log2(ACTIVATION_DOMAIN))


class CalibrationError(ValueError):
    """Calibration or quantisation cannot proceed; the message names the tensor and the fix."""


class CalibrationFormatWidthError(CalibrationError, FormatWidthError):
    """The chosen formats need an intermediate wider than the reference computes exactly."""


def _direction_names(num_layers: int, bidirectional: bool) -> tuple[str, ...]:
    suffixes = ("", "_reverse") if bidirectional else ("",)
    return tuple(f"l{k}{s}" for k in range(num_layers) for s in suffixes)


def tensor_names(
    num_layers: int,
    bidirectional: bool,
    head: bool,
    cell_type: CellType = CellType.LSTM,
    projected: bool = False,
    attention: bool = False,
) -> tuple[str, ...]:
    """Every tensor name of a model shape, in report order (a GRU has no ``.cell``; an LSTMP,
    ``projected``, has ``.w_hr`` and ``.proj_in`` too; ``attention`` adds
    :data:`ATTENTION_TENSORS` before the head)."""
    names = ["x"]
    tensors = _DIRECTION_TENSORS
    if CellType.parse(cell_type) is CellType.GRU:
        tensors = tuple(t for t in tensors if t != "cell")
    if projected:
        tensors = ("w_ih", "w_hh", "bias", "w_hr", "preact", "gate", "cell", "proj_in", "hidden")
    for d in _direction_names(num_layers, bidirectional):
        names += [f"{d}.{t}" for t in tensors]
    if attention:
        names += [f"attention.{t}" for t in ATTENTION_TENSORS]
    if head:
        names += [f"head.{t}" for t in _HEAD_TENSORS]
    return tuple(names)


@dataclass(frozen=True)
class ModelFormats(LayerStack):
    """The format of every tensor of a model, before any integer weights exist.

    ``directions`` are in PyTorch's order (``l0``, ``l0_reverse``, ``l1``, ...). The chaining
    rules of :class:`LstmModel` hold: layer ``k > 0`` takes layer ``k-1``'s hidden format as
    input, both directions of a layer share the hidden format, the head takes the last
    layer's hidden format, and no bias has more fraction bits than its accumulator.
    """

    num_layers: int
    bidirectional: bool
    directions: tuple[LstmFormats | GruFormats, ...]
    head: HeadFormats | None = None
    attention: AttentionFormats | None = None

    def __post_init__(self):
        object.__setattr__(self, "directions", tuple(self.directions))
        kinds = {type(f) for f in self.directions}
        names = _direction_names(self.num_layers, self.bidirectional)
        if len(self.directions) != len(names):
            raise CalibrationError(
                f"ModelFormats has {len(self.directions)} direction formats, expected "
                f"{len(names)} for num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}"
            )
        for name, f in zip(names, self.directions, strict=True):
            if not isinstance(f, LstmFormats | GruFormats):
                raise CalibrationError(
                    f"formats of {name} must be LstmFormats or GruFormats, not {type(f)}"
                )
        if len(kinds) > 1:
            raise CalibrationError(
                "ModelFormats mixes LstmFormats, LstmpFormats and GruFormats; every direction "
                "of a model has the same cell type (and projection)"
            )
        if self.head is not None and not isinstance(self.head, HeadFormats):
            raise CalibrationError(f"head formats must be HeadFormats, not {type(self.head)}")
        if self.attention is not None and not isinstance(self.attention, AttentionFormats):
            raise CalibrationError(
                f"attention formats must be AttentionFormats, not {type(self.attention)}"
            )
        try:
            check_format_chain(
                self.num_layers, self.bidirectional, self.directions, self.head, self.attention
            )
        except ValueError as error:
            raise CalibrationError(str(error)) from None
        parts = [*zip(names, self.directions, strict=True)]
        if self.attention is not None:
            parts.append(("attention", self.attention))
        for name, f in parts + ([] if self.head is None else [("head", self.head)]):
            try:
                f.check_bias()
            except ValueError as error:
                raise CalibrationError(f"{name}: {error}") from None

    @property
    def cell_type(self) -> CellType:
        """The cell type the direction formats are for."""
        return CellType.GRU if isinstance(self.directions[0], GruFormats) else CellType.LSTM

    @property
    def projected(self) -> bool:
        """Formats of an LSTMP (``nn.LSTM(proj_size > 0)``): :class:`LstmpFormats`."""
        return isinstance(self.directions[0], LstmpFormats)

    @property
    def names(self) -> tuple[str, ...]:
        return tensor_names(
            self.num_layers,
            self.bidirectional,
            self.head is not None,
            self.cell_type,
            self.projected,
            self.attention is not None,
        )

    def __getitem__(self, name: str) -> FixedFormat:
        if name == "x":
            return self.directions[0].x
        if name not in self.names:
            raise KeyError(name)
        owner, tensor = name.split(".")
        if owner == "head":
            return getattr(self.head, tensor)
        if owner == "attention":
            return getattr(self.attention, tensor)
        index = _direction_names(self.num_layers, self.bidirectional).index(owner)
        return getattr(self.directions[index], tensor)

    def items(self) -> tuple[tuple[str, FixedFormat], ...]:
        return tuple((name, self[name]) for name in self.names)


def _fits(lo: float, hi: float, fmt: FixedFormat) -> bool:
    return fmt.min_value <= lo and hi <= fmt.max_value


def _data_format(r: TensorRange, width: int) -> FixedFormat:
    """The format of ``width`` bits with the most fraction bits that holds ``[min, max]``."""
    if r.abs_max == 0.0:
        return FixedFormat(width, width - 1)  # all zeros: any format is exact
    frac = max(-64, min(64, width - 1 - math.ceil(math.log2(r.abs_max))))
    while frac < 64 and _fits(r.min, r.max, FixedFormat(width, frac + 1)):
        frac += 1
    while not _fits(r.min, r.max, FixedFormat(width, frac)):
        if frac == -64:
            raise CalibrationError(
                f"{r.name} reaches {r.abs_max:g}, beyond any {width}-bit fixed-point format"
            )
        frac -= 1
    return FixedFormat(width, frac)


def _override_value(name: str, value) -> FixedFormat:
    if isinstance(value, FixedFormat):
        return value
    if isinstance(value, str):
        try:
            return FixedFormat.parse(value)
        except ValueError as error:
            raise CalibrationError(f"format override {name}={value}: {error}") from None
    raise CalibrationError(
        f"format override {name} must be a FixedFormat or a string like 'Q3.12', not "
        f"{type(value).__name__}"
    )


def _check_override_names(overrides: Mapping[str, FixedFormat], names) -> None:
    for name in overrides:
        if name in names:
            continue
        if isinstance(name, str) and name.endswith(".x"):
            raise CalibrationError(
                f"{name!r} cannot be overridden: a layer's input format is 'x' for layer 0 "
                f"and the previous layer's hidden format ('l<k-1>.hidden') otherwise"
            )
        raise CalibrationError(
            f"unknown tensor {name!r} in format overrides; valid names: {', '.join(names)}"
        )


def parse_format_overrides(items: Iterable[str]) -> dict[str, FixedFormat]:
    """Parse command-line style overrides ``["l0.cell=Q4.11", "x=Q3.12"]`` into a dict."""
    overrides: dict[str, FixedFormat] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CalibrationError(
                f"format override {item!r} must look like TENSOR=Qm.n, e.g. l0.cell=Q4.11"
            )
        if name in overrides:
            raise CalibrationError(f"format override for {name!r} is given twice")
        overrides[name] = _override_value(name, text.strip())
    return overrides


@dataclass(frozen=True)
class TensorRange:
    """Observed range of one tensor on the calibration data (weights: of their values)."""

    name: str
    min: float
    max: float
    count: int

    @property
    def abs_max(self) -> float:
        return max(-self.min, self.max, 0.0)


def choose_formats(
    float_model: FloatLstm,
    ranges: Iterable[TensorRange],
    *,
    width: int = DEFAULT_WIDTH,
    overrides: Mapping[str, FixedFormat | str] | None = None,
    headroom_bits: int = 0,
    weight_bits: int | None = None,
) -> ModelFormats:
    """Choose every tensor's format from observed ``ranges`` (see :func:`calibrate`).

    ``weight_bits`` (``None``: ``width``) is the width of the weight matrices (``w_ih``,
    ``w_hh``, ``head.weight``), independent of the data, state and accumulator widths; their
    integer/fraction split comes from the weights' range like every other format. Biases
    keep ``width`` bits (they are one value per row, not the block-RAM cost).

    A ``width`` above the default whose formats need an intermediate wider than the reference
    computes exactly (:func:`check_exact`) is refused with the widest width that works for
    this model and these ranges.
    """
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise CalibrationError(
            f"width must be an int from {MIN_WIDTH} to {MAX_WIDTH}, not {width!r}"
        )
    if isinstance(headroom_bits, bool) or not isinstance(headroom_bits, int) or headroom_bits < 0:
        raise CalibrationError(f"headroom_bits must be an int >= 0, not {headroom_bits!r}")
    if weight_bits is None:
        weight_bits = width
    if (
        isinstance(weight_bits, bool)
        or not isinstance(weight_bits, int)
        or not MIN_WIDTH <= weight_bits <= MAX_WIDTH
    ):
        raise CalibrationError(
            f"weight_bits must be an int from {MIN_WIDTH} to {MAX_WIDTH}, not {weight_bits!r}"
        )
    ranges = tuple(ranges)
    choose = functools.partial(
        _choose, float_model, ranges, overrides=overrides, headroom_bits=headroom_bits
    )
    try:
        return choose(width, weight_bits=weight_bits)
    except CalibrationFormatWidthError as error:
        if width <= DEFAULT_WIDTH or any(name == error.tensor for name in overrides or {}):
            raise  # the format the message names is the fix, not a narrower width
        for narrower in range(width - 1, MIN_WIDTH - 1, -1):
            try:
                choose(narrower, weight_bits=min(weight_bits, narrower))
            except CalibrationError:
                continue
            raise CalibrationFormatWidthError(
                f"{error}; or use a narrower width: {narrower} bits is the widest that works "
                f"for this model (width {width} is too wide)",
                error.tensor,
                error.width,
            ) from None
        raise


def _choose(float_model, ranges, width, *, overrides, headroom_bits, weight_bits) -> ModelFormats:
    fm = float_model
    projected = fm.proj_size > 0
    names = tensor_names(
        fm.num_layers,
        fm.bidirectional,
        fm.head is not None,
        fm.cell_type,
        projected,
        fm.attention is not None,
    )
    by_name = {r.name: r for r in ranges}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise CalibrationError(
            f"no calibration range for {', '.join(missing)}; ranges must come from "
            f"calibrate() on this model"
        )
    given = {name: _override_value(name, v) for name, v in (overrides or {}).items()}
    _check_override_names(given, names)

    def pick(name: str, automatic: FixedFormat) -> FixedFormat:
        return given.get(name, automatic)

    def data(name: str, headroom: int = 0, bits: int = width) -> FixedFormat:
        automatic = _data_format(by_name[name], bits)
        return pick(name, FixedFormat(bits, automatic.frac - headroom))

    def weight(name: str) -> FixedFormat:
        return data(name, bits=weight_bits)

    def capped_bias(name: str, formats):
        """``formats`` (a layer direction's or the head's) with a bias no finer than its
        accumulator; an override finer than that is refused (:func:`check_bias_frac`)."""
        if name in given:
            try:
                formats.check_bias()
            except ValueError as error:
                raise CalibrationError(f"format override {name}={given[name]}: {error}") from None
            return formats
        # Bias bits finer than the accumulator's LSB would be shifted out anyway.
        frac = min(formats.bias.frac, formats.accumulator_frac)
        return replace(formats, bias=FixedFormat(width, frac))

    unit = FixedFormat(width, width - 1)  # gates and h lie in (-1, 1)
    x_format = data("x", headroom_bits)
    hidden = []
    for layer in range(fm.num_layers):
        chosen = {
            n: given[n] for n in (f"l{layer}.hidden", f"l{layer}_reverse.hidden") if n in given
        }
        if len(set(chosen.values())) > 1:
            text = " and ".join(f"{n}={v}" for n, v in chosen.items())
            raise CalibrationError(
                f"{text} conflict: both directions of layer {layer} share one hidden format"
            )
        automatic = unit
        if projected:  # h_t = W_hr m_t leaves (-1, 1): both directions' range decides
            both = [by_name[f"l{layer}{s}.hidden"] for s in ("", "_reverse")[: fm.num_directions]]
            joint = TensorRange(
                f"l{layer}.hidden",
                min(r.min for r in both),
                max(r.max for r in both),
                sum(r.count for r in both),
            )
            automatic = FixedFormat(width, _data_format(joint, width).frac - headroom_bits)
        hidden.append(next(iter(chosen.values()), automatic))

    directions = []
    for d in fm.directions:
        n = d.name
        x = x_format if d.layer == 0 else hidden[d.layer - 1]
        preact_frac = _data_format(by_name[f"{n}.preact"], width).frac - headroom_bits
        # The tables are flat outside [-8, 8): more integer bits than that only lose precision.
        # Not so for a GRU: n's input and recurrent parts (preact too) are summed after the
        # reset product, before the table, so they keep their whole range.
        if fm.cell_type is not CellType.GRU:
            preact_frac = max(preact_frac, width - 1 - _PREACT_INT_BITS)
        auto_preact = FixedFormat(width, preact_frac)
        chosen = dict(
            x=x,
            w_ih=weight(f"{n}.w_ih"),
            w_hh=weight(f"{n}.w_hh"),
            bias=data(f"{n}.bias"),
            preact=pick(f"{n}.preact", auto_preact),
            gate=pick(f"{n}.gate", unit),
            hidden=hidden[d.layer],
        )
        if fm.cell_type is CellType.GRU:
            formats = GruFormats(**chosen)
        elif projected:
            formats = LstmpFormats(
                **chosen,
                cell=data(f"{n}.cell", headroom_bits),
                w_hr=weight(f"{n}.w_hr"),
                proj_in=pick(f"{n}.proj_in", unit),
            )
        else:
            formats = LstmFormats(**chosen, cell=data(f"{n}.cell", headroom_bits))
        directions.append(capped_bias(f"{n}.bias", formats))
    attention = None
    if fm.attention is not None:
        # docs/attention.md: weights and data like the LSTM's; the score pre-activation with
        # at most 3 integer bits (the tanh table is flat beyond [-8, 8)); tanh in (-1, 1);
        # exp and alpha in [0, 1], unsigned with one integer bit so that 1.0 is exact; the
        # scores and the context from their observed ranges (headroom included).
        preact_frac = _data_format(by_name["attention.preact"], width).frac - headroom_bits
        preact_frac = max(preact_frac, width - 1 - _PREACT_INT_BITS)
        unit_interval = FixedFormat(width, width - 1, signed=False)
        try:
            chosen = AttentionFormats(
                x=hidden[-1],
                w=weight("attention.w"),
                bias=data("attention.bias"),
                preact=pick("attention.preact", FixedFormat(width, preact_frac)),
                tanh=pick("attention.tanh", unit),
                v=weight("attention.v"),
                score=data("attention.score", headroom_bits),
                exp=pick("attention.exp", unit_interval),
                alpha=pick("attention.alpha", unit_interval),
                context=data("attention.context", headroom_bits),
            )
        except ValueError as error:
            raise CalibrationError(f"format override {error}") from None
        attention = capped_bias("attention.bias", chosen)
    head = None
    if fm.head is not None:
        head = capped_bias(
            "head.bias",
            HeadFormats(
                x=hidden[-1] if attention is None else attention.context,
                weight=weight("head.weight"),
                bias=data("head.bias"),
                output=data("head.output", headroom_bits),
            ),
        )
    formats = ModelFormats(fm.num_layers, fm.bidirectional, tuple(directions), head, attention)
    _check_exact(fm, formats)
    return formats


@dataclass(frozen=True)
class Calibration:
    """What calibration observed (``ranges``) and chose (``formats``)."""

    width: int
    ranges: tuple[TensorRange, ...]
    formats: ModelFormats

    def range(self, name: str) -> TensorRange:
        for r in self.ranges:
            if r.name == name:
                return r
        raise KeyError(name)


def _check_exact(fm: FloatLstm, formats: ModelFormats) -> None:
    """Every intermediate width of the chosen formats (:func:`check_exact`)."""
    features = fm.real_hidden_size * fm.num_directions
    proj = (fm.proj_size,) if fm.proj_size else ()
    datapaths = [
        (d.name, f.datapath(fm.layer_input_size(d.layer), fm.hidden_size, *proj))
        for d, f in zip(fm.directions, formats.directions, strict=True)
    ]
    if formats.attention is not None:
        A = fm.attention.attention_size
        datapaths.append(("attention", formats.attention.datapath(features, A)))
    if formats.head is not None:
        datapaths.append(("head", formats.head.datapath(features)))
    for name, datapath in datapaths:
        try:
            datapath.check_exact(name)
        except FormatWidthError as error:
            raise CalibrationFormatWidthError(str(error), error.tensor, error.width) from None
