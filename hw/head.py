"""Linear head output stage: rescale the head's accumulators and serialise them onto ``y``."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .cell import output_layout
from .config import GATES_PER_UNIT
from .fixed import format_shape, rescale_saturates, rescale_value
from .mvu import unit_layout
from .plan import EnginePlan

__all__ = ["HeadOutput"]


class HeadOutput(wiring.Component):
    """The head's rows, four per unit from the drain, to ``y`` one element per cycle.

    Head unit ``u`` carries the accumulators of output rows ``4u .. 4u+3``;
    each existing row (``< O``) leaves as ``rescale(acc, head.output)`` exactly as
    :func:`lstm_fpga.sw.reference.head_forward` (``HeadDatapath.acc.frac`` to the output
    format, the model's rounding and overflow). ``last`` marks row ``O-1`` of a job with
    ``job.y_last``. ``saturated`` pulses, one cycle after the handshake, for every emitted
    element whose rescale clamps.

    Pipeline: a taken unit's four rows are rescaled into registers (with their saturation
    flags and the position of the unit's final row), so ``y``'s data is a 4:1 choice among
    registers; the ``y`` handshake only enables registers (the row counter, the flag
    register behind ``saturated``), and no output port or ``ready`` reaches an adder.

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
        fmt = hd.formats.output
        out_features = plan.head_out
        # The job's final row ``O-1`` sits in unit ``final_unit`` at row ``final_row_index``.
        final_unit, final_row_index = divmod(out_features - 1, GATES_PER_UNIT)
        payload = self.units.payload
        accept = self.units.valid & self.units.ready

        values = [
            Signal(format_shape(fmt), name=f"value{k}", reset_less=True)
            for k in range(GATES_PER_UNIT)
        ]
        flags = [Signal(name=f"flag{k}", reset_less=True) for k in range(GATES_PER_UNIT)]
        is_final_unit = Signal(reset_less=True)
        y_last = Signal(reset_less=True)
        with m.If(accept):
            for k, acc in enumerate(payload.gates):
                m.d.sync += [
                    values[k].eq(rescale_value(acc, hd.acc.frac, fmt, hd.rounding, hd.overflow)),
                    flags[k].eq(rescale_saturates(acc, hd.acc.frac, fmt, hd.rounding)),
                ]
            m.d.sync += [
                is_final_unit.eq(payload.unit == final_unit),
                y_last.eq(payload.job.y_last),
            ]

        row = Signal(range(GATES_PER_UNIT))
        full = Signal()
        at_final_row = is_final_unit & (row == final_row_index)
        final_row = (row == GATES_PER_UNIT - 1) | at_final_row
        taken = self.y.valid & self.y.ready
        m.d.comb += [
            self.y.valid.eq(full),
            self.y.payload.data.eq(Array(values)[row]),
            self.y.payload.last.eq(y_last & at_final_row),
            self.units.ready.eq(~full | (taken & final_row)),
            # A flag still to be counted keeps the stage busy: the counter is current when
            # ``busy`` falls.
            self.empty.eq(~full & ~self.saturated),
        ]
        m.d.sync += self.saturated.eq(taken & Array(flags)[row])
        with m.If(taken):
            m.d.sync += row.eq(row + 1)
            with m.If(final_row):
                m.d.sync += [full.eq(0), row.eq(0)]
        with m.If(accept):
            m.d.sync += [full.eq(1), row.eq(0)]
        return m
