"""Calibration: observe every tensor's range on sample data (or bound it from a declared
input range) and choose the fixed-point formats; the one-call flow from PyTorch to the IR.

The flow from float weights to the integer IR::

    FloatLstm --calibrate(samples, h0, c0)--> Calibration (ranges + ModelFormats)
              --quantize_model--------------> LstmModel (the IR)
              --quantization_report---------> QuantizationReport (per tensor: range, format,
                                               saturations, SQNR vs float)

:func:`quantize_from_torch` runs all of it from a PyTorch model or state_dict file;
:func:`calibrate_from_range` chooses formats with no data from a declared input range.
The pieces live in :mod:`.formats` (names, formats, overrides), :mod:`.samples`,
:mod:`.quantize` and :mod:`.report`; this module re-exports their public names.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .float_model import FloatLstm
from .formats import (
    MAX_WIDTH,
    MIN_WIDTH,
    Calibration,
    CalibrationError,
    CalibrationFormatWidthError,
    ModelFormats,
    TensorRange,
    choose_formats,
    parse_format_overrides,
    tensor_names,
)
from .ir import LstmModel
from .numerics import ACTIVATION_DOMAIN, DEFAULT_WIDTH, Activation, FixedFormat, Overflow, Rounding
from .quantize import quantize_model
from .report import (
    REPORT_SCHEMA_VERSION,
    QuantizationReport,
    TensorReport,
    build_report,
    quantization_report,
)
from .samples import CHUNK_SEQUENCES, observe_ranges, prepare_samples, weight_statistics
from .shape import CellType

__all__ = [
    "CHUNK_SEQUENCES",
    "MAX_WIDTH",
    "MIN_WIDTH",
    "REPORT_SCHEMA_VERSION",
    "Calibration",
    "CalibrationError",
    "CalibrationFormatWidthError",
    "ModelFormats",
    "QuantizationReport",
    "TensorRange",
    "TensorReport",
    "calibrate",
    "calibrate_from_range",
    "choose_formats",
    "parse_format_overrides",
    "quantization_report",
    "quantize_from_torch",
    "quantize_model",
    "tensor_names",
]


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
    h0=None,
    c0=None,
    weight_bits: int | None = None,
    progress: bool = False,
) -> Calibration:
    """Run ``float_model`` on ``samples``, record every tensor's range and choose formats.

    Every format is ``width`` bits (unless overridden) with as many fraction bits as the
    observed range allows, except: gates and hidden states lie in (-1, 1) and get ``width - 1``
    fraction bits; an LSTM's pre-activations never get more than 3 integer bits (the activation
    tables are flat outside [-8, 8)), a GRU's cover their whole range (n's input and recurrent
    parts are summed after the reset product, before the table); a bias never gets more
    fraction bits than its accumulator. ``headroom_bits`` extra integer bits for the
    data-dependent activations (``x``, pre-activations, cell states, head output) leave room
    for data larger than the calibration set's. Layer inputs follow the chaining rules (``x``,
    then the previous layer's hidden format). ``overrides`` maps tensor names
    (:func:`tensor_names`) to formats (:class:`FixedFormat` or ``"Qm.n"``). ``weight_bits``
    (default ``width``) is the width of the weight matrices alone (:func:`choose_formats`).

    ``samples`` is an array (or tensor) ``(T, I)``, ``(T, B, I)`` -- ``(B, T, I)`` with
    ``batch_first`` -- with optional ``lengths`` (B,), or a list of ``(T_b, I)`` sequences of
    different lengths. ``head_on`` is as in :meth:`FloatLstm.forward`: ``"last"`` calibrates
    the head on each sequence's last step, ``"all"`` on every step. ``h0``/``c0`` are float
    initial states ``(L*D, B, H)`` the samples start from (``None``: zeros); their values
    count in the ranges of the hidden and cell states. Empty samples are refused.
    ``progress`` shows a bar with the ETA on a terminal (:mod:`lstm_fpga.progress`).
    """
    data = prepare_samples(float_model, samples, batch_first, lengths, h0, c0)
    choice = dict(
        width=width, overrides=overrides, headroom_bits=headroom_bits, weight_bits=weight_bits
    )
    return _calibrate(float_model, data, head_on, progress, **choice)


def _calibrate(fm: FloatLstm, data, head_on: str, progress: bool, **choice) -> Calibration:
    ranges = observe_ranges(fm, data, head_on, progress)
    return Calibration(choice["width"], ranges, choose_formats(fm, ranges, **choice))


def _input_range(input_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise CalibrationError(
            f"input_range must be two numbers (low, high), not {input_range!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise CalibrationError(f"input_range must be finite with low < high, not ({low}, {high})")
    return low, high


def _symmetric(name: str, bound: float) -> TensorRange:
    return TensorRange(name, -bound, bound, 0)


def _range_bounds(fm: FloatLstm, low: float, high: float) -> tuple[TensorRange, ...]:
    """Ranges of every tensor bounded from the weights and an input range, with no data.

    Pre-activations: ``|b| + sum|W_ih| * max|x| + sum|W_hh|`` per row (``|h| < 1``; a layer
    above the first takes ``|x| < 1``); gates and hidden states: (-1, 1); cell states: the
    steady state ``1 / (1 - f_max)`` of ``|c_t| <= f |c_{t-1}| + 1`` with ``f_max`` the
    sigmoid of the largest forget-gate bound, capped at the activation domain (tanh of a
    larger cell state is flat); head output: ``|b| + sum|W|``. A GRU's rows bound the
    pre-activations of r, z and n (``|b_in| + |b_hn| + sum|W_in| max|x| + sum|W_hn|``, which
    also bounds n's input and recurrent parts); it has no cell state. An LSTMP's ``h_t =
    W_hr m_t`` (``|m_t| < 1``) is bounded by the largest row sum of ``|W_hr|`` (both
    directions of a layer take the larger), which bounds the recurrent input and the next
    layer's input in place of 1. Attention pooling: score pre-activations ``|b| + sum|W|``
    times the last layer's bound on ``h``, scores ``sum|v|``, exp and alpha [0, 1], the context
    within the bound on ``h`` (a convex combination of outputs).
    """
    ranges = {name: stats.range(name) for name, stats in weight_statistics(fm).items()}
    ranges["x"] = TensorRange("x", low, high, 0)
    H, x_bound = fm.hidden_size, max(abs(low), abs(high))
    hidden_bound = [1.0] * fm.num_layers
    if fm.proj_size:
        for d in fm.directions:
            row_sum = float(np.abs(d.w_hr).sum(axis=1).max())
            hidden_bound[d.layer] = max(hidden_bound[d.layer], row_sum)
    for d in fm.directions:
        inputs = x_bound if d.layer == 0 else hidden_bound[d.layer - 1]
        h_bound = hidden_bound[d.layer]
        bias = np.abs(d.bias)
        if fm.cell_type is CellType.GRU:
            bias = bias[: 3 * H] + np.concatenate([np.zeros(2 * H), bias[3 * H :]])
        rows = bias + np.abs(d.w_ih).sum(axis=1) * inputs + np.abs(d.w_hh).sum(axis=1) * h_bound
        ranges[f"{d.name}.preact"] = _symmetric(f"{d.name}.preact", float(rows.max()))
        ranges[f"{d.name}.gate"] = _symmetric(f"{d.name}.gate", 1.0)
        ranges[f"{d.name}.hidden"] = _symmetric(f"{d.name}.hidden", h_bound)
        if fm.proj_size:
            ranges[f"{d.name}.proj_in"] = _symmetric(f"{d.name}.proj_in", 1.0)
        if fm.cell_type is CellType.GRU:
            continue
        forget = float(Activation.SIGMOID(rows[H : 2 * H].max()))
        cell = ACTIVATION_DOMAIN if forget >= 1.0 else min(1.0 / (1.0 - forget), ACTIVATION_DOMAIN)
        ranges[f"{d.name}.cell"] = _symmetric(f"{d.name}.cell", cell)
    if fm.attention is not None:
        a, h_bound = fm.attention, hidden_bound[-1]
        rows = np.abs(a.bias) + np.abs(a.w).sum(axis=1) * h_bound
        ranges["attention.preact"] = _symmetric("attention.preact", float(rows.max()))
        ranges["attention.tanh"] = _symmetric("attention.tanh", 1.0)
        ranges["attention.score"] = _symmetric("attention.score", float(np.abs(a.v).sum()))
        ranges["attention.exp"] = TensorRange("attention.exp", 0.0, 1.0, 0)
        ranges["attention.alpha"] = TensorRange("attention.alpha", 0.0, 1.0, 0)
        ranges["attention.context"] = _symmetric("attention.context", h_bound)
    if fm.head is not None:
        bound = float((np.abs(fm.head.bias) + np.abs(fm.head.weight).sum(axis=1)).max())
        ranges["head.output"] = _symmetric("head.output", bound)
    return tuple(ranges.values())


def calibrate_from_range(
    float_model: FloatLstm,
    input_range,
    *,
    width: int = DEFAULT_WIDTH,
    overrides: Mapping[str, FixedFormat | str] | None = None,
    headroom_bits: int = 0,
    weight_bits: int | None = None,
) -> Calibration:
    """Choose formats with no sample data: inputs lie in ``input_range = (low, high)``.

    The activation ranges are bounds derived from the weights (see :func:`_range_bounds`),
    wider than what data usually reaches; the rules of :func:`calibrate` then apply. A report
    of such a calibration says that no data was seen.
    """
    low, high = _input_range(input_range)
    ranges = _range_bounds(float_model, low, high)
    choice = dict(
        width=width, overrides=overrides, headroom_bits=headroom_bits, weight_bits=weight_bits
    )
    return Calibration(width, ranges, choose_formats(float_model, ranges, **choice))


def quantize_from_torch(
    source,
    calibration_samples=None,
    *,
    batch_first: bool | None = None,
    lengths=None,
    width: int = DEFAULT_WIDTH,
    overrides: Mapping[str, FixedFormat | str] | None = None,
    headroom_bits: int = 0,
    head_on: str = "last",
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
    h0=None,
    c0=None,
    input_range=None,
    weight_bits: int | None = None,
    progress: bool = False,
) -> tuple[LstmModel, QuantizationReport]:
    """Import, calibrate, quantise and report (on the calibration samples) in one call.

    ``source`` is anything :func:`lstm_fpga.sw.torch_import.import_model` accepts.
    ``batch_first`` describes ``calibration_samples``; ``None`` takes the module's
    ``nn.LSTM.batch_first`` (``False`` for a state_dict, which does not store it).
    ``h0``/``c0`` are initial states for the samples (see :func:`calibrate`). Without
    samples, give ``input_range=(low, high)``: formats then come from
    :func:`calibrate_from_range` and the report covers the weights only ("no data seen").
    ``progress`` shows bars for the calibration and the report's runs (on a terminal).
    """
    from .torch_import import import_model, lstm_batch_first

    if (calibration_samples is None) == (input_range is None):
        raise CalibrationError(
            "give calibration samples or an input range (input_range=(low, high)), not "
            f"{'both' if input_range is not None else 'neither'}"
        )
    if calibration_samples is None and (h0 is not None or c0 is not None):
        raise CalibrationError("h0/c0 calibrate with samples; an input range takes none")
    fm = import_model(source)
    if input_range is not None:
        calibration = calibrate_from_range(
            fm,
            input_range,
            width=width,
            overrides=overrides,
            headroom_bits=headroom_bits,
            weight_bits=weight_bits,
        )
        model = quantize_model(fm, calibration, rounding=rounding, overflow=overflow)
        return model, build_report(fm, model, None, head_on, _input_range(input_range))
    if batch_first is None:
        batch_first = lstm_batch_first(source)
    data = prepare_samples(fm, calibration_samples, batch_first, lengths, h0, c0)
    choice = dict(
        width=width, overrides=overrides, headroom_bits=headroom_bits, weight_bits=weight_bits
    )
    calibration = _calibrate(fm, data, head_on, progress, **choice)
    model = quantize_model(fm, calibration, rounding=rounding, overflow=overflow)
    return model, build_report(fm, model, data, head_on, progress=progress)
