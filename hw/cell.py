"""Gate and cell pipeline: accumulators of one hidden unit to ``h_t``, with the ``c`` state."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.numerics import LstmDatapath
from .activation import ActivationUnit
from .config import index_shape
from .fixed import format_shape, rescale_value
from .mvu import unit_layout

__all__ = ["GateCellPipeline", "hidden_layout", "hidden_write_layout"]


def hidden_layout(dp: LstmDatapath) -> data.StructLayout:
    """An output beat: ``data`` is ``h_t[u]`` (hidden format), ``last`` ends the sequence."""
    return data.StructLayout({"data": format_shape(dp.formats.hidden), "last": unsigned(1)})


def hidden_write_layout(dp: LstmDatapath) -> data.StructLayout:
    """A write of ``h_t[unit]`` into half ``parity`` of the ``h`` ping-pong buffer."""
    return data.StructLayout(
        {
            "value": format_shape(dp.formats.hidden),
            "unit": index_shape(dp.hidden_size),
            "parity": unsigned(1),
        }
    )


class GateCellPipeline(wiring.Component):
    """``(i, f, g, o)`` accumulators of a unit and ``c_{t-1}`` to ``h_t`` and ``c_t``.

    Exactly :func:`lstm_fpga.sw.reference.cell_update`: rescale each accumulator to the
    ``preact`` format, sigmoid(i, f, o) and tanh(g) from the shared tables, ``c_t =
    rescale((f*c << s0) + (i*g << s1), cell)``, ``h_t = rescale(o * tanh_cell(c_t), hidden)``;
    rounding and saturation of the model. ``c`` is kept here (one word per unit); a unit with
    ``first`` set (first step of a sequence) uses ``c_{t-1} = 0``.

    Ports
    -----
    units : In, stream of :func:`~lstm_fpga.hw.mvu.unit_layout`
        One unit per beat; ready while the output queue has room for it (credit-based, so
        the pipeline itself never stalls).
    hidden : Out, stream of :func:`hidden_layout`
        ``h_t[u]`` in arrival order, ``last`` on the final unit of a ``last`` step.
    hidden_write : Out, stream (always ready) of :func:`hidden_write_layout`
        Every ``h_t[u]`` as it leaves the pipeline, for the ``h`` buffer of the next step.

    Latency: :attr:`LATENCY` cycles from an accepted unit to its ``hidden_write``, and 2 more
    to the ``hidden`` output queue's head. Throughput: one unit per cycle while ``hidden``
    keeps up.
    """

    #: Cycles from a ``units`` handshake to the ``hidden_write`` strobe.
    LATENCY = 10

    def __init__(self, dp: LstmDatapath, queue_depth: int = 16):
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be at least 1, not {queue_depth}")
        self._dp = dp
        self._queue_depth = queue_depth
        super().__init__(
            {
                "units": In(stream.Signature(unit_layout(dp))),
                "hidden": Out(stream.Signature(hidden_layout(dp))),
                "hidden_write": Out(stream.Signature(hidden_write_layout(dp), always_ready=True)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        dp = self._dp
        f = dp.formats
        rnd, ovf = dp.rounding, dp.overflow
        unit_shape = self.units.payload.unit.shape()
        meta_layout = data.StructLayout({"unit": unit_shape, "parity": 1, "first": 1, "last": 1})

        # Credit-based admission: a unit enters only if its output has a reserved queue slot.
        queue = m.submodules.queue = SyncFIFOBuffered(
            width=len(self.hidden.payload.as_value()), depth=self._queue_depth
        )
        credits = Signal(range(self._queue_depth + 1), init=self._queue_depth)
        accept = Signal()
        m.d.comb += [
            self.units.ready.eq(credits != 0),
            accept.eq(self.units.valid & self.units.ready),
            self.hidden.valid.eq(queue.r_rdy),
            self.hidden.payload.eq(queue.r_data),
            queue.r_en.eq(self.hidden.ready),
        ]
        returned = self.hidden.valid & self.hidden.ready
        m.d.sync += credits.eq(credits - accept + returned)

        def stage(name, layout):
            return Signal(layout, name=name)

        # Valid bits of stages 0..9 and the unit's metadata riding along.
        valid = [Signal(name=f"valid{k}") for k in range(self.LATENCY)]
        metas = [stage(f"meta{k}", meta_layout) for k in range(self.LATENCY)]
        m.d.sync += [valid[0].eq(accept)]
        payload = self.units.payload
        m.d.sync += [
            metas[0].unit.eq(payload.unit),
            metas[0].parity.eq(payload.parity),
            metas[0].first.eq(payload.first),
            metas[0].last.eq(payload.last),
        ]
        for k in range(1, self.LATENCY):
            m.d.sync += [valid[k].eq(valid[k - 1]), metas[k].eq(metas[k - 1])]

        # Stage 0 -> 1: accumulators to pre-activations.
        accs = [
            Signal(payload.gates[k].shape(), name=f"acc_{name}") for k, name in enumerate("ifgo")
        ]
        m.d.sync += [accs[k].eq(payload.gates[k]) for k in range(4)]
        preacts = [Signal(format_shape(f.preact), name=f"preact_{name}") for name in "ifgo"]
        m.d.sync += [
            preacts[k].eq(rescale_value(accs[k], dp.gate_acc.frac, f.preact, rnd, ovf))
            for k in range(4)
        ]

        # Stages 1 -> 3: activations (latency 2).
        tables = (dp.sigmoid, dp.sigmoid, dp.tanh_gate, dp.sigmoid)
        gates = []
        for k, (name, table) in enumerate(zip("ifgo", tables, strict=True)):
            unit = m.submodules[f"act_{name}"] = ActivationUnit(table)
            m.d.comb += unit.input.eq(preacts[k])
            gates.append(unit.output)
        gate_i, gate_f, gate_g, gate_o = gates

        # c state: read in stage 2 (data in stage 3), written in stage 4.
        m.submodules.cell_state = cell_state = Memory(
            shape=format_shape(f.cell), depth=max(2, dp.hidden_size), init=[]
        )
        c_read = cell_state.read_port()
        c_write = cell_state.write_port()
        m.d.comb += c_read.addr.eq(metas[2].unit)
        c_prev = Mux(metas[3].first, 0, c_read.data)

        # Stage 3 -> 4: the cell products (DSP multipliers).
        f_times_c = Signal((gate_f * c_read.data).shape(), name="f_times_c")
        i_times_g = Signal((gate_i * gate_g).shape(), name="i_times_g")
        o_gate = [Signal(format_shape(f.gate), name=f"o_gate{k}") for k in range(4, 8)]
        m.d.sync += [f_times_c.eq(gate_f * c_prev), i_times_g.eq(gate_i * gate_g)]
        m.d.sync += o_gate[0].eq(gate_o)
        for k in range(1, len(o_gate)):
            m.d.sync += o_gate[k].eq(o_gate[k - 1])

        # Stage 4 -> 5: c_t.
        shift_fc, shift_ig = dp.cell_acc.shifts
        cell_sum = (f_times_c << shift_fc) + (i_times_g << shift_ig)
        c_new_value = rescale_value(cell_sum, dp.cell_acc.frac, f.cell, rnd, ovf)
        c_new = Signal(format_shape(f.cell))
        m.d.sync += c_new.eq(c_new_value)
        m.d.comb += [
            c_write.addr.eq(metas[4].unit),
            c_write.data.eq(c_new_value),
            c_write.en.eq(valid[4]),
        ]

        # Stages 5 -> 7: tanh(c_t); 7 -> 8: o * tanh(c_t); 8 -> 9: h_t.
        tanh_cell = m.submodules.act_c = ActivationUnit(dp.tanh_cell)
        m.d.comb += tanh_cell.input.eq(c_new)
        hidden_product = Signal((gate_o * tanh_cell.output).shape(), name="hidden_product")
        # o_gate[k - 4] holds o in stage k; stage 7 multiplies.
        m.d.sync += hidden_product.eq(o_gate[3] * tanh_cell.output)
        h_new = Signal(format_shape(f.hidden))
        m.d.sync += h_new.eq(
            rescale_value(hidden_product, dp.hidden_product_frac, f.hidden, rnd, ovf)
        )

        out = metas[self.LATENCY - 1]
        done = valid[self.LATENCY - 1]
        m.d.comb += [
            self.hidden_write.valid.eq(done),
            self.hidden_write.payload.value.eq(h_new),
            self.hidden_write.payload.unit.eq(out.unit),
            self.hidden_write.payload.parity.eq(out.parity),
            queue.w_en.eq(done),
            # Field order of hidden_layout: data, then last.
            queue.w_data.eq(Cat(h_new, out.last & (out.unit == dp.hidden_size - 1))),
        ]
        return m
