"""An LSTMP's projection output stage: the projection job's rows to ``h_t``."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .cell import (
    hidden_announce_layout,
    hidden_write_layout,
    output_layout,
    staged_rescale,
    state_layout,
)
from .config import GATES_PER_UNIT
from .mvu import job_layout, unit_layout
from .pipeline import delay
from .plan import EnginePlan
from .queue import CreditQueue

__all__ = ["ProjectionOutput"]


class ProjectionOutput(wiring.Component):
    """The rows of an LSTMP's projection jobs (``W_hr m_t``, four per unit from the drain) to
    ``h_t``, one row per cycle: the hidden state the recurrence, the layer above, ``y`` and
    the final state read.

    Projection unit ``u`` of layer direction ``k`` (matrix
    :meth:`~lstm_fpga.hw.plan.EnginePlan.projection_index` ``(k)``) carries the accumulators
    of rows ``4u .. 4u+3``; each existing row ``r < R`` leaves as ``h_t[r] =
    rescale(acc, hidden)`` exactly as :func:`lstm_fpga.sw.reference.project` (the
    layer direction's ``LstmpDatapath.proj_acc.frac`` to its ``hidden`` format, the model's
    rounding and overflow; no bias), in row order.

    Ports
    -----
    units : In, stream of :func:`~lstm_fpga.hw.mvu.unit_layout`
        Projection units; ready while the stage holds no unit and the ``y`` and ``state``
        queues have room for a whole unit's rows (credit-based, so that a taken unit's rows
        never wait: see the pipeline below).
    hidden_write : Out, stream (always ready) of :func:`~lstm_fpga.hw.cell.hidden_write_layout`
        Every ``h_t[r]``: into the vector memory at ``job.vector_base + r``; with
        ``job.final`` also into the final-state region ``job.parity`` at ``k * H + r``.
    announce : Out, stream (always ready) of :func:`~lstm_fpga.hw.cell.hidden_announce_layout`
        The same writes ``announce`` cycles (a constructor argument) before their
        ``hidden_write`` (the writes are certain then: nothing stalls after the announcement).
    y : Out, stream of :func:`~lstm_fpga.hw.cell.output_layout` (the model's output format)
        ``h_t[r]`` of jobs with ``job.emit_y``; ``last`` on row ``R - 1`` of a
        ``job.y_last`` job.
    state : Out, stream of :func:`~lstm_fpga.hw.cell.state_layout`
        ``h_n[k][r]`` (``c`` 0) of jobs with ``job.emit_state``; ``last`` on row ``R - 1``
        of the final layer direction.
    saturated : Out(1)
        A row whose rescale clamps was written this cycle (a ``hidden`` saturation).
    empty : Out(1)
        No unit held or offered and no write in flight.

    Pipeline: a taken unit's rows are rounded into stage registers (the cycle after the
    handshake) and fitted into the output registers (the next), then announced one per
    cycle (row ``r`` of a unit taken in cycle ``t`` in cycle ``t + 2 + r``, whatever the
    outputs do: the queues' room was checked at the handshake); each row is written
    ``announce`` cycles after its announcement. A new unit is taken once the previous one's
    last row is announced. So a unit's rows are announced before those of any unit the
    gate and cell pipeline takes after it (its latency is longer), the order the walker's
    scoreboards count in, and never in the same cycle as that pipeline's.
    """

    def __init__(self, plan: EnginePlan, announce: int, queue_depth: int = 8):
        if not plan.projected:
            raise ValueError("the plan has no projection")
        if announce < 1:
            raise ValueError(f"announce must be at least 1, not {announce}")
        if queue_depth < GATES_PER_UNIT:
            raise ValueError(f"queue_depth must be at least {GATES_PER_UNIT}, not {queue_depth}")
        self._plan = plan
        self._announce = announce
        self._queue_depth = queue_depth
        super().__init__(
            {
                "units": In(stream.Signature(unit_layout(plan))),
                "hidden_write": Out(stream.Signature(hidden_write_layout(plan), always_ready=True)),
                "announce": Out(stream.Signature(hidden_announce_layout(plan), always_ready=True)),
                "y": Out(stream.Signature(output_layout(plan.output_shape))),
                "state": Out(stream.Signature(state_layout(plan))),
                "saturated": Out(1),
                "empty": Out(1),
            }
        )

    @property
    def announce_lead(self) -> int:
        """Cycles by which ``announce`` precedes ``hidden_write`` (the constructor's
        ``announce``)."""
        return self._announce

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        H, R = plan.hidden_size, plan.proj_size
        LD = plan.num_directions_total
        first = plan.projection_index(0)
        payload = self.units.payload
        meta_layout = data.StructLayout({"unit": payload.unit.shape(), "job": job_layout(plan)})

        # Handshake -> stage registers (rounded, compared) -> output registers (fitted): the
        # rescale of the reference with the unit's layer direction's formats.
        accept = self.units.valid & self.units.ready
        staged = Signal()
        staged_meta = Signal(meta_layout, reset_less=True)
        m.d.sync += [staged.eq(accept), staged_meta.unit.eq(payload.unit)]
        m.d.sync += staged_meta.job.eq(payload.job)
        options = [
            (dp.proj_acc.frac, dp.formats.hidden, dp.rounding, dp.overflow) for dp in plan.datapaths
        ]
        direction = Signal(range(max(2, LD)))
        m.d.comb += direction.eq(staged_meta.job.matrix - first)
        held = Signal()  # the output registers hold a unit being announced
        values = [Signal(plan.state_shape, name=f"row{k}", reset_less=True) for k in range(4)]
        flags = [Signal(name=f"flag{k}", reset_less=True) for k in range(4)]
        meta = Signal(meta_layout, reset_less=True)
        for k in range(GATES_PER_UNIT):
            value, flag = staged_rescale(
                m, direction, payload.gates[k], options, plan.state_shape, f"proj{k}"
            )
            with m.If(staged):
                m.d.sync += [values[k].eq(value), flags[k].eq(flag)]
        with m.If(staged):
            m.d.sync += [meta.eq(staged_meta), held.eq(1)]

        # Announce the held unit's rows in order, one per cycle.
        # (``available``: room for a whole unit's rows, checked when the unit is taken)
        y_queue = m.submodules.y_queue = CreditQueue(
            self.y.payload.shape(), self._queue_depth, burst=GATES_PER_UNIT
        )
        s_queue = m.submodules.state_queue = CreditQueue(
            self.state.payload.shape(), self._queue_depth, burst=GATES_PER_UNIT
        )
        wiring.connect(m, y_queue.output, wiring.flipped(self.y))
        wiring.connect(m, s_queue.output, wiring.flipped(self.state))
        row = Signal(range(GATES_PER_UNIT))
        index = Signal(range(GATES_PER_UNIT * (max(1, -(-R // GATES_PER_UNIT)) + 1)))
        m.d.comb += index.eq(meta.unit * GATES_PER_UNIT + row)
        final_row = (row == GATES_PER_UNIT - 1) | (index == R - 1)
        go = held  # (the queues had room for the unit's rows when it was taken)
        m.d.comb += [
            y_queue.reserve.eq(go & meta.job.emit_y),
            s_queue.reserve.eq(go & meta.job.emit_state),
        ]
        with m.If(go):
            m.d.sync += row.eq(row + 1)
            with m.If(final_row):
                m.d.sync += [row.eq(0), held.eq(0)]
        # (one unit at a time: taken when nothing is staged or held and its rows fit)
        m.d.comb += self.units.ready.eq(~staged & ~held & y_queue.available & s_queue.available)

        k = Signal(range(max(2, LD)))
        m.d.comb += k.eq(meta.job.matrix - first)
        region = Mux(meta.job.parity, 2 * plan.state_group_words, plan.state_group_words)
        if plan.interleave > 1:  # sequence b's states at b * L*D*H of each region
            region = region + meta.job.sequence * plan.state_words
        target = Signal(hidden_announce_layout(plan))
        m.d.comb += [
            target.address.eq(meta.job.vector_base + index),
            target.final.eq(meta.job.final),
            target.state_address.eq(region + Array(j * H for j in range(LD))[k] + index),
        ]
        m.d.comb += [self.announce.valid.eq(go), self.announce.payload.eq(target)]

        # The row's value and where it goes, ``announce`` cycles later.
        row_value = Array(values)[row]
        row_flag = Array(flags)[row]
        late = self._announce
        w_valid = delay(m, go, late, "write_valid", control=True)
        w_target = data.View(
            hidden_announce_layout(plan), delay(m, target.as_value(), late, "write_target")
        )
        w_value = delay(m, row_value, late, "write_value")
        w_flag = delay(m, go & row_flag, late, "write_flag", control=True)
        outputs = {
            "y": go & meta.job.emit_y,
            "y_last": meta.job.y_last & (index == R - 1),
            "state": go & meta.job.emit_state,
            "state_last": (k == LD - 1) & (index == R - 1),
        }
        later = {
            name: delay(m, value, late, f"write_{name}", control=True)
            for name, value in outputs.items()
        }
        m.d.comb += [
            self.hidden_write.valid.eq(w_valid),
            self.hidden_write.payload.value.eq(w_value),
            *(self.hidden_write.payload[name].eq(w_target[name]) for name, _ in w_target.shape()),
            self.saturated.eq(w_flag),
            y_queue.push.valid.eq(later["y"]),
            y_queue.push.payload.data.eq(w_value),
            y_queue.push.payload.last.eq(later["y_last"]),
            s_queue.push.valid.eq(later["state"]),
            s_queue.push.payload.h.eq(w_value),
            s_queue.push.payload.last.eq(later["state_last"]),
        ]
        # In flight: announced rows not written yet.
        flight = Signal(range(late + GATES_PER_UNIT + 2))
        m.d.sync += flight.eq(flight + go - w_valid)
        m.d.comb += self.empty.eq(
            ~self.units.valid & ~staged & ~held & (flight == 0) & ~self.saturated
        )
        return m
