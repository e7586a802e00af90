"""Linear head output stage: rescale the head's accumulators and serialise them onto ``y``."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .cell import output_layout
from .config import GATES_PER_UNIT
from .fixed import fit_rounded, format_shape, round_for
from .mvu import unit_layout
from .plan import EnginePlan

__all__ = ["HeadOutput"]

#: Units the head holds: one on ``y``, one taken meanwhile.
_BANKS = 2


class HeadOutput(wiring.Component):
    """The head's rows, four per unit from the drain, to ``y`` one element per cycle.

    Head unit ``u`` carries the accumulators of output rows ``4u .. 4u+3``;
    each existing row (``< O``) leaves as ``rescale(acc, head.output)`` exactly as
    :func:`lstm_fpga.sw.reference.head_forward` (``HeadDatapath.acc.frac`` to the output
    format, the model's rounding and overflow). ``last`` marks row ``O-1`` of a job with
    ``job.y_last``. ``saturated`` pulses, one cycle after the handshake, for every emitted
    element whose rescale clamps.

    Pipeline: a taken unit's four rows are rounded into a stage register, beside their
    compares against :func:`~lstm_fpga.hw.fixed.fitting_range` (no enable: the carry chains
    end at flip-flops); the next cycle fits them (the clamp or the wrap) into a bank, with
    their saturation flags and the position of the unit's final row, so ``y``'s data is a
    choice among registers; ``y.last`` is a register (loaded with its next value: the
    handshake and the bank writes choose it); the ``y`` handshake only enables registers (the
    row counter, the flag register behind ``saturated``) and chooses ``last``'s next value,
    and no output port or ``ready`` reaches an adder. Two such banks take units in turn:
    while one is serialised onto ``y`` the other may take the next unit (a staged unit holds
    its bank), so ``units.ready`` is a flip-flop (a bank free, counted before this cycle's
    handshakes) and ``y.ready`` never reaches the unit source.

    Latency: a unit's first element is offered on ``y`` two cycles after the unit is taken;
    throughput: one element per cycle, a new unit every cycle while ``y`` keeps up (a bank
    freed by ``y`` takes a unit from the next cycle on, while the other bank is on ``y``).
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

        # Bank ``b``: the rescaled rows of a unit, their saturation flags, whether it holds
        # the job's final row and the job's ``y_last``.
        values = [
            [
                Signal(format_shape(fmt), name=f"value{b}_{k}", reset_less=True)
                for k in range(GATES_PER_UNIT)
            ]
            for b in range(_BANKS)
        ]
        flags = [
            [Signal(name=f"flag{b}_{k}", reset_less=True) for k in range(GATES_PER_UNIT)]
            for b in range(_BANKS)
        ]
        is_final_unit = [Signal(name=f"is_final_unit{b}", reset_less=True) for b in range(_BANKS)]
        y_last = [Signal(name=f"y_last{b}", reset_less=True) for b in range(_BANKS)]
        # ``y_last & is_final_unit``: the bank holds the row that ends the sequence
        ends = [Signal(name=f"ends{b}", reset_less=True) for b in range(_BANKS)]
        # ``write`` takes the staged unit, ``read`` is on ``y``; ``count`` counts the units
        # taken (staged or in a bank) and not finished, ``filled`` those in a bank; ``room``
        # is ``count < _BANKS`` of the next cycle, registered.
        write = Signal(range(_BANKS))
        read = Signal(range(_BANKS))
        count = Signal(range(_BANKS + 1))
        filled = Signal(range(_BANKS + 1))
        room = Signal(init=1)
        # The taken unit's rows rounded into the stage register, every cycle (``staged`` says
        # it holds a taken unit), with whether each lies above or below the output format;
        # fitted from there into the bank ``write`` names (``rescale`` of the reference).
        staged = Signal()
        stage_final = Signal(reset_less=True)
        stage_y_last = Signal(reset_less=True)
        m.d.sync += [
            staged.eq(accept),
            stage_final.eq(payload.unit == final_unit),
            stage_y_last.eq(payload.job.y_last),
        ]
        stage = [
            round_for(acc, hd.acc.frac, fmt, hd.rounding).registered(m, f"stage{k}")
            for k, acc in enumerate(payload.gates)
        ]
        stage_values = [fit_rounded(r, fmt, hd.overflow) for r in stage]
        stage_flags = [r.saturates for r in stage]
        for b in range(_BANKS):
            with m.If(staged & (write == b)):
                m.d.sync += [values[b][k].eq(v) for k, v in enumerate(stage_values)]
                m.d.sync += [flags[b][k].eq(f) for k, f in enumerate(stage_flags)]
                m.d.sync += [
                    is_final_unit[b].eq(stage_final),
                    y_last[b].eq(stage_y_last),
                    ends[b].eq(stage_final & stage_y_last),
                ]

        row = Signal(range(GATES_PER_UNIT))
        # Element ``read * GATES_PER_UNIT + row`` of the banks' rows, in one choice.
        element = read * GATES_PER_UNIT + row
        at_final_row = Array(is_final_unit)[read] & (row == final_row_index)
        final_row = (row == GATES_PER_UNIT - 1) | at_final_row
        taken = self.y.valid & self.y.ready
        finished = taken & final_row
        # The count after this cycle's ``y`` handshake, before the taken unit: ``accept`` (the
        # end of the unit source's handshake logic) only chooses between it and one more,
        # each compared already (no carry chain after ``accept``).
        kept = Signal(range(_BANKS + 1))
        # ``y.last`` (``Array(y_last)[read] & at_final_row``) is a register, loaded from its
        # next value: the banks, ``read`` and ``row`` after this cycle's write and handshake
        # (so the end of a sequence, ``y.valid & y.ready & y.last``, is one LUT from
        # registers and ``y.ready``). Equal to that expression from the cycle after a reset
        # on (``y.valid`` is 0 until a bank is written).
        last = Signal()
        read_next = Mux(finished, read + 1, read)[: len(read)]
        row_at_final = Mux(
            taken,
            Mux(final_row, final_row_index == 0, row == final_row_index - 1),
            row == final_row_index,
        )
        ends_next = [
            Mux(staged & (write == b), stage_final & stage_y_last, ends[b]) for b in range(_BANKS)
        ]
        m.d.sync += last.eq(Array(ends_next)[read_next] & row_at_final)
        m.d.comb += [
            self.y.valid.eq(filled != 0),
            self.y.payload.data.eq(Array(v for bank in values for v in bank)[element]),
            self.y.payload.last.eq(last),
            self.units.ready.eq(room),
            kept.eq(count - finished),
            # A flag still to be counted keeps the stage busy: the counter is current when
            # ``busy`` falls.
            self.empty.eq((count == 0) & ~self.saturated),
        ]
        m.d.sync += [
            count.eq(Mux(accept, kept + 1, kept)),
            filled.eq(filled + staged - finished),
            room.eq(Mux(accept, kept + 1 != _BANKS, kept != _BANKS)),
            self.saturated.eq(taken & Array(f for bank in flags for f in bank)[element]),
        ]
        with m.If(staged):
            m.d.sync += write.eq(write + 1)
        with m.If(taken):
            m.d.sync += row.eq(row + 1)
            with m.If(final_row):
                m.d.sync += [row.eq(0), read.eq(read + 1)]
        return m
