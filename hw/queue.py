"""An output queue behind a fixed-latency pipeline, with credits taken as items enter it."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["CreditQueue"]


class CreditQueue(wiring.Component):
    """A FIFO of ``depth`` items of ``layout`` at the end of a pipeline that cannot stall.

    An item takes a credit when it *enters* the pipeline (``reserve``), so the queue always
    has room for it when it arrives on ``push`` however many cycles later; a credit comes back
    when an item leaves on ``output``. With ``burst = n`` (at most ``depth``) ``available``
    means ``n`` credits are left, for a producer that takes ``n`` items' credits one by one
    after a single check.

    Timing: ``available`` is a register; ``reserve`` (typically the end of the producer's
    handshake logic) and the ``output`` handshake (the consumer's ``ready``) only choose
    between next counts and compares computed from the count register, so they meet one LUT
    before the registers.

    Ports
    -----
    reserve : In(1)
        An item entered the pipeline this cycle (only while ``available``).
    available : Out(1)
        A credit (``burst`` credits) is left (driven by a register).
    push : In, stream (always ready) of ``layout``
        The item leaving the pipeline.
    output : Out, stream of ``layout``
        The queue's head (first word fall-through).
    """

    def __init__(self, layout, depth: int, burst: int = 1):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        if not 1 <= burst <= depth:
            raise ValueError(f"burst must be in 1 .. depth = {depth}, not {burst}")
        self._depth = depth
        self._burst = burst
        super().__init__(
            {
                "reserve": In(1),
                "available": Out(1),
                "push": In(stream.Signature(layout, always_ready=True)),
                "output": Out(stream.Signature(layout)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        # SyncFIFOBuffered(depth) refuses a write while its inner memory (depth - 1 words) is
        # full, even in the cycle that moves a word to its output register: at depth 2 a second
        # item arriving the cycle after the first (into an empty queue) would be dropped,
        # silently (``push`` is always ready). From depth 3 on, the inner memory is never full
        # while the output register is empty; depth 2 gets a third word.
        m.submodules.fifo = fifo = SyncFIFOBuffered(
            width=len(self.output.payload.as_value()), depth=3 if depth == 2 else depth
        )
        credits = Signal(range(depth + 1), init=depth)
        # ``available`` is a flip-flop (the next count's compare registered), so the
        # pipeline's ready starts at a register rather than at the counter's compare. The
        # next count and its compare are computed from the count alone for each of the three
        # changes (-1, 0, +1): ``reserve``, which ends the producer's handshake logic, and
        # this cycle's ``output`` handshake (the consumer's ``ready``, a port) only choose
        # between them (no carry chain after either).
        has_credit = Signal(init=1)
        taken = self.output.valid & self.output.ready
        counts = {change: credits + change for change in (-1, 0, 1)}
        with m.Switch(Cat(self.reserve, taken)):
            for reserve in (0, 1):
                for took in (0, 1):
                    with m.Case(reserve | took << 1):
                        m.d.sync += [
                            credits.eq(counts[took - reserve]),
                            # (the next count still holds a burst)
                            has_credit.eq(counts[took - reserve] >= self._burst),
                        ]
        m.d.comb += [
            self.available.eq(has_credit),
            fifo.w_en.eq(self.push.valid),
            fifo.w_data.eq(self.push.payload),
            self.output.valid.eq(fifo.r_rdy),
            self.output.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.output.ready),
        ]
        return m
