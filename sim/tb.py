"""The cocotb testbench object: clock, reset and the stream drivers of one DUT.

:class:`TB` starts a clock implemented in the simulator interface (not a Python coroutine,
so the clock alone never wakes Python), applies synchronous reset, creates
:class:`~lstm_fpga.sim.streams.StreamSource` / :class:`~lstm_fpga.sim.streams.StreamSink`
drivers for named streams and checks at the end that every queue is empty: no beat was left
unsent, lost, duplicated or received beyond what was expected.
"""

from __future__ import annotations

from cocotb.clock import Clock
from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_steps, get_sim_time

from .stimulus import AXI_STREAM, NO_PAUSES, Pacing, StreamFields
from .streams import ClockTiming, StreamSink, StreamSource

__all__ = ["TB", "DutTimeoutError"]


class DutTimeoutError(AssertionError):
    """The DUT did not finish within the allowed number of cycles."""


class TB:
    """Testbench for a DUT with clock ``clk`` and synchronous active-high reset ``rst``."""

    def __init__(self, dut, period_ns: int = 10, clock: str = "clk", reset: str = "rst"):
        self.dut = dut
        self.clock = getattr(dut, clock)
        self.reset_signal = getattr(dut, reset)
        self.period = get_sim_steps(period_ns, "ns")
        if self.period % 2:
            raise ValueError("the clock period must be an even number of simulator steps")
        self.timing: ClockTiming | None = None
        self.sources: dict[str, StreamSource] = {}
        self.sinks: dict[str, StreamSink] = {}
        self._all_drivers: list[StreamSource | StreamSink] = []

    @property
    def wakes(self) -> int:
        return 0 if self.timing is None else self.timing.wakes

    def idle_streams(
        self,
        sources: tuple[tuple[str, StreamFields], ...] = (),
        sinks: tuple[tuple[str, StreamFields], ...] = (),
    ) -> None:
        """Drive the inputs of these streams to idle (no beat offered, not ready).

        Call before :meth:`start`: an undriven input is ``z`` and the first clock edge after
        reset would clock the resulting ``x`` into the DUT's state.
        """
        for name, fields in sources:
            getattr(self.dut, fields.port(name, fields.valid)).value = 0
            getattr(self.dut, fields.port(name, fields.data)).value = 0
            if fields.last is not None:
                getattr(self.dut, fields.port(name, fields.last)).value = 0
        for name, fields in sinks:
            getattr(self.dut, fields.port(name, fields.ready)).value = 0

    async def start(self, reset_cycles: int = 4) -> None:
        """Start the clock and hold reset during the first ``reset_cycles`` rising edges."""
        # impl="gpi": toggled in C by the simulator interface, never waking Python.
        Clock(self.clock, self.period, unit="step", impl="gpi").start(start_high=False)
        self.reset_signal.value = 1
        rising = RisingEdge(self.clock)
        await rising
        # This edge is cycle 0 of every cycle number the drivers report.
        self.timing = ClockTiming(self.clock, self.period, get_sim_time("step"))
        await self.wait_cycles(reset_cycles - 1)
        self.reset_signal.value = 0
        await self.timing.edge()

    def cycle(self) -> int:
        return self.timing.cycle()

    async def reset(self, cycles: int = 4) -> None:
        """Stop every driver and pulse reset for ``cycles`` edges (call after a rising edge)."""
        self.stop_drivers()
        self.reset_signal.value = 1
        await self.timing.cycles(max(1, cycles))
        self.reset_signal.value = 0
        await self.timing.edge()

    async def wait_cycles(self, count: int) -> None:
        if count > 0:
            await self.timing.cycles(count)

    def source(
        self, name: str, fields: StreamFields = AXI_STREAM, pacing: Pacing = NO_PAUSES
    ) -> StreamSource:
        driver = StreamSource(self.dut, name, self.timing, fields, pacing)
        self.sources[name] = driver
        self._all_drivers.append(driver)
        return driver

    def sink(
        self,
        name: str,
        fields: StreamFields = AXI_STREAM,
        pacing: Pacing = NO_PAUSES,
        *,
        packets: int | None = None,
        beats: int | None = None,
        signed: bool = True,
    ) -> StreamSink:
        driver = StreamSink(self.dut, name, self.timing, fields, pacing, packets, beats, signed)
        self.sinks[name] = driver
        self._all_drivers.append(driver)
        return driver

    def driver_errors(self) -> list[BaseException]:
        """Exceptions that ended driver tasks (cocotb then cancels the test itself)."""
        errors = []
        for driver in self._all_drivers:
            task = driver._task
            if task.done() and not task.cancelled() and task.exception() is not None:
                errors.append(task.exception())
        return errors

    def stop_drivers(self) -> None:
        for driver in (*self.sources.values(), *self.sinks.values()):
            driver.stop()
        self.sources.clear()
        self.sinks.clear()

    async def wait_done(self, timeout_cycles: int) -> None:
        """Wait until every source is empty and every sink got what it expects."""
        deadline = get_sim_time("step") + timeout_cycles * self.period
        for driver in (*self.sources.values(), *self.sinks.values()):
            if isinstance(driver, StreamSink) and driver.expected is None:
                continue  # open-ended sinks are ended by the drain period
            remaining = deadline - get_sim_time("step")
            if remaining <= 0:
                raise DutTimeoutError(f"{self._progress()} after {timeout_cycles} cycles")
            timer = Timer(remaining, unit="step")
            self.timing.wakes += 1
            if await First(driver.wait_done(), timer) is timer:
                raise DutTimeoutError(f"{self._progress()} after {timeout_cycles} cycles")

    def check_empty(self) -> None:
        """Raise unless every source sent everything and no sink received extra beats."""
        problems = [
            f"source {name}: {driver.pending} beats never accepted"
            for name, driver in self.sources.items()
            if driver.pending
        ]
        problems += [
            f"sink {name}: {driver.extra} beats beyond the expected {driver.expected}"
            for name, driver in self.sinks.items()
            if driver.extra
        ]
        if problems:
            raise AssertionError("stream queues not empty at the end: " + "; ".join(problems))

    def _progress(self) -> str:
        parts = [
            f"source {n}: {len(d.cycles)} sent, {d.pending} pending"
            for n, d in self.sources.items()
        ]
        parts += [
            f"sink {n}: {len(d.data)} beats / {d.packets} packets received (expected {d.expected})"
            for n, d in self.sinks.items()
        ]
        return "the DUT did not finish: " + "; ".join(parts)
