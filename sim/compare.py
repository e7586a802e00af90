"""Hardware against the integer reference (bit for bit) and against the float model.

:func:`compare` takes a :class:`~lstm_fpga.sim.lstm.SimulationResult` and returns a
:class:`ComparisonReport`:

* integer equality of every output value (and ``h_n``/``c_n`` when the hardware exposes
  them) with :func:`lstm_fpga.sw.reference.run_reference`; the first mismatch is located as
  (sequence, time step, layer, direction, unit) with both values;
* max-abs and RMS error of the dequantised hardware outputs against a float model
  (PyTorch's module or state_dict, a :class:`~lstm_fpga.sw.float_model.FloatLstm`, or by
  default the float math on the IR's dequantised weights);
* cycles per step against the bound ``ceil(4H(I+H)/P)`` and the lane utilisation.

``report.to_json()`` is machine-readable, ``str(report)`` is for people.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..sw.float_model import FloatLstm
from ..sw.ir import LstmModel
from ..sw.numerics import dequantize
from ..sw.reference import dequantized_model, run_reference
from .lstm import SimulationResult, design_cycle_bound

__all__ = [
    "CYCLE_SLACK",
    "ComparisonReport",
    "CycleReport",
    "FloatError",
    "Mismatch",
    "TensorCheck",
    "compare",
]

#: Cycles per step the hardware may exceed the bound by (issue 3: ``bound + 16``).
CYCLE_SLACK = 16
_SCHEMA = 1


@dataclass(frozen=True)
class Mismatch:
    """One value where hardware and reference differ."""

    tensor: str  # "output", "h_n" or "c_n"
    sequence: int
    step: int | None  # time step of an output; None for h_n/c_n
    layer: int
    direction: str  # "forward" or "reverse"
    unit: int
    hardware: int
    reference: int

    def __str__(self) -> str:
        step = "" if self.step is None else f", step {self.step}"
        return (
            f"{self.tensor} of sequence {self.sequence}{step}, layer {self.layer} "
            f"({self.direction}), unit {self.unit}: hardware {self.hardware}, reference "
            f"{self.reference}"
        )


@dataclass(frozen=True)
class TensorCheck:
    tensor: str
    compared: int
    mismatches: int
    first: Mismatch | None


@dataclass(frozen=True)
class FloatError:
    """Dequantised hardware values against the float model over the valid steps."""

    tensor: str
    max_abs: float
    rms: float
    lsb: float  # the tensor format's LSB, for scale
    count: int


@dataclass(frozen=True)
class CycleReport:
    lanes: int
    bound_per_step: int
    cycles_per_step: float
    lane_utilization: float
    within_bound: bool  # cycles_per_step <= bound + CYCLE_SLACK
    sequence_lengths: tuple[int, ...]
    sequence_cycles: tuple[int, ...]
    dut_cycles: int  # the hardware's counter: the final sequence
    dut_counter_agrees: bool
    paced: bool  # idle/backpressure was inserted: cycles include stalls


@dataclass(frozen=True)
class ComparisonReport:
    simulator: str
    bit_exact: bool
    checks: tuple[TensorCheck, ...]
    unchecked: tuple[str, ...]
    float_reference: str
    float_errors: tuple[FloatError, ...]
    cycles: CycleReport

    @property
    def first_mismatch(self) -> Mismatch | None:
        for check in self.checks:
            if check.first is not None:
                return check.first
        return None

    def to_dict(self) -> dict:
        return {"schema_version": _SCHEMA, "kind": "lstm-fpga comparison", **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: Path | str) -> Path:
        """Write the JSON report to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    def __str__(self) -> str:
        c = self.cycles
        lines = [f"lstm-fpga hardware vs reference ({self.simulator}, P={c.lanes})"]
        compared = sum(check.compared for check in self.checks)
        differing = sum(check.mismatches for check in self.checks)
        if self.bit_exact:
            lines.append(f"  bit-exact: yes ({compared} integer values equal)")
        else:
            lines.append(f"  bit-exact: NO ({differing} of {compared} integer values differ)")
            for check in self.checks:
                if check.mismatches:
                    lines.append(
                        f"    {check.tensor}: {check.mismatches} of {check.compared} differ; "
                        f"first: {check.first}"
                    )
        if self.unchecked:
            lines.append(
                f"  not checked: {', '.join(self.unchecked)} (the hardware has no readout)"
            )
        for e in self.float_errors:
            lines.append(
                f"  vs float ({self.float_reference}): {e.tensor} max |err| {e.max_abs:.3g} "
                f"({e.max_abs / e.lsb:.1f} LSB), RMS {e.rms:.3g} over {e.count} values"
            )
        excess = c.cycles_per_step - c.bound_per_step
        note = " (with idle/backpressure stalls)" if c.paced else ""
        lines.append(
            f"  cycles/step {c.cycles_per_step:.1f}{note}, bound {c.bound_per_step} "
            f"({excess:+.1f}), lane utilisation {100 * c.lane_utilization:.1f} %"
        )
        agree = "agrees" if c.dut_counter_agrees else "DISAGREES with the testbench"
        lines.append(
            f"  sequence cycles {list(c.sequence_cycles)} for lengths "
            f"{list(c.sequence_lengths)}; hardware counter {c.dut_cycles} ({agree})"
        )
        return "\n".join(lines)


