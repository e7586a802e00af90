"""Matrix-vector unit: ``P`` multiply-accumulate lanes and the drain buffer behind them."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.numerics import LstmDatapath
from .config import GATES_PER_UNIT, PassGeometry, index_shape
from .fixed import common_signed_shape, format_shape

__all__ = ["MatrixVectorUnit", "column_layout", "element_shape", "unit_layout", "weight_shape"]


def element_shape(dp: LstmDatapath) -> Shape:
    """Shape of the broadcast element of ``[x_t ; h_{t-1}]`` (both formats fit)."""
    return common_signed_shape(dp.formats.x, dp.formats.hidden)


def weight_shape(dp: LstmDatapath) -> Shape:
    """Shape of a stored weight (``W_ih`` and ``W_hh`` words share the banks)."""
    return common_signed_shape(dp.formats.w_ih, dp.formats.w_hh)


def column_layout(dp: LstmDatapath) -> data.StructLayout:
    """One column beat into the lanes.

    ``element`` is the broadcast vector element; ``segment`` 0 for an ``x`` column (``W_ih``),
    1 for an ``h`` column (``W_hh``), selecting the product alignment shift; ``first``/``last``
    mark a pass's first and last column; ``final_pass`` marks the step's last pass;
    ``step_first``/``step_last`` mark the first/last time step of a sequence and ``parity``
    the step's parity (which half of the ``h`` ping-pong buffer it writes).
    """
    return data.StructLayout(
        {
            "element": element_shape(dp),
            "segment": unsigned(1),
            "first": unsigned(1),
            "last": unsigned(1),
            "final_pass": unsigned(1),
            "step_first": unsigned(1),
            "step_last": unsigned(1),
            "parity": unsigned(1),
        }
    )


def unit_layout(dp: LstmDatapath) -> data.StructLayout:
    """The four gate accumulators (i, f, g, o) of one hidden unit and where they belong."""
    return data.StructLayout(
        {
            "gates": data.ArrayLayout(signed(dp.gate_acc.width), GATES_PER_UNIT),
            "unit": index_shape(dp.hidden_size),
            "parity": unsigned(1),
            "first": unsigned(1),
            "last": unsigned(1),
        }
    )


class MatrixVectorUnit(wiring.Component):
    """``lanes`` MAC lanes computing ``bias + W [x_t ; h_{t-1}]`` row-parallel, plus a drain.

    Every valid ``column`` beat carries one element of ``[x_t ; h_{t-1}]`` that lane ``p``
    multiplies with ``weights[p]`` (its row's weight of that column, from its own bank) and
    adds, aligned by the segment's shift of ``dp.gate_acc``, to its accumulator
    (``signed(dp.gate_acc.width)``: it cannot overflow). A ``first`` beat starts the
    accumulator from ``biases[p] << bias_shift``. On a ``last`` beat the finished sums go to
    the drain buffer and the lanes are free for the next pass at once.

    The drain emits one hidden unit (rows ``4u .. 4u+3`` = gates i, f, g, o) per cycle on the
    ``units`` stream. When ``lanes`` is not a multiple of 4 a unit can straddle two passes: up
    to 3 rows wait in the drain for the rest of their unit.

    Protocol: ``column`` has no ready; a ``last`` beat may only be sent when ``drain_free`` was
    1 and no other ``last`` beat is in flight (``loaded`` pulses when a pass lands in the
    drain, 1 cycle after its ``last`` beat). ``weights``/``biases`` are sampled with the beat.

    Latency: a ``last`` beat lands in the drain 1 cycle later (``loaded``); the first unit of
    that pass is offered on ``units`` in the cycle after. Throughput: one column per cycle.
    """

    def __init__(self, dp: LstmDatapath, geometry: PassGeometry):
        self._dp = dp
        self._geometry = geometry
        lanes = geometry.lanes
        super().__init__(
            {
                "column": In(stream.Signature(column_layout(dp), always_ready=True)),
                "weights": In(data.ArrayLayout(weight_shape(dp), lanes)),
                "biases": In(data.ArrayLayout(format_shape(dp.formats.bias), lanes)),
                "units": Out(stream.Signature(unit_layout(dp))),
                "drain_free": Out(1),
                "loaded": Out(1),
            }
        )

    @property
    def drain_depth(self) -> int:
        """Rows the drain buffer holds: a pass, plus 3 carried rows when lanes % 4 != 0."""
        lanes = self._geometry.lanes
        return lanes if lanes % GATES_PER_UNIT == 0 else lanes + GATES_PER_UNIT - 1

    def elaborate(self, platform):
        m = Module()
        dp, g = self._dp, self._geometry
        lanes = g.lanes
        acc_shape = signed(dp.gate_acc.width)
        shift_x, shift_h = dp.gate_acc.shifts
        beat = self.column.payload

        # Stage 1: products (one DSP multiplier per lane) and the operands of stage 2.
        products = [
            Signal(signed(len(self.weights[0]) + len(beat.element)), name=f"product{p}")
            for p in range(lanes)
        ]
        biases = [Signal(self.biases[p].shape(), name=f"bias{p}") for p in range(lanes)]
        meta = Signal(column_layout(dp))
        valid = Signal()
        m.d.sync += [valid.eq(self.column.valid), meta.eq(beat)]
        for p in range(lanes):
            m.d.sync += [
                products[p].eq(self.weights[p] * beat.element),
                biases[p].eq(self.biases[p]),
            ]

        # Stage 2: accumulate; a pass's final sums go straight into the drain.
        accumulators = [Signal(acc_shape, name=f"acc{p}") for p in range(lanes)]
        sums = [Signal(acc_shape, name=f"sum{p}") for p in range(lanes)]
        for p in range(lanes):
            if shift_x == shift_h:
                aligned = products[p] << shift_x
            else:
                aligned = Mux(meta.segment, products[p] << shift_h, products[p] << shift_x)
            base = Mux(meta.first, biases[p] << dp.gate_acc.bias_shift, accumulators[p])
            m.d.comb += sums[p].eq(base + aligned)
            with m.If(valid & ~meta.last):
                m.d.sync += accumulators[p].eq(sums[p])
        load = Signal()
        m.d.comb += [load.eq(valid & meta.last), self.loaded.eq(load)]

        # Drain buffer: rows at the bottom go out 4 at a time; a pass loads above the carry.
        depth = self.drain_depth
        rows = [Signal(acc_shape, name=f"drain{e}") for e in range(depth)]
        count = Signal(range(depth + 1))
        unit = Signal.like(self.units.payload.unit)
        step_meta = Signal(data.StructLayout({"parity": 1, "first": 1, "last": 1}))
        emit = Signal()
        m.d.comb += [
            self.units.valid.eq(count >= GATES_PER_UNIT),
            emit.eq(self.units.valid & self.units.ready),
            self.drain_free.eq(count < GATES_PER_UNIT),
            self.units.payload.unit.eq(unit),
            self.units.payload.parity.eq(step_meta.parity),
            self.units.payload.first.eq(step_meta.first),
            self.units.payload.last.eq(step_meta.last),
        ]
        for gate in range(GATES_PER_UNIT):
            m.d.comb += self.units.payload.gates[gate].eq(rows[gate])
        pass_rows = Mux(meta.final_pass, g.last_pass_rows, lanes)
        with m.If(load):
            m.d.sync += [
                count.eq(count + pass_rows),
                step_meta.parity.eq(meta.parity),
                step_meta.first.eq(meta.step_first),
                step_meta.last.eq(meta.step_last),
            ]
            if depth == lanes:
                # lanes % 4 == 0: the drain is always empty when a pass lands.
                m.d.sync += [rows[e].eq(sums[e]) for e in range(lanes)]
            else:
                with m.Switch(count):
                    for carried in range(GATES_PER_UNIT):
                        with m.Case(carried):
                            m.d.sync += [rows[carried + p].eq(sums[p]) for p in range(lanes)]
        with m.Elif(emit):
            m.d.sync += count.eq(count - GATES_PER_UNIT)
            m.d.sync += [
                rows[e].eq(rows[e + GATES_PER_UNIT]) for e in range(depth - GATES_PER_UNIT)
            ]
            with m.If(unit == dp.hidden_size - 1):
                m.d.sync += unit.eq(0)
            with m.Else():
                m.d.sync += unit.eq(unit + 1)
        return m
