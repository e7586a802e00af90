"""Lean valid/ready stream drivers for cocotb that wake Python per beat, not per clock.

cocotb costs 10-20 us per Python wake-up. cocotbext-axi's ``AxiStreamSource``/``Sink`` await
every rising edge (about 3 wakes per cycle for a source, a sink and their pause generators),
which caps a simulation at roughly 20-50 k cycles/s. These drivers instead follow the
handshake:

* a driver writes its outputs right after a rising edge (cocotb applies them before the
  next edge on every simulator) and reads the DUT in the ``ReadOnly`` phase, where values
  are settled and are exactly what the next rising edge samples;
* while the DUT holds ``tready`` (source) or ``tvalid`` (sink) low, the driver awaits the
  edge of that signal instead of the clock;
* pauses (idle cycles, backpressure) of ``n`` cycles cost two wakes (a ``Timer`` to the
  middle of the cycle before the last, then one rising edge), whatever ``n`` is.

So a beat costs about two wakes, and a DUT that computes for thousands of cycles between
beats costs none. Handshake cycles are computed from simulation time, not counted.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from .stimulus import AXI_STREAM, NO_PAUSES, Pacing, StreamFields

__all__ = ["ClockTiming", "ProtocolError", "StreamSink", "StreamSource"]


class ProtocolError(AssertionError):
    """The DUT broke the valid/ready protocol (e.g. dropped tvalid before a handshake)."""


class ClockTiming:
    """Cycle arithmetic for a free-running clock of ``period`` simulator steps whose rising
    edge 0 happened at step ``origin``; also counts Python wakes of the drivers."""

    def __init__(self, clock, period: int, origin: int):
        self.clock = clock
        self.period = period
        self.origin = origin
        self.wakes = 0
        self.rising = RisingEdge(clock)
        self.read_only = ReadOnly()

    def cycle(self) -> int:
        """Index of the most recent rising edge (called right after that edge)."""
        return (get_sim_time("step") - self.origin) // self.period

    async def edge(self) -> None:
        self.wakes += 1
        await self.rising

    async def settle(self) -> None:
        self.wakes += 1
        await self.read_only

    async def cycles(self, count: int) -> None:
        """Wait ``count`` rising edges; call right after a rising edge or in its ReadOnly."""
        if count <= 2:
            for _ in range(count):
                await self.edge()
            return
        self.wakes += 1
        await Timer(count * self.period - self.period // 2, unit="step")
        await self.edge()


def _pauses(pacing: Pacing):
    """Endless pause lengths (0 = no pause) for one driver, reproducible from the seed."""
    rng = random.Random(pacing.seed)
    while True:
        if pacing.enabled and rng.random() < pacing.probability:
            yield rng.randint(1, pacing.max_cycles)
        else:
            yield 0


class _StreamPort:
    def __init__(self, dut, name: str, fields: StreamFields):
        self.name = name

        def port(member):
            full = fields.port(name, member)
            try:
                return getattr(dut, full)
            except AttributeError:
                raise AttributeError(
                    f"the DUT has no port {full!r} (stream {name!r}); check the stream name "
                    f"and StreamFields"
                ) from None

        self.tdata = port(fields.data)
        self.tvalid = port(fields.valid)
        self.tready = port(fields.ready)
        self.tlast = port(fields.last) if fields.last is not None else None
        self.width = len(self.tdata)
        self.mask = (1 << self.width) - 1

    async def _wait_high(self, signal, what: str) -> None:
        """Wait, from a settled point, until ``signal`` (this stream's ``what``) is 1.

        X/Z is a :class:`ProtocolError`; each wake on a rising edge is counted in ``wakes``.
        """
        timing = self.timing
        while (value := signal.value) != 1:
            if not value.is_resolvable:
                raise ProtocolError(
                    f"stream {self.name}: {what} is {value} (X/Z) at cycle {timing.cycle()}; "
                    f"the DUT drives an uninitialised value"
                )
            timing.wakes += 1
            await RisingEdge(signal)
            await timing.settle()


class StreamSource(_StreamPort):
    """Drives ``{name}__tdata/tvalid/tlast`` from a queue of beats, obeying ``tready``.

    ``pacing`` inserts idle cycles (``tvalid`` low) before beats. ``cycles`` holds the
    handshake cycle of every beat sent; :meth:`wait_done` returns when the queue is empty.
    """

    def __init__(self, dut, name, timing: ClockTiming, fields=AXI_STREAM, pacing=NO_PAUSES):
        super().__init__(dut, name, fields)
        self.timing = timing
        self._queue: deque[tuple[int, int]] = deque()
        self._pauses = _pauses(pacing)
        self._queued = Event()
        self._done = Event()
        self._done.set()
        self.cycles: list[int] = []
        self.tvalid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, data, last=None) -> None:
        """Queue beats (``data`` integers, ``last`` flags; signed values are fine)."""
        data = [int(v) & self.mask for v in data]
        last = [0] * len(data) if last is None else [int(bool(v)) for v in last]
        if len(last) != len(data):
            raise ValueError(f"stream {self.name}: {len(last)} last flags for {len(data)} beats")
        if data:
            self._queue.extend(zip(data, last, strict=True))
            self._done.clear()
            self._queued.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def wait_done(self):
        """A trigger that fires when the driver is done (already fired if it is)."""
        return self._done.wait()

    def stop(self) -> None:
        self._task.cancel()
        self.tvalid.value = 0

    async def _run(self) -> None:
        timing = self.timing
        while True:
            if not self._queue:
                self.tvalid.value = 0
                self._done.set()
                self._queued.clear()
                await self._queued.wait()
                await timing.edge()  # drive only right after an edge
            pause = next(self._pauses)
            if pause:
                self.tvalid.value = 0
                await timing.cycles(pause)
            data, last = self._queue[0]
            self.tdata.value = data
            if self.tlast is not None:
                self.tlast.value = last
            self.tvalid.value = 1
            await timing.settle()
            await self._wait_high(self.tready, "tready")
            await timing.edge()  # the handshake happens at this edge
            self._queue.popleft()
            self.cycles.append(timing.cycle())


class StreamSink(_StreamPort):
    """Accepts beats on ``{name}__tdata/tvalid/tlast`` and drives ``tready``.

    ``pacing`` inserts backpressure (``tready`` low) before beats; while it does, the sink
    checks that a beat the DUT offered stays offered and unchanged (AXI4-Stream rule).
    The sink is done after ``packets`` beats with last (or ``beats`` beats); later beats are
    still accepted and counted in ``extra`` so duplicates cannot go unnoticed.
    ``on_packet`` (settable, default None) is called after each expected packet ends.
    """

    def __init__(
        self,
        dut,
        name,
        timing: ClockTiming,
        fields=AXI_STREAM,
        pacing=NO_PAUSES,
        packets=None,
        beats=None,
        signed=True,
    ):
        super().__init__(dut, name, fields)
        self.timing = timing
        self.signed = signed
        self._pauses = _pauses(pacing)
        self.expected_packets = packets
        self.expected_beats = beats
        self.data: list[int] = []
        self.lasts: list[int] = []
        self.cycles: list[int] = []
        self.packets = 0
        self.extra = 0
        self.on_packet = None
        self._done = Event()
        self._check_done()
        self.tready.value = 0
        self._task = cocotb.start_soon(self._run())

    @property
    def expected(self) -> int | None:
        """The expected packet or beat count (None: open-ended)."""
        return self.expected_packets if self.expected_packets is not None else self.expected_beats

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait_done(self):
        """A trigger that fires when the driver is done (already fired if it is)."""
        return self._done.wait()

    def stop(self) -> None:
        self._task.cancel()
        self.tready.value = 0

    def _check_done(self) -> None:
        if self.expected_packets is not None and self.packets >= self.expected_packets:
            self._done.set()
        if self.expected_beats is not None and len(self.data) >= self.expected_beats:
            self._done.set()

    def _read(self):
        raw = self.tdata.value
        last = self.tlast.value if self.tlast is not None else 0
        if not raw.is_resolvable or (self.tlast is not None and not last.is_resolvable):
            raise ProtocolError(
                f"stream {self.name}: tvalid is high but tdata={raw} tlast={last} hold X/Z "
                f"(beat {len(self.data)}, cycle {self.timing.cycle()}); the DUT outputs an "
                f"uninitialised value"
            )
        return (raw.to_signed() if self.signed else raw.to_unsigned()), int(last)

    async def _run(self) -> None:
        timing = self.timing
        await timing.edge()
        while True:
            pause = next(self._pauses)
            if pause:
                self.tready.value = 0
                await timing.settle()
                offered = self._read() if self.tvalid.value == 1 else None
                await timing.cycles(pause)
                self.tready.value = 1
                await timing.settle()
                if offered is not None and (self.tvalid.value != 1 or self._read() != offered):
                    raise ProtocolError(
                        f"stream {self.name}: the DUT withdrew or changed a beat while "
                        f"tready was low (offered {offered}, cycle {timing.cycle()})"
                    )
            else:
                self.tready.value = 1
                await timing.settle()
            await self._wait_high(self.tvalid, "tvalid")
            beat = self._read()
            await timing.edge()  # the handshake happens at this edge
            if self.done:
                self.extra += 1
                continue
            self.data.append(beat[0])
            self.lasts.append(beat[1])
            self.cycles.append(timing.cycle())
            self.packets += beat[1]
            if beat[1] and self.on_packet is not None:
                self.on_packet()
            self._check_done()
