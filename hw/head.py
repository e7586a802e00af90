"""Linear head output stage: rescale the head's accumulators and serialise them onto ``y``."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .cell import output_layout
from .config import GATES_PER_UNIT
from .fixed import format_shape, rescale_value, saturates, shift_round_value
from .mvu import unit_layout
from .plan import EnginePlan

__all__ = ["HeadOutput"]


class HeadOutput(wiring.Component):
    """The head's rows, four per unit from the drain, to ``y`` one element per cycle.

    Head unit ``u`` carries the accumulators of output rows ``4u .. 4u+3``;
    each existing row (``< O``) leaves as ``rescale(acc, head.output)`` exactly as
    :func:`lstm_fpga.sw.reference.head_forward` (``HeadDatapath.acc.frac`` to the output
    format, the model's rounding and overflow). ``last`` marks row ``O-1`` of a job with
    ``job.y_last``. ``saturated`` pulses for every emitted element whose rescale clamps.

    Latency: a unit's first element is offered on ``y`` in the cycle after the unit is taken;
    throughput: one element per cycle, a new unit whenever the previous one is done.
    """

    def __init__(self, plan: EnginePlan):
        if plan.head is None:
            raise ValueError("the plan has no head")
        self._plan = plan
        hd = plan.head_datapath
        super().__init__(
            {
                "units": In(stream.Signature(unit_layout(plan))),
                "y": Out(stream.Signature(output_layout(format_shape(hd.formats.output)))),
                "saturated": Out(1),
                "empty": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        hd = plan.head_datapath
        out_features = plan.head_out
        held = Signal(unit_layout(plan))
        row = Signal(range(GATES_PER_UNIT))
        full = Signal()
        acc = Array(held.gates)[row]
        fmt = hd.formats.output
        index = held.unit * GATES_PER_UNIT + row
        final_row = (row == GATES_PER_UNIT - 1) | (index == out_features - 1)
        taken = self.y.valid & self.y.ready
        m.d.comb += [
            self.y.valid.eq(full),
            self.y.payload.data.eq(rescale_value(acc, hd.acc.frac, fmt, hd.rounding, hd.overflow)),
            self.y.payload.last.eq(held.job.y_last & (index == out_features - 1)),
            self.saturated.eq(
                taken & saturates(shift_round_value(acc, hd.acc.frac - fmt.frac, hd.rounding), fmt)
            ),
            self.units.ready.eq(~full | (taken & final_row)),
            self.empty.eq(~full),
        ]
        with m.If(taken):
            m.d.sync += row.eq(row + 1)
            with m.If(final_row):
                m.d.sync += [full.eq(0), row.eq(0)]
        with m.If(self.units.valid & self.units.ready):
            m.d.sync += [held.eq(self.units.payload), full.eq(1), row.eq(0)]
        return m
