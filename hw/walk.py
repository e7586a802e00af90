"""The job walker: issues a job's columns pass by pass, under the scoreboards."""

from __future__ import annotations

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import index_shape
from .jobs import JobKind, Source, address_shape, descriptor_layout, outstanding_limit
from .mvu import job_layout
from .pipeline import kept_delay
from .plan import EnginePlan

__all__ = ["JobWalker", "beat_meta_layout", "read_layout"]


def read_layout(plan: EnginePlan) -> data.StructLayout:
    """One lane group's element read: ``address`` in the vector or state memory,
    ``x_address`` in the ``x`` banks and ``x_bank`` (which of the ``input_elements`` banks),
    ``source`` and ``beyond`` (past the matrix's last column: the element is 0)."""
    k_bits = plan.input_elements.bit_length() - 1
    return data.StructLayout(
        {
            "address": address_shape(plan),
            "x_address": address_shape(plan),
            "x_bank": unsigned(max(1, k_bits)),
            "source": Source,
            "beyond": unsigned(1),
        }
    )


def beat_meta_layout(plan: EnginePlan) -> data.StructLayout:
    """A column beat without its elements (see :func:`~lstm_fpga.hw.mvu.beat_layout`)."""
    return data.StructLayout(
        {
            "valid": unsigned(1),
            "segments": unsigned(plan.groups),
            "first": unsigned(1),
            "last": unsigned(1),
            "final_pass": unsigned(1),
            "job": job_layout(plan),
        }
    )


def _mask(width: int, test) -> int:
    """The bits ``g < width`` for which ``test(g)`` holds."""
    return sum(1 << g for g in range(width) if test(g))


def _step_beats(plan: EnginePlan) -> int:
    """Input beats of one step of the schedule: ``x_beats_per_step``, or with
    :attr:`~lstm_fpga.hw.plan.EnginePlan.weight_reuse` a group step (``B`` of them)."""
    return plan.x_slot_beats if plan.weight_reuse else plan.x_beats_per_step


def _loaded(shape, name):
    """A register loaded with every job before it is used: no reset needed."""
    return Signal(shape, name=name, reset_less=True)


# The job's fields the walk holds in registers from the cycle it takes the job on.
_JOB_FIELDS = (
    "a_source",
    "b_source",
    "a_x",
    "a_lag",
    "passes_last",
    "single_cycle",
    "columns_last",
    "a_length",
    "a_last",
    "first_top",
    "first_b_top",
    "b_last",
    "two_cycles",
    "three_cycles",
    "span_less_4",
    "second_top",
    "second_b_top",
    "a_base",
)


