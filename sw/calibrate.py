"""Calibration, quantisation and the quantisation report.

The flow from float weights to the integer IR::

    FloatLstm --calibrate(samples)--> Calibration (ranges + ModelFormats)
              --quantize_model------> LstmModel (the IR)
              --quantization_report-> QuantizationReport (per tensor: range, format,
                                       saturations, SQNR vs float)

:func:`quantize_from_torch` runs all of it from a PyTorch model or state_dict file.

Every tensor has a name (``docs/import_and_calibration.md``): ``x`` (model input), per layer
direction ``l{k}`` / ``l{k}_reverse`` the tensors ``.w_ih``, ``.w_hh``, ``.bias``,
``.preact``, ``.gate``, ``.cell``, ``.hidden``, and for the head ``head.weight``,
``head.bias``, ``head.output``. The same names key the recorders of
:meth:`FloatLstm.forward` and :func:`run_reference`, the format overrides and the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .float_model import FloatLstm, TensorRecorder, prepare_sequences
from .ir import LayerDirection, LinearHead, LstmModel
from .numerics import (
    ACTIVATION_DOMAIN,
    DEFAULT_WIDTH,
    FixedFormat,
    HeadDatapath,
    HeadFormats,
    LstmDatapath,
    LstmFormats,
    Overflow,
    Rounding,
    dequantize,
    overflow_count,
    quantize,
    shift_round,
)
from .reference import gate_accumulators, quantize_input, run_reference

__all__ = [
    "CHUNK_SEQUENCES",
    "MAX_ACCUMULATOR_WIDTH",
    "MAX_WIDTH",
    "MIN_WIDTH",
    "REPORT_SCHEMA_VERSION",
    "Calibration",
    "CalibrationError",
    "ModelFormats",
    "QuantizationReport",
    "TensorRange",
    "TensorReport",
    "calibrate",
    "choose_formats",
    "parse_format_overrides",
    "quantization_report",
    "quantize_from_torch",
    "quantize_model",
    "tensor_names",
]

#: Version of the report's JSON layout.
REPORT_SCHEMA_VERSION = 1
#: Widest accumulator calibration accepts: the integer reference sums exactly in int64.
MAX_ACCUMULATOR_WIDTH = 62
#: Sequences per float/integer pass: bounds the memory of recorded intermediates.
CHUNK_SEQUENCES = 256
#: Tensor widths calibration accepts (the o * tanh(c) product of two gate values must fit).
MIN_WIDTH, MAX_WIDTH = 4, 31

_DIRECTION_TENSORS = ("w_ih", "w_hh", "bias", "preact", "gate", "cell", "hidden")
_HEAD_TENSORS = ("weight", "bias", "output")
_RECORDED = ("preact", "gate", "cell", "hidden")
# Integer bits that cover the activation tables' whole input domain [-8, 8).
_PREACT_INT_BITS = math.ceil(math.log2(ACTIVATION_DOMAIN))


class CalibrationError(ValueError):
    """Calibration or quantisation cannot proceed; the message names the tensor and the fix."""


# -- names -----------------------------------------------------------------------------------
def _direction_names(num_layers: int, bidirectional: bool) -> tuple[str, ...]:
    suffixes = ("", "_reverse") if bidirectional else ("",)
    return tuple(f"l{k}{s}" for k in range(num_layers) for s in suffixes)


def tensor_names(num_layers: int, bidirectional: bool, head: bool) -> tuple[str, ...]:
    """Every tensor name of a model shape, in report order."""
    names = ["x"]
    for d in _direction_names(num_layers, bidirectional):
        names += [f"{d}.{t}" for t in _DIRECTION_TENSORS]
    if head:
        names += [f"head.{t}" for t in _HEAD_TENSORS]
    return tuple(names)


# -- formats ---------------------------------------------------------------------------------
def _gate_acc_frac(f: LstmFormats) -> int:
    return max(f.w_ih.frac + f.x.frac, f.w_hh.frac + f.hidden.frac)


@dataclass(frozen=True)
class ModelFormats:
    """The format of every tensor of a model, before any integer weights exist.

    ``directions`` are in PyTorch's order (``l0``, ``l0_reverse``, ``l1``, ...). The chaining
    rules of :class:`LstmModel` hold: layer ``k > 0`` takes layer ``k-1``'s hidden format as
    input, both directions of a layer share the hidden format, the head takes the last
    layer's hidden format, and no bias has more fraction bits than its accumulator.
    """

    num_layers: int
    bidirectional: bool
    directions: tuple[LstmFormats, ...]
    head: HeadFormats | None = None

    def __post_init__(self):
        object.__setattr__(self, "directions", tuple(self.directions))
        names = _direction_names(self.num_layers, self.bidirectional)
        if len(self.directions) != len(names):
            raise CalibrationError(
                f"ModelFormats has {len(self.directions)} direction formats, expected "
                f"{len(names)} for num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}"
            )
        D = self.num_directions
        for k, (name, f) in enumerate(zip(names, self.directions, strict=True)):
            if not isinstance(f, LstmFormats):
                raise CalibrationError(f"formats of {name} must be LstmFormats, not {type(f)}")
            layer = k // D
            feed = self.directions[0].x if layer == 0 else self.directions[(layer - 1) * D].hidden
            if f.x != feed:
                source = "the model input" if layer == 0 else f"layer {layer - 1}'s hidden"
                raise CalibrationError(
                    f"{name}.x is {f.x} but {source} format is {feed}; a layer's input format "
                    f"must equal what feeds it"
                )
            if f.hidden != self.directions[layer * D].hidden:
                raise CalibrationError(
                    f"{name}.hidden is {f.hidden} but l{layer}.hidden is "
                    f"{self.directions[layer * D].hidden}; both directions of a layer share "
                    f"the hidden format"
                )
            if f.bias.frac > _gate_acc_frac(f):
                raise CalibrationError(
                    f"{name}.bias is {f.bias} with {f.bias.frac} fraction bits but its "
                    f"accumulator has {_gate_acc_frac(f)}; use at most {_gate_acc_frac(f)}"
                )
        if self.head is not None:
            if not isinstance(self.head, HeadFormats):
                raise CalibrationError(f"head formats must be HeadFormats, not {type(self.head)}")
            last = self.directions[(self.num_layers - 1) * D].hidden
            if self.head.x != last:
                raise CalibrationError(
                    f"head.x is {self.head.x} but the last layer's hidden format is {last}"
                )
            acc_frac = self.head.weight.frac + self.head.x.frac
            if self.head.bias.frac > acc_frac:
                raise CalibrationError(
                    f"head.bias is {self.head.bias} with {self.head.bias.frac} fraction bits but "
                    f"its accumulator has {acc_frac}; use at most {acc_frac}"
                )

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def names(self) -> tuple[str, ...]:
        return tensor_names(self.num_layers, self.bidirectional, self.head is not None)

    def __getitem__(self, name: str) -> FixedFormat:
        if name == "x":
            return self.directions[0].x
        if name not in self.names:
            raise KeyError(name)
        owner, tensor = name.split(".")
        if owner == "head":
            return getattr(self.head, tensor)
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
) -> ModelFormats:
    """Choose every tensor's format from observed ``ranges`` (see :func:`calibrate`)."""
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_WIDTH <= width <= MAX_WIDTH:
        raise CalibrationError(
            f"width must be an int from {MIN_WIDTH} to {MAX_WIDTH}, not {width!r}"
        )
    if isinstance(headroom_bits, bool) or not isinstance(headroom_bits, int) or headroom_bits < 0:
        raise CalibrationError(f"headroom_bits must be an int >= 0, not {headroom_bits!r}")
    fm = float_model
    names = tensor_names(fm.num_layers, fm.bidirectional, fm.head is not None)
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

    def data(name: str, headroom: int = 0) -> FixedFormat:
        automatic = _data_format(by_name[name], width)
        return pick(name, FixedFormat(width, automatic.frac - headroom))

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
        hidden.append(next(iter(chosen.values()), unit))

    directions = []
    for d in fm.directions:
        n = d.name
        x = x_format if d.layer == 0 else hidden[d.layer - 1]
        w_ih, w_hh = data(f"{n}.w_ih"), data(f"{n}.w_hh")
        acc_frac = max(w_ih.frac + x.frac, w_hh.frac + hidden[d.layer].frac)
        bias = _capped_bias(f"{n}.bias", given, by_name, width, acc_frac)
        preact_frac = _data_format(by_name[f"{n}.preact"], width).frac - headroom_bits
        # The tables are flat outside [-8, 8): more integer bits than that only lose precision.
        auto_preact = FixedFormat(width, max(preact_frac, width - 1 - _PREACT_INT_BITS))
        directions.append(
            LstmFormats(
                x=x,
                w_ih=w_ih,
                w_hh=w_hh,
                bias=bias,
                preact=pick(f"{n}.preact", auto_preact),
                gate=pick(f"{n}.gate", unit),
                cell=data(f"{n}.cell", headroom_bits),
                hidden=hidden[d.layer],
            )
        )
    head = None
    if fm.head is not None:
        weight = data("head.weight")
        x = hidden[-1]
        head = HeadFormats(
            x=x,
            weight=weight,
            bias=_capped_bias("head.bias", given, by_name, width, weight.frac + x.frac),
            output=data("head.output", headroom_bits),
        )
    formats = ModelFormats(fm.num_layers, fm.bidirectional, tuple(directions), head)
    _check_accumulators(fm, formats)
    return formats


