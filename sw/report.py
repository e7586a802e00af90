"""The quantisation report: per tensor, float range, format, saturations and error.

The float model (:meth:`FloatLstm.forward`) and the integer reference (:func:`run_reference`)
run on the same samples, chunk by chunk; the saturation counts are the reference's own
(per layer direction), so the report and the hardware counters count the same events.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .float_model import FloatLstm, TensorRecorder
from .formats import CalibrationError
from .ir import LstmModel
from .numerics import FixedFormat, Rounding, dequantize, quantize, scaled_integers
from .quantize import model_formats
from .reference import quantize_input, run_reference
from .samples import (
    CalibrationData,
    Statistics,
    chunks,
    is_recorded,
    prepare_samples,
    record_float,
    weight_values,
)
from .schema import read_versioned_json

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "QuantizationReport",
    "TensorReport",
    "build_report",
    "quantization_report",
]

#: Version of the report's JSON layout.
REPORT_SCHEMA_VERSION = 1


def _json_float(value: float):
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _from_json_float(value) -> float:
    return float(value)


@dataclass(frozen=True)
class TensorReport:
    """One tensor: float range, format, saturations and error of the quantised model.

    ``saturations`` counts values clamped to the format: for weights, biases and the input
    when they are quantised; for pre-activations, cell and hidden states, attention's score
    pre-activation, scores, weights and context, and the head output the rescale results
    clamped in the integer run (the hardware's saturation events); gates, attention's tanh and
    exp come from tables and never clamp at run time. ``sqnr_db`` is ``10 log10(sum f^2 /
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

    What the report covered: ``initial_states`` says whether the samples started from given
    ``h0``/``c0`` (``"sampled"``) or from zeros (``"zero"``); ``input_range`` is the declared
    input range ``(low, high)`` when formats were chosen from it without data (no sequences,
    activations unmeasured: only weights and biases have rows with values).

    ``str(report)`` is a table; :meth:`to_json`/:meth:`from_json` and :meth:`save`/:meth:`load`
    round-trip it exactly.
    """

    sequences: int
    time_steps: int
    tensors: tuple[TensorReport, ...]
    initial_states: str = "zero"
    input_range: tuple[float, float] | None = None

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

        title = f"quantization report: {self.coverage}, {self.total_saturations} saturation(s)"
        rule = "-" * len(line(header))
        return "\n".join([title, line(header), rule, *map(line, rows)])

    @property
    def data_seen(self) -> bool:
        return self.input_range is None

    @property
    def coverage(self) -> str:
        """What the report (and the calibration before it) saw, in words."""
        if not self.data_seen:
            low, high = self.input_range
            return f"no data seen (formats from the declared input range [{low:g}, {high:g}])"
        return (
            f"{self.sequences} sequence(s), {self.time_steps} time step(s) from "
            f"{self.initial_states} initial states"
        )

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> str:
        data = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "kind": "lstm-fpga quantization report",
            "sequences": self.sequences,
            "time_steps": self.time_steps,
            "initial_states": self.initial_states,
            "data_seen": self.data_seen,
            "input_range": None if self.input_range is None else list(self.input_range),
            "tensors": [t.to_json_dict() for t in self.tensors],
        }
        return json.dumps(data, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QuantizationReport:
        what = "quantization report"
        data = read_versioned_json(text, REPORT_SCHEMA_VERSION, what, CalibrationError)
        try:
            return cls(
                sequences=int(data["sequences"]),
                time_steps=int(data["time_steps"]),
                tensors=tuple(TensorReport.from_json_dict(t) for t in data["tensors"]),
                initial_states=str(data.get("initial_states", "zero")),
                input_range=None
                if data.get("input_range") is None
                else tuple(float(v) for v in data["input_range"]),
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
    rounded = scaled_integers(values, fmt, rounding)
    return int(np.count_nonzero((rounded < fmt.min_int) | (rounded > fmt.max_int)))


def build_report(
    fm: FloatLstm,
    model: LstmModel,
    data: CalibrationData | None,
    head_on: str,
    input_range: tuple[float, float] | None = None,
    *,
    progress: bool = False,
) -> QuantizationReport:
    """The report of ``model`` against ``fm`` on ``data`` (``None``: weights only, for formats
    chosen from ``input_range`` without data); ``progress`` shows a bar on a terminal."""
    formats = model_formats(model)
    stats = {name: Statistics() for name in formats.names}
    directions = {d.name: d for d in model.directions}
    for name, fmt in formats.items():
        if not is_recorded(name):
            owner, _, tensor = name.partition(".")
            exact = weight_values(fm, name)
            source = getattr(model, owner) if owner in ("head", "attention") else directions[owner]
            approx = dequantize(getattr(source, tensor), fmt).ravel()
            saturations = _float_saturations(exact, fmt, Rounding.HALF_UP)
            stats[name].add(name, exact, approx, saturations)
    for part in () if data is None else chunks(data, "reporting" if progress else None):
        _compare_chunk(fm, model, formats, part, head_on, stats)
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
    sampled = data is not None and (data.h0 is not None or data.c0 is not None)
    return QuantizationReport(
        sequences=0 if data is None else data.sequences,
        time_steps=0 if data is None else data.time_steps,
        tensors=rows,
        initial_states="sampled" if sampled else "zero",
        input_range=input_range,
    )


def _initial_states(model: LstmModel, data: CalibrationData, stats) -> tuple:
    """``h0``/``c0`` quantised to each direction's hidden/cell format; clamps are counted."""
    states = []
    for state, tensor in ((data.h0, "hidden"), (data.c0, "cell")):
        if state is None:
            states.append(None)
            continue
        quantized = []
        for k, d in enumerate(model.directions):
            fmt = getattr(d.formats, tensor)
            name = f"{d.name}.{tensor}"
            stats[name].add(
                name, np.zeros(0), None, _float_saturations(state[k], fmt, model.rounding)
            )
            quantized.append(quantize(state[k], fmt, model.rounding, model.overflow))
        states.append(np.stack(quantized))
    return tuple(states)


def _compare_chunk(fm, model, formats, data: CalibrationData, head_on, stats) -> None:
    """Float run vs integer run of one chunk, tensor by tensor, into ``stats``."""
    valid = np.arange(data.xs.shape[0])[:, None] < data.lengths[None, :]
    float_rec = record_float(fm, data, head_on)
    xq = quantize_input(model, data.xs)
    h0, c0 = _initial_states(model, data, stats)
    ref_rec = TensorRecorder()
    result = run_reference(
        model, xq, h0, c0, lengths=data.lengths, head_on=head_on, recorder=ref_rec
    )
    for name in filter(is_recorded, formats.names):
        exact = float_rec.get(name)
        if name == "x":
            approx = dequantize(xq[valid], formats[name]).ravel()
            saturations = _float_saturations(exact, formats[name], model.rounding)
        elif name == "head.output":
            approx, saturations = ref_rec.get(name), result.saturations.head
        elif name.startswith("attention."):
            tensor = name.partition(".")[2]
            approx = ref_rec.get(name)
            saturations = result.attention.saturations.get(tensor, 0)
        else:
            owner, _, tensor = name.partition(".")
            counts = result.direction_saturations[owner]
            approx, saturations = ref_rec.get(name), getattr(counts, tensor, 0)
        stats[name].add(name, exact, approx, saturations)


def quantization_report(
    float_model: FloatLstm,
    model: LstmModel,
    samples,
    *,
    batch_first: bool = False,
    lengths=None,
    head_on: str = "last",
    h0=None,
    c0=None,
    progress: bool = False,
) -> QuantizationReport:
    """Compare ``model`` (the IR of ``float_model``) with the float model on ``samples``.

    Float tensors come from :meth:`FloatLstm.forward`, quantised ones from
    :func:`run_reference` on the quantised input (same tensor names, same order); both run
    in chunks of :data:`CHUNK_SEQUENCES` sequences to bound memory. ``samples`` as in
    :func:`calibrate`, ``h0``/``c0`` the float initial states (``None``: zeros);
    ``progress`` shows a bar on a terminal.
    """
    data = prepare_samples(float_model, samples, batch_first, lengths, h0, c0)
    return build_report(float_model, model, data, head_on, progress=progress)