def _staged_fields(plan: EnginePlan, source: data.View, index, room_shape) -> dict:
    """What the walker registers for the job ``source`` a cycle before it takes it: name ->
    (shape, value), the job's own fields and its matrix's constants as seen by the walk
    (column counts and last indices, first-cycle top columns and scoreboard slacks, per-group
    segment masks, bank bases)."""
    G = plan.groups
    k_bits = plan.input_elements.bit_length() - 1
    matrices = plan.matrices
    max_span = max(mp.span for mp in matrices)
    max_passes = max(mp.passes for mp in matrices)

    def per_matrix(value):
        return Array([value(mp) for mp in matrices])[source.matrix]

    def first_top_of(mp):  # the highest column of a pass's first cycle
        return min(G, mp.columns) - 1

    projection = {}
    if plan.projected:  # an LSTMP's projection job (an LSTM job of R units)
        projection = {"proj": (1, source.matrix >= plan.projection_index(0))}
    return {
        **projection,
        "lstm": (1, source.kind == JobKind.LSTM),
        "a_source": (Source, source.a_source),
        "b_source": (Source, source.b_source),
        "a_x": (1, source.a_x),
        "a_lag": (1, source.a_lag),
        "passes_last": (index_shape(max_passes), per_matrix(lambda mp: mp.passes - 1)),
        "single_cycle": (1, per_matrix(lambda mp: int(mp.span == 1))),
        "single_pass": (1, per_matrix(lambda mp: int(mp.passes == 1))),
        "columns_last": (index, per_matrix(lambda mp: mp.columns - 1)),
        "a_length": (index, per_matrix(lambda mp: mp.segments[0].length)),
        "a_last": (index, per_matrix(lambda mp: mp.segments[0].length - 1)),
        "first_top": (index, per_matrix(first_top_of)),
        "first_b_top": (
            index,
            per_matrix(lambda mp: first_top_of(mp) - mp.segments[0].length),
        ),
        "first_top_a": (
            index,
            per_matrix(lambda mp: min(first_top_of(mp), mp.segments[0].length - 1)),
        ),
        # (the same as an element count beyond the step of an ending layer-0 job)
        "first_top_after": (
            signed(index.width + 1),
            per_matrix(
                lambda mp: (
                    min(first_top_of(mp), mp.segments[0].length - 1) + (_step_beats(plan) << k_bits)
                )
            ),
        ),
        "b_last": (index, per_matrix(lambda mp: mp.columns - 1 - mp.segments[0].length)),
        # The top columns after an advance from a pass's first cycle (its second cycle's, or
        # the next pass's first with one cycle per pass).
        "second_top": (index, per_matrix(lambda mp: _second_top(G, mp, 0))),
        "second_b_top": (index, per_matrix(lambda mp: _second_top(G, mp, mp.segments[0].length))),
        "two_cycles": (1, per_matrix(lambda mp: int(mp.span == 2))),
        "three_cycles": (1, per_matrix(lambda mp: int(mp.span == 3))),
        # (``cycle == span - 4``: the cycle after this one is two before the pass's last)
        "span_less_4": (
            signed(index_shape(max_span).width + 1),
            per_matrix(lambda mp: mp.span - 4),
        ),
        # Per group: a pass's first column is in segment a / beyond the last column.
        "in_a": (G, per_matrix(lambda mp: _mask(G, lambda g: g < mp.segments[0].length))),
        "beyond": (G, per_matrix(lambda mp: _mask(G, lambda g: g > mp.columns - 1))),
        "a_base": (address_shape(plan), source.a_base),
        "b_base": (address_shape(plan), source.b_base),
        "weight_base": (index_shape(plan.bank_depth), per_matrix(lambda mp: mp.weight_base)),
        "bias_base": (index_shape(plan.bias_depth), per_matrix(lambda mp: mp.bias_base)),
        "a_distance": (room_shape, source.a_distance),
        "b_distance": (room_shape, source.b_distance),
    }


def _second_top(G: int, mp, base: int) -> int:
    """The highest column (less ``base``) of the cycle after a pass's first one: the next
    pass's first (one cycle per pass), else the second cycle's, capped at the last column."""
    first = min(G, mp.columns) - 1 - base
    if mp.span == 1:
        return first
    return mp.columns - 1 - base if mp.span == 2 else first + G


def _slacks(plan: EnginePlan, source: data.View, room_shape) -> dict:
    """Segment -> ``distance - 1 -`` the highest column of the segment in the first cycle of
    the job ``source``: its scoreboard allows that cycle when ``lag`` (units of earlier jobs
    not completed yet) is at most this."""
    G = plan.groups

    def per_matrix(value):
        return Array([value(mp) for mp in plan.matrices])[source.matrix]

    def first_top_of(mp):
        return min(G, mp.columns) - 1

    slacks = {
        "a": source.a_distance
        - 1
        - per_matrix(lambda mp: min(first_top_of(mp), mp.segments[0].length - 1)),
        "b": source.b_distance
        - 1
        - per_matrix(lambda mp: first_top_of(mp) - mp.segments[0].length),
    }
    return {name: Value.cast(value).as_signed() for name, value in slacks.items()}


