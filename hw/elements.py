"""The element memories the lanes read their vectors from: ``x``, every layer's ``h``, states."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .cell import hidden_announce_layout, hidden_write_layout
from .config import index_shape
from .jobs import Source, h0_write_layout, state_memory_words, x_buffer_words, x_write_layout
from .pipeline import delay
from .plan import EnginePlan
from .walk import read_layout

__all__ = ["ElementStore"]


class ElementStore(wiring.Component):
    """``x`` buffer (``input_elements`` banks), vector memory and state memory, with one read
    per lane group per cycle.

    Ports
    -----
    x_write : In, :func:`x_write_layout`
        An input beat into the ``x`` banks.
    hidden_write : In, stream (always ready) of :func:`~lstm_fpga.hw.cell.hidden_write_layout`
        Every finished ``h_t[u]`` into the vector memory (with ``final`` also into the state
        memory).
    announce : In, stream (always ready) of :func:`~lstm_fpga.hw.cell.hidden_announce_layout`
        Every ``hidden_write`` :attr:`ANNOUNCE` cycles before it comes: a read issued from the
        cycle after the announcement on returns the announced value (forwarded while it is
        not in the memory yet), so the scoreboard may count the unit complete from then on.
    h0_write : In, stream (always ready) of :func:`h0_write_layout`
        ``h0`` into the state memory (takes precedence over a final-state write).
    reads : In, array of :func:`~lstm_fpga.hw.walk.read_layout` per lane group
        Read requests; ``elements[g]`` is the element (0 when ``beyond``).
    elements : Out, array of ``element_shape`` per lane group
        :attr:`LATENCY` cycles after the request.
    output_address : In; output_data : Out
        A further read port of the vector memory (latency 1) for the output reader.
    """

    #: Cycles from a read request to its element: the memory read, its output register, the
    #: element select (3:1 source, forwarding and zero multiplexer) register.
    LATENCY = 3
    #: Cycles between a write's ``announce`` and its ``hidden_write``. A read issued in cycle
    #: ``r`` sees the memory as written up to cycle ``r - 1``; the writes of cycles ``r ..
    #: r + LATENCY - 1`` are forwarded (the last one, in the select stage, straight from
    #: ``hidden_write``), so a read may follow the announcement by one cycle.
    ANNOUNCE = LATENCY

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        super().__init__(
            {
                "x_write": In(x_write_layout(plan)),
                "hidden_write": In(stream.Signature(hidden_write_layout(plan), always_ready=True)),
                "announce": In(stream.Signature(hidden_announce_layout(plan), always_ready=True)),
                "h0_write": In(stream.Signature(h0_write_layout(plan), always_ready=True)),
                "reads": In(data.ArrayLayout(read_layout(plan), plan.groups)),
                "elements": Out(data.ArrayLayout(plan.element_shape, plan.groups)),
                "output_address": In(index_shape(plan.vector_depth)),
                "output_data": Out(plan.state_shape),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        k_elems = plan.input_elements
        # ``no_rw_check`` on all three memories: no read meets a write of the same word in the
        # same cycle, so synthesis need not build the bypass that returns the old word (a LUT
        # between the block RAM and its output register, which would keep that register in
        # the fabric). ``x``: a beat is read from the cycle after it counts in ``x_beats``
        # (the cycle after its write), and a ring slot is written again only after its step's
        # layer-0 job has ended (``x_beats`` drops a cycle later); vectors and the final
        # state: a read in the cycle of the write is forwarded (below); ``h0``: written while
        # the engine is idle.
        unchecked = {"no_rw_check": 1}
        x_banks = [
            Memory(shape=plan.input_shape, depth=x_buffer_words(plan), init=[], attrs=unchecked)
            for _ in range(k_elems)
        ]
        for e, bank in enumerate(x_banks):
            m.submodules[f"x_bank{e}"] = bank
        m.submodules.vectors = vectors = Memory(
            shape=plan.state_shape, depth=max(2, plan.vector_depth), init=[], attrs=unchecked
        )
        m.submodules.states = states = Memory(
            shape=plan.state_shape, depth=state_memory_words(plan), init=[], attrs=unchecked
        )

        # -- writes ---------------------------------------------------------------------------
        for bank, element in zip(x_banks, self.x_write.elements, strict=True):
            write = bank.write_port()
            m.d.comb += [
                write.addr.eq(self.x_write.address),
                write.data.eq(element),
                write.en.eq(self.x_write.enable),
            ]
        hidden = self.hidden_write.payload
        v_write, s_write = vectors.write_port(), states.write_port()
        m.d.comb += [
            v_write.addr.eq(hidden.address),
            v_write.data.eq(hidden.value),
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
                s_write.addr.eq(hidden.state_address),
                s_write.data.eq(hidden.value),
                s_write.en.eq(self.hidden_write.valid & hidden.final),
            ]
        if plan.copies_outputs:
            output_read = vectors.read_port()
            m.d.comb += [
                output_read.addr.eq(self.output_address),
                self.output_data.eq(output_read.data),
            ]

        # -- forwarding: writes too late for the memory read --------------------------------
        # A read issued in cycle ``r`` misses the writes of cycles ``r``, ``r + 1`` and ``r +
        # 2``. In cycle ``r + 1`` its registered request is compared with the writes of ``r``
        # (``hidden_write`` delayed a cycle), ``r + 1`` (``hidden_write``) and ``r + 2`` (the
        # announcement ``ANNOUNCE - 1`` cycles old); the first two values are chosen into a
        # register there, so the select stage (``r + 2``) has one 2:1 choice for the live
        # ``hidden_write`` value and one for the registered one. An address is written once per
        # step, so at most one of the three matches.
        # (``LATENCY`` = ``ANNOUNCE`` = 3: the memory read, its output register, the select.)
        read_delay = self.LATENCY - 2
        fields = hidden_announce_layout(plan)
        target_layout = data.StructLayout({"valid": 1, "target": fields})

        def target_of(port):
            value = Signal(target_layout)
            m.d.comb += value.valid.eq(port.valid)
            m.d.comb += [value.target[name].eq(port.payload[name]) for name, _ in fields]
            return value

        def delayed(value, cycles, name):  # (valid bits: control state)
            return data.View(target_layout, delay(m, value, cycles, name, control=True))

        upcoming = delayed(target_of(self.announce), self.ANNOUNCE - 1, "upcoming")
        now = target_of(self.hidden_write)
        before = delayed(now, 1, "written")
        before_value = delay(m, hidden.value, 1, "written_value")

        def matches(request, write):  # the request reads the word ``write`` writes
            vector = (request.source == Source.VECTOR) & (request.address == write.target.address)
            state = (
                (request.source == Source.STATE)
                & write.target.final
                & (request.address == write.target.state_address)
            )
            return write.valid & (vector | state)

        # -- reads: the select travels beside the memory read and its output register ----------
        for g, request in enumerate(self.reads):
            x_reads = [bank.read_port() for bank in x_banks]
            v_read, s_read = vectors.read_port(), states.read_port()
            for read in x_reads:
                m.d.comb += read.addr.eq(request.x_address)
            m.d.comb += [v_read.addr.eq(request.address), s_read.addr.eq(request.address)]
            requested = data.View(request.shape(), delay(m, request.as_value(), 1, f"request{g}"))
            select = data.View(request.shape(), delay(m, requested, read_delay, f"select{g}"))
            # Forwarding, decided in the cycle after the request (registered for the select).
            hit_now, hit_before = matches(requested, now), matches(requested, before)
            forward = Signal(name=f"forward{g}")
            forward_late = Signal(name=f"forward_late{g}")
            forwarded = Signal(plan.state_shape, name=f"forwarded{g}", reset_less=True)
            m.d.sync += [
                forward.eq(hit_now | hit_before),
                forward_late.eq(matches(requested, upcoming)),
                forwarded.eq(Mux(hit_now, hidden.value, before_value)),
            ]
            x_data = delay(m, x_reads[0].data, read_delay, f"x_q{g}")
            if k_elems > 1:
                x_data = Array(
                    delay(m, read.data, read_delay, f"x_q{g}_{e}") for e, read in enumerate(x_reads)
                )[select.x_bank]
            element = Mux(
                select.source == Source.X,
                x_data,
                Mux(
                    select.source == Source.VECTOR,
                    delay(m, v_read.data, read_delay, f"v_q{g}"),
                    delay(m, s_read.data, read_delay, f"s_q{g}"),
                ),
            )
            element = Mux(forward_late, hidden.value, Mux(forward, forwarded, element))
            selected = Signal(plan.element_shape, name=f"element{g}", reset_less=True)
            m.d.sync += selected.eq(Mux(select.beyond, 0, element))
            m.d.comb += self.elements[g].eq(selected)
        return m