def _capped_bias(name, given, by_name, width, acc_frac) -> FixedFormat:
    if name in given:
        fmt = given[name]
        if fmt.frac > acc_frac:
            raise CalibrationError(
                f"format override {name}={fmt} has {fmt.frac} fraction bits but the products "
                f"it is added to have {acc_frac}; use at most {acc_frac} fraction bits"
            )
        return fmt
    fmt = _data_format(by_name[name], width)
    # Bias bits finer than the accumulator's LSB would be shifted out anyway.
    return FixedFormat(width, min(fmt.frac, acc_frac))


def _check_accumulators(fm: FloatLstm, formats: ModelFormats) -> None:
    for d, f in zip(fm.directions, formats.directions, strict=True):
        in_size = fm.input_size if d.layer == 0 else fm.hidden_size * fm.num_directions
        dp = LstmDatapath(f, in_size, fm.hidden_size)
        checks = (
            (
                "gate",
                dp.gate_acc.width,
                f"w_ih {f.w_ih} * x {f.x} + w_hh {f.w_hh} * hidden {f.hidden}",
            ),
            (
                "cell",
                dp.cell_acc.width,
                f"gate {f.gate} * cell {f.cell} + gate {f.gate} * gate {f.gate}",
            ),
            ("hidden", dp.hidden_product_width, f"gate {f.gate} * gate {f.gate}"),
        )
        for what, width, products in checks:
            if width > MAX_ACCUMULATOR_WIDTH:
                raise CalibrationError(
                    f"{d.name}: the {what} accumulator ({products}) needs {width} bits, more "
                    f"than {MAX_ACCUMULATOR_WIDTH}: its products' fraction bits differ too much; "
                    f"override the finest format with fewer fraction bits"
                )
    if formats.head is not None:
        f = formats.head
        width = HeadDatapath(f, fm.head.weight.shape[1]).acc.width
        if width > MAX_ACCUMULATOR_WIDTH:
            raise CalibrationError(
                f"head: the accumulator (weight {f.weight} * x {f.x}, bias {f.bias}) needs "
                f"{width} bits, more than {MAX_ACCUMULATOR_WIDTH}; override head.weight or "
                f"head.bias with fewer fraction bits"
            )


