"""The output reader: streams a finished sequence's top-layer outputs out of the vector memory."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .cell import output_layout
from .config import index_shape
from .jobs import outstanding_limit
from .plan import EnginePlan
from .queue import CreditQueue

__all__ = ["OutputReader", "output_range_layout"]


def output_range_layout(plan: EnginePlan) -> data.StructLayout:
    """Words ``first .. last`` of the vector memory to send, written by the buffer of
    ``parity``."""
    address = index_shape(plan.vector_depth)
    return data.StructLayout({"first": address, "last": address, "parity": unsigned(1)})


class OutputReader(wiring.Component):
    """Sends the top layer's outputs of a buffered sequence (a model without head) from the
    vector memory to ``copy`` while the lanes go on with the next sequence.

    Ports
    -----
    start : In, stream of :func:`output_range_layout`
        A sequence's output range; accepted while not ``busy``. Its words are read once every
        unit outstanding at the hand-off has completed.
    outstanding : In; completed : In(1)
        Units issued but not completed (walker) and a completion this cycle.
    address : Out; data : In
        A read port of the vector memory (latency 1).
    copy : Out, stream of :func:`~lstm_fpga.hw.cell.output_layout`
        The outputs, ``last`` on the range's final word (through a credit queue of
        ``queue_depth`` words).
    busy : Out(1); parity : Out(1)
        A range is being sent; the buffer parity it reads.
    """

    def __init__(self, plan: EnginePlan, queue_depth: int = 16):
        self._plan = plan
        self._queue_depth = queue_depth
        limit = outstanding_limit(plan)
        super().__init__(
            {
                "start": In(stream.Signature(output_range_layout(plan))),
                "outstanding": In(range(limit)),
                "completed": In(1),
                "address": Out(index_shape(plan.vector_depth)),
                "data": In(plan.state_shape),
                "copy": Out(stream.Signature(output_layout(plan.output_shape))),
                "busy": Out(1),
                "parity": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = CreditQueue(self.copy.payload.shape(), self._queue_depth)
        wiring.connect(m, queue.output, wiring.flipped(self.copy))
        pending = Signal.like(self.outstanding)
        end = Signal.like(self.address)
        read_now = self.busy & (pending == 0) & queue.available
        pushed = Signal()
        pushed_last = Signal()
        m.d.comb += [
            queue.reserve.eq(read_now),
            queue.push.valid.eq(pushed),
            queue.push.payload.data.eq(self.data),
            queue.push.payload.last.eq(pushed_last),
            self.start.ready.eq(~self.busy),
        ]
        m.d.sync += [pushed.eq(read_now), pushed_last.eq(self.address == end)]
        with m.If(self.completed & (pending != 0)):
            m.d.sync += pending.eq(pending - 1)
        with m.If(read_now):
            m.d.sync += self.address.eq(self.address + 1)
            with m.If(self.address == end):
                m.d.sync += self.busy.eq(0)
        with m.If(self.start.valid & self.start.ready):
            m.d.sync += [
                self.busy.eq(1),
                pending.eq(self.outstanding - self.completed),
                self.address.eq(self.start.payload.first),
                end.eq(self.start.payload.last),
                self.parity.eq(self.start.payload.parity),
            ]
        return m