def _time_major(result: SimulationResult) -> np.ndarray:
    out = result.outputs
    if result.unbatched:
        return out[:, None, :]
    return out.transpose(1, 0, 2) if result.batch_first else out


def _check_outputs(result: SimulationResult, reference: np.ndarray) -> TensorCheck:
    model = result.model
    hw = _time_major(result)
    valid = np.arange(hw.shape[0])[:, None] < result.lengths[None, :]  # (T, B)
    differ = (hw != reference) & valid[:, :, None]
    count = int(valid.sum()) * hw.shape[2]
    if not differ.any():
        return TensorCheck("output", count, 0, None)
    # First in (sequence, step, feature) order.
    steps, sequences, features = np.nonzero(differ)
    order = np.lexsort((features, steps, sequences))
    t, b, j = int(steps[order[0]]), int(sequences[order[0]]), int(features[order[0]])
    H = model.hidden_size
    first = Mismatch(
        tensor="output",
        sequence=b,
        step=t,
        layer=model.num_layers - 1,
        direction="reverse" if j >= H else "forward",
        unit=j % H,
        hardware=int(hw[t, b, j]),
        reference=int(reference[t, b, j]),
    )
    return TensorCheck("output", count, int(differ.sum()), first)


def _check_state(name: str, model: LstmModel, hw: np.ndarray, ref: np.ndarray) -> TensorCheck:
    differ = hw != ref  # (L*D, B, H)
    if not differ.any():
        return TensorCheck(name, differ.size, 0, None)
    rows, sequences, units = np.nonzero(differ)
    order = np.lexsort((units, rows, sequences))
    k, b, u = int(rows[order[0]]), int(sequences[order[0]]), int(units[order[0]])
    D = model.num_directions
    first = Mismatch(
        tensor=name,
        sequence=b,
        step=None,
        layer=k // D,
        direction="reverse" if k % D else "forward",
        unit=u,
        hardware=int(hw[k, b, u]),
        reference=int(ref[k, b, u]),
    )
    return TensorCheck(name, differ.size, int(differ.sum()), first)


def _float_model(model: LstmModel, float_model) -> tuple[FloatLstm, str]:
    if float_model is None:
        return dequantized_model(model), "float math on the dequantised IR weights"
    if isinstance(float_model, FloatLstm):
        return float_model, "the given float model"
    from ..sw.torch_import import import_model

    return import_model(float_model), "PyTorch float weights"


