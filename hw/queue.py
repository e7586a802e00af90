"""An output queue behind a fixed-latency pipeline, with credits taken as items enter it."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
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
    handshake logic) only chooses between next counts and compares computed from registers
    and the ``output`` handshake, so it meets one LUT before the registers.

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
        m.submodules.fifo = fifo = SyncFIFOBuffered(
            width=len(self.output.payload.as_value()), depth=depth
        )
        credits = Signal(range(depth + 1), init=depth)
        # ``available`` is a flip-flop (the next count's compare registered), so the
        # pipeline's ready starts at a register rather than at the counter's compare. The
        # next count and its compare are computed for both values of ``reserve`` (from the
        # count and this cycle's ``output`` handshake): ``reserve``, which ends the producer's
        # handshake logic, only chooses between them (no carry chain after it).
        kept = Signal(range(depth + 2))
        has_credit = Signal(init=1)
        taken = self.output.valid & self.output.ready
        m.d.comb += kept.eq(credits + taken)
        m.d.sync += [
            credits.eq(Mux(self.reserve, kept - 1, kept)),
            has_credit.eq(Mux(self.reserve, kept >= self._burst + 1, kept >= self._burst)),
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
