"""The streaming schedule (unidirectional models): step by step, every layer per step."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from .config import index_shape
from .jobs import Fields, JobKind, Source, descriptor_layout, schedule_ports
from .pipeline import kept_delay
from .plan import EnginePlan

__all__ = ["StreamingSchedule"]


class StreamingSchedule(wiring.Component):
    """Offers the jobs of a unidirectional model: per time step ``t`` the layers ``l0 ..
    l(L-1)``, then the head when it applies to ``t`` (every step with output ``"all"``, the
    sequence's final step with ``"last"``).

    ``x_t`` streams into a two-step ring of the ``x`` banks (``x_write``); each layer's ``h``
    lives in a two-step ring of the vector memory (layer ``k``: words ``2kH .. 2kH + 2H - 1``,
    slot = step parity). Interleaved (``B > 1``, ``docs/interleave.md``): a group's ``B``
    sequences take turns step by step, each step of each sequence a step of the schedule (the
    ``x`` ring alternates per such step); layer ``k``'s ring has ``2B`` slots (words
    ``2kBH + (parity * B + b) * H``), the state regions ``B*L*D*H`` words (sequence ``b`` at
    ``b*L*D*H``), the recurrence reads ``B`` steps back; ``job.sequence`` says ``b``.
    A layer's recurrent columns read ``h0`` or the previous sequence's final state (state
    memory) on a sequence's first step.

    Ports
    -----
    x : In, stream of :func:`~lstm_fpga.hw.jobs.input_layout`
        Ready while the ring has room and, for a sequence's first beat (interleaved: the
        first of a group), ``may_start_next`` was given the cycle before and ``hold`` is not
        given now. ``ready`` is one LUT of two registers and ``hold``.
    x_write : Out
        The accepted beat into the ring.
    job : Out, :func:`~lstm_fpga.hw.jobs.descriptor_layout`
        The current job (a layer-0 job from its step's first beat on; its columns wait for
        the later beats on ``x_beats``).
    x_beats : Out
        Beats buffered for the oldest step not yet consumed by its layer-0 job.
    issue, job_start, job_end : In(1)
        From the walker.
    carry_state, read_state : In(1)
        Sampled with a sequence's first beat.
    may_start_next : In(1)
        A new sequence may start in the next cycle (registered here), unless ``hold`` then.
    hold : In(1)
        No sequence starts in this cycle.
    open : Out(1)
        A sequence's beats are arriving (its first was accepted, its last not yet).
    started, admitted : Out(1)
        A sequence's first beat is accepted (here both at once: it counts from then on).
    """

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        B = plan.x_slot_beats if plan.weight_reuse else plan.x_beats_per_step
        # (weight reuse: ``mismatch`` pulses when a sequence's step ends with another tlast
        # than the group's first sequence's)
        reuse = {"mismatch": Out(1)} if plan.weight_reuse else {}
        super().__init__({**schedule_ports(plan), "x_beats": Out(range(2 * B + 1)), **reuse})

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        reuse = plan.weight_reuse
        # (with weight reuse a step of the schedule is a group step: x_t of the B sequences)
        B = plan.x_slot_beats if reuse else plan.x_beats_per_step
        H, L = plan.hidden_size, plan.num_layers
        LDH = plan.state_words
        has_head = plan.head is not None
        all_steps = plan.output_mode == "all"
        desc = Fields(descriptor_layout(plan))
        m.d.comb += self.job.eq(desc.as_value())

        # -- input side: a two-step ring per bank --------------------------------------------
        accept = Signal()
        in_first = Signal(init=1)  # the next beat starts a sequence
        x_seen = Signal.like(self.x_beats, name="x_seen")
        in_beat = Signal(index_shape(B))
        in_parity = Signal()
        x_first = Array([Signal(name=f"x_first{k}") for k in range(2)])
        x_last = Array([Signal(name=f"x_last{k}") for k in range(2)])
        x_carry = Array([Signal(name=f"x_carry{k}") for k in range(2)])
        x_read = Array([Signal(name=f"x_read{k}") for k in range(2)])
        Bi = plan.interleave
        # Job-level interleave (on-chip weights); weight reuse walks the B=1 schedule over
        # group steps (the walker repeats each column for the B sequences).
        interleaved = Bi > 1 and not reuse
        if interleaved:
            # A group's B sequences start with their step 0 (``in_first`` until the last
            # sequence's step 0 begins) and end with the last sequence's final step.
            in_seq = Signal(index_shape(Bi))
            seq_start = in_first & (in_beat == 0)
            # ``may_start`` is asked once per group (its first sequence): a hold between the
            # group's sequences would wait for an idle engine that cannot come.
            gated = seq_start & (in_seq == 0)
            opened = ~in_first | (in_seq != 0) | (in_beat != 0)
        else:
            seq_start = in_first
            gated = in_first
            opened = ~in_first
        seq_first_beat = seq_start
        if reuse:
            # Each sequence of the group counts from its own first beat (beat ``b *
            # x_beats_per_step`` of the group's first step).
            per_seq = plan.x_beats_per_step
            in_sub = Signal(index_shape(per_seq))
            first_step = Mux(in_beat == 0, in_first, x_first[in_parity])
            seq_first_beat = first_step & (in_sub == 0)
            # The group's sequences must end together: each sequence's last beat of a step
            # carries the tlast of sequence 0's (the group ends with the last sequence's).
            in_member = Signal(index_shape(Bi))
            group_last = Signal()
            seq_end = accept & (in_sub == per_seq - 1)
            with m.If(accept):
                m.d.sync += in_sub.eq(Mux(in_sub == per_seq - 1, 0, in_sub + 1))
            with m.If(seq_end):
                m.d.sync += in_member.eq(Mux(in_member == Bi - 1, 0, in_member + 1))
                with m.If(in_member == 0):
                    m.d.sync += group_last.eq(self.x.payload.last)
            m.d.comb += self.mismatch.eq(
                seq_end & (in_member != 0) & (self.x.payload.last != group_last)
            )
        # ``x.ready`` = (x_seen < 2B) & (~gated | may_start & ~hold), ``gated``: the beat
        # would start a sequence (a group) and needs ``may_start``. Its terms are registered
        # from their next values: ``free`` (room, not gated) and ``start_ok`` (room, gated,
        # may start), so that ready is one LUT of them and ``hold``.
        free = Signal()
        start_ok = Signal(init=1)
        group_end = self.x.payload.last & (in_beat == B - 1)
        if interleaved:
            group_end = group_end & (in_seq == Bi - 1)
        x_advance = Signal()
        # After an advance the ring has room (x_seen <= 2B before it, B beats fewer after).
        room_next = x_advance | Mux(accept, x_seen < 2 * B - 1, x_seen < 2 * B)
        # The beat after an accepted one is gated exactly when that one ends a group
        # (``gated`` stays clear within a group: ``in_first`` is set at its end only).
        gated_next = Mux(accept, group_end, gated)
        m.d.sync += [
            free.eq(room_next & ~gated_next),
            start_ok.eq(room_next & gated_next & self.may_start_next),
        ]
        starts = self.x.valid & start_ok & ~self.hold
        if interleaved or reuse:
            starts = accept & seq_first_beat
        # (else a sequence's first beat is a gated one: ``starts`` as above)
        m.d.comb += [
            self.x.ready.eq(free | (start_ok & ~self.hold)),
            accept.eq(self.x.valid & self.x.ready),
            self.open.eq(opened),
            self.started.eq(starts),
            self.admitted.eq(starts),
            self.x_write.address.eq(Mux(in_parity, B, 0) + in_beat),
            self.x_write.elements.eq(self.x.payload.data),
            self.x_write.enable.eq(accept),
        ]
        with m.If(accept):
            final_beat = in_beat == B - 1
            with m.If(final_beat):
                m.d.sync += [in_beat.eq(0), in_parity.eq(~in_parity)]
            with m.Else():
                m.d.sync += in_beat.eq(in_beat + 1)
            with m.If(in_beat == 0):
                m.d.sync += [
                    x_first[in_parity].eq(in_first),
                    x_carry[in_parity].eq(self.carry_state),
                    x_read[in_parity].eq(self.read_state),
                ]
                if interleaved:
                    with m.If(in_seq == Bi - 1):
                        m.d.sync += in_first.eq(0)
                else:
                    m.d.sync += in_first.eq(0)
            with m.If((in_beat == 0) | final_beat):
                m.d.sync += x_last[in_parity].eq(final_beat & self.x.payload.last)
            if interleaved:
                with m.If(final_beat):
                    m.d.sync += in_seq.eq(Mux(in_seq == Bi - 1, 0, in_seq + 1))
            with m.If(group_end):
                m.d.sync += in_first.eq(1)

        # -- schedule state ---------------------------------------------------------------------
        layer = Signal(index_shape(L))
        at_head = Signal()
        # An LSTMP (``plan.projected``): each layer's gate job is followed by its projection
        # job (``at_proj``), which reads the cell outputs ``m_t`` and writes ``h_t``.
        projected = plan.projected
        at_proj = Signal() if projected else None

        def gate_job(at_head, at_proj):  # not the head, nor an LSTMP's projection
            return ~at_head & ~at_proj if projected else ~at_head

        parity = Signal()
        step_first = Signal()
        step_init = Signal()
        step_read = Signal()
        step_last = Signal()
        seq_parity = Signal()
        have_final = Signal()
        if interleaved:
            # The step's sequence ``b`` of the group (vector ring slot ``parity * B + b``)
            # and the ``x`` ring slot (every step of every sequence in turn).
            seq = Signal(index_shape(Bi))
            xslot = Signal()
            next_seq = Signal.like(seq)
            next_xslot = Signal()
            m.d.comb += [next_seq.eq(seq), next_xslot.eq(xslot)]
            step_reads = Array([Signal(name=f"step_read{b}") for b in range(Bi)])
            step_read = step_reads[seq]
        else:
            xslot = parity
            seq = next_seq = None

        def starting(slot, seq_parity, have_final, step_init, step_read, opens=1):
            """(first, init, read, sequence parity, last) of the step in ring slot ``slot``,
            for its layer-0 job before that job's first issue (from the ring's flags), given
            the latched state of the steps before it (``opens``: the step's sequence is its
            group's first, whose start flips the parity of the group's state regions)."""
            first = x_first[slot]
            init = Mux(first, ~x_carry[slot] | ~have_final, step_init)
            read = Mux(first, x_read[slot], step_read)
            return first, init, read, seq_parity ^ (first & opens), x_last[slot]

        layer0 = gate_job(at_head, at_proj) & (layer == 0)
        layer0_start = layer0 & self.job_start
        top_layer = layer == L - 1
        # The current step's fields: from the ring until its layer-0 job issues, then latched.
        opens = (seq == 0) if interleaved else 1
        fresh = starting(xslot, seq_parity, have_final, step_init, step_read, opens)
        latched = (step_first, step_init, step_read, seq_parity, Mux(layer0, fresh[4], step_last))
        step = [Mux(layer0_start, f, s) for f, s in zip(fresh, latched, strict=True)]
        first, init, read, _, last = step
        new_seq = layer0_start & first

        # The job after this one (the state ``job_end`` moves to): the walker takes it in the
        # cycle of this job's last issue.
        # (an LSTMP: after the top layer's projection)
        layer_done = (~at_head & at_proj) if projected else ~at_head
        head_now = ((1 if all_steps else last) if has_head else 0) & top_layer & layer_done
        next_layer = Signal.like(layer)
        next_at_head = Signal()
        next_at_proj = Signal() if projected else None
        next_parity = Signal()
        m.d.comb += [next_layer.eq(layer), next_at_head.eq(head_now), next_parity.eq(parity)]
        if not interleaved:
            next_xslot = next_parity
        wraps = at_head | (top_layer & ~head_now)
        moves_up = ~top_layer
        if projected:  # (a gate job: its projection comes next, in the same layer)
            m.d.comb += next_at_proj.eq(~at_head & ~at_proj)
            wraps = at_head | (at_proj & top_layer & ~head_now)
            moves_up = at_proj & ~top_layer
        with m.If(wraps):
            m.d.comb += next_layer.eq(0)
            if interleaved:
                wrap = seq == Bi - 1
                m.d.comb += [
                    next_seq.eq(Mux(wrap, 0, seq + 1)),
                    next_parity.eq(parity ^ wrap),
                    next_xslot.eq(~xslot),
                ]
            else:
                m.d.comb += next_parity.eq(~parity)
        with m.Elif(moves_up):
            m.d.comb += next_layer.eq(layer + 1)
        next_layer0 = gate_job(next_at_head, next_at_proj) & (next_layer == 0)
        # As latched at the end of this cycle (``next_job`` is taken with the last issue,
        # which is also the first one of a one-cycle job that may start a sequence).
        if interleaved:
            upcoming = starting(
                next_xslot,
                seq_parity ^ (new_seq & (seq == 0)),
                have_final | (new_seq & (seq == Bi - 1)),
                Mux(new_seq, init, step_init),
                step_reads[next_seq],
                next_seq == 0,
            )
        else:
            upcoming = starting(
                next_parity,
                seq_parity ^ new_seq,
                have_final | new_seq,
                Mux(new_seq, init, step_init),
                Mux(new_seq, read, step_read),
            )
        next_step = [Mux(next_layer0, u, c) for u, c in zip(upcoming, step, strict=True)]
        # A layer-0 job's step has its first beat in: beyond this step's own when this job
        # is the layer-0 job still holding its step's beats.
        next_in = Mux(layer0, x_seen > B, x_seen != 0)

        def describe(desc, layer, at_head, at_proj, parity, step, valid, xslot, seq):
            """Drive the descriptor ``desc`` of the job at ``(layer, at_head, parity)`` of a
            step with fields ``step``; ``valid`` when a layer-0 job's step has begun;
            ``xslot``: the step's ``x`` ring slot; ``seq``: its interleaved sequence."""
            first, init, read, spar, last = step
            layer0 = gate_job(at_head, at_proj) & (layer == 0)
            top_layer = layer == L - 1
            SG = Bi * LDH

            # Bases: layer k's ring is words k*2BH .. k*2BH + 2BH - 1, slot = step parity,
            # then the interleaved sequence (B = 1: words k*2H .. k*2H + 2H - 1).
            def ring(k, slot):
                if reuse:  # sequence 0's slot (the walker adds b * H for sequence b)
                    return k * (2 * Bi * H) + Mux(slot, Bi * H, 0)
                if not interleaved:
                    return k * 2 * H + Mux(slot, H, 0)
                return k * (2 * Bi * H) + Mux(slot, Bi * H, 0) + seq * H

            # h0, or the other region (the previous sequence's final state); sequence b's
            # states at b * L*D*H of each region
            state_region = Mux(init, 0, Mux(spar, SG, 2 * SG))
            if interleaved:
                state_region = state_region + seq * LDH
            recurrent_state = state_region + layer * H
            if interleaved or reuse:
                recurrent_vector = ring(layer, ~parity)
            else:
                recurrent_vector = layer * 2 * H + Mux(parity, 0, H)
            recurrent_source = Mux(first, Source.STATE, Source.VECTOR)
            recurrent_base = Mux(first, recurrent_state, recurrent_vector)
            below = ring(layer - 1, parity)
            # Units between a layer's step and the same layer's next step: B L H (each job
            # one sequence's H units); with weight reuse the scoreboards count the group's
            # last sequence's units only (H per group job: its unit u completes after unit u
            # of every other sequence, whatever the passes) and check a column once for all
            # B sequences: L H.
            recurrent = L * H if reuse else Bi * L * H
            below_distance = H
            if projected:
                # An LSTMP step's jobs complete H (gates: the cell's m_t) and R (projection:
                # h_t) units per layer: the recurrent h was the projection's R units of the
                # layer's previous step, followed by the other layers' H + R.
                assert not reuse  # (an LSTMP's weights are on chip)
                # Interleaved: the other B - 1 sequences' steps come between, L (H + R)
                # units each.
                R = plan.proj_size
                recurrent = R + (Bi * L - 1) * (H + R)
                below_distance = R
            gate = gate_job(at_head, at_proj)
            vector_base, final = ring(layer, parity), last
            if projected:
                # The gate job's cell outputs m_t go to the layer's m region (not a final
                # state, no y; its state beats carry c_n); its projection writes h_t (ring,
                # final state, y, h_n).
                m_base = plan.cell_output_base(0) + layer * H
                vector_base = Mux(at_proj, ring(layer, parity), m_base)
                final = ~gate & last
            gate_matrix = layer  # (an LSTMP's projection: its own matrix)
            if projected:
                gate_matrix = Mux(at_proj, plan.projection_index(0) + layer, layer)
            m.d.comb += [
                # A layer-0 job is offered once its step's first beat is in: its fields
                # depend on that beat (first step of a sequence or not).
                desc.valid.eq(~layer0 | valid),
                desc.kind.eq(Mux(at_head, JobKind.HEAD, JobKind.LSTM)),
                desc.matrix.eq(Mux(at_head, plan.head_index, gate_matrix)),
                desc.a_distance.eq(Mux(at_head, below_distance, recurrent)),
                desc.b_distance.eq(below_distance),
                desc.job.vector_base.eq(vector_base),
                desc.job.init.eq(first & init),
                desc.job.final.eq(final),
                desc.job.emit_state.eq(~at_head & last & read),
                desc.job.parity.eq(spar),
                desc.job.matrix.eq(desc.matrix),
            ]
            if interleaved:
                m.d.comb += desc.job.sequence.eq(seq)
            if has_head and plan.score_on_lanes:
                # Attention pooling: the top layer's h_t (an LSTMP: its projection's) and the
                # score job's u_t of every step, both into the attention unit.
                emits = top_layer & ~at_head
                if projected:
                    emits = emits & ~gate
                m.d.comb += [desc.job.emit_y.eq(emits), desc.job.y_last.eq(top_layer & last)]
            elif has_head:
                m.d.comb += [desc.job.emit_y.eq(0), desc.job.y_last.eq(at_head & last)]
            else:
                emits = top_layer & (1 if all_steps else last)
                if projected:
                    emits = emits & ~gate
                m.d.comb += [desc.job.emit_y.eq(emits), desc.job.y_last.eq(top_layer & last)]
            with m.If(at_head):
                m.d.comb += [
                    desc.a_source.eq(Source.VECTOR),
                    desc.a_base.eq(ring(L - 1, parity)),
                    desc.a_lag.eq(1),
                    desc.a_x.eq(0),
                ]
            if projected:  # (an LSTMP's projection reads its gate job's m_t)
                with m.Elif(at_proj):
                    m.d.comb += [
                        desc.a_source.eq(Source.VECTOR),
                        desc.a_base.eq(plan.cell_output_base(0) + layer * H),
                        desc.a_lag.eq(1),
                        desc.a_x.eq(0),
                        desc.a_distance.eq(H),
                    ]
            with m.Elif(layer == 0):
                m.d.comb += [
                    desc.a_source.eq(Source.X),
                    desc.a_base.eq(Mux(xslot, B, 0)),
                    desc.a_lag.eq(0),
                    desc.a_x.eq(1),
                    desc.b_source.eq(recurrent_source),
                    desc.b_base.eq(recurrent_base),
                    desc.b_distance.eq(recurrent),
                ]
            with m.Else():
                m.d.comb += [
                    desc.a_source.eq(recurrent_source),
                    desc.a_base.eq(recurrent_base),
                    desc.a_lag.eq(1),
                    desc.a_x.eq(0),
                    desc.b_source.eq(Source.VECTOR),
                    desc.b_base.eq(below),
                ]

        describe(desc, layer, at_head, at_proj, parity, step, x_seen != 0, xslot, seq)
        next_desc = Fields(descriptor_layout(plan), "next_")
        m.d.comb += self.next_job.eq(next_desc.as_value())
        describe(
            next_desc,
            next_layer,
            next_at_head,
            next_at_proj,
            next_parity,
            next_step,
            next_in,
            next_xslot,
            next_seq,
        )

        # -- transitions --------------------------------------------------------------------------
        with m.If(self.issue & layer0_start):
            m.d.sync += step_first.eq(x_first[xslot])
            with m.If(new_seq):
                m.d.sync += [step_init.eq(init), step_read.eq(read)]
                if interleaved:
                    with m.If(seq == 0):
                        m.d.sync += seq_parity.eq(~seq_parity)
                    with m.If(seq == Bi - 1):
                        m.d.sync += have_final.eq(1)
                else:
                    m.d.sync += [seq_parity.eq(~seq_parity), have_final.eq(1)]
        m.d.comb += x_advance.eq(self.job_end & layer0)
        x_seen_next = Signal.like(x_seen, name="x_seen_next")
        m.d.comb += x_seen_next.eq(x_seen + accept - Mux(x_advance, B, 0))
        m.d.sync += x_seen.eq(x_seen_next)
        # The walker's own copy of the count (the same value every cycle, kept apart by
        # synthesis): the original sits with the ring's ready logic, and its route to the
        # walker's verdict compares was 2.75 ns of a 9.48 ns path at I=H=64 P=64.
        m.d.comb += self.x_beats.eq(
            kept_delay(m, platform, x_seen_next, 1, "x_beats_walker", control=True)
        )
        with m.If(x_advance):
            m.d.sync += step_last.eq(x_last[xslot])
        with m.If(self.job_end):
            m.d.sync += [layer.eq(next_layer), at_head.eq(next_at_head), parity.eq(next_parity)]
            if projected:
                m.d.sync += at_proj.eq(next_at_proj)
            if interleaved:
                m.d.sync += [seq.eq(next_seq), xslot.eq(next_xslot)]
        return m
