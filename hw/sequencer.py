"""Sequencer: input buffering, the (pass, column) walk, scoreboards and sequence bookkeeping."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.numerics import LstmDatapath
from .cell import hidden_write_layout
from .config import PassGeometry, index_shape
from .fixed import format_shape
from .mvu import column_layout

__all__ = ["CYCLE_COUNTER_WIDTH", "MAX_SEQUENCES_IN_FLIGHT", "Sequencer", "input_layout"]

#: Width of the ``cycles`` counter.
CYCLE_COUNTER_WIDTH = 32
#: Sequences that may have started (first input beat) but not finished (last output beat).
MAX_SEQUENCES_IN_FLIGHT = 4


def input_layout(dp: LstmDatapath, elements: int = 1) -> data.StructLayout:
    """An input beat: ``data`` is one element of ``x_t`` (an array of ``elements`` elements
    when ``elements > 1``); ``last`` ends the sequence."""
    shape = format_shape(dp.formats.x)
    if elements > 1:
        shape = data.ArrayLayout(shape, elements)
    return data.StructLayout({"data": shape, "last": unsigned(1)})


class Sequencer(wiring.Component):
    """Runs time steps of one layer direction on the matrix-vector unit.

    * Buffers ``x_t`` in a two-step ring: ``x_{t+1}`` streams in while step ``t`` computes.
      With ``k = input_elements`` elements per beat a step is ``B = ceil(I/k)`` beats (the
      last one padded) and the ring is ``k`` banks of ``2 B`` words (bank ``e`` holds the
      columns ``= e mod k``). ``x`` is ready while fewer than ``2 B`` beats from the start of
      the current step are buffered (and, at a sequence start, fewer than
      :data:`MAX_SEQUENCES_IN_FLIGHT` sequences are unfinished).
    * Keeps ``h`` in a ping-pong buffer (``2 H`` words, half = step parity) written by the
      gate and cell pipeline.
    * Walks ``pass = 0 .. passes-1``, ``cycle = 0 .. span-1`` each step (see
      :class:`~lstm_fpga.hw.config.PassGeometry`), issuing one column per lane group per
      cycle: the weight-bank address ``pass * span + cycle``, the bias address ``pass`` and,
      one cycle later, the ``column`` beat with the elements of ``[x_t ; h_{t-1}]``
      (``h_{-1} = 0`` on a sequence's first step).
    * Scoreboards: column ``j < I`` waits until ``x_t[j]`` has arrived; column ``I + j`` waits
      until ``h_{t-1}[j]`` has been written, so step ``t+1``'s ``x`` columns overlap the tail
      of step ``t`` in the gate pipeline. A pass's last column waits until the drain is free.
    * Counts ``cycles`` from a sequence's first accepted input beat to its last output beat
      (``sequence_done``); ``busy`` while a sequence is unfinished.
    """

    def __init__(self, dp: LstmDatapath, geometry: PassGeometry, input_elements: int = 1):
        if input_elements < 1 or input_elements & (input_elements - 1):
            raise ValueError(f"input_elements must be a power of two, not {input_elements}")
        self._dp = dp
        self._geometry = geometry
        self._input_elements = input_elements
        g = geometry
        super().__init__(
            {
                "x": In(stream.Signature(input_layout(dp, input_elements))),
                "weight_address": Out(index_shape(g.bank_depth)),
                "bias_address": Out(index_shape(g.passes)),
                "column": Out(stream.Signature(column_layout(dp, g.groups), always_ready=True)),
                "drain_free": In(1),
                "loaded": In(1),
                "hidden_write": In(stream.Signature(hidden_write_layout(dp), always_ready=True)),
                "sequence_done": In(1),
                "cycles": Out(CYCLE_COUNTER_WIDTH),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        dp, g = self._dp, self._geometry
        I, H = g.input_size, g.hidden_size
        K, R = g.columns, g.passes

        # -- vector buffers ----------------------------------------------------------------
        k = self._input_elements
        k_bits = k.bit_length() - 1
        B = -(-I // k)  # beats per step
        x_banks = [
            Memory(shape=format_shape(dp.formats.x), depth=max(2, 2 * B), init=[]) for _ in range(k)
        ]
        for e, bank in enumerate(x_banks):
            m.submodules[f"x_bank{e}"] = bank
        m.submodules.h_buffer = h_buffer = Memory(
            shape=format_shape(dp.formats.hidden), depth=2 * H, init=[]
        )
        G, S = g.groups, g.span
        # Lane group ``grp`` reads column ``cycle * G + grp``: one read port per group.
        x_writes = [bank.write_port() for bank in x_banks]
        h_write = h_buffer.write_port()
        x_reads = [[bank.read_port() for bank in x_banks] for _ in range(G)]
        h_reads = [h_buffer.read_port() for _ in range(G)]

        # -- walk state --------------------------------------------------------------------
        cycle = Signal(index_shape(S))  # cycle within the pass
        base = Signal(range(S * G + 1))  # = cycle * G: the column of group 0
        pass_index = Signal(index_shape(R))
        address = Signal(index_shape(g.bank_depth))
        parity = Signal()
        step_first = Signal()  # latched at a step's first issue
        load_pending = Signal()
        # x_seen: x beats received counted from the start of the current step (0 .. 2B).
        # h_seen: h units written counted from the start of the previous step (0 .. 2H);
        # step -1 counts as written, hence the initial H.
        x_seen = Signal(range(2 * B + 1))
        h_seen = Signal(range(2 * H + 1), init=H)

        # Per-parity step flags written by the input side.
        x_first = Array([Signal(name=f"x_first{k}") for k in range(2)])
        x_last = Array([Signal(name=f"x_last{k}") for k in range(2)])

        # The highest column read this cycle decides both scoreboards: every x column up to it
        # must have arrived, and every h column up to it must have been written.
        top = Signal(range(K))
        m.d.comb += top.eq(Mux(base + (G - 1) < K, base + (G - 1), K - 1))
        x_ready = (x_seen << k_bits) > Mux(top < I, top, I - 1)
        h_ready = (h_seen + I) > top
        is_last_cycle = cycle == S - 1
        at_step_start = (pass_index == 0) & (cycle == 0)
        first_of_step = Mux(at_step_start, x_first[parity], step_first)
        drain_ok = ~is_last_cycle | (self.drain_free & ~load_pending)
        issue = Signal()
        advance = Signal()  # the step's final column is issued: the walk moves to step t+1
        m.d.comb += [
            issue.eq(x_ready & h_ready & drain_ok),
            advance.eq(issue & is_last_cycle & (pass_index == R - 1)),
            self.weight_address.eq(address),
            self.bias_address.eq(pass_index),
        ]
        # With several banks, remember which bank holds each group's column: its data
        # arrives a cycle later.
        x_bank_of = [Signal(k_bits, name=f"x_bank_of{grp}") for grp in range(G)] if k > 1 else []
        for grp in range(G):
            column = base + grp
            m.d.comb += h_reads[grp].addr.eq(Mux(parity, 0, H) + column - I)
            for read in x_reads[grp]:
                m.d.comb += read.addr.eq(Mux(parity, B, 0) + (column >> k_bits))
            if k > 1:
                m.d.sync += x_bank_of[grp].eq(column[:k_bits])
        with m.If(issue):
            with m.If(at_step_start):
                m.d.sync += step_first.eq(x_first[parity])
            with m.If(is_last_cycle):
                m.d.sync += [cycle.eq(0), base.eq(0)]
                with m.If(pass_index == R - 1):
                    m.d.sync += [pass_index.eq(0), address.eq(0), parity.eq(~parity)]
                with m.Else():
                    m.d.sync += [pass_index.eq(pass_index + 1), address.eq(address + 1)]
            with m.Else():
                m.d.sync += [cycle.eq(cycle + 1), base.eq(base + G), address.eq(address + 1)]
        with m.If(self.loaded):
            m.d.sync += load_pending.eq(0)
        with m.If(issue & is_last_cycle):
            m.d.sync += load_pending.eq(1)

        # The column beat, aligned with the memories' read data (1 cycle after the address).
        beat = self.column.payload
        beat_meta = Signal(column_layout(dp, G))
        beyond = Signal(G)  # columns past I + H (the padding of the last cycle)
        m.d.sync += [
            self.column.valid.eq(issue),
            beat_meta.first.eq(cycle == 0),
            beat_meta.last.eq(is_last_cycle),
            beat_meta.final_pass.eq(pass_index == R - 1),
            beat_meta.step_first.eq(first_of_step),
            beat_meta.step_last.eq(x_last[parity]),
            beat_meta.parity.eq(parity),
        ]
        for grp in range(G):
            m.d.sync += [
                beat_meta.segments[grp].eq(base + grp >= I),
                beyond[grp].eq(base + grp >= K),
            ]
        m.d.comb += beat.eq(beat_meta)
        for grp in range(G):
            h_element = Mux(beat_meta.step_first, 0, h_reads[grp].data)
            x_element = x_reads[grp][0].data
            if k > 1:
                x_element = Array(read.data for read in x_reads[grp])[x_bank_of[grp]]
            element = Mux(beat_meta.segments[grp], h_element, x_element)
            m.d.comb += beat.elements[grp].eq(Mux(beyond[grp], 0, element))

        # -- input side --------------------------------------------------------------------
        in_beat = Signal(index_shape(B))
        in_parity = Signal()
        in_first = Signal(init=1)  # the next beat starts a sequence
        in_flight = Signal(range(MAX_SEQUENCES_IN_FLIGHT + 1))
        seq_in = Signal(range(MAX_SEQUENCES_IN_FLIGHT))
        seq_out = Signal(range(MAX_SEQUENCES_IN_FLIGHT))
        now = Signal(CYCLE_COUNTER_WIDTH)
        starts = Array(
            [Signal(CYCLE_COUNTER_WIDTH, name=f"start{k}") for k in range(MAX_SEQUENCES_IN_FLIGHT)]
        )
        room = ~in_first | (in_flight < MAX_SEQUENCES_IN_FLIGHT)
        accept = Signal()
        started = Signal()
        elements = [self.x.payload.data] if k == 1 else list(self.x.payload.data)
        m.d.comb += [
            self.x.ready.eq((x_seen < 2 * B) & room),
            accept.eq(self.x.valid & self.x.ready),
            started.eq(accept & in_first),
        ]
        for write, element in zip(x_writes, elements, strict=True):
            m.d.comb += [
                write.addr.eq(Mux(in_parity, B, 0) + in_beat),
                write.data.eq(element),
                write.en.eq(accept),
            ]
        m.d.sync += now.eq(now + 1)
        with m.If(accept):
            final_beat = in_beat == B - 1
            with m.If(final_beat):
                m.d.sync += [in_beat.eq(0), in_parity.eq(~in_parity)]
            with m.Else():
                m.d.sync += in_beat.eq(in_beat + 1)
            with m.If(in_beat == 0):
                m.d.sync += [x_first[in_parity].eq(in_first), in_first.eq(0)]
            with m.If((in_beat == 0) | final_beat):
                m.d.sync += x_last[in_parity].eq(final_beat & self.x.payload.last)
            with m.If(final_beat & self.x.payload.last):
                m.d.sync += in_first.eq(1)
            with m.If(in_first):
                m.d.sync += [starts[seq_in].eq(now), seq_in.eq(seq_in + 1)]
        m.d.sync += [
            x_seen.eq(x_seen + accept - Mux(advance, B, 0)),
            h_seen.eq(h_seen + self.hidden_write.valid - Mux(advance, H, 0)),
            in_flight.eq(in_flight + started - self.sequence_done),
        ]
        with m.If(self.sequence_done):
            m.d.sync += [self.cycles.eq(now - starts[seq_out]), seq_out.eq(seq_out + 1)]
        m.d.comb += self.busy.eq(in_flight != 0)

        # -- h writes from the gate and cell pipeline ----------------------------------------
        write = self.hidden_write.payload
        m.d.comb += [
            h_write.addr.eq(Mux(write.parity, H, 0) + write.unit),
            h_write.data.eq(write.value),
            h_write.en.eq(self.hidden_write.valid),
        ]
        return m