# -- calibration -----------------------------------------------------------------------------
def _prepare_samples(fm: FloatLstm, samples, batch_first: bool, lengths):
    """Samples as time-major float64 ``(T, B, I)`` plus ``lengths``.

    ``samples`` is an array ``(T, I)``, ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``)
    or a list of ``(T_b, I)`` sequences of different lengths.
    """
    if hasattr(samples, "detach"):  # a torch tensor
        samples = samples.detach().cpu().numpy()
    if isinstance(samples, list | tuple) and samples and np.ndim(samples[0]) == 2:
        if lengths is not None:
            raise CalibrationError("give lengths only with a padded array, not with a list")
        seqs = [np.asarray(s, dtype=np.float64) for s in samples]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        if any(s.shape[1:] != (fm.input_size,) for s in seqs):
            shapes = [s.shape for s in seqs]
            raise CalibrationError(
                f"sample sequences must each be (T, {fm.input_size}), got shapes {shapes}"
            )
        if lengths.min() < 1:
            raise CalibrationError("a sample sequence has no time steps")
        padded = np.zeros((int(lengths.max()), len(seqs), fm.input_size))
        for b, s in enumerate(seqs):
            padded[: len(s), b] = s
        samples, batch_first = padded, False
    try:
        xs, lengths, _ = prepare_sequences(samples, batch_first, lengths, fm.input_size)
    except (TypeError, ValueError) as error:
        raise CalibrationError(f"calibration samples: {error}") from None
    xs = np.ascontiguousarray(xs)  # numpy's matmul leaves BLAS for transposed batches
    valid = np.arange(xs.shape[0])[:, None] < lengths[None, :]
    if not np.all(np.isfinite(xs[valid])):
        raise CalibrationError("calibration samples contain NaN or infinite values")
    return xs, lengths


