"""cocotb test module that executes a :class:`~lstm_fpga.sim.stimulus.Plan` on any DUT.

The host (:func:`lstm_fpga.sim.stimulus.run_plan`) writes the plan into the run directory and
points ``LSTM_FPGA_SIM_PLAN`` at it; this module runs it phase by phase with a
:class:`~lstm_fpga.sim.tb.TB` and writes the :class:`~lstm_fpga.sim.stimulus.PlanResult` next to
it. On failure it also writes ``error.txt`` with a one-paragraph explanation.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly
from cocotb.types import Logic

from .stimulus import (
    PLAN_ENV,
    PROGRESS_ENV,
    Phase,
    PhaseResult,
    PlanResult,
    SinkCapture,
    SourceRecord,
    int_array,
    load_plan,
    save_result,
)
from .tb import TB

__all__ = ["run_plan_test"]


async def _run_phase(tb: TB, phase: Phase, progress=None) -> PhaseResult:
    for name, value in phase.drive:
        getattr(tb.dut, name).value = value
    start = tb.cycle()
    await tb.wait_cycles(phase.idle_cycles)
    sources = [tb.source(s.name, s.fields, s.pacing) for s in phase.sources]
    sinks = [
        tb.sink(s.name, s.fields, s.pacing, packets=s.packets, beats=s.beats, signed=s.signed)
        for s in phase.sinks
    ]
    for driver, spec in zip(sinks, phase.sinks, strict=True):
        if spec.progress:
            driver.on_packet = progress
    for driver, spec in zip(sources, phase.sources, strict=True):
        driver.send(spec.data, spec.last)
    aborted = phase.abort_after_cycles is not None
    if aborted:
        await tb.wait_cycles(phase.abort_after_cycles)
        await ReadOnly()
        samples = _sample(tb, phase)
        await tb.timing.edge()
        await tb.reset()
    else:
        await tb.wait_done(phase.timeout_cycles)
        await tb.wait_cycles(phase.drain_cycles)
        tb.check_empty()
        await ReadOnly()
        samples = _sample(tb, phase)
        await tb.timing.edge()
    result = PhaseResult(
        sinks=tuple(
            SinkCapture(
                s.name,
                int_array(np.array(s.data, dtype=object)),
                np.asarray(s.lasts, dtype=bool),
                np.asarray(s.cycles, dtype=np.int64),
                s.extra,
            )
            for s in sinks
        ),
        sources=tuple(SourceRecord(s.name, np.asarray(s.cycles, dtype=np.int64)) for s in sources),
        samples=samples,
        start_cycle=start,
        end_cycle=tb.cycle(),
        aborted=aborted,
    )
    tb.stop_drivers()
    return result


def _sample(tb: TB, phase: Phase) -> tuple[tuple[str, int], ...]:
    samples = []
    for name in phase.sample:
        value = getattr(tb.dut, name).value
        if not value.is_resolvable:
            raise AssertionError(f"signal {name} reads {value} (X/Z) at the end of the phase")
        samples.append((name, int(value) if isinstance(value, Logic) else value.to_unsigned()))
    return tuple(samples)


def _progress_counter():
    """A callback appending one byte per progress packet to ``$LSTM_FPGA_SIM_PROGRESS`` (the
    host polls its size for a progress bar), or None when the host did not ask."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return None

    def packet_done():
        with open(path, "ab") as counter:
            counter.write(b".")

    return packet_done


@cocotb.test()
async def run_plan_test(dut):
    """Run the plan named by ``$LSTM_FPGA_SIM_PLAN`` and store its result beside it."""
    plan_path = Path(os.environ[PLAN_ENV])
    run_dir = plan_path.parent
    started = time.perf_counter()
    tb = None
    try:
        plan = load_plan(plan_path)
        tb = TB(dut, plan.clock_period_ns, plan.clock, plan.reset)
        tb.idle_streams(
            tuple({(s.name, s.fields) for p in plan.phases for s in p.sources}),
            tuple({(s.name, s.fields) for p in plan.phases for s in p.sinks}),
        )
        for name, value in plan.initial:
            getattr(dut, name).value = value
        await tb.start(plan.reset_cycles)
        phases = []
        progress = _progress_counter()
        for phase in plan.phases:
            phases.append(await _run_phase(tb, phase, progress))
        result = PlanResult(
            phases=tuple(phases),
            total_cycles=tb.cycle(),
            sim_seconds=time.perf_counter() - started,
            wakes=tb.wakes,
        )
        save_result(result, run_dir)
    except BaseException as error:
        # A failing driver task makes cocotb cancel this test: report the driver's error.
        errors = tb.driver_errors() if tb is not None else []
        cause = errors[0] if errors else error
        message = f"{type(cause).__name__}: {cause}"
        (run_dir / "error.txt").write_text(message + "\n\n" + traceback.format_exc())
        raise