def _float_inputs(result: SimulationResult, float_inputs) -> np.ndarray:
    """Float inputs time-major ``(T, B, I)``: given ones (the layout passed to simulate), or
    the dequantised integer inputs the hardware saw."""
    T, B, I = result.inputs.shape
    if float_inputs is None:
        return dequantize(result.inputs, result.model.input_format)
    if isinstance(float_inputs, list | tuple):
        padded = np.zeros((T, B, I))
        for b, seq in enumerate(float_inputs):
            seq = np.asarray(seq, dtype=np.float64)
            padded[: seq.shape[0], b] = seq
        return padded
    x = np.asarray(float_inputs, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    elif result.batch_first:
        x = x.transpose(1, 0, 2)
    if x.shape != (T, B, I):
        raise ValueError(f"float_inputs have shape {x.shape} (time-major), expected {(T, B, I)}")
    return x


def compare(
    result: SimulationResult,
    model: LstmModel | None = None,
    *,
    float_model=None,
    float_inputs=None,
) -> ComparisonReport:
    """Compare ``result`` with the integer reference of ``model`` (default: the model the
    hardware was generated from) and with a float model.

    ``float_model`` is an ``nn.Module``/state_dict/file PyTorch import accepts or a
    :class:`~lstm_fpga.sw.float_model.FloatLstm`; by default the IR's dequantised weights in
    float64. ``float_inputs`` are the unquantised inputs in the layout given to
    :func:`~lstm_fpga.sim.lstm.simulate` (default: the dequantised integer inputs).
    """
    model = result.model if model is None else model
    if (model.input_size, model.hidden_size, model.num_layers, model.bidirectional) != (
        result.model.input_size,
        result.model.hidden_size,
        result.model.num_layers,
        result.model.bidirectional,
    ):
        raise ValueError("the reference model's shape differs from the simulated hardware's")
    reference = run_reference(model, result.inputs, lengths=result.lengths)
    checks = [_check_outputs(result, reference.output)]
    unchecked = []
    for name, hw, ref in (("h_n", result.h_n, reference.h_n), ("c_n", result.c_n, reference.c_n)):
        if hw is None:
            unchecked.append(name)
        else:
            checks.append(_check_state(name, model, hw, ref))
    fm, float_name = _float_model(model, float_model)
    xs = _float_inputs(result, float_inputs)
    f_out, (f_h, f_c), _ = fm.forward(xs, lengths=result.lengths)
    valid = np.arange(xs.shape[0])[:, None] < result.lengths[None, :]
    hw_out = dequantize(_time_major(result), model.output_format)
    errors = [_float_error("output", hw_out[valid], f_out[valid], model.output_format.lsb)]
    if result.h_n is not None:
        errors.append(_float_error("h_n", result.h_n_float, f_h, model.output_format.lsb))
    if result.c_n is not None:
        lsb = min(f.lsb for f in model.cell_formats)
        errors.append(_float_error("c_n", result.c_n_float, f_c, lsb))
    bound = design_cycle_bound(result.model, result.design.lanes)
    cps = result.cycles_per_step
    cycles = CycleReport(
        lanes=result.design.lanes,
        bound_per_step=bound,
        cycles_per_step=cps,
        lane_utilization=result.lane_utilization,
        within_bound=cps <= bound + CYCLE_SLACK,
        sequence_lengths=tuple(int(n) for n in result.lengths),
        sequence_cycles=tuple(int(c) for c in result.cycles),
        dut_cycles=int(result.dut_cycles),
        dut_counter_agrees=int(result.dut_cycles) == int(result.cycles[-1]),
        paced=result.paced,
    )
    return ComparisonReport(
        simulator=result.design.simulator,
        bit_exact=all(check.mismatches == 0 for check in checks),
        checks=tuple(checks),
        unchecked=tuple(unchecked),
        float_reference=float_name,
        float_errors=tuple(errors),
        cycles=cycles,
    )


def _float_error(name: str, hw: np.ndarray, ref: np.ndarray, lsb: float) -> FloatError:
    diff = np.abs(np.asarray(hw, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    if diff.size == 0:
        return FloatError(name, 0.0, 0.0, lsb, 0)
    return FloatError(
        name, float(diff.max()), float(np.sqrt(np.mean(diff**2))), float(lsb), int(diff.size)
    )