class JobWalker(wiring.Component):
    """Walks the offered job: ``pass = 0 .. passes-1``, ``cycle = 0 .. span-1``, one column
    per lane group per cycle, while the scoreboards allow it.

    Scoreboards (judged on the highest column read this cycle, so each segment is checked up
    to its highest column so far): an ``x`` column waits until its beat has arrived
    (``x_beats``); a vector column waits until ``lag + index < distance``, where ``lag`` is
    the count of units of earlier jobs not completed yet (the pipeline completes units in
    order, so it tells which producers are done). A pass's last column waits until the drain
    is free and the previous pass has landed in it.

    The next job is taken in the cycle of the current job's last issue (from ``next_job``,
    the job the schedule offers once ``job_end`` has moved it on), so the walk goes on
    without an idle cycle between jobs; an idle walker takes ``job`` (one load cycle).

    Ports
    -----
    job : In, :func:`~lstm_fpga.hw.jobs.descriptor_layout`
        The job to walk (held until ``job_end``; its ``job`` fields ride along with the beats).
    next_job : In, :func:`~lstm_fpga.hw.jobs.descriptor_layout`
        The job the schedule offers after ``job_end`` (``valid`` 0: not known yet).
    x_beats : In
        Input beats buffered for the oldest step not yet consumed (streaming schedule).
    completed : In(1)
        A unit is complete: reads issued from the next cycle on return its ``h`` (the gate
        and cell pipeline's announcement, :attr:`ElementStore.ANNOUNCE
        <lstm_fpga.hw.elements.ElementStore.ANNOUNCE>` cycles before its ``hidden_write``; the
        element store forwards the value until it is in the memory). With weight reuse only
        the group's last sequence's units count (``H`` per group job): unit ``u`` of it
        completes after unit ``u`` of every other sequence, with one pass per matrix or
        several.
    drain_free, loaded : In(1)
        From the matrix-vector unit (see its protocol).
    weights_ready : In(1), default 1
        The weight word of the next column is available (external weights: the prefetch
        FIFO holds a word); while 0 nothing issues (the walk stalls, nothing is lost).
    issue, job_start, job_end : Out(1)
        A column is issued this cycle; the walk is at the job's first column; the job's last
        column is issued this cycle.
    advance : Out(1), weight reuse only
        (:attr:`EnginePlan.weight_reuse <lstm_fpga.hw.plan.EnginePlan.weight_reuse>`: a job
        is a group job of the ``B`` sequences of a step) each column is issued ``B`` times
        in a row, ``beat.job.sequence = 0 .. B-1``, the reads offset to that sequence's
        words; ``advance`` marks the last of them: the weight word is taken and the walk
        moves on. The scoreboards check a column once, for the last sequence (its ``x_t``
        is the group step's last; its units leave the drain last); a pass's first ``last``
        issue needs the drain free and the previous pass loaded, the other ``B - 1`` follow.
    outstanding : Out
        Units of started layer-direction jobs not completed yet.
    weight_address, bias_address : Out
        Weight-bank and bias-bank words of this cycle's column.
    reads : Out, array of :func:`read_layout` per lane group
        This cycle's element reads (their data arrive one cycle later).
    beat : Out, :func:`beat_meta_layout`
        The column beat to send one cycle later (``valid``: a column is issued).

    Latency: ``issue`` is combinational from registers (the job's registered thresholds and
    pointers, ``x_beats``, ``drain_free``); a job's first column issues the cycle after it
    is taken.
    """

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        self._limit = outstanding_limit(plan)
        B = _step_beats(plan)
        # With weight reuse: ``advance`` (a column's last issue, of sequence B - 1).
        reuse = {"advance": Out(1)} if plan.weight_reuse else {}
        super().__init__(
            {
                **reuse,
                "job": In(descriptor_layout(plan)),
                "next_job": In(descriptor_layout(plan)),
                "x_beats": In(range(2 * B + 1)),
                "completed": In(1),
                "drain_free": In(1),
                "loaded": In(1),
                "weights_ready": In(1, init=1),
                "issue": Out(1),
                "job_start": Out(1),
                "job_end": Out(1),
                "outstanding": Out(range(self._limit)),
                "weight_address": Out(index_shape(plan.bank_depth)),
                "bias_address": Out(index_shape(plan.bias_depth)),
                "reads": Out(data.ArrayLayout(read_layout(plan), plan.groups)),
                "beat": Out(beat_meta_layout(plan)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        G = plan.groups
        k_bits = plan.input_elements.bit_length() - 1
        H = plan.hidden_size
        matrices = plan.matrices
        max_columns = max(mp.columns for mp in matrices)
        max_span = max(mp.span for mp in matrices)
        max_passes = max(mp.passes for mp in matrices)
        address_bits = address_shape(plan).width
        # Column indices, also relative to the second segment (negative in the first).
        index = signed((max_span * G).bit_length() + 1)
        room_shape = signed((outstanding_limit(plan) + 2 * max_columns).bit_length() + 2)

        # -- the staged job -----------------------------------------------------------------------
        # The job to take next, registered a cycle ahead with everything derived from its
        # matrix: the schedule's ``next_job`` while a job is walked (taken with its last
        # issue), ``job`` while the walker is idle (taken the cycle after). A staged job is
        # stale once a job is taken (the schedule moves on), so it is dropped then.
        current = Signal()
        load = Signal()
        job_end = self.job_end
        source = data.View(descriptor_layout(plan), Signal(descriptor_layout(plan).size))
        m.d.comb += source.eq(Mux(current, self.next_job.as_value(), self.job.as_value()))

        derived = _staged_fields(plan, source, index, room_shape)
        staged = {name: _loaded(shape, f"staged_{name}") for name, (shape, _) in derived.items()}
        staged_valid = Signal()
        m.d.sync += [staged[name].eq(value) for name, (_, value) in derived.items()]

        # -- the job: registered when taken ------------------------------------------------------
        # Everything the issue decision and the read addresses depend on is a register from
        # here on: the matrix's constants, the bases and the scoreboards' flags.
        job = {name: _loaded(staged[name].shape(), name) for name in _JOB_FIELDS}
        b_base_rel = _loaded(signed(address_bits + 2), "b_base_rel")  # b_base - a_length
        a_x, a_lag = job["a_x"], job["a_lag"]
        passes_last = job["passes_last"]
        columns_last, a_last = job["columns_last"], job["a_last"]
        first_top, first_b_top = job["first_top"], job["first_b_top"]
        a_base = job["a_base"]

        # -- walk state -------------------------------------------------------------------------
        cycle = Signal(index_shape(max_span))
        column = Signal(index_shape(max_span * G))  # the column of group 0 this cycle
        pass_index = Signal(index_shape(max_passes))
        load_pending = Signal()
        # The highest column read this cycle (it decides the scoreboards: each segment is
        # checked up to its highest column so far) and the same relative to segment b.
        top = _loaded(index, "top")
        b_top = _loaded(index, "b_top")
        a_pointer = _loaded(unsigned(address_bits + 1), "a_pointer")  # a_base + column
        b_pointer = _loaded(signed(address_bits + 2), "b_pointer")  # b_base_rel + column
        weight_address = self.weight_address
        bias_address = self.bias_address
        # Registered: ``cycle == span_last`` and ``pass_index == passes_last``.
        is_last_cycle = Signal()
        is_last_pass = Signal()
        final = Signal()  # registered: is_last_cycle & is_last_pass (the job's last cycle)

        # -- scoreboards --------------------------------------------------------------------------
        # ``room = distance - lag``: a vector column ``index`` may be read while ``index <
        # room``; ``lag`` (units of earlier jobs not completed yet) is taken when the job is
        # loaded and falls with every completion (the pipeline completes units in order). An
        # ``x`` column ``index`` may be read while ``index < x_beats * input_elements``. Each
        # cycle's verdicts for the two segments (``a_ok``, ``b_ok``) are registers, compared
        # the cycle before for both outcomes of that cycle's issue (the next top column with
        # and without an advance), so that ``issue`` is a few gates from registers.
        room_a = _loaded(room_shape, "room_a")
        room_b = _loaded(room_shape, "room_b")
        penultimate = Signal()  # registered: ``cycle + 1 == span_last``
        antepenultimate = Signal()  # registered: ``cycle + 2 == span_last``
        outstanding = self.outstanding
        completed = self.completed
        # ``issue`` and ``load`` select the next state of most of the walker's registers, so
        # each is a LUT or two from registers: ``idle_ready`` / ``final_ready`` hold the terms
        # of a load without an issue (``staged_valid & ~current``) and with the job's last
        # issue (``staged_valid & final & ~load_pending``), registered from next-state values.
        a_ok = Signal()
        b_ok = Signal()
        idle_ready = Signal()
        final_ready = Signal()
        drain_free = self.drain_free
        weights_ready = self.weights_ready
        issue = self.issue

        def go(term):
            # ``term`` in a cycle that may go: its columns may be read (both segments' verdicts)
            # and its weights are there; every issue, job end and load with an issue needs it.
            return term & a_ok & b_ok & weights_ready

        # ``pass_index == 0 and cycle == 0`` as a register, from the counters' updates (a load
        # clears both; an advance clears both exactly at a job's last cycle): the compares
        # ahead of the schedule's step registers were 2.56 ns of route and 4 LUTs at I=H=64
        # P=64 (115.7 MHz on one seed).
        at_start = Signal(init=1)

        reuse = plan.weight_reuse
        if reuse:
            # Weight reuse: each column is issued B times in a row, for sequences ``rep = 0
            # .. B-1`` (the weight word is held, the elements are sequence ``rep``'s); the
            # walk advances with the last of them (``advance``). A pass's B ``last`` beats go
            # back to back: the drain (B banks) must be free for the first of them only.
            Bi = plan.interleave
            rep = Signal(index_shape(Bi))
            rep_first, rep_last = rep == 0, rep == Bi - 1
            advance = self.advance
            m.d.comb += [
                issue.eq(go(current) & ~(is_last_cycle & rep_first & (load_pending | ~drain_free))),
                advance.eq(issue & rep_last),
                job_end.eq(go(current & final & rep_last)),
                load.eq(idle_ready | go(final_ready & rep_last)),
                self.job_start.eq(at_start),
            ]
            with m.If(issue):
                m.d.sync += rep.eq(Mux(rep_last, 0, rep + 1))
        else:
            m.d.comb += [
                issue.eq(go(current) & ~(is_last_cycle & (load_pending | ~drain_free))),
                job_end.eq(go(current & final) & drain_free & ~load_pending),
                load.eq(idle_ready | (go(final_ready) & drain_free)),
                self.job_start.eq(at_start),
            ]
            rep = None
            advance = issue
        # Next-state values of the registers the ready terms are made of (the defaults hold).
        current_next = Signal()
        final_next = Signal()
        pending_next = Signal()
        staged_next = Signal()
        last_cycle_next = Signal()
        a_ok_next = Signal()
        b_ok_next = Signal()
        m.d.comb += [
            current_next.eq(current),
            final_next.eq(final),
            pending_next.eq(load_pending),
            staged_next.eq(source.valid & ~load),
            last_cycle_next.eq(is_last_cycle),
        ]
        idle_next = staged_next & ~current_next
        final_ready_next = staged_next & final_next & ~pending_next
        m.d.sync += [
            current.eq(current_next),
            final.eq(final_next),
            load_pending.eq(pending_next),
            staged_valid.eq(staged_next),
            idle_ready.eq(idle_next),
            final_ready.eq(final_ready_next),
            is_last_cycle.eq(last_cycle_next),
            a_ok.eq(a_ok_next),
            b_ok.eq(b_ok_next),
        ]

        # The verdicts' own copies of the registers ``issue`` and ``load`` are made of: the
        # verdicts' next values depend on this cycle's advance and load, and the originals
        # drive the whole walk (pointers, addresses, masks, the beat, the schedule), so
        # these copies (kept apart from the originals by synthesis) keep that loop among the
        # walker's own registers. Same values as the originals in every cycle.
        def decisions(suffix):
            # ``(advance, load, current, is_last_cycle)`` of this cycle from copies (named
            # ``suffix``) of the registers they are made of: the same values as the originals.
            def copy(value, name):
                return kept_delay(m, platform, value, 1, f"{name}{suffix}", control=True)

            a_ok_c, b_ok_c = copy(a_ok_next, "a_ok"), copy(b_ok_next, "b_ok")
            current_c, last_cycle_c = copy(current_next, "current"), copy(last_cycle_next, "last")
            pending_c, idle_c = copy(pending_next, "pending"), copy(idle_next, "idle_ready")
            final_ready_c = copy(final_ready_next, "final_ready")

            def go_c(term):
                return term & a_ok_c & b_ok_c & weights_ready

            if reuse:
                rep_c = copy(Mux(issue, Mux(rep_last, 0, rep + 1), rep), "rep")
                rep_first_c, rep_last_c = rep_c == 0, rep_c == Bi - 1
                issue_c = go_c(current_c) & ~(
                    last_cycle_c & rep_first_c & (pending_c | ~drain_free)
                )
                load_c = idle_c | go_c(final_ready_c & rep_last_c)
                return issue_c & rep_last_c, load_c, current_c, last_cycle_c
            advance_c = go_c(current_c) & ~(last_cycle_c & (pending_c | ~drain_free))
            load_c = idle_c | (go_c(final_ready_c) & drain_free)
            return advance_c, load_c, current_c, last_cycle_c

        advance_v, load_v, current_v, last_cycle_v = decisions("_v")
        # The weight address's own (``_w``): it sits by the weight banks, which it drives,
        # and the walk's enables reached it over a 3.82 ns route at I=H=64 P=64 (114.9 MHz).
        advance_w, load_w, _, _ = decisions("_w")

        lstm_load = load & staged["lstm"]
        # (both sums from registers, the load only selects; with weight reuse ``completed``
        # counts the group's last sequence's units only: H per group job too)
        if plan.projected:
            # An LSTMP's projection job completes R units (h_t), its gate job H (m_t).
            units = Mux(staged["proj"], plan.proj_size, H)
            m.d.sync += outstanding.eq(
                Mux(lstm_load, outstanding + units - completed, outstanding - completed)
            )
        else:
            m.d.sync += outstanding.eq(
                Mux(lstm_load, outstanding + H - completed, outstanding - completed)
            )
        with m.If(self.loaded):
            m.d.comb += pending_next.eq(0)
        with m.If(advance & is_last_cycle):
            m.d.comb += pending_next.eq(1)

        # The top columns after an issue (a pass's last cycle is capped at its last column),
        # from registers through multiplexers only (``top + G`` is a register too).
        index_g = signed(index.width + 1)
        top_g = _loaded(index_g, "top_g")
        b_top_g = _loaded(index_g, "b_top_g")
        plus_g = {
            name: _loaded(index_g, f"{name}_g")
            for name in ("first_top", "first_b_top", "columns_last", "b_last")
        }
        top_advanced = Mux(last_cycle_v, first_top, Mux(penultimate, columns_last, top_g))
        top_advanced_g = Mux(
            last_cycle_v,
            plus_g["first_top"],
            Mux(penultimate, plus_g["columns_last"], top_g + G),
        )
        b_top_advanced = Mux(last_cycle_v, first_b_top, Mux(penultimate, job["b_last"], b_top_g))
        b_top_advanced_g = Mux(
            last_cycle_v, plus_g["first_b_top"], Mux(penultimate, plus_g["b_last"], b_top_g + G)
        )
        next_room_a = room_a + completed
        next_room_b = room_b + completed
        # (``x_beats`` of this cycle: a beat accepted now counts a cycle later; the count only
        # falls when a layer-0 job ends, and then the next job is loaded, below.)
        x_elements = self.x_beats << k_bits
        if reuse:  # checked for the group's last sequence, whose x_t is the slot's last
            x_elements = x_elements - ((Bi - 1) * plan.x_beats_per_step << k_bits)

        def below(value, limit, plus_one):
            # value < limit + plus_one as one subtraction's sign: 2 value - (2 limit +
            # plus_one) < 0, ``plus_one`` in the low bit where a carry chain's carry-in
            # takes it (no add before the compare, no select after it)
            difference = Cat(C(0, 1), value).as_signed() - Cat(plus_one, limit).as_signed()
            return difference[-1]

        def a_verdict(top):  # segment a may be read up to ``top``
            in_x = (top < x_elements) | (a_last < x_elements)
            in_room = below(top, room_a, completed) | below(a_last, room_a, completed)
            return Mux(a_x, in_x, ~a_lag | in_room)

        def b_verdict(b_top):  # b_top < 0: the cycle reads no segment-b column
            return b_top[-1] | below(b_top, room_b, completed)

        # ``ahead``, ``b_ahead``: registers, the top columns after an advance in this cycle
        # (``top_advanced``, ``b_top_advanced``), so each verdict compares two registers with
        # ``room`` and the advance selects: no select between the registers and a compare.
        # Kept with the verdicts' copies of the advance and the load (as ``top``, ``top_g``).
        ahead = _loaded(index, "ahead")
        b_ahead = _loaded(index, "b_ahead")
        # (the load's verdicts below take precedence)
        m.d.comb += [
            a_ok_next.eq(Mux(advance_v, a_verdict(ahead), a_verdict(top))),
            b_ok_next.eq(Mux(advance_v, b_verdict(b_ahead), b_verdict(b_top))),
        ]
        # ``ahead`` after an advance: from a pass's last cycle the next pass's second top;
        # from its penultimate the first top (the next cycle is the last); from the cycle
        # before the penultimate (``antepenultimate``, a register: no add and compare of
        # ``cycle`` in front of these selects) the last column; else one ``G`` further on.
        further = antepenultimate
        with m.If(advance_v):
            m.d.sync += [
                top.eq(top_advanced),
                top_g.eq(top_advanced_g),
                b_top.eq(b_top_advanced),
                b_top_g.eq(b_top_advanced_g),
            ]
            with m.If(last_cycle_v):
                m.d.sync += [ahead.eq(job["second_top"]), b_ahead.eq(job["second_b_top"])]
            with m.Elif(penultimate):
                m.d.sync += [ahead.eq(first_top), b_ahead.eq(first_b_top)]
            with m.Else():
                m.d.sync += [
                    ahead.eq(Mux(further, columns_last, top_g + G)),
                    b_ahead.eq(Mux(further, job["b_last"], b_top_g + G)),
                ]
        m.d.sync += [room_a.eq(next_room_a), room_b.eq(next_room_b)]

        # (the weight address by its own copies of the decisions, the load's winning)
        with m.If(load_w):
            m.d.sync += weight_address.eq(staged["weight_base"])
        with m.Elif(advance_w):
            m.d.sync += weight_address.eq(weight_address + 1)
        with m.If(advance):
            m.d.sync += at_start.eq(is_last_cycle & is_last_pass)
            with m.If(is_last_cycle):
                m.d.sync += [
                    cycle.eq(0),
                    column.eq(0),
                    penultimate.eq(job["two_cycles"]),
                    antepenultimate.eq(job["three_cycles"]),
                    a_pointer.eq(a_base),
                    b_pointer.eq(b_base_rel),
                ]
                m.d.comb += last_cycle_next.eq(job["single_cycle"])
                with m.If(is_last_pass):
                    m.d.comb += current_next.eq(0)
                    m.d.sync += pass_index.eq(0)
                with m.Else():
                    next_last_pass = pass_index + 1 == passes_last
                    m.d.comb += final_next.eq(job["single_cycle"] & next_last_pass)
                    m.d.sync += [
                        pass_index.eq(pass_index + 1),
                        is_last_pass.eq(next_last_pass),
                        bias_address.eq(bias_address + 1),
                    ]
            with m.Else():
                m.d.comb += [
                    final_next.eq(penultimate & is_last_pass),
                    last_cycle_next.eq(penultimate),
                ]
                m.d.sync += [
                    cycle.eq(cycle + 1),
                    column.eq(column + G),
                    penultimate.eq(antepenultimate),
                    antepenultimate.eq(cycle == job["span_less_4"]),
                    a_pointer.eq(a_pointer + G),
                    b_pointer.eq(b_pointer + G),
                ]
        # A load (also in the cycle of the previous job's last issue) comes after the issue's
        # updates so that it wins.
        lag = Signal(room_shape)  # at the load: units of earlier jobs not completed yet
        m.d.comb += lag.eq(outstanding - completed)

        # The load's verdicts for lagging segments, ``lag <= slack``, compared the cycle
        # before: a load never follows a load (it drops the staged job), so ``outstanding``
        # of a load's cycle is the one before less that cycle's completion (``completed``
        # before, ``completed_before``), and ``lag`` that less this cycle's. ``fits[segment]``
        # holds ``outstanding <= slack + k`` for ``k = 0, 1, 2`` (with the staged job's slack,
        # from the same source as the staged registers), so the verdict is one of its bits,
        # chosen by the two completions: no compare sits after a register of this cycle.
        completed_before = Signal()
        m.d.sync += completed_before.eq(completed)
        fits = {}
        for segment, slack in _slacks(plan, source, room_shape).items():
            fits[segment] = Signal(3, name=f"fits_{segment}")
            m.d.sync += fits[segment].eq(Cat(outstanding <= slack + k for k in range(3)))

        def within(segment):  # lag <= the segment's slack
            fit = fits[segment]
            return Mux(
                completed_before, Mux(completed, fit[2], fit[1]), Mux(completed, fit[1], fit[0])
            )

        with m.If(load):
            m.d.sync += at_start.eq(1)
            m.d.sync += [job[name].eq(staged[name]) for name in job]
            m.d.sync += [plus_g[name].eq(staged[name] + G) for name in plus_g]
            m.d.comb += [
                current_next.eq(1),
                final_next.eq(staged["single_cycle"] & staged["single_pass"]),
                last_cycle_next.eq(staged["single_cycle"]),
            ]
            m.d.sync += [
                penultimate.eq(staged["two_cycles"]),
                antepenultimate.eq(staged["three_cycles"]),
                is_last_pass.eq(staged["single_pass"]),
                a_pointer.eq(staged["a_base"]),
                b_base_rel.eq(staged["b_base"] - staged["a_length"]),
                b_pointer.eq(staged["b_base"] - staged["a_length"]),
                bias_address.eq(staged["bias_base"]),
                cycle.eq(0),
                column.eq(0),
                pass_index.eq(0),
                room_a.eq(staged["a_distance"] - lag),
                room_b.eq(staged["b_distance"] - lag),
            ]
        # The load's verdicts (with the verdicts' copies of the load and ``current``):
        # ``top < room`` (or the segment's last column < room: min(top, a_last) is in segment
        # a's slack) of the job's first cycle; an ``x`` segment has the beats of the job's
        # step (an ending layer-0 job's step leaves the ring).
        with m.If(load_v):
            m.d.sync += [
                top.eq(staged["first_top"]),
                b_top.eq(staged["first_b_top"]),
                top_g.eq(staged["first_top"] + G),
                b_top_g.eq(staged["first_b_top"] + G),
                ahead.eq(staged["second_top"]),
                b_ahead.eq(staged["second_b_top"]),
            ]
            m.d.comb += [
                b_ok_next.eq(staged["first_b_top"][-1] | within("b")),
                a_ok_next.eq(
                    Mux(
                        staged["a_x"],
                        Mux(
                            current_v & a_x,
                            staged["first_top_after"] < x_elements,
                            staged["first_top_a"] < x_elements,
                        ),
                        ~staged["a_lag"] | within("a"),
                    )
                ),
            ]

        walk = (column, cycle, is_last_cycle, is_last_pass, a_pointer, b_pointer)
        _drive_reads(m, self, plan, load, advance, staged, job, walk, rep)
        return m


def _drive_reads(
    m: Module, walker: JobWalker, plan: EnginePlan, load, issue, staged, job, walk, rep=None
):
    """Drives ``walker.reads`` and ``walker.beat`` for this cycle's columns: the per-group
    segment and beyond-the-last-column masks (registers, compared the cycle before; a pass's
    first cycle takes the job's masks), read addresses and sources, beat metadata.

    ``load``, ``issue``: the walker's job load and the walk's advance (its column issue;
    with weight reuse the last of a column's ``B`` issues); ``staged``, ``job``: the
    staged and the taken job's registers; ``walk``: ``(column, cycle, is_last_cycle,
    is_last_pass, a_pointer, b_pointer)``, the walk's position.

    ``rep`` (weight reuse only, else None): this cycle's reads and beat are sequence
    ``rep``'s. Its ``h`` slot is ``rep * H`` words above sequence 0's (the descriptor's
    vector bases and ``vector_base``), its states ``rep * L * D * H`` (state regions), its
    ``x_t`` ``rep * x_beats_per_step`` beats into the group step's ``x`` slot; the beat
    carries ``rep`` as ``job.sequence``."""
    G = plan.groups
    k_bits = plan.input_elements.bit_length() - 1
    column, cycle, is_last_cycle, is_last_pass, a_pointer, b_pointer = walk
    a_length, columns_last, a_base = job["a_length"], job["columns_last"], job["a_base"]
    in_a = Signal(G)
    beyond = Signal(G)
    first_in_a = _loaded(G, "first_in_a")
    first_beyond = _loaded(G, "first_beyond")

    with m.If(load):
        m.d.sync += [
            first_in_a.eq(staged["in_a"]),
            first_beyond.eq(staged["beyond"]),
            in_a.eq(staged["in_a"]),
            beyond.eq(staged["beyond"]),
        ]
    with m.Elif(issue & is_last_cycle):
        m.d.sync += [in_a.eq(first_in_a), beyond.eq(first_beyond)]
    with m.Elif(issue):
        ahead = column + G
        m.d.sync += [
            in_a.eq(Cat(ahead + g < a_length for g in range(G))),
            beyond.eq(Cat(ahead + g > columns_last for g in range(G))),
        ]
    H = plan.hidden_size
    for g, read in enumerate(walker.reads):
        c = column + g
        address = Mux(in_a[g], a_pointer, b_pointer) + g
        x_address = a_base + (c >> k_bits)
        source = Mux(in_a[g], job["a_source"], job["b_source"])
        if rep is not None:
            address = address + Mux(source == Source.STATE, rep * plan.state_words, rep * H)
            x_address = x_address + rep * plan.x_beats_per_step
        m.d.comb += [
            read.address.eq(address),
            read.x_address.eq(x_address),
            read.source.eq(source),
            read.beyond.eq(beyond[g]),
            walker.beat.segments[g].eq(~in_a[g]),
        ]
        if k_bits:
            m.d.comb += read.x_bank.eq(c[:k_bits])
    m.d.comb += [
        walker.beat.valid.eq(walker.issue),  # (every issue; ``issue`` above: the walk's step)
        walker.beat.first.eq(cycle == 0),
        walker.beat.last.eq(is_last_cycle),
        walker.beat.final_pass.eq(is_last_pass),
        walker.beat.job.eq(walker.job.job),
    ]
    if rep is not None:
        m.d.comb += [
            walker.beat.job.sequence.eq(rep),
            walker.beat.job.vector_base.eq(walker.job.job.vector_base + rep * H),
        ]
