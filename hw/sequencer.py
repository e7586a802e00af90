"""Sequencer: input buffering, the job schedule, the (pass, column) walk and scoreboards.

The parts: :mod:`~lstm_fpga.hw.jobs` (descriptors), :mod:`~lstm_fpga.hw.streaming` and
:mod:`~lstm_fpga.hw.buffered` (the two schedules), :mod:`~lstm_fpga.hw.walk` (walk, issue,
scoreboards), :mod:`~lstm_fpga.hw.elements` (the memories the elements are read from) and
:mod:`~lstm_fpga.hw.output_reader`. This module wires them and keeps the per-sequence status.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .buffered import BufferedSchedule
from .cell import hidden_announce_layout, hidden_write_layout, output_layout
from .config import index_shape
from .elements import ElementStore
from .jobs import h0_write_layout, input_layout
from .mvu import beat_layout
from .output_reader import OutputReader
from .pipeline import delay
from .plan import STREAMING, EnginePlan
from .streaming import StreamingSchedule
from .walk import JobWalker, beat_meta_layout
from .wires import connect_members

__all__ = [
    "CYCLE_COUNTER_WIDTH",
    "MAX_SEQUENCES_IN_FLIGHT",
    "Sequencer",
    "h0_write_layout",
    "input_layout",
    "sequences_in_flight",
]

#: Width of the ``cycles`` counter.
CYCLE_COUNTER_WIDTH = 32
#: Sequences that may have started (first input beat) but not finished (last output beat).
MAX_SEQUENCES_IN_FLIGHT = 4


def sequences_in_flight(plan: EnginePlan) -> int:
    """Sequences that may be in flight: :data:`MAX_SEQUENCES_IN_FLIGHT`, or two interleaved
    groups (``2 B`` rounded up to a power of two: the cycle counter's ring indices wrap) when
    that is more (a group's sequences all start before the first finishes)."""
    groups = 1 << (2 * plan.interleave - 1).bit_length() if plan.interleave > 1 else 0
    return max(MAX_SEQUENCES_IN_FLIGHT, groups)


class Sequencer(wiring.Component):
    """Runs the model's jobs (matrix evaluations) on the matrix-vector unit.

    The job schedule depends on the plan (:mod:`lstm_fpga.hw.plan`): **streaming**
    (unidirectional, :class:`~lstm_fpga.hw.streaming.StreamingSchedule`) or **buffered**
    (bidirectional, :class:`~lstm_fpga.hw.buffered.BufferedSchedule`, with an
    :class:`~lstm_fpga.hw.output_reader.OutputReader` when there is no head).

    The :class:`~lstm_fpga.hw.walk.JobWalker` walks each job ``pass = 0 .. passes-1``,
    ``cycle = 0 .. span-1`` issuing one column per lane group per cycle: the weight-bank
    address, the bias address and, :attr:`COLUMN_LATENCY` cycles later, the ``column`` beat
    with the vector elements (from the ``x`` buffer, the vector memory or the state memory
    holding ``h0`` and the final states: :class:`~lstm_fpga.hw.elements.ElementStore`).

    Also counts ``cycles`` from a sequence's first accepted input beat to its last output beat
    (``sequence_done``); ``busy`` while a sequence is unfinished; ``overflow`` (sticky until
    ``clear_status``) when a buffered sequence exceeded ``max_seq_len`` (it is dropped), or,
    with weight reuse, when a group's sequences ended a step with different ``tlast`` (the
    group ends with its last sequence's).

    A sequence does not start (its first ``x`` beat waits) while ``load_offered`` (an
    ``init`` or weight beat offered in this cycle) or while a load is open or its writes are
    in flight, which ``load_open_next`` says one cycle ahead (the schedule registers it, so
    that ``x.ready`` is one LUT of registers and ``load_offered``).
    """

    #: Cycles from an issue (the weight and bias addresses, the element reads) to its
    #: ``column`` beat (:attr:`ElementStore.LATENCY <lstm_fpga.hw.elements.ElementStore.LATENCY>`).
    COLUMN_LATENCY = ElementStore.LATENCY
    #: Cycles before its ``hidden_write`` that a unit counts as announced inside the
    #: sequencer (:attr:`ElementStore.ANNOUNCE <lstm_fpga.hw.elements.ElementStore.ANNOUNCE>`): the
    #: scoreboards count it complete from then on, the element store forwards its value.
    ANNOUNCE = ElementStore.ANNOUNCE
    #: Cycles before its ``hidden_write`` that a unit comes on the ``announce`` port: one
    #: more than :attr:`ANNOUNCE`, because the sequencer registers the announcement once
    #: (beside the walker and the element store, away from the gate and cell pipeline that
    #: drives it) before anything reads it.
    ANNOUNCE_LEAD = ANNOUNCE + 1

    def __init__(self, plan: EnginePlan, copy_queue_depth: int = 16):
        self._plan = plan
        self._copy_queue_depth = copy_queue_depth
        ports = {
            "x": In(stream.Signature(input_layout(plan))),
            "weight_address": Out(index_shape(plan.bank_depth)),
            "bias_address": Out(index_shape(plan.bias_depth)),
            "column": Out(stream.Signature(beat_layout(plan), always_ready=True)),
            "drain_free": In(1),
            "loaded": In(1),
            "weights_ready": In(1, init=1),
            "weight_issue": Out(1),
            "hidden_write": In(stream.Signature(hidden_write_layout(plan), always_ready=True)),
            "announce": In(stream.Signature(hidden_announce_layout(plan), always_ready=True)),
            "h0_write": In(stream.Signature(h0_write_layout(plan), always_ready=True)),
            "copy": Out(stream.Signature(output_layout(plan.output_shape))),
            "carry_state": In(1),
            "read_state": In(1),
            "load_offered": In(1),
            "load_open_next": In(1),
            "sequence_done": In(1),
            "clear_status": In(1),
            "cycles": Out(CYCLE_COUNTER_WIDTH),
            "busy": Out(1),
            "started": Out(1),
            "overflow": Out(1),
            "outstanding": Out(1),
        }
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        m.submodules.walker = walker = JobWalker(plan)
        m.submodules.elements = elements = ElementStore(plan)
        streaming = plan.schedule == STREAMING
        schedule = StreamingSchedule(plan) if streaming else BufferedSchedule(plan)
        m.submodules.schedule = schedule

        # -- the walk --------------------------------------------------------------------------
        ports = wiring.flipped(self)  # seen from inside: the inputs drive, the outputs are driven
        # The walker's scoreboards count a unit complete when it is announced; the output
        # reader reads the memory through its own port and waits for the write itself, so
        # it counts the units announced but not written yet as outstanding too.
        completed = self.hidden_write.valid
        # The announcement, registered here: ``ANNOUNCE`` cycles before its ``hidden_write``
        # from now on (the cell announces ``ANNOUNCE_LEAD`` cycles ahead).
        announced = Signal()
        announced_target = Signal(hidden_announce_layout(plan), reset_less=True)
        m.d.sync += [
            announced.eq(self.announce.valid),
            announced_target.eq(self.announce.payload),
        ]
        landing = Signal(range(self.ANNOUNCE + 1))
        m.d.sync += landing.eq(landing + announced - completed)
        unwritten = Signal.like(walker.outstanding)
        m.d.comb += unwritten.eq(walker.outstanding + landing)
        connect_members(m, schedule, walker, "job", "next_job")
        if streaming:
            connect_members(m, schedule, walker, "x_beats")
        connect_members(m, ports, walker, "drain_free", "loaded", "weights_ready")
        if plan.weight_reuse:
            # A weight word (and a step of the walk) per column, not per issue: the walker
            # issues each column B times, once per sequence of the group.
            m.d.comb += [self.weight_issue.eq(walker.advance), schedule.issue.eq(walker.advance)]
            connect_members(m, walker, schedule, "job_start", "job_end")
        else:
            m.d.comb += self.weight_issue.eq(walker.issue)
            connect_members(m, walker, schedule, "issue", "job_start", "job_end")
        connect_members(m, walker, ports, "weight_address", "bias_address")
        # (weight reuse: the scoreboards count the group's last sequence's units only; a
        # unit of it is complete after the same unit of every other sequence of the group)
        completed_unit = announced
        if plan.weight_reuse:
            completed_unit = completed_unit & announced_target.counted
        m.d.comb += [
            walker.completed.eq(completed_unit),
            self.outstanding.eq(unwritten != 0),
        ]

        # -- elements: COLUMN_LATENCY cycles after the walker's reads, with the beat ---------
        wiring.connect(m, wiring.flipped(self.hidden_write), elements.hidden_write)
        m.d.comb += [
            elements.announce.valid.eq(announced),
            elements.announce.payload.eq(announced_target),
        ]
        wiring.connect(m, wiring.flipped(self.h0_write), elements.h0_write)
        connect_members(m, walker, elements, "reads")
        connect_members(m, schedule, elements, "x_write")
        beat = data.View(
            beat_meta_layout(plan), delay(m, walker.beat.as_value(), self.COLUMN_LATENCY, "beat")
        )
        issued = delay(m, walker.beat.valid, self.COLUMN_LATENCY, "issued", control=True)
        column = self.column.payload
        m.d.comb += self.column.valid.eq(issued)
        connect_members(m, elements, column, "elements")
        connect_members(m, beat, column, "segments", "first", "last", "final_pass", "job")

        # -- input and sequence bookkeeping ------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.x), schedule.x)
        limit = sequences_in_flight(plan)
        in_flight = Signal(range(limit + 1))
        connect_members(m, ports, schedule, "carry_state", "read_state")
        connect_members(m, schedule, ports, "started")
        # A sequence may start with room in flight (interleaved: asked at a group's start,
        # with room for its B sequences) and no load offered (``load_offered``, this cycle)
        # or open (``load_open_next``, given a cycle ahead). The schedule registers
        # ``may_start_next``: the room after this cycle's admission and last output beat.
        threshold = limit if plan.interleave == 1 else limit - plan.interleave + 1
        admitted, done = schedule.admitted, self.sequence_done
        room_next = Mux(
            admitted & ~done,
            in_flight < threshold - 1,
            Mux(done & ~admitted, in_flight < threshold + 1, in_flight < threshold),
        )
        m.d.comb += [
            schedule.may_start_next.eq(room_next & ~self.load_open_next),
            schedule.hold.eq(self.load_offered),
        ]
        self._cycle_counter(m, schedule, in_flight, limit)
        output_busy = Signal()
        m.d.comb += self.busy.eq((in_flight != 0) | schedule.open | (unwritten != 0) | output_busy)

        if not streaming:
            with m.If(self.clear_status):
                m.d.sync += self.overflow.eq(0)
            with m.If(schedule.dropped):
                m.d.sync += self.overflow.eq(1)
        elif plan.weight_reuse:
            # (a group whose sequences' tlast disagree: sticky until clear_status)
            with m.If(self.clear_status):
                m.d.sync += self.overflow.eq(0)
            with m.If(schedule.mismatch):
                m.d.sync += self.overflow.eq(1)
        if plan.copies_outputs:
            m.submodules.output_reader = reader = OutputReader(plan, self._copy_queue_depth)
            wiring.connect(m, schedule.output, reader.start)
            wiring.connect(m, reader.copy, wiring.flipped(self.copy))
            m.d.comb += [
                reader.outstanding.eq(unwritten),
                reader.completed.eq(completed),
                elements.output_address.eq(reader.address),
                reader.data.eq(elements.output_data),
                schedule.reader_busy.eq(reader.busy),
                schedule.reader_parity.eq(reader.parity),
                output_busy.eq(reader.busy),
            ]
        return m

    def _cycle_counter(self, m, schedule, in_flight, limit):
        """``cycles``: from a sequence's first beat to its last output beat, for up to
        ``limit`` (:func:`sequences_in_flight`) sequences in flight."""
        seq_in = Signal(range(limit))
        seq_out = Signal(range(limit))
        now = Signal(CYCLE_COUNTER_WIDTH)
        starts = Array([Signal(CYCLE_COUNTER_WIDTH, name=f"start{k}") for k in range(limit)])
        m.d.sync += now.eq(now + 1)
        # A sequence is admitted with its first beat (streaming) or once it is stored whole
        # (buffered): the time of its first beat is noted then, unless that beat is this one
        # (a one-beat sequence).
        first_beat_time = Signal(CYCLE_COUNTER_WIDTH)
        with m.If(schedule.started):
            m.d.sync += first_beat_time.eq(now)
        start_time = Mux(schedule.started, now, first_beat_time)
        with m.If(schedule.admitted):
            m.d.sync += [starts[seq_in].eq(start_time), seq_in.eq(seq_in + 1)]
        m.d.sync += in_flight.eq(in_flight + schedule.admitted - self.sequence_done)
        # ``oldest`` is ``starts[seq_out]`` kept in a register, so that ``cycles`` is one
        # subtraction of two registers: the choice by ``seq_out`` and the 32-bit carry chain
        # in one cycle, with the route from ``seq_out``, were the critical path at I=H=64
        # P=64 (118.6 MHz). ``sequence_done`` (the output handshake, late) only selects
        # between the two entries a handshake may leave as the oldest, both registers.
        # ``oldest`` is a cycle late after an admission writes that entry, harmlessly: the
        # sequence just admitted cannot finish in the next cycle (its outputs are a
        # pipeline's length away), and the next cycle's ``oldest`` reads the written entry.
        # (Each of this cycle's admission and ``sequence_done`` choosing the entry itself
        # limited one seed: 115.4 and 103.4 MHz.)
        oldest = Signal(CYCLE_COUNTER_WIDTH)
        following = Signal.like(seq_out)
        m.d.comb += following.eq(seq_out + 1)
        m.d.sync += oldest.eq(Mux(self.sequence_done, starts[following], starts[seq_out]))
        with m.If(self.sequence_done):
            m.d.sync += [self.cycles.eq(now - oldest), seq_out.eq(following)]
