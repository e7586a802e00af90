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


def column_layout(dp: LstmDatapath, groups: int = 1) -> data.StructLayout:
    """One column beat into the lanes (one column per lane group).

    ``elements[g]`` is the vector element broadcast to the lanes of group ``g``;
    ``segments`` bit ``g`` is 0 for an ``x`` column (``W_ih``), 1 for an ``h`` column
    (``W_hh``), selecting the product alignment shift; ``first``/``last`` mark a pass's first
    and last cycle; ``final_pass`` marks the step's last pass; ``step_first``/``step_last``
    mark the first/last time step of a sequence and ``parity`` the step's parity (which half
    of the ``h`` ping-pong buffer it writes).
    """
    return data.StructLayout(
        {
            "elements": data.ArrayLayout(element_shape(dp), groups),
            "segments": unsigned(groups),
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
    """MAC lanes computing ``bias + W [x_t ; h_{t-1}]`` row-parallel, plus a drain.

    Lanes are laid out as in :class:`~lstm_fpga.hw.config.PassGeometry`. Every valid
    ``column`` beat carries one element of ``[x_t ; h_{t-1}]`` per lane group; lane ``p`` (of
    group ``g``) multiplies ``elements[g]`` with ``weights[p]`` (its row's weight of that
    column, from its own bank) and adds it, aligned by the segment's shift of
    ``dp.gate_acc``, to its accumulator (``signed(dp.gate_acc.width)``: no overflow is
    possible). A ``first`` beat starts the accumulator from ``biases[p] << bias_shift``. On a
    ``last`` beat the finished sums of each row (added over the groups) go to the drain
    buffer and the lanes are free for the next pass at once.

    The drain emits one hidden unit (rows ``4u .. 4u+3`` = gates i, f, g, o) per cycle on the
    ``units`` stream. When ``row_lanes`` is not a multiple of 4 a unit can straddle two passes: up
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
                "column": In(
                    stream.Signature(column_layout(dp, geometry.groups), always_ready=True)
                ),
                "weights": In(data.ArrayLayout(weight_shape(dp), lanes)),
                "biases": In(data.ArrayLayout(format_shape(dp.formats.bias), lanes)),
                "units": Out(stream.Signature(unit_layout(dp))),
                "drain_free": Out(1),
                "loaded": Out(1),
            }
        )

    @property
    def drain_depth(self) -> int:
        """Rows the drain buffer holds: a pass, plus 3 carried rows when it is not a multiple
        of 4 rows."""
        rows = self._geometry.row_lanes
        return rows if rows % GATES_PER_UNIT == 0 else rows + GATES_PER_UNIT - 1

    def elaborate(self, platform):
        m = Module()
        dp, g = self._dp, self._geometry
        lanes, row_lanes = g.lanes, g.row_lanes
        acc_shape = signed(dp.gate_acc.width)
        shift_x, shift_h = dp.gate_acc.shifts
        beat = self.column.payload

        # Stage 1: products (one DSP multiplier per lane) and the operands of stage 2.
        product_shape = (self.weights[0] * beat.elements[0]).shape()
        products = [Signal(product_shape, name=f"product{p}") for p in range(lanes)]
        biases = [Signal(self.biases[p].shape(), name=f"bias{p}") for p in range(lanes)]
        meta = Signal(column_layout(dp, g.groups))
        valid = Signal()
        m.d.sync += [valid.eq(self.column.valid), meta.eq(beat)]
        for p in range(lanes):
            m.d.sync += [
                products[p].eq(self.weights[p] * beat.elements[p // row_lanes]),
                biases[p].eq(self.biases[p]),
            ]

        # Stage 2: accumulate; a pass's final sums go straight into the drain.
        accumulators = [Signal(acc_shape, name=f"acc{p}") for p in range(lanes)]
        sums = [Signal(acc_shape, name=f"sum{p}") for p in range(lanes)]
        for p in range(lanes):
            if shift_x == shift_h:
                aligned = products[p] << shift_x
            else:
                segment = meta.segments[p // row_lanes]
                aligned = Mux(segment, products[p] << shift_h, products[p] << shift_x)
            base = Mux(meta.first, biases[p] << dp.gate_acc.bias_shift, accumulators[p])
            m.d.comb += sums[p].eq(base + aligned)
            with m.If(valid & ~meta.last):
                m.d.sync += accumulators[p].eq(sums[p])
        load = Signal()
        m.d.comb += [load.eq(valid & meta.last), self.loaded.eq(load)]
        # A row's result: its lanes' sums added over the column groups (the partial sums
        # are sums of subsets of the row's terms, so none of them can overflow either).
        row_sums = [Signal(acc_shape, name=f"row_sum{q}") for q in range(row_lanes)]
        for q in range(row_lanes):
            total = sums[q]
            for group in range(1, g.groups):
                total = total + sums[group * row_lanes + q]
            m.d.comb += row_sums[q].eq(total)

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
        pass_rows = Mux(meta.final_pass, g.last_pass_rows, row_lanes)
        with m.If(load):
            m.d.sync += [
                count.eq(count + pass_rows),
                step_meta.parity.eq(meta.parity),
                step_meta.first.eq(meta.step_first),
                step_meta.last.eq(meta.step_last),
            ]
            if depth == row_lanes:
                # Whole units per pass: the drain is always empty when a pass lands.
                m.d.sync += [rows[q].eq(row_sums[q]) for q in range(row_lanes)]
            else:
                with m.Switch(count):
                    for carried in range(GATES_PER_UNIT):
                        with m.Case(carried):
                            m.d.sync += [
                                rows[carried + q].eq(row_sums[q]) for q in range(row_lanes)
                            ]
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
