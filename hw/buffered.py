"""The buffered schedule (bidirectional models): whole sequences, layer by layer."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import index_shape
from .jobs import Fields, JobKind, Source, descriptor_layout, schedule_ports
from .output_reader import output_range_layout
from .plan import EnginePlan

__all__ = ["BufferedSchedule", "Phase"]


class Phase(enum.Enum, shape=2):
    """Where the buffered schedule is in a sequence."""

    #: Waiting for a stored sequence.
    WAIT = 0
    #: The layers' jobs.
    LSTM = 1
    #: Head jobs (with a head) or the hand-off to the output reader (without).
    OUT = 2


class BufferedSchedule(wiring.Component):
    """Offers the jobs of a bidirectional model: a whole sequence is stored (two sequence
    slots, so the next one streams in while this one computes), then per layer ``k`` the
    jobs ``(k, fwd, s)``, ``(k, rev, T-1-s)`` for ``s = 0 .. T-1``, then the head on every
    step or the final step. Without a head, the sequence's outputs are handed to the output
    reader (``output``) and the lanes go on with the next sequence.

    Layer ``k`` writes vector buffer ``(k + flip) mod 2``; without a head ``flip`` alternates
    per sequence by ``L mod 2``, so the next sequence's first layer never writes the buffer
    the output reader is still reading (a layer waits while it would).

    An LSTMP (``plan.projected``): each of those jobs is the direction's gate job followed
    by its projection job, ``(k, fwd, s)`` gates, projection, ``(k, rev, T-1-s)`` gates,
    projection. A gate job writes its cell outputs ``m_t`` to its layer direction's region
    (:meth:`~lstm_fpga.hw.plan.EnginePlan.cell_output_base`; its state beats carry ``c_n``),
    the projection reads them and writes ``h_t`` (``R`` words: the forward direction's at
    word 0 of the step's slot of ``2R``, the reverse one's at ``R``), the final state
    (``h_n``) and its state beats. Scoreboard distances: a gate job's recurrent ``h`` is
    ``H + 2R`` units back (its projection, the other direction's gate and projection jobs),
    a projection's ``m_t`` ``H``, the layer below's and the head's ``2R`` (the reverse
    direction's rows of step 0 come last).

    Ports: those of :class:`~lstm_fpga.hw.streaming.StreamingSchedule` (``started`` is the
    first beat, ``admitted`` the last beat of a sequence that was stored), and

    dropped : Out(1)
        Pulses on a sequence's first beat beyond ``max_seq_len`` steps: it is dropped.
    output : Out, stream of :func:`~lstm_fpga.hw.output_reader.output_range_layout`
        A finished sequence's outputs (no head).
    reader_busy, reader_parity : In(1)
        The output reader's state.
    """

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        super().__init__(
            {
                **schedule_ports(plan),
                "dropped": Out(1),
                "output": Out(stream.Signature(output_range_layout(plan))),
                "reader_busy": In(1),
                "reader_parity": In(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        H, L = plan.hidden_size, plan.num_layers
        projected = plan.projected
        # (the reverse direction's h_t in a step's slot: after the forward one's Hr words)
        R = plan.proj_size
        Hr = plan.real_hidden_size
        B = plan.x_beats_per_step
        LDH = plan.state_words
        DH = plan.vector_slot_words
        T_max = plan.max_seq_len
        slot_words = plan.x_slot_beats
        has_head = plan.head is not None
        all_steps = plan.output_mode == "all"
        reader = plan.copies_outputs
        # Attention pooling (a head and the reader): the sequence's outputs are handed to the
        # reader (its h_t into the attention unit) before the score (head) jobs run, so that
        # the unit takes each step's h_t, then its u_t.
        handed = Signal() if reader and has_head else None
        step_shape = range(T_max + 1)
        x_off_shape = range(T_max * B + 1)
        h_off_shape = range(T_max * DH + 1)
        desc = Fields(descriptor_layout(plan))
        m.d.comb += self.job.eq(desc.as_value())

        # -- input side: two sequence slots -------------------------------------------------------
        accept = Signal()
        in_first = Signal(init=1)  # the next beat starts a sequence
        # (``may_start`` registered from ``may_start_next``)
        may_start = Signal(init=1)
        m.d.sync += may_start.eq(self.may_start_next)
        room = ~in_first | (may_start & ~self.hold)
        in_slot = Signal()
        in_beat = Signal(index_shape(B))
        in_step = Signal(step_shape)
        in_x = Signal(x_off_shape)  # in_step * B
        in_h = Signal(h_off_shape)  # in_step * DH
        dropping = Signal()
        slot_full = Array([Signal(name=f"slot_full{k}") for k in range(2)])
        slot_last_x = Array([Signal(x_off_shape, name=f"slot_last_x{k}") for k in range(2)])
        slot_last_h = Array([Signal(h_off_shape, name=f"slot_last_h{k}") for k in range(2)])
        slot_carry = Array([Signal(name=f"slot_carry{k}") for k in range(2)])
        slot_read = Array([Signal(name=f"slot_read{k}") for k in range(2)])
        too_long = (in_step == T_max) & ~dropping
        final_beat = in_beat == B - 1
        m.d.comb += [
            self.x.ready.eq(~slot_full[in_slot] & room),
            accept.eq(self.x.valid & self.x.ready),
            self.open.eq(~in_first),
            self.started.eq(accept & in_first),
            self.admitted.eq(accept & final_beat & self.x.payload.last & ~dropping & ~too_long),
            self.x_write.address.eq(Mux(in_slot, slot_words, 0) + in_x + in_beat),
            self.x_write.elements.eq(self.x.payload.data),
            self.x_write.enable.eq(accept & ~dropping & ~too_long),
            self.dropped.eq(accept & too_long),
        ]
        with m.If(accept):
            with m.If(in_first):
                m.d.sync += [
                    slot_carry[in_slot].eq(self.carry_state),
                    slot_read[in_slot].eq(self.read_state),
                    in_first.eq(0),
                ]
            with m.If(final_beat):
                m.d.sync += [
                    in_beat.eq(0),
                    in_step.eq(in_step + 1),
                    in_x.eq(in_x + B),
                    in_h.eq(in_h + DH),
                ]
                with m.If(dropping | too_long):
                    m.d.sync += in_step.eq(in_step)  # stays at T_max while dropping
            with m.Else():
                m.d.sync += in_beat.eq(in_beat + 1)
            with m.If(too_long):
                m.d.sync += dropping.eq(1)
            with m.If(final_beat & self.x.payload.last):
                m.d.sync += [in_first.eq(1), in_step.eq(0), in_x.eq(0), in_h.eq(0)]
                with m.If(dropping | too_long):
                    m.d.sync += dropping.eq(0)
                with m.Else():
                    m.d.sync += [
                        slot_full[in_slot].eq(1),
                        slot_last_x[in_slot].eq(in_x),
                        slot_last_h[in_slot].eq(in_h),
                        in_slot.eq(~in_slot),
                    ]

        # -- schedule state ---------------------------------------------------------------------
        phase = Signal(Phase)
        run_slot = Signal()
        layer = Signal(index_shape(L))
        reverse = Signal()
        # An LSTMP: the job is the direction's projection job (after its gate job).
        at_proj = Signal() if projected else None
        x_f = Signal(x_off_shape)
        x_r = Signal(x_off_shape)
        h_f = Signal(h_off_shape)
        h_r = Signal(h_off_shape)
        last_x = Signal(x_off_shape)
        last_h = Signal(h_off_shape)
        h_out = Signal(h_off_shape)
        seq_init = Signal()
        seq_read = Signal()
        seq_parity = Signal()
        have_final = Signal()
        flip = Signal()

        def parity_of(k):
            return k[0] ^ flip

        def buffer(k):
            if plan.vector_buffers == 1:
                return 0
            return Mux(parity_of(k), plan.vector_buffer_words, 0)

        top_layer = Signal(index_shape(L), init=L - 1)  # a constant the helpers can index
        top_buffer = buffer(top_layer)
        state_region = Mux(seq_init, 0, Mux(seq_parity, LDH, 2 * LDH))

        def describe(desc, s):
            """Drive the descriptor ``desc`` of the job at schedule state ``s`` (a
            :class:`~types.SimpleNamespace` of ``phase``, ``layer``, ``reverse``, ``x_f``,
            ``x_r``, ``h_f``, ``h_r``, ``h_out``, ``run_slot``)."""
            first = s.h_f == 0
            last = s.h_f == last_h
            m_index = s.layer * 2 + s.reverse
            x_off = Mux(s.reverse, s.x_r, s.x_f)
            h_off = Mux(s.reverse, s.h_r, s.h_f)
            h_prev = Mux(s.reverse, s.h_r + DH, s.h_f - DH)
            recurrent_source = Mux(first, Source.STATE, Source.VECTOR)
            recurrent_base = Mux(
                first,
                state_region + m_index * H,
                buffer(s.layer) + h_prev + Mux(s.reverse, Hr, 0),
            )
            # A layer does not start on the buffer the output reader still reads (the reader
            # only becomes busy outside the layers' jobs).
            blocked = 0
            if reader:
                layer_start = (s.phase == Phase.LSTM) & ~s.reverse & first
                same = parity_of(s.layer) == self.reader_parity
                blocked = layer_start & self.reader_busy & same
            lstm = s.phase == Phase.LSTM
            # Units back to the producer of the recurrent h, of the layer below's (and the
            # head's) outputs: 2H without a projection (see the class docstring for an LSTMP).
            recurrent_distance = below_distance = 2 * H
            if projected:  # (the layer below's and the head's distance, set where they apply)
                recurrent_distance, below_distance = H + 2 * R, 2 * R
            out_jobs = (s.phase == Phase.OUT) & has_head
            if handed is not None:
                out_jobs = out_jobs & handed
            m.d.comb += [
                desc.valid.eq(lstm & ~blocked | out_jobs),
                desc.a_distance.eq(recurrent_distance),
                desc.b_distance.eq(recurrent_distance),
                desc.job.parity.eq(seq_parity),
                desc.job.matrix.eq(desc.matrix),
            ]
            gate_base = buffer(s.layer) + h_off + Mux(s.reverse, Hr, 0)
            gate_final = last
            if projected:
                # The gate job's m_t to its region; the projection writes h_t, h_n and y.
                m_base = plan.cell_output_base(0) + m_index * H
                gate_base, gate_final = m_base, 0
            with m.If(s.phase == Phase.OUT):
                m.d.comb += [
                    desc.kind.eq(JobKind.HEAD),
                    desc.matrix.eq(plan.head_index if has_head else 0),
                    desc.a_source.eq(Source.VECTOR),
                    desc.a_base.eq(top_buffer + s.h_out),
                    desc.a_lag.eq(1),
                    desc.job.y_last.eq(s.h_out == last_h),
                ]
                if projected:
                    m.d.comb += desc.a_distance.eq(below_distance)
            if projected:  # (an LSTMP's projection job: R rows over the gate job's m_t)
                with m.Elif(s.at_proj):
                    m.d.comb += [
                        desc.kind.eq(JobKind.LSTM),
                        desc.matrix.eq(plan.projection_index(0) + m_index),
                        desc.job.vector_base.eq(buffer(s.layer) + h_off + Mux(s.reverse, R, 0)),
                        desc.job.init.eq(first & seq_init),
                        desc.job.final.eq(last),
                        desc.job.emit_state.eq(last & seq_read),
                        desc.a_source.eq(Source.VECTOR),
                        desc.a_base.eq(m_base),
                        desc.a_lag.eq(1),
                        desc.a_distance.eq(H),
                    ]
            with m.Else():
                m.d.comb += [
                    desc.kind.eq(JobKind.LSTM),
                    desc.matrix.eq(m_index),
                    desc.job.vector_base.eq(gate_base),
                    desc.job.init.eq(first & seq_init),
                    desc.job.final.eq(gate_final),
                    desc.job.emit_state.eq(last & seq_read),
                ]
                with m.If(s.layer == 0):
                    m.d.comb += [
                        desc.a_source.eq(Source.X),
                        desc.a_base.eq(Mux(s.run_slot, slot_words, 0) + x_off),
                        desc.a_lag.eq(0),
                        desc.b_source.eq(recurrent_source),
                        desc.b_base.eq(recurrent_base),
                    ]
                with m.Else():
                    m.d.comb += [
                        desc.a_source.eq(recurrent_source),
                        desc.a_base.eq(recurrent_base),
                        desc.a_lag.eq(1),
                        desc.b_source.eq(Source.VECTOR),
                        desc.b_base.eq(buffer(s.layer - 1) + h_off),
                    ]
                    if projected:
                        m.d.comb += desc.b_distance.eq(below_distance)

        names = ("phase", "layer", "reverse", "x_f", "x_r", "h_f", "h_r", "h_out", "run_slot")
        values = (phase, layer, reverse, x_f, x_r, h_f, h_r, h_out, run_slot)
        if projected:
            names, values = (*names, "at_proj"), (*values, at_proj)
        now = SimpleNamespace(**dict(zip(names, values, strict=True)))
        describe(desc, now)
        # The state ``job_end`` moves to (the walker takes that job with this one's last issue).
        after = SimpleNamespace(
            **{name: Signal.like(value, name=f"next_{name}") for name, value in vars(now).items()}
        )
        m.d.comb += [getattr(after, name).eq(value) for name, value in vars(now).items()]
        last = h_f == last_h

        def turn_done():
            """The state after a direction's turn at a step (its last job)."""
            with m.If(~reverse):
                m.d.comb += after.reverse.eq(1)
            with m.Else():
                m.d.comb += after.reverse.eq(0)
                with m.If(last):
                    m.d.comb += [
                        after.x_f.eq(0),
                        after.h_f.eq(0),
                        after.x_r.eq(last_x),
                        after.h_r.eq(last_h),
                    ]
                    with m.If(layer == 0):
                        m.d.comb += after.run_slot.eq(~run_slot)
                    with m.If(layer == L - 1):
                        m.d.comb += [
                            after.phase.eq(Phase.OUT),
                            after.h_out.eq(0 if all_steps else last_h),
                        ]
                    with m.Else():
                        m.d.comb += after.layer.eq(layer + 1)
                with m.Else():
                    m.d.comb += [
                        after.x_f.eq(x_f + B),
                        after.h_f.eq(h_f + DH),
                        after.x_r.eq(x_r - B),
                        after.h_r.eq(h_r - DH),
                    ]

        with m.If(phase == Phase.LSTM):
            if projected:  # (a gate job: its projection next; a projection ends the turn)
                m.d.comb += after.at_proj.eq(~at_proj)
                with m.If(at_proj):
                    turn_done()
            else:
                turn_done()
        with m.Elif(phase == Phase.OUT):
            with m.If(h_out == last_h):
                m.d.comb += after.phase.eq(Phase.WAIT)
            with m.Else():
                m.d.comb += after.h_out.eq(h_out + DH)
        next_desc = Fields(descriptor_layout(plan), "next_")
        m.d.comb += self.next_job.eq(next_desc.as_value())
        describe(next_desc, after)

        if reader:
            # In one piece, so that no part of it is a constant driver (see ``Fields``).
            output = self.output.payload
            hand_off = phase == Phase.OUT
            if handed is not None:
                hand_off = hand_off & ~handed
            m.d.comb += [
                self.output.valid.eq(hand_off),
                self.output.payload.eq(
                    Cat(
                        (top_buffer + (0 if all_steps else last_h))[: len(output.first)],
                        (top_buffer + last_h + (DH - 1))[: len(output.last)],
                        parity_of(top_layer),
                    )
                ),
            ]
            with m.If(self.output.valid & self.output.ready):
                if handed is not None:  # (the score jobs next; they end the phase)
                    m.d.sync += handed.eq(1)
                else:
                    m.d.sync += phase.eq(Phase.WAIT)

        # -- transitions --------------------------------------------------------------------------
        with m.If(phase == Phase.WAIT):
            if handed is not None:
                m.d.sync += handed.eq(0)
            with m.If(slot_full[run_slot]):
                m.d.sync += [
                    phase.eq(Phase.LSTM),
                    layer.eq(0),
                    reverse.eq(0),
                    x_f.eq(0),
                    h_f.eq(0),
                    x_r.eq(slot_last_x[run_slot]),
                    h_r.eq(slot_last_h[run_slot]),
                    last_x.eq(slot_last_x[run_slot]),
                    last_h.eq(slot_last_h[run_slot]),
                    seq_init.eq(~slot_carry[run_slot] | ~have_final),
                    seq_read.eq(slot_read[run_slot]),
                    seq_parity.eq(~seq_parity),
                    have_final.eq(1),
                ]
                if reader and L % 2:
                    m.d.sync += flip.eq(~flip)
        with m.If(self.job_end):
            m.d.sync += [getattr(now, name).eq(value) for name, value in vars(after).items()]
            # (the input slot is free after layer 0's last job: an LSTMP's projection)
            slot_done = (phase == Phase.LSTM) & reverse & last & (layer == 0)
            if projected:
                slot_done = slot_done & at_proj
            with m.If(slot_done):
                m.d.sync += slot_full[run_slot].eq(0)
        return m
