"""Sequencer: input buffering, the job schedule, the (pass, column) walk and scoreboards."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .cell import hidden_write_layout, output_layout
from .config import index_shape
from .mvu import beat_layout, job_layout
from .pipeline import delay
from .plan import STREAMING, EnginePlan

__all__ = [
    "CYCLE_COUNTER_WIDTH",
    "MAX_SEQUENCES_IN_FLIGHT",
    "Sequencer",
    "h0_write_layout",
    "input_layout",
]

#: Width of the ``cycles`` counter.
CYCLE_COUNTER_WIDTH = 32
#: Sequences that may have started (first input beat) but not finished (last output beat).
MAX_SEQUENCES_IN_FLIGHT = 4

# Sources of a segment's elements.
_SRC_X, _SRC_VECTOR, _SRC_STATE = 0, 1, 2
# Job kinds.
_LSTM, _HEAD = 0, 1


def input_layout(plan: EnginePlan) -> data.StructLayout:
    """An input beat: ``data`` is one element of ``x_t`` (an array of ``input_elements``
    elements when that is more than 1); ``last`` ends the sequence."""
    shape = plan.input_shape
    if plan.input_elements > 1:
        shape = data.ArrayLayout(shape, plan.input_elements)
    return data.StructLayout({"data": shape, "last": unsigned(1)})


def h0_write_layout(plan: EnginePlan) -> data.StructLayout:
    """A write of ``h0[k][u]`` at ``address = k * H + u``."""
    return data.StructLayout({"address": index_shape(plan.state_words), "value": plan.state_shape})


class _Descriptor:
    """The current job, as combinational signals derived from the schedule state."""

    def __init__(self, plan: EnginePlan):
        self.kind = Signal(2, name="job_kind")
        self.matrix = Signal(index_shape(len(plan.matrices)), name="job_matrix")
        self.valid = Signal(name="job_valid")
        self.a_source = Signal(2, name="a_source")
        self.a_base = Signal(32, name="a_base")
        self.a_lag = Signal(name="a_lag")  # 1: wait for lag, 0: wait for x (or nothing)
        self.a_x = Signal(name="a_x")  # 1: the x scoreboard applies
        self.a_distance = Signal(32, name="a_distance")
        self.b_source = Signal(2, name="b_source")
        self.b_base = Signal(32, name="b_base")
        self.b_distance = Signal(32, name="b_distance")
        # Separate signals rather than one struct: fields a schedule never drives stay
        # constant wires in the Verilog (a partly driven vector makes Verilator warn).
        self.job_layout = job_layout(plan)
        self.job = _Fields(
            {name: Signal(field.shape, name=f"job_{name}") for name, field in self.job_layout}
        )

    def packed_job(self):
        return Cat(*(getattr(self.job, name) for name, _ in self.job_layout))


class _Fields:
    def __init__(self, signals: dict):
        self.__dict__.update(signals)


class _Shared:
    """Signals of the common part that a schedule's part needs."""

    def __init__(self, **signals):
        self.__dict__.update(signals)