def _chunks(xs: np.ndarray, lengths: np.ndarray):
    """The batch in slices of :data:`CHUNK_SEQUENCES` sequences, trimmed to their length."""
    for start in range(0, xs.shape[1], CHUNK_SEQUENCES):
        part = lengths[start : start + CHUNK_SEQUENCES]
        yield np.ascontiguousarray(xs[: part.max(), start : start + CHUNK_SEQUENCES]), part


def _record_float(fm: FloatLstm, xs, lengths, head_on: str) -> TensorRecorder:
    recorder = TensorRecorder()
    fm.forward(xs, lengths=lengths, head_on=head_on, recorder=recorder)
    return recorder


def _is_recorded(name: str) -> bool:
    """Activations (recorded per step) as opposed to weights and biases."""
    return name in ("x", "head.output") or name.partition(".")[2] in _RECORDED


def _weight_values(fm: FloatLstm, name: str) -> np.ndarray:
    owner, _, tensor = name.partition(".")
    if owner == "head":
        return getattr(fm.head, tensor).ravel()
    for d in fm.directions:
        if d.name == owner:
            return getattr(d, tensor).ravel()
    raise KeyError(name)


@dataclass
class _Statistics:
    """Running statistics of one tensor over the chunks of a batch."""

    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    signal: float = 0.0
    noise: float = 0.0
    max_error: float = 0.0
    saturations: int = 0

    def add(self, name: str, exact: np.ndarray, approx=None, saturations: int = 0) -> None:
        self.saturations += int(saturations)
        if not exact.size:
            return
        self.count += exact.size
        self.min = min(self.min, float(exact.min()))
        self.max = max(self.max, float(exact.max()))
        if approx is None:
            return
        if approx.shape != exact.shape:  # the float and integer runs must record alike
            raise RuntimeError(
                f"internal error: {name} has {approx.size} quantised values but {exact.size} "
                f"float values"
            )
        error = exact - approx
        self.signal += float(np.dot(exact, exact))
        self.noise += float(np.dot(error, error))
        self.max_error = max(self.max_error, float(np.abs(error).max()))

    def range(self, name: str) -> TensorRange:
        if not self.count:
            return TensorRange(name, 0.0, 0.0, 0)
        return TensorRange(name, self.min, self.max, self.count)

    @property
    def sqnr_db(self) -> float:
        if self.noise == 0.0:
            return math.inf
        if self.signal == 0.0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)


def _observe(fm: FloatLstm, xs, lengths, head_on: str) -> tuple[TensorRange, ...]:
    """Range of every tensor: weights from their values, activations from the float run."""
    names = tensor_names(fm.num_layers, fm.bidirectional, fm.head is not None)
    stats = {name: _Statistics() for name in names}
    for name in names:
        if not _is_recorded(name):
            stats[name].add(name, _weight_values(fm, name))
    for x_part, lengths_part in _chunks(xs, lengths):
        recorder = _record_float(fm, x_part, lengths_part, head_on)
        for name in filter(_is_recorded, names):
            stats[name].add(name, recorder.get(name))
    return tuple(stats[name].range(name) for name in names)


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


