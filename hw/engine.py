"""The engine (a whole ``nn.LSTM`` plus head on one set of lanes) and the top ``lstm_top``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .attention import AttentionResources, AttentionUnit, attention_cycles
from .banks import BankPacking, bank_packing
from .cell import GateCellPipeline, output_layout, state_layout
from .config import index_shape
from .external import WeightFetcher, axi_params, check_external, external_ports, weight_image
from .gru_cell import GruCellPipeline
from .head import HeadOutput
from .interface import (
    AXI_MEMBERS,
    SATURATION_COUNTER_WIDTH,
    Control,
    Direction,
    SaturationKind,
    Status,
    TopInterface,
    cell_extra_stages,
)
from .memory import WeightMemory, write_layout
from .mvu import MatrixVectorUnit
from .pipeline import delay
from .plan import EnginePlan
from .projection import ProjectionOutput
from .sequencer import CYCLE_COUNTER_WIDTH, Sequencer, input_layout
from .wires import connect_members

__all__ = [
    "LstmEngine",
    "LstmTop",
    "axi_stream_signature",
    "init_layout",
    "saturation_counters_layout",
    "weight_load_layout",
]


def attention_buffer_steps(plan: EnginePlan) -> int:
    """Steps of ``h_t`` and ``u_t`` buffered in front of the attention unit: enough for the
    lanes to go on with the next sequence while the unit ends one of ``max_seq_len`` steps
    (its ``per_sequence`` cycles over the lanes' bound per step, the score job included),
    plus one; at most ``max_seq_len``."""
    ad = plan.model.attention_datapath()
    a, T = plan.attention, plan.attention_steps
    end = attention_cycles(
        a.features,
        a.attention_size,
        plan.attention_head.out_features,
        T,
        exp_width=ad.formats.exp.width,
        recip_bits=ad.recip_bits,
        max_steps=T,
    )["per_sequence"]
    step = plan.step_bound() + plan.head_matrix.bound
    return min(T, -(-end // step) + 1)


def _attention_arguments(plan: EnginePlan) -> dict:
    return {
        "pooling": plan.attention,
        "head": plan.attention_head,
        "rounding": plan.model.rounding,
        "overflow": plan.model.overflow,
        "max_steps": plan.attention_steps,
    }


def attention_unit(plan: EnginePlan) -> AttentionUnit:
    """The :class:`AttentionUnit` of a plan with attention pooling."""
    return AttentionUnit(**_attention_arguments(plan))


def attention_resources(plan: EnginePlan) -> AttentionResources:
    """What :func:`attention_unit` builds the unit from (its memories, products, tables),
    for the resource estimate."""
    return AttentionResources(**_attention_arguments(plan))


def _buffered_stream(m, name: str, source, sink, depth: int):
    """``source`` into ``sink`` through a FIFO of ``depth`` payloads; returns the FIFO."""
    width = Shape.cast(source.payload.shape()).width
    m.submodules[name] = fifo = SyncFIFOBuffered(width=width, depth=depth)
    m.d.comb += [
        fifo.w_stream.payload.eq(source.payload),
        fifo.w_stream.valid.eq(source.valid),
        source.ready.eq(fifo.w_stream.ready),
        sink.payload.eq(fifo.r_stream.payload),
        sink.valid.eq(fifo.r_stream.valid),
        fifo.r_stream.ready.eq(sink.ready),
    ]
    return fifo


def init_layout(plan: EnginePlan) -> data.StructLayout:
    """A beat of the initial-state load: ``h0`` then ``c0`` values (a GRU: ``h0`` only),
    ``last`` ends the load."""
    width = max(plan.state_shape.width, plan.cell_shape.width)
    return data.StructLayout({"data": signed(width), "last": unsigned(1)})


def weight_load_layout(plan: EnginePlan) -> data.StructLayout:
    """A beat of the weight load: one word (:func:`~lstm_fpga.hw.memory.write_layout`) and
    ``last`` (ends the load)."""
    return data.StructLayout({"word": write_layout(plan.images), "last": unsigned(1)})


def saturation_counters_layout() -> data.StructLayout:
    """Saturation counters per tensor kind (the reference's ``SaturationCounts``)."""
    return data.StructLayout(
        {kind.value: unsigned(SATURATION_COUNTER_WIDTH) for kind in SaturationKind}
    )


def _check_announce_leads(seq, *producers) -> None:
    """Every producer of ``h`` rows announces them :attr:`Sequencer.ANNOUNCE_LEAD` cycles
    ahead of its write: the sequencer registers an announcement once and its scoreboards
    count a row complete from it, so a shorter lead lets reads of the row in before it is
    written (a wrong value, not a stall)."""
    for producer in producers:
        if producer is not None and producer.announce_lead != seq.ANNOUNCE_LEAD:
            raise ValueError(
                f"{type(producer).__name__} announces {producer.announce_lead} cycles ahead; "
                f"the sequencer needs {seq.ANNOUNCE_LEAD}"
            )


class LstmEngine(wiring.Component):
    """A whole quantised ``nn.LSTM`` or ``nn.GRU`` (and Linear head) with streaming ports
    (Amaranth streams).

    The cell pipeline after the lanes is the plan's (:attr:`EnginePlan.cell_type
    <lstm_fpga.hw.plan.EnginePlan.cell_type>`): :class:`~lstm_fpga.hw.cell.GateCellPipeline`
    for an LSTM, :class:`~lstm_fpga.hw.gru_cell.GruCellPipeline` for a GRU (whose state is
    ``h`` only: ``state`` beats carry ``h_n``, ``init`` loads ``h0`` only).

    ``verilog_banks`` (``None``, ``"inline"`` or ``"readmemh"``) makes the weight banks
    instances of the Verilog modules of :func:`~lstm_fpga.hw.memory.weight_bank_verilog`
    (for Verilog output; the Amaranth simulator needs the default ``None``).

    Ports
    -----
    x : In, stream of ``{data, last}``
        ``x_t`` elements ``0 .. I-1`` per step, steps in order; ``last`` on the final element
        of a sequence's final step ends it.
    y : Out, stream of ``{data, last}``
        Output vectors: ``h_t`` of the top layer (``D*H`` elements, forward then reverse) or
        the head's ``O`` outputs; every step (``output="all"``) or the final one (``"last"``);
        ``last`` on the sequence's final element.
    state : Out, stream of :func:`~lstm_fpga.hw.cell.state_layout`
        ``(h_n[k][u], c_n[k][u])`` for ``k = 0 .. L*D-1``, ``u = 0 .. H-1`` after each
        sequence started with ``read_state``.
    init : In, stream of :func:`init_layout`
        ``h0`` then ``c0`` (``L*D*H`` values each, nn.LSTM order; interleaved: ``h0`` of the
        ``B`` sequences, then their ``c0``); accepted while idle.
    weight_write : In, stream of :func:`weight_load_layout`
        Weight and bias words (address map of :meth:`EnginePlan.bank_images`); accepted while
        idle, so they take effect from the next sequence.
    carry_state, read_state : In
        Sampled with a sequence's first ``x`` beat: start from the previous sequence's final
        state instead of ``(h0, c0)``; emit the final state on ``state``.
    clear_status : In
        Clears ``overflow`` and the saturation counters.
    m_axi_ar*, m_axi_r*, weights_read_error
        With ``HardwareConfig(weights="external")`` only: the AXI4 read master of
        :class:`~lstm_fpga.hw.external.WeightFetcher` that streams the weight image (the
        lanes' words, :func:`~lstm_fpga.hw.external.weight_image`); the walk stalls while its
        FIFO is empty. The weight banks are not built; ``weight_write`` then loads biases only
        (its weight words are dropped: the weights live in the external memory).
    cycles, busy, started, done, overflow, saturations : Out
        Status (see ``docs/hardware.md``).
    """

    def __init__(self, plan: EnginePlan, *, verilog_banks: str | None = None):
        self._plan = plan
        self._verilog_banks = verilog_banks
        self._images = plan.images
        self._packing = bank_packing(plan)
        self._external = plan.config.weights == "external"
        if self._external:
            check_external(plan)
        axi = {name: (Out if out else In)(width) for name, out, width in external_ports(plan)}
        super().__init__(
            {
                **axi,
                "x": In(stream.Signature(input_layout(plan))),
                "y": Out(stream.Signature(output_layout(plan.y_shape))),
                "state": Out(stream.Signature(state_layout(plan))),
                "init": In(stream.Signature(init_layout(plan))),
                "weight_write": In(stream.Signature(weight_load_layout(plan))),
                **{control.value: In(1) for control in Control},
                Status.CYCLES.value: Out(CYCLE_COUNTER_WIDTH),
                **{status.value: Out(1) for status in Status if status is not Status.CYCLES},
                "saturations": Out(saturation_counters_layout()),
            }
        )

    @property
    def plan(self) -> EnginePlan:
        return self._plan

    @property
    def images(self):
        return self._images

    @property
    def packing(self) -> BankPacking:
        """How the lanes' weight banks share memories (:func:`bank_packing`)."""
        return self._packing

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        m.submodules.sequencer = seq = Sequencer(plan)
        m.submodules.mvu = mvu = MatrixVectorUnit(plan)
        # The banks are read so that their words reach the lanes with the elements of their
        # beat: the address waits for the element read and the broadcast.
        weight_delay = seq.COLUMN_LATENCY + mvu.weight_lag - WeightMemory.READ_LATENCY
        # With two or more address levels (a broadcast tree in the lanes), one moves behind
        # the read: a register between the block RAM and the lanes' wide spread
        # (WeightMemory's contract), the same latency, so the same cycles.
        data_delay = 1 if weight_delay >= 2 else 0
        m.submodules.weights = mem = WeightMemory(
            self._images,
            packing=self.packing,
            verilog_banks=self._verilog_banks,
            address_delay=weight_delay - data_delay,
            bias_delay=seq.COLUMN_LATENCY + mvu.bias_lag - WeightMemory.READ_LATENCY,
            data_delay=data_delay,
            weight_banks=not self._external,
        )
        if self._external:
            self._fetch_weights(m, seq, mvu, weight_delay + WeightMemory.READ_LATENCY)
        gru = plan.is_gru
        if gru:
            cell = GruCellPipeline(plan, announce=seq.ANNOUNCE_LEAD)
        else:
            cell = GateCellPipeline(
                plan, announce=seq.ANNOUNCE_LEAD, extra_stages=cell_extra_stages(plan)
            )
        m.submodules.cell = cell
        head = None
        if plan.head is not None:
            m.submodules.head = head = HeadOutput(plan)
        proj = None
        if plan.projected:
            m.submodules.projection = proj = ProjectionOutput(plan, announce=seq.ANNOUNCE_LEAD)

        wiring.connect(m, wiring.flipped(self.x), seq.x)
        wiring.connect(m, seq.column, mvu.column)
        _check_announce_leads(seq, cell, proj)
        if proj is None:
            wiring.connect(m, cell.hidden_write, seq.hidden_write)
            wiring.connect(m, cell.announce, seq.announce)
            wiring.connect(m, cell.state, wiring.flipped(self.state))
        else:
            self._merge_projection(m, seq, cell, proj)
        ports = wiring.flipped(self)  # seen from inside: the inputs drive, the outputs are driven
        connect_members(m, seq, mem, "weight_address", "bias_address")
        connect_members(m, mem, mvu, "biases")
        if plan.is_gru:  # (the n rows' b_hn)
            connect_members(m, mem, mvu, "biases_hn")
        if not self._external:
            connect_members(m, mem, mvu, "weights")
        connect_members(m, mvu, seq, "drain_free", "loaded")
        connect_members(m, ports, seq, "carry_state", "read_state", "clear_status")

        # Units: the head's go to the head output stage, the others to the cell pipeline.
        units = mvu.units
        to_head = units.payload.job.matrix == plan.head_index if head is not None else 0
        if proj is not None:
            # (an LSTMP: the projections' units to the projection output stage)
            to_proj = units.payload.job.matrix >= plan.projection_index(0)
            m.d.comb += [
                cell.units.payload.eq(units.payload),
                cell.units.valid.eq(units.valid & ~to_head & ~to_proj),
                proj.units.payload.eq(units.payload),
                proj.units.valid.eq(units.valid & to_proj),
                units.ready.eq(
                    Mux(
                        to_proj,
                        proj.units.ready,
                        Mux(to_head, head.units.ready, cell.units.ready)
                        if head is not None
                        else cell.units.ready,
                    )
                ),
            ]
            if head is not None:
                m.d.comb += [
                    head.units.payload.eq(units.payload),
                    head.units.valid.eq(units.valid & to_head),
                ]
        elif head is not None:
            m.d.comb += [
                cell.units.payload.eq(units.payload),
                cell.units.valid.eq(units.valid & ~to_head),
            ]
            m.d.comb += [
                head.units.payload.eq(units.payload),
                head.units.valid.eq(units.valid & to_head),
                units.ready.eq(Mux(to_head, head.units.ready, cell.units.ready)),
            ]
        else:
            m.d.comb += [
                cell.units.payload.eq(units.payload),
                cell.units.valid.eq(units.valid & ~to_head),
                units.ready.eq(cell.units.ready),
            ]

        # y: from the head, the cell pipeline (streaming h_t) or the sequencer's copy queue.
        hidden = cell.hidden if proj is None else proj.y
        source = {
            "head": head.y if head is not None else None,
            "cell": hidden,
            "copy": seq.copy,
        }[plan.y_source]
        pool = None
        if plan.attention is not None:
            # Attention pooling and its head after the lanes: the top layer's h_t and the score
            # job's u_t (the lanes' head job) of every step into the unit, the head's outputs
            # once per sequence onto y.
            m.submodules.attention = pool = attention_unit(plan)
            # (buffered: the h_t the output reader copies out of the sequence buffer) Through
            # FIFOs of a few steps: the lanes go on with the next sequence while the unit
            # ends one (softmax, context, head), until they fill.
            steps = attention_buffer_steps(plan)
            h_source = seq.copy if plan.copies_outputs else hidden
            buffers = [
                _buffered_stream(m, "h_buffer", h_source, pool.h, steps * plan.attention.features),
                _buffered_stream(
                    m, "u_buffer", head.y, pool.u, steps * plan.attention.attention_size
                ),
            ]
            source = pool.y
        wiring.connect(m, source, wiring.flipped(self.y))
        y_done = self.y.valid & self.y.ready & self.y.payload.last
        m.d.comb += [seq.sequence_done.eq(y_done), self.done.eq(y_done)]

        # Loads: accepted only while nothing runs; a sequence does not start while one is open.
        # ``quiet`` is registered (the loads' ready and write enables fan out from it): it is
        # the idle state of two cycles before (``idle``, a register: the unit count's add and
        # compare and the pipelines' valid bits end there), minus a sequence starting in
        # either of the two cycles since, the one way from idle to running (a start is held
        # while a load is offered or open). (From the idle state of the previous cycle, the
        # count and the ``quiet`` logic shared a cycle: 110.3 MHz on one seed at I=H=64 P=64.)
        quiet = Signal()
        idle = Signal()
        started_before = Signal()
        empty = cell.empty & ~self.state.valid & (head.empty if head is not None else 1)
        if proj is not None:
            empty = empty & proj.empty
        if pool is not None:
            empty = empty & pool.empty
            for fifo in buffers:
                empty = empty & (fifo.level == 0)
        m.d.sync += [
            idle.eq(~seq.busy & empty),
            started_before.eq(seq.started),
            quiet.eq(idle & ~started_before & ~seq.started),
        ]
        init_open = Signal()
        weights_open = Signal()
        init_taken = self.init.valid & self.init.ready
        weights_taken = self.weight_write.valid & self.weight_write.ready
        init_open_next = Mux(init_taken, ~self.init.payload.last, init_open)
        weights_open_next = Mux(weights_taken, ~self.weight_write.payload.last, weights_open)
        m.d.sync += [init_open.eq(init_open_next), weights_open.eq(weights_open_next)]
        # A start is held while a load is offered, open, or its writes are in flight (a
        # weight write lands some cycles after its beat, WeightMemory.write_latency). The
        # sequencer gets the offers as they come and the rest a cycle ahead, which it
        # registers: the held start is a register and the two ``valid``s, not a chain
        # from the open flags (docs/hardware.md, "Timing").
        m.d.comb += [
            seq.load_offered.eq(self.init.valid | self.weight_write.valid),
            seq.load_open_next.eq(init_open_next | weights_open_next | mem.write_pending_next),
        ]
        m.d.comb += [
            self.init.ready.eq(quiet),
            self.weight_write.ready.eq(quiet),
            mem.write.payload.eq(self.weight_write.payload.word),
            mem.write.valid.eq(weights_taken),
        ]
        words = plan.state_group_words  # h0 of the B interleaved sequences, then their c0
        # h0 then c0 (an LSTM); h0 only (a GRU: the cell pipeline keeps its own copy).
        values = words if gru else 2 * words
        h_words = words
        h_address = None
        if plan.projected:  # an LSTMP: R words of h0 per layer direction, then c0 (H each)
            R = plan.proj_size
            h_words = plan.interleave * plan.num_directions_total * R
            values = h_words + words
        index = Signal(index_shape(values))
        is_h = index < h_words
        if plan.projected:
            # h0[k][r] at k * H + r of the state memory: a counter that skips H - R words.
            h_address = Signal(index_shape(words))
            h_column = Signal(range(max(2, R)))
            with m.If(init_taken & is_h):
                with m.If(h_column == R - 1):
                    m.d.sync += [
                        h_column.eq(0),
                        h_address.eq(h_address + plan.hidden_size - R + 1),
                    ]
                with m.Else():
                    m.d.sync += [h_column.eq(h_column + 1), h_address.eq(h_address + 1)]
            with m.If(init_taken & (self.init.payload.last | (index == values - 1))):
                m.d.sync += [h_column.eq(0), h_address.eq(0)]
        m.d.comb += [
            seq.h0_write.payload.address.eq(index if h_address is None else h_address),
            seq.h0_write.payload.value.eq(self.init.payload.data),
            seq.h0_write.valid.eq(init_taken & is_h),
        ]
        if gru:
            m.d.comb += [
                cell.h0_write.payload.address.eq(index),
                cell.h0_write.payload.value.eq(self.init.payload.data),
                cell.h0_write.valid.eq(init_taken),
            ]
        else:
            m.d.comb += [
                cell.c0_write.payload.address.eq(index - h_words),
                cell.c0_write.payload.value.eq(self.init.payload.data),
                cell.c0_write.valid.eq(init_taken & ~is_h),
            ]
        with m.If(init_taken):
            with m.If(self.init.payload.last | (index == values - 1)):
                m.d.sync += index.eq(0)
            with m.Else():
                m.d.sync += index.eq(index + 1)

        # Status.
        if pool is None:
            connect_members(m, seq, ports, "cycles", "started", "overflow")
        else:  # (a sequence the attention unit drops sets overflow too, until clear_status)
            connect_members(m, seq, ports, "cycles", "started")
            dropped = Signal()
            with m.If(self.clear_status):
                m.d.sync += dropped.eq(0)
            with m.Elif(pool.overflow):
                m.d.sync += dropped.eq(1)
            m.d.comb += self.overflow.eq(seq.overflow | dropped)
        m.d.comb += self.busy.eq(seq.busy | ~empty)
        counters = self.saturations
        hidden = cell.saturations.hidden
        if proj is not None:  # (an LSTMP: the cell output's and the projection's)
            hidden = hidden + proj.saturated
        increments = {
            "preact": cell.saturations.preact,
            "cell": cell.saturations.cell,
            "hidden": hidden,
            "head": head.saturated if head is not None else 0,
            "attention": 0,
        }
        if pool is not None:
            # The head's clamps (the unit's); every attention pooling clamp in one counter:
            # the score job's output stage clamps u_t (attention.preact), the unit the score,
            # alpha and the context (docs/attention.md, "Counted saturations").
            increments["head"] = pool.saturated.head
            increments["attention"] = (
                head.saturated
                + pool.saturated.score
                + pool.saturated.alpha
                + pool.saturated.context
            )
        for kind in SaturationKind:
            counter, increment = getattr(counters, kind.value), increments[kind.value]
            with m.If(self.clear_status):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + increment)
        return m

    def _merge_projection(self, m, seq, cell, proj) -> None:
        """An LSTMP: the cell pipeline's writes (``m_t``) and the projection's (``h_t``) into
        the sequencer's one ``hidden_write`` and ``announce``; their ``state`` beats (``c_n``
        from the cell, ``h_n`` from the projection) onto ``state``.

        The two never write in the same cycle: a projection job's rows need every ``m_t``
        of its gate job, and a gate job's units every ``h`` row they read, so the producers
        take turns, and the cell's first write after a projection's last comes at least its
        :attr:`~lstm_fpga.hw.cell.GateCellPipeline.LATENCY` after the projection took its
        last unit (longer than the projection stage's latency)."""
        for port in ("hidden_write", "announce"):
            mine, theirs, target = getattr(proj, port), getattr(cell, port), getattr(seq, port)
            m.d.comb += [
                target.valid.eq(mine.valid | theirs.valid),
                target.payload.eq(Mux(mine.valid, mine.payload, theirs.payload)),
            ]
        # state: per layer direction H beats of the cell (c_n[k][u], h 0), then R of the
        # projection (h_n[k][r], c 0), in turns (each layer direction's cell units come
        # before its projection's rows, the projection's before the next one's cell units).
        plan = self._plan
        H, R = plan.hidden_size, plan.proj_size
        state = self.state
        from_proj = Signal()  # whose turn
        count = Signal(range(max(H, R)))
        taken = state.valid & state.ready
        turn_end = count == Mux(from_proj, R - 1, H - 1)
        with m.If(taken):
            m.d.sync += count.eq(Mux(turn_end, 0, count + 1))
            with m.If(turn_end):
                m.d.sync += from_proj.eq(~from_proj)
        m.d.comb += [
            state.valid.eq(Mux(from_proj, proj.state.valid, cell.state.valid)),
            state.payload.c.eq(Mux(from_proj, 0, cell.state.payload.c)),
            state.payload.h.eq(Mux(from_proj, proj.state.payload.h, 0)),
            state.payload.last.eq(from_proj & proj.state.payload.last),
            cell.state.ready.eq(state.ready & ~from_proj),
            proj.state.ready.eq(state.ready & from_proj),
        ]

    def _fetch_weights(self, m, seq, mvu, latency: int) -> None:
        """The weights from the AXI4 read master: the walker issues a column only while a
        word is ready and takes it with the issue; the word reaches the lanes ``latency``
        cycles later, when the banks' word of that column would have."""
        plan = self._plan
        params = axi_params(plan)
        image = weight_image(plan, data_width=params.data_width)
        m.submodules.fetcher = fetcher = WeightFetcher(image, params)
        for name, out, _width in external_ports(plan):
            if name == "weights_read_error":
                m.d.comb += self.weights_read_error.eq(fetcher.read_error)
            elif out:
                m.d.comb += getattr(self, name).eq(getattr(fetcher, name))
            else:
                m.d.comb += getattr(fetcher, name).eq(getattr(self, name))
        m.d.comb += [
            seq.weights_ready.eq(fetcher.word.valid),
            fetcher.word.ready.eq(seq.weight_issue),
        ]
        word = delay(m, fetcher.word.payload, latency, "fetched_word")
        W = plan.weight_shape.width
        for p in range(plan.lanes):
            m.d.comb += mvu.weights[p].eq(word[p * W : (p + 1) * W])


def axi_stream_signature(shape) -> wiring.Signature:
    """AXI4-Stream-style source: ``tdata`` (``shape``), ``tvalid``, ``tlast`` out, ``tready``
    in (member names :data:`~lstm_fpga.hw.interface.AXI_MEMBERS`)."""
    names = AXI_MEMBERS
    return wiring.Signature(
        {names.data: Out(shape), names.valid: Out(1), names.ready: In(1), names.last: Out(1)}
    )


def _flow(direction: Direction):
    return In if direction is Direction.IN else Out


class LstmTop(wiring.Component):
    """The generated top module ``lstm_top``: :class:`LstmEngine` with AXI4-Stream names.

    Its ports are the table of :class:`~lstm_fpga.hw.interface.TopInterface` (``interface``):
    streams ``x`` (in), ``y`` (out), ``state`` (out: ``h`` in the low bits, ``c`` above),
    ``init`` (in), ``w`` (in: a weight word); the control inputs, the status outputs and the
    saturation counters; ``clk``, ``rst`` (synchronous, active high). See
    ``docs/hardware.md``.
    """

    def __init__(self, plan: EnginePlan, *, verilog_banks: str | None = None):
        interface = TopInterface(plan)
        self._interface = interface
        self._engine = LstmEngine(plan, verilog_banks=verilog_banks)
        ports = {}
        for s in interface.streams:
            shape = Shape(s.width, signed=s.signed)
            ports[s.name] = _flow(s.direction)(axi_stream_signature(shape))
        for port in interface.signals:  # clock and reset are Amaranth's own
            ports[port.name] = _flow(port.direction)(port.width)
        super().__init__(ports)

    @property
    def engine(self) -> LstmEngine:
        return self._engine

    @property
    def interface(self) -> TopInterface:
        return self._interface

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        iface = self._interface
        streams_in = ((iface.x, engine.x, "data"), (iface.init, engine.init, "data"))
        for s, port, field in streams_in:
            axi = getattr(self, s.name)
            m.d.comb += [
                port.payload[field].eq(getattr(axi, AXI_MEMBERS.data)),
                port.payload.last.eq(getattr(axi, AXI_MEMBERS.last)),
                port.valid.eq(getattr(axi, AXI_MEMBERS.valid)),
                getattr(axi, AXI_MEMBERS.ready).eq(port.ready),
            ]
        w, y, state = (getattr(self, s.name) for s in (iface.w, iface.y, iface.state))
        names = AXI_MEMBERS
        m.d.comb += [
            engine.weight_write.payload.word.eq(getattr(w, names.data)),
            engine.weight_write.payload.last.eq(getattr(w, names.last)),
            engine.weight_write.valid.eq(getattr(w, names.valid)),
            getattr(w, names.ready).eq(engine.weight_write.ready),
            getattr(y, names.data).eq(engine.y.payload.data),
            getattr(y, names.last).eq(engine.y.payload.last),
            getattr(y, names.valid).eq(engine.y.valid),
            engine.y.ready.eq(getattr(y, names.ready)),
            getattr(state, names.data).eq(engine.state.payload.as_value()[: iface.state.width]),
            getattr(state, names.last).eq(engine.state.payload.last),
            getattr(state, names.valid).eq(engine.state.valid),
            engine.state.ready.eq(getattr(state, names.ready)),
        ]
        for control in Control:
            m.d.comb += getattr(engine, control.value).eq(getattr(self, control.value))
        for status in Status:
            m.d.comb += getattr(self, status.value).eq(getattr(engine, status.value))
        for kind in SaturationKind:
            m.d.comb += getattr(self, kind.port).eq(getattr(engine.saturations, kind.value))
        for name, out, _width in external_ports(engine.plan):
            if out:
                m.d.comb += getattr(self, name).eq(getattr(engine, name))
            else:
                m.d.comb += getattr(engine, name).eq(getattr(self, name))
        return m
