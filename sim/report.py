"""What :func:`~lstm_fpga.sim.compare.compare` reports: :class:`ComparisonReport` and its parts.

Frozen dataclasses: the checks of every tensor (:class:`TensorCheck`, the first
:class:`Mismatch`), float errors (:class:`FloatError`), saturation counters
(:class:`SaturationCheck`) and cycles (:class:`CycleReport`, per matrix :class:`JobCycles`).
``report.to_json()`` is machine-readable, ``str(report)`` is for people.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..sw.reference import SaturationCounts

__all__ = [
    "CYCLE_SLACK",
    "ComparisonReport",
    "CycleReport",
    "FloatError",
    "JobCycles",
    "Mismatch",
    "SaturationCheck",
    "TensorCheck",
]

#: Cycles per step the hardware may exceed the bound by (issue 3: ``bound + 16``).
CYCLE_SLACK = 16
_SCHEMA = 2


@dataclass(frozen=True)
class Mismatch:
    """One value where hardware and reference differ."""

    tensor: str  # "output", "head", "h_n" or "c_n"
    sequence: int
    step: int | None  # time step of an output; None for h_n/c_n
    layer: int  # num_layers for the head
    direction: str  # "forward" or "reverse" ("forward" for the head)
    unit: int  # hidden unit, or the head's output feature
    hardware: int
    reference: int

    def __str__(self) -> str:
        step = "" if self.step is None else f", step {self.step}"
        if self.tensor == "head":
            return (
                f"head of sequence {self.sequence}{step}, output feature {self.unit}: "
                f"hardware {self.hardware}, reference {self.reference}"
            )
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
class SaturationCheck:
    """The hardware's saturation counters against the reference's counts (whole run)."""

    hardware: SaturationCounts
    reference: SaturationCounts

    @property
    def agrees(self) -> bool:
        return self.hardware == self.reference


@dataclass(frozen=True)
class JobCycles:
    """One matrix the lanes evaluate (a layer direction's gate matrix, or the head)."""

    name: str  # "l0", "l0_reverse", ..., "head"
    rows: int  # 4H (a GRU: 3H), or the head's O
    columns: int  # I_k + H, or the head's input features
    runs: int  # evaluations in this simulation
    bound: int  # ceil(rows * columns / P) cycles per evaluation
    mac_cycles: int  # cycles the lanes spend per evaluation (passes x span)


@dataclass(frozen=True)
class CycleReport:
    """Throughput (the whole run) and latency (each sequence), reported apart.

    ``cycles_per_step`` is ``run_cycles / steps``: cycles from the run's first input beat to
    its last output beat over all time steps. ``bound_per_step`` is the LSTM's per-step bound
    (sum of ``ceil(4H(I_k+H)/P)``), ``bound_cycles`` the bound of the whole run including the
    head's evaluations, and ``lane_utilization`` the useful multiply-accumulates over
    ``lanes * run_cycles`` (``lanes``: the lanes built, at most the ``lanes_requested``).
    ``sequence_cycles`` are latencies: each sequence's first input beat to its last output
    beat (sequences overlap, so they do not add up to ``run_cycles``).
    """

    lanes: int
    bound_per_step: int
    cycles_per_step: float
    lane_utilization: float
    within_bound: bool  # run_cycles <= bound_cycles + CYCLE_SLACK * steps
    sequence_lengths: tuple[int, ...]
    sequence_cycles: tuple[int, ...]
    dut_cycles: int  # the hardware's counter: the final sequence
    dut_counter_agrees: bool
    paced: bool  # idle/backpressure was inserted: cycles include stalls
    lanes_requested: int = 0
    steps: int = 0
    run_cycles: int = 0
    bound_cycles: int = 0
    latency_min: int = 0
    latency_mean: float = 0.0
    latency_max: int = 0
    jobs: tuple[JobCycles, ...] = ()


@dataclass(frozen=True)
class ComparisonReport:
    simulator: str
    bit_exact: bool
    checks: tuple[TensorCheck, ...]
    unchecked: tuple[str, ...]
    float_reference: str
    float_errors: tuple[FloatError, ...]
    cycles: CycleReport
    output_mode: str = "all"
    saturations: SaturationCheck | None = None
    overflow: bool | None = None  # the hardware's sequence-length overflow flag

    @property
    def first_mismatch(self) -> Mismatch | None:
        for check in self.checks:
            if check.first is not None:
                return check.first
        return None

    def to_dict(self) -> dict:
        data = {"schema_version": _SCHEMA, "kind": "lstm-fpga comparison", **asdict(self)}
        if self.saturations is not None:
            data["saturations"]["agrees"] = self.saturations.agrees
        return data

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
        if self.saturations is not None:
            hw, ref = asdict(self.saturations.hardware), asdict(self.saturations.reference)
            verdict = "equal" if self.saturations.agrees else "DIFFER"
            lines.append(f"  saturation counters {verdict}: hardware {hw}, reference {ref}")
        if self.overflow:
            lines.append("  sequence-length overflow flag SET: a sequence was refused")
        if self.unchecked:
            lines.append(
                f"  not checked: {', '.join(self.unchecked)} (the hardware has no readout)"
            )
        for e in self.float_errors:
            lines.append(
                f"  vs float ({self.float_reference}): {e.tensor} max |err| {e.max_abs:.3g} "
                f"({e.max_abs / e.lsb:.1f} LSB), RMS {e.rms:.3g} over {e.count} values"
            )
        note = " (with idle/backpressure stalls)" if c.paced else ""
        bound = c.bound_cycles / c.steps if c.steps else float(c.bound_per_step)
        built = "" if c.lanes == c.lanes_requested else f" of {c.lanes_requested} requested"
        lines.append(
            f"  throughput: {c.run_cycles} cycles for {c.steps} steps = "
            f"{c.cycles_per_step:.1f} cycles/step{note}, bound {bound:.1f} "
            f"({'+'.join(f'{j.name} {j.bound}x{j.runs}' for j in c.jobs)}), lane "
            f"utilisation {100 * c.lane_utilization:.1f} % of {c.lanes} lanes built{built}"
        )
        agree = "agrees" if c.dut_counter_agrees else "DISAGREES with the testbench"
        lines.append(
            f"  latency (first input beat to last output beat): min {c.latency_min}, mean "
            f"{c.latency_mean:.1f}, max {c.latency_max} cycles per sequence; hardware counter "
            f"{c.dut_cycles} for the last ({agree})"
        )
        return "\n".join(lines)