def calibrate(
    float_model: FloatLstm,
    samples,
    *,
    batch_first: bool = False,
    lengths=None,
    width: int = DEFAULT_WIDTH,
    overrides: Mapping[str, FixedFormat | str] | None = None,
    headroom_bits: int = 0,
    head_on: str = "last",
) -> Calibration:
    """Run ``float_model`` on ``samples``, record every tensor's range and choose formats.

    Every format is ``width`` bits (unless overridden) with as many fraction bits as the
    observed range allows, except: gates and hidden states lie in (-1, 1) and get
    ``width - 1`` fraction bits; pre-activations never get more than 3 integer bits (the
    activation tables are flat outside [-8, 8)); a bias never gets more fraction bits than its
    accumulator. ``headroom_bits`` extra integer bits for the data-dependent activations
    (``x``, pre-activations, cell states, head output) leave room for data larger than the
    calibration set's. Layer inputs follow the chaining rules (``x``, then the previous layer's
    hidden format). ``overrides`` maps tensor names (:func:`tensor_names`) to formats
    (:class:`FixedFormat` or ``"Qm.n"``).

    ``samples`` is an array (or tensor) ``(T, I)``, ``(T, B, I)`` -- ``(B, T, I)`` with
    ``batch_first`` -- with optional ``lengths`` (B,), or a list of ``(T_b, I)`` sequences of
    different lengths. ``head_on`` is as in :meth:`FloatLstm.forward`: ``"last"`` calibrates
    the head on each sequence's last step, ``"all"`` on every step.
    """
    xs, lengths = _prepare_samples(float_model, samples, batch_first, lengths)
    ranges = _observe(float_model, xs, lengths, head_on)
    formats = choose_formats(
        float_model, ranges, width=width, overrides=overrides, headroom_bits=headroom_bits
    )
    return Calibration(width, ranges, formats)


# -- quantisation ----------------------------------------------------------------------------
def _weights(values, fmt: FixedFormat) -> np.ndarray:
    # Weights are quantised offline: always round to nearest and saturate.
    return quantize(values, fmt, Rounding.HALF_UP, Overflow.SATURATE)


