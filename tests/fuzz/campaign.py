"""The fuzz campaign's engine: random hardware configurations, many data cases per build.

A Verilator build costs seconds to tens of seconds, a simulation of a few sequences a few
milliseconds, and starting the simulator process about a second. So a :class:`Configuration`
(everything generated into the hardware: sizes, layers, directions, head, output mode,
formats, rounding, overflow, lanes, input packing, sequence buffer) is built once, and all
its :class:`Case` s (weights, loaded through the run-time reload port; sequences, lengths,
``h0``/``c0``, state mode, state readout, idle and backpressure patterns) run in ONE
simulation, each case as its own phases: clear the status counters, reload the weights,
load the initial state, stream the sequences. Every case is then checked:

* hardware == integer reference, as integers (outputs or head, ``h_n``/``c_n``, the
  saturation counters, the overflow flag) through :func:`lstm_fpga.sim.compare`;
* reference ~= float math within :func:`tests.fuzz.bounds.float_error_bound` when nothing
  saturated.

:func:`record` is the per-configuration line of the campaign log ``benchmarks/fuzz.py``
summarises.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from lstm_fpga import testing
from lstm_fpga.hw import HardwareConfig
from lstm_fpga.sim import Pacing, compare, compile_model
from lstm_fpga.sim.phases import (
    Stimulus,
    clear_status_phase,
    init_phase,
    plan_for,
    reload_phase,
    stimulus_phase,
)
from lstm_fpga.sim.result import decode_phase
from lstm_fpga.sim.stimulus import run_plan
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.numerics import Overflow, Rounding
from lstm_fpga.testing import random_state, width_formats

from .bounds import float_error_bound

__all__ = [
    "Case",
    "CaseOutcome",
    "Configuration",
    "random_cases",
    "random_model",
    "record",
    "run_configuration",
]


@dataclass(frozen=True)
class Configuration:
    """What the generated hardware fixes (one simulator build)."""

    input_size: int
    hidden_size: int
    layers: int
    bidirectional: bool
    head: int  # Linear head outputs, 0 for none
    output: str  # "all" or "last"
    width: int  # bits of every format
    lanes: int
    input_elements: int
    rounding: Rounding
    overflow: Overflow
    max_seq_len: int  # the bidirectional sequence buffer (ignored when unidirectional)
    bias: bool = True

    def hardware(self) -> HardwareConfig:
        return HardwareConfig(
            lanes=self.lanes,
            input_elements=self.input_elements,
            output=self.output,
            max_seq_len=self.max_seq_len if self.bidirectional else None,
        )

    @property
    def macs_per_step(self) -> int:
        """4H(I_k + H) summed over layer directions (P above it leaves lanes idle)."""
        H, D = self.hidden_size, 2 if self.bidirectional else 1
        inputs = [self.input_size] + [D * H] * (self.layers - 1)
        return sum(4 * H * (i + H) * D for i in inputs)

    def features(self) -> list[str]:
        """The notable choices this configuration makes (for the campaign's coverage)."""
        H, I = self.hidden_size, self.input_size
        present = {
            "bidirectional": self.bidirectional,
            "stacked": self.layers > 1,
            "head": self.head > 0,
            "output=last": self.output == "last",
            "P > 4H(I+H)": self.lanes > 4 * H * (I + H),
            "input_elements > 1": self.input_elements > 1,
            "floor rounding": self.rounding is Rounding.FLOOR,
            "wrap overflow": self.overflow is Overflow.WRAP,
            "no bias": not self.bias,
        }
        return [name for name, flag in present.items() if flag]

    def label(self) -> str:
        head = f"+Linear({self.head})" if self.head else ""
        return (
            f"I{self.input_size} H{self.hidden_size} L{self.layers}"
            f"{' bi' if self.bidirectional else ''}{head} {self.output} {self.width}b "
            f"P{self.lanes} k{self.input_elements} {self.rounding.name} {self.overflow.name}"
        )


@dataclass(frozen=True)
class Case:
    """One run on a configuration: weights, sequences, state, stream pacing."""

    weight_seed: int
    weight_scale: float  # |weights| up to weight_scale / sqrt(H) (1: PyTorch's initialisation)
    lengths: tuple[int, ...]
    data_seed: int
    initial_state: bool  # random h0/c0 (else zeros)
    carry_state: bool
    read_state: bool
    input_pacing: Pacing
    output_pacing: Pacing


def random_cases(config: Configuration, seed: int, count: int) -> list[Case]:
    """``count`` cases for ``config`` from one seed: mostly PyTorch-sized weights (the float
    bound applies), a quarter 2-4 times larger (saturation, counters), batches of 1-4
    sequences of 1-12 steps (bidirectional: up to ``max_seq_len``), random ``h0``/``c0``,
    carried state, state readout, idle and backpressure patterns."""
    rng = np.random.default_rng(seed)
    longest = config.max_seq_len if config.bidirectional else 12
    cases = []
    for _ in range(count):
        batch = int(rng.integers(1, 5))
        pacing = [
            Pacing(
                float(rng.choice([0.0, 0.2, 0.6])),
                int(rng.integers(1, 5)),
                int(rng.integers(2**31)),
            )
            for _ in range(2)
        ]
        cases.append(
            Case(
                weight_seed=int(rng.integers(2**31)),
                weight_scale=float(
                    rng.uniform(0.8, 1.0) if rng.random() < 0.25 else rng.uniform(0.02, 0.4)
                ),
                lengths=tuple(int(n) for n in rng.integers(1, longest + 1, batch)),
                data_seed=int(rng.integers(2**31)),
                initial_state=bool(rng.random() < 0.6),
                carry_state=bool(rng.random() < 0.4),
                read_state=bool(rng.random() < 0.8),
                input_pacing=pacing[0],
                output_pacing=pacing[1],
            )
        )
    return cases


def random_model(config: Configuration, seed: int, scale: float) -> LstmModel:
    """An IR model of ``config``'s shape, formats (``width_formats``), rounding and overflow
    with :func:`lstm_fpga.testing.random_model`'s weights (``±scale/sqrt(H)``)."""
    layer, head = width_formats(config.width)
    model = testing.random_model(
        config.input_size,
        config.hidden_size,
        config.layers,
        config.bidirectional,
        config.bias,
        config.head or None,
        formats=layer,
        head_formats=head,
        seed=seed,
        scale=scale,
    )
    return replace(model, rounding=config.rounding, overflow=config.overflow)


def _case_data(model: LstmModel, case: Case):
    """Integer inputs (T, B, I) and ``h0``/``c0`` (L*D, H) of ``case``."""
    rng = np.random.default_rng(case.data_seed)
    fmt = model.input_format
    T, B = max(case.lengths), len(case.lengths)
    xs = rng.integers(fmt.min_int, fmt.max_int + 1, (T, B, model.input_size))
    xs[np.arange(T)[:, None] >= np.asarray(case.lengths)[None, :]] = 0
    LD, H = len(model.directions), model.hidden_size
    h0 = np.zeros((LD, H), dtype=np.int64)
    c0 = np.zeros((LD, H), dtype=np.int64)
    if case.initial_state:
        h0, c0 = random_state(model, rng)
    return xs, h0, c0


@dataclass(frozen=True)
class CaseOutcome:
    """What one case showed."""

    case: Case
    bit_exact: bool
    values: int  # integers compared
    detail: str  # the comparison report when not bit-exact
    saturated: bool
    float_error: dict[str, float]  # max |reference - float| per tensor (empty if saturated)
    float_ratio: float  # worst error / derived bound (<= 1 holds)


def record(config: Configuration, outcomes: list[CaseOutcome], build_s, run_s) -> dict:
    """A JSON-ready line for the campaign log: what ran on ``config`` and what it showed."""
    case_features = Counter()
    for outcome in outcomes:
        case = outcome.case
        case_features["h0/c0 loaded"] += int(case.initial_state)
        case_features["carry_state"] += int(case.carry_state and len(case.lengths) > 1)
        case_features["state read out"] += int(case.read_state)
        case_features["paced"] += int(case.input_pacing.enabled or case.output_pacing.enabled)
        case_features["saturated"] += int(outcome.saturated)
    worst: dict[str, float] = {}
    for outcome in outcomes:
        for name, value in outcome.float_error.items():
            worst[name] = max(worst.get(name, 0.0), value)
    return {
        "configuration": config.label(),
        "width": config.width,
        "features": config.features(),
        "cases": len(outcomes),
        "values": sum(o.values for o in outcomes),
        "sequences": sum(len(o.case.lengths) for o in outcomes),
        "steps": sum(sum(o.case.lengths) for o in outcomes),
        "case_features": dict(case_features),
        "mismatches": [f"{o.case}: {o.detail}" for o in outcomes if not o.bit_exact],
        "bound_violations": [f"{o.case}: {o.float_error}" for o in outcomes if o.float_ratio > 1],
        "worst_float_error": worst,
        "worst_bound_ratio": max((o.float_ratio for o in outcomes), default=0.0),
        "build_seconds": build_s,
        "run_seconds": run_s,
    }


def run_configuration(
    config: Configuration, cases: list[Case], cache_dir
) -> tuple[list[CaseOutcome], float, float]:
    """Build ``config`` once, run every case in one simulation; outcomes and the build and
    run wall times in seconds."""
    started = time.perf_counter()
    base = random_model(config, cases[0].weight_seed, cases[0].weight_scale)
    design = compile_model(base, config.hardware(), "verilator", cache_dir=cache_dir)
    built = time.perf_counter()
    phases, runs = [], []
    for index, case in enumerate(cases):
        model = random_model(config, case.weight_seed, case.weight_scale)
        xs, h0, c0 = _case_data(model, case)
        stimulus = Stimulus.prepare(model, xs, lengths=np.asarray(case.lengths))
        phases.append(clear_status_phase(design))
        if index > 0:  # the first case runs on the weights the build was generated with
            phases.append(reload_phase(design, model, case.input_pacing))
        phases.append(init_phase(design, h0, c0))
        # carry_state is sampled per sequence: the case's first sequence starts from the h0/c0
        # just loaded (carry 0), the others from their predecessor (carry 1), so an earlier
        # case's final state never leaks in.
        parts = [(stimulus, False)]
        if case.carry_state and stimulus.batch > 1:
            parts = [(stimulus.subset(0, 1), False), (stimulus.subset(1, stimulus.batch), True)]
        indices = []
        for part, carry in parts:
            indices.append(len(phases))
            phases.append(
                stimulus_phase(
                    design,
                    part,
                    input_pacing=case.input_pacing,
                    output_pacing=case.output_pacing,
                    carry_state=carry,
                    read_state=case.read_state,
                )
            )
        runs.append((case, model, stimulus, h0, c0, tuple(indices)))
    run = run_plan(design.sim_build, plan_for(design, phases))
    outcomes = [_check(design, run, *entry) for entry in runs]
    return outcomes, built - started, time.perf_counter() - built


def _check(design, run, case: Case, model, stimulus, h0, c0, phases) -> CaseOutcome:
    B = stimulus.batch
    h0_b = np.repeat(h0[:, None], B, axis=1)
    c0_b = np.repeat(c0[:, None], B, axis=1)
    result = decode_phase(
        design,
        stimulus,
        run,
        phases,
        paced=case.input_pacing.enabled or case.output_pacing.enabled,
        h0=h0_b,
        c0=c0_b,
        carry_state=case.carry_state,
        weights=model,
    )
    report = compare(result)
    values = sum(check.compared for check in report.checks)
    saturated = report.saturations.reference.total > 0
    errors, ratio = {}, 0.0
    if not saturated:
        check = float_error_bound(
            model,
            stimulus.inputs,
            stimulus.lengths,
            h0_b,
            c0_b,
            carry_state=case.carry_state,
            head_on=design.output_mode,
        )
        errors, ratio = check.max_error, check.max_ratio
    detail = "" if report.bit_exact else str(report)
    return CaseOutcome(case, report.bit_exact, values, detail, saturated, errors, ratio)