class Sequencer(wiring.Component):
    """Runs the model's jobs (matrix evaluations) on the matrix-vector unit.

    The job schedule depends on the plan (:mod:`lstm_fpga.hw.plan`):

    * **streaming** (unidirectional): per time step ``t`` the jobs ``l0 .. l(L-1)``, then the
      head when it applies to ``t`` (every step with output ``"all"``, the sequence's final
      step with ``"last"``). ``x_t`` streams into a two-step ring; each layer's ``h`` lives in
      a two-step ring of the vector memory.
    * **buffered** (bidirectional): a whole sequence is stored (two sequence slots, so the
      next one streams in while this one computes), then per layer ``k`` the jobs ``(k, fwd,
      s)``, ``(k, rev, T-1-s)`` for ``s = 0 .. T-1``, then the head on every step or the final
      step. Without a head an output reader streams the top layer's outputs from the vector
      memory to ``copy`` while the lanes go on with the next sequence.

    A job walks ``pass = 0 .. passes-1``, ``cycle = 0 .. span-1`` issuing one column per lane
    group per cycle: the weight-bank address, the bias address and, :attr:`COLUMN_LATENCY`
    cycles later, the ``column`` beat with the vector elements (from the ``x`` buffer, the
    vector memory or the state memory holding ``h0`` and the final states). Scoreboards: an
    ``x`` column waits until the element has arrived; a vector column waits until the unit that
    produces it has been written, judged by the count of units not yet completed before the job
    started (the pipeline completes units in order, so this count tells which producers are
    done). A pass's last column waits until the drain is free.

    Also counts ``cycles`` from a sequence's first accepted input beat to its last output beat
    (``sequence_done``); ``busy`` while a sequence is unfinished; ``overflow`` (sticky until
    ``clear_status``) when a buffered sequence exceeded ``max_seq_len`` (it is dropped).
    """

    #: Cycles from an issue (the weight and bias addresses, the element reads) to its
    #: ``column`` beat: the element memory's read, its output register, the element select
    #: register.
    COLUMN_LATENCY = 3

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
            "hidden_write": In(stream.Signature(hidden_write_layout(plan), always_ready=True)),
            "h0_write": In(stream.Signature(h0_write_layout(plan), always_ready=True)),
            "copy": Out(stream.Signature(output_layout(plan.output_shape))),
            "carry_state": In(1),
            "read_state": In(1),
            "hold_start": In(1),
            "sequence_done": In(1),
            "clear_status": In(1),
            "cycles": Out(CYCLE_COUNTER_WIDTH),
            "busy": Out(1),
            "started": Out(1),
            "overflow": Out(1),
            "outstanding": Out(1),
        }
        super().__init__(ports)

    # ------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        G = plan.groups
        k_elems = plan.input_elements
        k_bits = k_elems.bit_length() - 1
        B = plan.x_beats_per_step
        H = plan.hidden_size
        LDH = plan.state_words

        # -- memories ------------------------------------------------------------------------
        x_words = max(2, plan.x_slots * plan.x_slot_beats)
        x_banks = [Memory(shape=plan.input_shape, depth=x_words, init=[]) for _ in range(k_elems)]
        for e, bank in enumerate(x_banks):
            m.submodules[f"x_bank{e}"] = bank
        m.submodules.vectors = vectors = Memory(
            shape=plan.state_shape, depth=max(2, plan.vector_depth), init=[]
        )
        m.submodules.states = states = Memory(
            shape=plan.state_shape, depth=max(2, 3 * LDH), init=[]
        )
        x_writes = [bank.write_port() for bank in x_banks]
        x_reads = [[bank.read_port() for bank in x_banks] for _ in range(G)]
        v_write, s_write = vectors.write_port(), states.write_port()
        v_reads = [vectors.read_port() for _ in range(G)]
        output_read = vectors.read_port() if plan.y_source == "copy" else None
        s_reads = [states.read_port() for _ in range(G)]

        # -- walk state ------------------------------------------------------------------------
        desc = _Descriptor(plan)
        cycle = Signal(16)
        column = Signal(16)  # the column of group 0 this cycle
        pass_index = Signal(16)
        offset = Signal(index_shape(plan.bank_depth + 1))  # word within the matrix's region
        load_pending = Signal()
        matrices = plan.matrices
        spans = Array([mp.span for mp in matrices])
        passes = Array([mp.passes for mp in matrices])
        columns = Array([mp.columns for mp in matrices])
        a_lengths = Array([mp.segments[0].length for mp in matrices])
        weight_bases = Array([mp.weight_base for mp in matrices])
        bias_bases = Array([mp.bias_base for mp in matrices])
        span = spans[desc.matrix]
        job_passes = passes[desc.matrix]
        job_columns = columns[desc.matrix]
        a_length = a_lengths[desc.matrix]
        step = G
        at_job_start = (pass_index == 0) & (cycle == 0)
        is_last_cycle = cycle == span - 1
        is_last_pass = pass_index == job_passes - 1
        m.d.comb += [
            self.weight_address.eq(weight_bases[desc.matrix] + offset),
            self.bias_address.eq(bias_bases[desc.matrix] + pass_index),
        ]

        # -- lag: units of earlier jobs not completed yet ----------------------------------------
        limit = 4 * (len(matrices) + 2) * H * max(1, plan.num_directions) + 64
        outstanding = Signal(range(limit))
        prior = Signal(range(limit))
        lag = Mux(at_job_start, outstanding, prior)
        completed = self.hidden_write.valid
        m.d.comb += self.outstanding.eq(outstanding != 0)

        # -- x scoreboard (streaming) -------------------------------------------------------------
        x_seen = Signal(range(2 * B + 1))

        # The highest column read this cycle decides the scoreboards (each segment is checked
        # up to its highest column read so far).
        top = Signal(16)
        m.d.comb += top.eq(
            Mux(column + (step - 1) < job_columns, column + (step - 1), job_columns - 1)
        )
        a_index = Mux(top < a_length, top, a_length - 1)
        b_index = top - a_length
        a_ok = Mux(
            desc.a_x,
            (x_seen << k_bits) > a_index,
            ~desc.a_lag | (lag + a_index < desc.a_distance),
        )
        b_ok = (top < a_length) | (lag + b_index < desc.b_distance)

        drain_ok = ~is_last_cycle | (self.drain_free & ~load_pending)
        issue = Signal()
        job_end = Signal()
        m.d.comb += [
            issue.eq(desc.valid & a_ok & b_ok & drain_ok),
            job_end.eq(issue & is_last_cycle & is_last_pass),
        ]
        with m.If(issue):
            with m.If(is_last_cycle):
                m.d.sync += [cycle.eq(0), column.eq(0)]
                with m.If(is_last_pass):
                    m.d.sync += [pass_index.eq(0), offset.eq(0)]
                with m.Else():
                    m.d.sync += [pass_index.eq(pass_index + 1), offset.eq(offset + 1)]
            with m.Else():
                m.d.sync += [cycle.eq(cycle + 1), column.eq(column + step), offset.eq(offset + 1)]
        with m.If(self.loaded):
            m.d.sync += load_pending.eq(0)
        with m.If(issue & is_last_cycle):
            m.d.sync += load_pending.eq(1)

        lstm_start = issue & at_job_start & (desc.kind == _LSTM)
        m.d.sync += outstanding.eq(outstanding + Mux(lstm_start, H, 0) - completed)
        with m.If(issue & at_job_start):
            m.d.sync += prior.eq(outstanding - completed)
        with m.Elif(completed & (prior != 0)):
            m.d.sync += prior.eq(prior - 1)

        # -- element reads ----------------------------------------------------------------------
        b_base_rel = desc.b_base - a_length
        beat = self.column.payload
        # Everything of a beat but its elements, registered in the cycle after the issue.
        meta_fields = {k: v for k, v in beat_layout(plan).members.items() if k != "elements"}
        beat_meta = Signal(data.StructLayout(meta_fields), reset_less=True)
        sources = [Signal(2, name=f"source{g}", reset_less=True) for g in range(G)]
        beyond = [Signal(name=f"beyond{g}", reset_less=True) for g in range(G)]
        x_bank_of = [
            Signal(max(1, k_bits), name=f"x_bank_of{g}", reset_less=True) for g in range(G)
        ]
        for g in range(G):
            c = column + g
            in_a = c < a_length
            address = Mux(in_a, desc.a_base, b_base_rel) + c
            source = Mux(in_a, desc.a_source, desc.b_source)
            m.d.comb += [
                v_reads[g].addr.eq(address),
                s_reads[g].addr.eq(address),
            ]
            for read in x_reads[g]:
                m.d.comb += read.addr.eq(desc.a_base + (c >> k_bits))
            m.d.sync += [
                sources[g].eq(source),
                beyond[g].eq(c >= job_columns),
                beat_meta.segments[g].eq(~in_a),
            ]
            if k_bits:
                m.d.sync += x_bank_of[g].eq(c[:k_bits])
        # The element memories' output registers, then the element select register: the
        # beat leaves COLUMN_LATENCY cycles after its issue (the weight and bias addresses).
        read_delay = self.COLUMN_LATENCY - 2
        m.d.sync += [
            beat_meta.first.eq(cycle == 0),
            beat_meta.last.eq(is_last_cycle),
            beat_meta.final_pass.eq(is_last_pass),
            beat_meta.job.eq(desc.packed_job()),
        ]
        meta = data.View(beat_meta.shape(), delay(m, beat_meta, read_delay + 1, "beat"))
        m.d.comb += [beat[name].eq(meta[name]) for name in meta_fields]
        m.d.comb += self.column.valid.eq(
            delay(m, issue, self.COLUMN_LATENCY, "issued", control=True)
        )
        for g in range(G):
            x_data = delay(m, x_reads[g][0].data, read_delay, f"x_q{g}")
            if k_bits:
                x_data = Array(
                    delay(m, read.data, read_delay, f"x_q{g}_{e}")
                    for e, read in enumerate(x_reads[g])
                )[delay(m, x_bank_of[g], read_delay, f"x_bank_of{g}")]
            source = delay(m, sources[g], read_delay, f"source{g}")
            element = Mux(
                source == _SRC_X,
                x_data,
                Mux(
                    source == _SRC_VECTOR,
                    delay(m, v_reads[g].data, read_delay, f"v_q{g}"),
                    delay(m, s_reads[g].data, read_delay, f"s_q{g}"),
                ),
            )
            selected = Signal(plan.element_shape, name=f"element{g}", reset_less=True)
            zero = delay(m, beyond[g], read_delay, f"beyond{g}")
            m.d.sync += selected.eq(Mux(zero, 0, element))
            m.d.comb += beat.elements[g].eq(selected)

        # -- writes from the gate and cell pipeline and from h0 loads ----------------------------
        write = self.hidden_write.payload
        m.d.comb += [
            v_write.addr.eq(write.address),
            v_write.data.eq(write.value),
            v_write.en.eq(self.hidden_write.valid),
        ]
        with m.If(self.h0_write.valid):
            m.d.comb += [
                s_write.addr.eq(self.h0_write.payload.address),
                s_write.data.eq(self.h0_write.payload.value),
                s_write.en.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                s_write.addr.eq(write.state_address),
                s_write.data.eq(write.value),
                s_write.en.eq(self.hidden_write.valid & write.final),
            ]

        # -- sequence bookkeeping ----------------------------------------------------------------
        in_first = Signal(init=1)  # the next beat starts a sequence
        in_flight = Signal(range(MAX_SEQUENCES_IN_FLIGHT + 1))
        seq_in = Signal(range(MAX_SEQUENCES_IN_FLIGHT))
        seq_out = Signal(range(MAX_SEQUENCES_IN_FLIGHT))
        now = Signal(CYCLE_COUNTER_WIDTH)
        starts = Array(
            [Signal(CYCLE_COUNTER_WIDTH, name=f"start{k}") for k in range(MAX_SEQUENCES_IN_FLIGHT)]
        )
        room = ~in_first | ((in_flight < MAX_SEQUENCES_IN_FLIGHT) & ~self.hold_start)
        accept = Signal()
        m.d.comb += [
            accept.eq(self.x.valid & self.x.ready),
            self.started.eq(accept & in_first),
        ]
        m.d.sync += now.eq(now + 1)
        push_start = Signal()
        start_time = Signal(CYCLE_COUNTER_WIDTH)
        with m.If(push_start):
            m.d.sync += [starts[seq_in].eq(start_time), seq_in.eq(seq_in + 1)]
        m.d.sync += in_flight.eq(in_flight + push_start - self.sequence_done)
        with m.If(self.sequence_done):
            m.d.sync += [self.cycles.eq(now - starts[seq_out]), seq_out.eq(seq_out + 1)]
        output_busy = Signal()
        m.d.comb += self.busy.eq((in_flight != 0) | ~in_first | (outstanding != 0) | output_busy)
        with m.If(self.clear_status):
            m.d.sync += self.overflow.eq(0)

        elements = [self.x.payload.data] if k_elems == 1 else list(self.x.payload.data)
        if plan.schedule == STREAMING:
            self._streaming(
                m,
                desc,
                issue,
                job_end,
                at_job_start,
                x_seen,
                accept,
                room,
                in_first,
                push_start,
                start_time,
                now,
                x_writes,
                elements,
                B,
            )
        else:
            self._buffered(
                m,
                _Shared(
                    outstanding=outstanding,
                    completed=completed,
                    output_read=output_read,
                    output_busy=output_busy,
                ),
                desc,
                issue,
                job_end,
                at_job_start,
                accept,
                room,
                in_first,
                push_start,
                start_time,
                now,
                x_writes,
                elements,
                B,
            )
        return m

    # ------------------------------------------------------------------------------------
    def _streaming(
        self,
        m,
        desc,
        issue,
        job_end,
        at_job_start,
        x_seen,
        accept,
        room,
        in_first,
        push_start,
        start_time,
        now,
        x_writes,
        elements,
        B,
    ):
        plan = self._plan
        H, L = plan.hidden_size, plan.num_layers
        LDH = plan.state_words
        has_head = plan.head is not None
        all_steps = plan.output_mode == "all"

        # -- input side: a two-step ring per bank --------------------------------------------
        in_beat = Signal(index_shape(B))
        in_parity = Signal()
        x_first = Array([Signal(name=f"x_first{k}") for k in range(2)])
        x_last = Array([Signal(name=f"x_last{k}") for k in range(2)])
        x_carry = Array([Signal(name=f"x_carry{k}") for k in range(2)])
        x_read = Array([Signal(name=f"x_read{k}") for k in range(2)])
        m.d.comb += self.x.ready.eq((x_seen < 2 * B) & room)
        for write, element in zip(x_writes, elements, strict=True):
            m.d.comb += [
                write.addr.eq(Mux(in_parity, B, 0) + in_beat),
                write.data.eq(element),
                write.en.eq(accept),
            ]
        m.d.comb += [push_start.eq(accept & in_first), start_time.eq(now)]
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
                    in_first.eq(0),
                ]
            with m.If((in_beat == 0) | final_beat):
                m.d.sync += x_last[in_parity].eq(final_beat & self.x.payload.last)
            with m.If(final_beat & self.x.payload.last):
                m.d.sync += in_first.eq(1)

        # -- schedule state ---------------------------------------------------------------------
        layer = Signal(index_shape(L))
        at_head = Signal()
        parity = Signal()
        step_first = Signal()
        step_init = Signal()
        step_read = Signal()
        step_last = Signal()
        seq_parity = Signal()
        have_final = Signal()

        layer0 = ~at_head & (layer == 0)
        layer0_start = layer0 & at_job_start
        new_seq = layer0_start & x_first[parity]
        first = Mux(layer0_start, x_first[parity], step_first)
        init = Mux(new_seq, ~x_carry[parity] | ~have_final, step_init)
        read = Mux(new_seq, x_read[parity], step_read)
        spar = seq_parity ^ new_seq
        last = Mux(layer0, x_last[parity], step_last)
        top_layer = layer == L - 1

        # Bases: layer k's ring is words k*2H .. k*2H + 2H - 1, slot = step parity.
        def ring(k, slot):
            return k * 2 * H + Mux(slot, H, 0)

        state_region = Mux(init, 0, Mux(spar, LDH, 2 * LDH))  # h0, or the other final region
        recurrent_state = state_region + layer * H
        recurrent_vector = layer * 2 * H + Mux(parity, 0, H)
        recurrent_source = Mux(first, _SRC_STATE, _SRC_VECTOR)
        recurrent_base = Mux(first, recurrent_state, recurrent_vector)
        below = (layer - 1) * 2 * H + Mux(parity, H, 0)
        top_slot = ring(L - 1, parity)

        m.d.comb += [
            desc.valid.eq(1),
            desc.kind.eq(Mux(at_head, _HEAD, _LSTM)),
            desc.matrix.eq(Mux(at_head, plan.head_index, layer)),
            desc.a_distance.eq(Mux(at_head, H, L * H)),
            desc.b_distance.eq(H),
            desc.job.vector_base.eq(layer * 2 * H + Mux(parity, H, 0)),
            desc.job.init.eq(first & init),
            desc.job.final.eq(last),
            desc.job.emit_state.eq(~at_head & last & read),
            desc.job.parity.eq(spar),
            desc.job.matrix.eq(desc.matrix),
        ]
        if has_head:
            m.d.comb += [desc.job.emit_y.eq(0), desc.job.y_last.eq(at_head & last)]
        else:
            emits = top_layer & (1 if all_steps else last)
            m.d.comb += [desc.job.emit_y.eq(emits), desc.job.y_last.eq(top_layer & last)]
        with m.If(at_head):
            m.d.comb += [
                desc.a_source.eq(_SRC_VECTOR),
                desc.a_base.eq(top_slot),
                desc.a_lag.eq(1),
                desc.a_x.eq(0),
            ]
        with m.Elif(layer == 0):
            m.d.comb += [
                desc.a_source.eq(_SRC_X),
                desc.a_base.eq(Mux(parity, B, 0)),
                desc.a_lag.eq(0),
                desc.a_x.eq(1),
                desc.b_source.eq(recurrent_source),
                desc.b_base.eq(recurrent_base),
                desc.b_distance.eq(L * H),
            ]
        with m.Else():
            m.d.comb += [
                desc.a_source.eq(recurrent_source),
                desc.a_base.eq(recurrent_base),
                desc.a_lag.eq(1),
                desc.a_x.eq(0),
                desc.b_source.eq(_SRC_VECTOR),
                desc.b_base.eq(below),
            ]

        # -- transitions --------------------------------------------------------------------------
        with m.If(issue & layer0_start):
            m.d.sync += step_first.eq(x_first[parity])
            with m.If(new_seq):
                m.d.sync += [
                    step_init.eq(init),
                    step_read.eq(read),
                    seq_parity.eq(~seq_parity),
                    have_final.eq(1),
                ]
        x_advance = job_end & layer0
        m.d.sync += x_seen.eq(x_seen + accept - Mux(x_advance, B, 0))
        with m.If(x_advance):
            m.d.sync += step_last.eq(x_last[parity])
        with m.If(job_end):
            with m.If(at_head):
                m.d.sync += [at_head.eq(0), layer.eq(0), parity.eq(~parity)]
            with m.Elif(top_layer):
                head_now = (1 if all_steps else last) if has_head else 0
                with m.If(head_now):
                    m.d.sync += at_head.eq(1)
                with m.Else():
                    m.d.sync += [layer.eq(0), parity.eq(~parity)]
            with m.Else():
                m.d.sync += layer.eq(layer + 1)

    # ------------------------------------------------------------------------------------
    def _buffered(
        self,
        m,
        shared,
        desc,
        issue,
        job_end,
        at_job_start,
        accept,
        room,
        in_first,
        push_start,
        start_time,
        now,
        x_writes,
        elements,
        B,
    ):
        plan = self._plan
        H, L = plan.hidden_size, plan.num_layers
        LDH = plan.state_words
        DH = plan.vector_slot_words
        T_max = plan.max_seq_len
        slot_words = plan.x_slot_beats
        has_head = plan.head is not None
        all_steps = plan.output_mode == "all"
        step_shape = range(T_max + 1)
        x_off_shape = range(T_max * B + 1)
        h_off_shape = range(T_max * DH + 1)

        # -- input side: two sequence slots -------------------------------------------------------
        in_slot = Signal()
        in_beat = Signal(index_shape(B))
        in_step = Signal(step_shape)
        in_x = Signal(x_off_shape)  # in_step * B
        in_h = Signal(h_off_shape)  # in_step * DH
        dropping = Signal()
        pending_start = Signal(CYCLE_COUNTER_WIDTH)
        slot_full = Array([Signal(name=f"slot_full{k}") for k in range(2)])
        slot_last_x = Array([Signal(x_off_shape, name=f"slot_last_x{k}") for k in range(2)])
        slot_last_h = Array([Signal(h_off_shape, name=f"slot_last_h{k}") for k in range(2)])
        slot_carry = Array([Signal(name=f"slot_carry{k}") for k in range(2)])
        slot_read = Array([Signal(name=f"slot_read{k}") for k in range(2)])
        m.d.comb += self.x.ready.eq(~slot_full[in_slot] & room)
        too_long = (in_step == T_max) & ~dropping
        for write, element in zip(x_writes, elements, strict=True):
            m.d.comb += [
                write.addr.eq(Mux(in_slot, slot_words, 0) + in_x + in_beat),
                write.data.eq(element),
                write.en.eq(accept & ~dropping & ~too_long),
            ]
        m.d.comb += start_time.eq(pending_start)
        with m.If(accept):
            final_beat = in_beat == B - 1
            ends = final_beat & self.x.payload.last
            with m.If(in_first):
                m.d.sync += [
                    pending_start.eq(now),
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
                m.d.sync += [dropping.eq(1), self.overflow.eq(1)]
            with m.If(ends):
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
        m.d.comb += push_start.eq(
            accept & (in_beat == B - 1) & self.x.payload.last & ~dropping & ~too_long
        )

        # -- schedule state ---------------------------------------------------------------------
        # OUT: head jobs (with a head) or the hand-off to the output reader (without).
        WAIT, LSTM, OUT = 0, 1, 2
        phase = Signal(2)
        run_slot = Signal()
        layer = Signal(index_shape(L))
        reverse = Signal()
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
        # Layer k writes buffer (k + flip) mod 2. Without a head the flip alternates per
        # sequence by L mod 2, so the next sequence's first layer never writes the buffer the
        # output reader is still streaming out.
        flip = Signal()
        reader = plan.y_source == "copy"

        first = h_f == 0
        last = h_f == last_h
        m_index = layer * 2 + reverse
        x_off = Mux(reverse, x_r, x_f)
        h_off = Mux(reverse, h_r, h_f)
        h_prev = Mux(reverse, h_r + DH, h_f - DH)

        def parity_of(k):
            return k[0] ^ flip

        def buffer(k):
            if plan.vector_buffers == 1:
                return 0
            return Mux(parity_of(k), plan.vector_buffer_words, 0)

        state_region = Mux(seq_init, 0, Mux(seq_parity, LDH, 2 * LDH))
        recurrent_source = Mux(first, _SRC_STATE, _SRC_VECTOR)
        recurrent_base = Mux(
            first,
            state_region + m_index * H,
            buffer(layer) + h_prev + Mux(reverse, H, 0),
        )
        top_layer = Signal(index_shape(L), init=L - 1)  # a constant the helpers can index
        top_buffer = buffer(top_layer)

        # The output reader (no head): streams the top layer's outputs from the vector memory
        # to ``copy`` while the lanes go on with the next sequence.
        r_busy = shared.output_busy
        r_parity = Signal()
        if reader:
            r_pending = Signal.like(shared.outstanding)
            r_address = Signal(index_shape(plan.vector_depth))
            r_end = Signal(index_shape(plan.vector_depth))
            depth = self._copy_queue_depth
            m.submodules.copy_queue = queue = SyncFIFOBuffered(
                width=len(self.copy.payload.as_value()), depth=depth
            )
            credits = Signal(range(depth + 1), init=depth)
            read_now = r_busy & (r_pending == 0) & (credits != 0)
            pushed = Signal()
            pushed_last = Signal()
            taken = self.copy.valid & self.copy.ready
            out_bits = len(self.copy.payload.data)
            m.d.comb += [
                shared.output_read.addr.eq(r_address),
                queue.w_en.eq(pushed),
                queue.w_data.eq(shared.output_read.data[:out_bits] | (pushed_last << out_bits)),
                self.copy.valid.eq(queue.r_rdy),
                self.copy.payload.eq(queue.r_data),
                queue.r_en.eq(self.copy.ready),
            ]
            m.d.sync += [
                credits.eq(credits - read_now + taken),
                pushed.eq(read_now),
                pushed_last.eq(r_address == r_end),
            ]
            with m.If(shared.completed & (r_pending != 0)):
                m.d.sync += r_pending.eq(r_pending - 1)
            with m.If(read_now):
                m.d.sync += r_address.eq(r_address + 1)
                with m.If(r_address == r_end):
                    m.d.sync += r_busy.eq(0)
            handoff = (phase == OUT) & ~r_busy
            with m.If(handoff):
                m.d.sync += [
                    r_busy.eq(1),
                    r_pending.eq(shared.outstanding - shared.completed),
                    r_address.eq(top_buffer + (0 if all_steps else last_h)),
                    r_end.eq(top_buffer + last_h + (DH - 1)),
                    r_parity.eq(parity_of(top_layer)),
                    phase.eq(WAIT),
                ]
        # A layer does not start on the buffer the reader still streams out.
        layer_start = (phase == LSTM) & ~reverse & first
        blocked = Signal()
        if reader:
            m.d.comb += blocked.eq(layer_start & r_busy & (parity_of(layer) == r_parity))

        m.d.comb += [
            desc.valid.eq((phase == LSTM) & ~blocked | ((phase == OUT) & has_head)),
            desc.a_distance.eq(2 * H),
            desc.b_distance.eq(2 * H),
            desc.job.parity.eq(seq_parity),
            desc.job.matrix.eq(desc.matrix),
        ]
        with m.If(phase == OUT):
            m.d.comb += [
                desc.kind.eq(_HEAD),
                desc.matrix.eq(plan.head_index if has_head else 0),
                desc.a_source.eq(_SRC_VECTOR),
                desc.a_base.eq(top_buffer + h_out),
                desc.a_lag.eq(1),
                desc.job.y_last.eq(h_out == last_h),
            ]
        with m.Else():
            m.d.comb += [
                desc.kind.eq(_LSTM),
                desc.matrix.eq(m_index),
                desc.job.vector_base.eq(buffer(layer) + h_off + Mux(reverse, H, 0)),
                desc.job.init.eq(first & seq_init),
                desc.job.final.eq(last),
                desc.job.emit_state.eq(last & seq_read),
            ]
            with m.If(layer == 0):
                m.d.comb += [
                    desc.a_source.eq(_SRC_X),
                    desc.a_base.eq(Mux(run_slot, slot_words, 0) + x_off),
                    desc.a_lag.eq(0),
                    desc.b_source.eq(recurrent_source),
                    desc.b_base.eq(recurrent_base),
                ]
            with m.Else():
                m.d.comb += [
                    desc.a_source.eq(recurrent_source),
                    desc.a_base.eq(recurrent_base),
                    desc.a_lag.eq(1),
                    desc.b_source.eq(_SRC_VECTOR),
                    desc.b_base.eq(buffer(layer - 1) + h_off),
                ]

        # -- transitions --------------------------------------------------------------------------
        with m.If(phase == WAIT):
            with m.If(slot_full[run_slot]):
                m.d.sync += [
                    phase.eq(LSTM),
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
        with m.If(job_end & (phase == LSTM)):
            with m.If(~reverse):
                m.d.sync += reverse.eq(1)
            with m.Else():
                m.d.sync += reverse.eq(0)
                with m.If(last):
                    m.d.sync += [x_f.eq(0), h_f.eq(0), x_r.eq(last_x), h_r.eq(last_h)]
                    with m.If(layer == 0):
                        m.d.sync += [slot_full[run_slot].eq(0), run_slot.eq(~run_slot)]
                    with m.If(layer == L - 1):
                        m.d.sync += [phase.eq(OUT), h_out.eq(0 if all_steps else last_h)]
                    with m.Else():
                        m.d.sync += layer.eq(layer + 1)
                with m.Else():
                    m.d.sync += [
                        x_f.eq(x_f + B),
                        h_f.eq(h_f + DH),
                        x_r.eq(x_r - B),
                        h_r.eq(h_r - DH),
                    ]
        with m.If(job_end & (phase == OUT)):
            with m.If(h_out == last_h):
                m.d.sync += phase.eq(WAIT)
            with m.Else():
                m.d.sync += h_out.eq(h_out + DH)