def quantize_model(
    float_model: FloatLstm,
    formats: ModelFormats | Calibration,
    *,
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> LstmModel:
    """Quantise ``float_model``'s weights to ``formats``: the IR.

    Weights and biases (``b_ih + b_hh``) are rounded to nearest and saturated whatever
    ``rounding``/``overflow`` say; those two govern the hardware's run-time rescaling.
    """
    if isinstance(formats, Calibration):
        formats = formats.formats
    fm = float_model
    if (formats.num_layers, formats.bidirectional, formats.head is not None) != (
        fm.num_layers,
        fm.bidirectional,
        fm.head is not None,
    ):
        raise CalibrationError(
            f"the formats are for num_layers={formats.num_layers}, bidirectional="
            f"{formats.bidirectional}, head={formats.head is not None} but the model has "
            f"num_layers={fm.num_layers}, bidirectional={fm.bidirectional}, "
            f"head={fm.head is not None}"
        )
    directions = tuple(
        LayerDirection(
            layer=d.layer,
            reverse=d.reverse,
            w_ih=_weights(d.w_ih, f.w_ih),
            w_hh=_weights(d.w_hh, f.w_hh),
            bias=_weights(d.bias, f.bias),
            formats=f,
        )
        for d, f in zip(fm.directions, formats.directions, strict=True)
    )
    head = None
    if fm.head is not None:
        f = formats.head
        head = LinearHead(_weights(fm.head.weight, f.weight), _weights(fm.head.bias, f.bias), f)
    return LstmModel(
        input_size=fm.input_size,
        hidden_size=fm.hidden_size,
        num_layers=fm.num_layers,
        bidirectional=fm.bidirectional,
        bias=fm.bias,
        directions=directions,
        head=head,
        rounding=rounding,
        overflow=overflow,
    )


# -- report ----------------------------------------------------------------------------------
def _json_float(value: float):
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _from_json_float(value) -> float:
    return float(value)


@dataclass(frozen=True)
class TensorReport:
    """One tensor: float range, format, saturations and error of the quantised model.

    ``saturations`` counts values clamped to the format: for weights, biases and the input
    when they are quantised; for pre-activations, cell and hidden states and the head output
    the rescale results clamped in the integer run (the hardware's saturation events); gates
    come from tables and never clamp at run time. ``sqnr_db`` is ``10 log10(sum f^2 /
    sum (f - q)^2)`` of float values ``f`` and dequantised integer values ``q`` (``inf``
    when they are equal).
    """

    name: str
    format: FixedFormat
    count: int
    min: float
    max: float
    saturations: int
    sqnr_db: float
    max_abs_error: float

    def to_json_dict(self) -> dict:
        return {
            "name": self.name,
            "format": str(self.format),
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "saturations": self.saturations,
            "sqnr_db": _json_float(self.sqnr_db),
            "max_abs_error": self.max_abs_error,
        }

    @classmethod
    def from_json_dict(cls, data: dict) -> TensorReport:
        return cls(
            name=str(data["name"]),
            format=FixedFormat.parse(data["format"]),
            count=int(data["count"]),
            min=float(data["min"]),
            max=float(data["max"]),
            saturations=int(data["saturations"]),
            sqnr_db=_from_json_float(data["sqnr_db"]),
            max_abs_error=float(data["max_abs_error"]),
        )


@dataclass(frozen=True)
class QuantizationReport:
    """Per-tensor quantisation report on ``sequences`` sample sequences (``time_steps`` steps).

    ``str(report)`` is a table; :meth:`to_json`/:meth:`from_json` and :meth:`save`/:meth:`load`
    round-trip it exactly.
    """

    sequences: int
    time_steps: int
    tensors: tuple[TensorReport, ...]

    def __post_init__(self):
        object.__setattr__(self, "tensors", tuple(self.tensors))

    def tensor(self, name: str) -> TensorReport:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def total_saturations(self) -> int:
        return sum(t.saturations for t in self.tensors)

    def table(self) -> str:
        header = ("tensor", "format", "values", "min", "max", "saturated", "SQNR dB", "max |err|")
        rows = [
            (
                t.name,
                str(t.format),
                str(t.count),
                f"{t.min:.4g}",
                f"{t.max:.4g}",
                str(t.saturations),
                f"{t.sqnr_db:.1f}",
                f"{t.max_abs_error:.2e}",
            )
            for t in self.tensors
        ]
        widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

        def line(row):
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [cell.rjust(w) for cell, w in zip(row[2:], widths[2:], strict=True)]
            return "  ".join(cells).rstrip()

        title = (
            f"quantization report: {self.sequences} sequence(s), {self.time_steps} time "
            f"step(s), {self.total_saturations} saturation(s)"
        )
        rule = "-" * len(line(header))
        return "\n".join([title, line(header), rule, *map(line, rows)])

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> str:
        data = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "kind": "lstm-fpga quantization report",
            "sequences": self.sequences,
            "time_steps": self.time_steps,
            "tensors": [t.to_json_dict() for t in self.tensors],
        }
        return json.dumps(data, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QuantizationReport:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CalibrationError(f"quantization report: not valid JSON ({error})") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != REPORT_SCHEMA_VERSION:
            raise CalibrationError(
                f"quantization report: schema_version is {version!r}, this lstm-fpga reads "
                f"version {REPORT_SCHEMA_VERSION}"
            )
        try:
            return cls(
                sequences=int(data["sequences"]),
                time_steps=int(data["time_steps"]),
                tensors=tuple(TensorReport.from_json_dict(t) for t in data["tensors"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"quantization report: malformed entry ({error!r})") from None

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path) -> QuantizationReport:
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"{path}: no such file")
        return cls.from_json(path.read_text())


def _float_saturations(values, fmt: FixedFormat, rounding: Rounding) -> int:
    """How many floats clamp when quantised to ``fmt`` (the rounding decides the edge)."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), fmt.frac)
    rounded = np.floor(scaled + 0.5) if rounding is Rounding.HALF_UP else np.floor(scaled)
    return int(np.count_nonzero((rounded < fmt.min_int) | (rounded > fmt.max_int)))


def _row_positions(valid: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(t, b) of each row a direction recorded: valid steps in processing order."""
    if not reverse:
        return np.nonzero(valid)
    t, b = np.nonzero(valid[::-1])  # the reverse direction runs T-1 .. 0
    return valid.shape[0] - 1 - t, b


def _as_ints(rows: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    return np.rint(np.ldexp(rows, fmt.frac)).astype(np.int64)  # dequantised ints are exact


def _at_bound(rows: np.ndarray, fmt: FixedFormat, overflow: Overflow) -> np.ndarray:
    """Rows that may hold a saturated value. A clamped value sits at the edge of ``fmt``, so
    under ``SATURATE`` only rows with such a value; a wrapped one can be anywhere in the
    format, so under ``WRAP`` every row."""
    if overflow is Overflow.WRAP:
        return np.arange(rows.shape[0])
    return np.flatnonzero(np.any((rows <= fmt.min_value) | (rows >= fmt.max_value), axis=1))


def _direction_saturations(model: LstmModel, xq, valid, recorder) -> dict[str, dict[str, int]]:
    """Saturations per direction, recomputed from the reference's recorded integer states.

    :func:`run_reference` counts per tensor kind only. Only rows that may have saturated
    (:func:`_at_bound`) are recomputed -- exactly, from the recorded states of the step
    before -- all steps at once.
    """
    H = model.hidden_size
    counts = {}
    layer_in = xq
    for layer in range(model.num_layers):
        outs = []
        for reverse in (False, True)[: model.num_directions]:
            d, dp = model.direction(layer, reverse), model.datapath(layer, reverse)
            f = d.formats
            t, b = _row_positions(valid, reverse)
            rows = {k: recorder.get(f"{d.name}.{k}").reshape(t.size, -1) for k in _RECORDED}
            cell = np.zeros((*valid.shape, H), dtype=np.int64)
            hidden = np.zeros((*valid.shape, H), dtype=np.int64)
            cell[t, b] = _as_ints(rows["cell"], f.cell)
            hidden[t, b] = _as_ints(rows["hidden"], f.hidden)
            # Zero initial state; padding steps hold zeros, which is also the state there.
            step = 1 if reverse else -1
            t_prev = t + step
            inside = (t_prev >= 0) & (t_prev < valid.shape[0])
            t_prev = np.where(inside, t_prev, 0)

            def previous(state, sel, inside=inside, t_prev=t_prev, b=b):
                return np.where(inside[sel, None], state[t_prev[sel], b[sel]], 0)

            sel = _at_bound(rows["preact"], f.preact, dp.overflow)
            acc = gate_accumulators(dp, d, layer_in[t[sel], b[sel]], previous(hidden, sel))
            preact = overflow_count(
                shift_round(acc, dp.gate_acc.frac - f.preact.frac, dp.rounding), f.preact
            )
            sel = _at_bound(rows["cell"], f.cell, dp.overflow)
            i, f_gate, g, _, _ = np.split(_as_ints(rows["gate"][sel], f.gate), 5, axis=-1)
            cell_acc = dp.cell_acc.accumulate([f_gate * previous(cell, sel), i * g])
            cell_count = overflow_count(
                shift_round(cell_acc, dp.cell_acc.frac - f.cell.frac, dp.rounding), f.cell
            )
            sel = _at_bound(rows["hidden"], f.hidden, dp.overflow)
            _, _, _, o, tanh_c = np.split(_as_ints(rows["gate"][sel], f.gate), 5, axis=-1)
            hidden_count = overflow_count(
                shift_round(o * tanh_c, dp.hidden_product_frac - f.hidden.frac, dp.rounding),
                f.hidden,
            )
            counts[d.name] = {"preact": preact, "cell": cell_count, "hidden": hidden_count}
            outs.append(hidden)
        layer_in = np.concatenate(outs, axis=2)
    return counts


def _model_formats(model: LstmModel) -> ModelFormats:
    return ModelFormats(
        model.num_layers,
        model.bidirectional,
        tuple(d.formats for d in model.directions),
        None if model.head is None else model.head.formats,
    )


def _report(fm: FloatLstm, model: LstmModel, xs, lengths, head_on) -> QuantizationReport:
    formats = _model_formats(model)
    stats = {name: _Statistics() for name in formats.names}
    directions = {d.name: d for d in model.directions}
    for name, fmt in formats.items():
        if not _is_recorded(name):
            owner, _, tensor = name.partition(".")
            exact = _weight_values(fm, name)
            source = model.head if owner == "head" else directions[owner]
            approx = dequantize(getattr(source, tensor), fmt).ravel()
            saturations = _float_saturations(exact, fmt, Rounding.HALF_UP)
            stats[name].add(name, exact, approx, saturations)
    for x_part, lengths_part in _chunks(xs, lengths):
        _compare_chunk(fm, model, formats, x_part, lengths_part, head_on, stats)
    rows = tuple(
        TensorReport(
            name=name,
            format=fmt,
            count=stats[name].count,
            min=stats[name].range(name).min,
            max=stats[name].range(name).max,
            saturations=stats[name].saturations,
            sqnr_db=stats[name].sqnr_db,
            max_abs_error=stats[name].max_error,
        )
        for name, fmt in formats.items()
    )
    return QuantizationReport(
        sequences=int(xs.shape[1]), time_steps=int(lengths.sum()), tensors=rows
    )


def _compare_chunk(fm, model, formats, xs, lengths, head_on, stats) -> None:
    """Float run vs integer run of one chunk, tensor by tensor, into ``stats``."""
    valid = np.arange(xs.shape[0])[:, None] < lengths[None, :]
    float_rec = _record_float(fm, xs, lengths, head_on)
    xq = quantize_input(model, xs)
    ref_rec = TensorRecorder()
    result = run_reference(model, xq, lengths=lengths, head_on=head_on, recorder=ref_rec)
    by_direction = _direction_saturations(model, xq, valid, ref_rec)
    for kind in ("preact", "cell", "hidden"):
        total = sum(c[kind] for c in by_direction.values())
        if total != getattr(result.saturations, kind):  # two views of one run must agree
            raise RuntimeError(
                f"internal error: {kind} saturations per direction sum to {total}, "
                f"run_reference counted {getattr(result.saturations, kind)}"
            )
    for name in filter(_is_recorded, formats.names):
        exact = float_rec.get(name)
        if name == "x":
            approx = dequantize(xq[valid], formats[name]).ravel()
            saturations = _float_saturations(exact, formats[name], model.rounding)
        elif name == "head.output":
            approx, saturations = ref_rec.get(name), result.saturations.head
        else:
            owner, _, tensor = name.partition(".")
            approx, saturations = ref_rec.get(name), by_direction[owner].get(tensor, 0)
        stats[name].add(name, exact, approx, saturations)


def quantization_report(
    float_model: FloatLstm,
    model: LstmModel,
    samples,
    *,
    batch_first: bool = False,
    lengths=None,
    head_on: str = "last",
) -> QuantizationReport:
    """Compare ``model`` (the IR of ``float_model``) with the float model on ``samples``.

    Float tensors come from :meth:`FloatLstm.forward`, quantised ones from
    :func:`run_reference` on the quantised input (same tensor names, same order); both run
    in chunks of :data:`CHUNK_SEQUENCES` sequences to bound memory. ``samples`` as in
    :func:`calibrate`.
    """
    xs, lengths = _prepare_samples(float_model, samples, batch_first, lengths)
    return _report(float_model, model, xs, lengths, head_on)


def quantize_from_torch(
    source,
    calibration_samples,
    *,
    batch_first: bool | None = None,
    lengths=None,
    width: int = DEFAULT_WIDTH,
    overrides: Mapping[str, FixedFormat | str] | None = None,
    headroom_bits: int = 0,
    head_on: str = "last",
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> tuple[LstmModel, QuantizationReport]:
    """Import, calibrate, quantise and report (on the calibration samples) in one call.

    ``source`` is anything :func:`lstm_fpga.sw.torch_import.import_model` accepts.
    ``batch_first`` describes ``calibration_samples``; ``None`` takes the module's
    ``nn.LSTM.batch_first`` (``False`` for a state_dict, which does not store it).
    """
    from .torch_import import import_model, lstm_batch_first

    fm = import_model(source)
    if batch_first is None:
        batch_first = lstm_batch_first(source)
    xs, lengths = _prepare_samples(fm, calibration_samples, batch_first, lengths)
    ranges = _observe(fm, xs, lengths, head_on)
    formats = choose_formats(
        fm, ranges, width=width, overrides=overrides, headroom_bits=headroom_bits
    )
    model = quantize_model(fm, formats, rounding=rounding, overflow=overflow)
    return model, _report(fm, model, xs, lengths, head_on)
