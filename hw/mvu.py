"""Matrix-vector unit: ``P`` multiply-accumulate lanes and the drain buffer behind them."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import GATES_PER_UNIT, index_shape
from .fixed import shift_select
from .plan import EnginePlan

__all__ = ["MatrixVectorUnit", "beat_layout", "job_layout", "unit_layout"]


def job_layout(plan: EnginePlan) -> data.StructLayout:
    """What a matrix evaluation (a *job*) produces and where its results go.

    ``matrix``: the matrix index; ``vector_base``: word of the vector memory where unit 0 of a
    layer direction's ``h`` goes (unit ``u`` at ``vector_base + u``); ``init``: the step starts
    from the initial state (``c0``); ``final``: the sequence's final step of this layer
    direction (``h``/``c`` are the final state); ``emit_state``: send ``(h, c)`` to the state
    output; ``emit_y``: send ``h`` to ``y``; ``y_last``: the job produces its sequence's final
    ``y`` element; ``parity``: which of the two final-state regions it writes.
    """
    return data.StructLayout(
        {
            "matrix": index_shape(len(plan.matrices)),
            "vector_base": index_shape(plan.vector_depth),
            "init": unsigned(1),
            "final": unsigned(1),
            "emit_state": unsigned(1),
            "emit_y": unsigned(1),
            "y_last": unsigned(1),
            "parity": unsigned(1),
        }
    )


def beat_layout(plan: EnginePlan) -> data.StructLayout:
    """One column beat into the lanes (one column per lane group).

    ``elements[g]`` is the vector element broadcast to the lanes of group ``g``; ``segments``
    bit ``g`` says which segment of the matrix's columns (0 first, 1 second) the element
    belongs to, selecting the product alignment shift; ``first``/``last`` mark a pass's first
    and last cycle, ``final_pass`` the job's last pass; ``job`` rides along to the units.
    """
    return data.StructLayout(
        {
            "elements": data.ArrayLayout(plan.element_shape, plan.groups),
            "segments": unsigned(plan.groups),
            "first": unsigned(1),
            "last": unsigned(1),
            "final_pass": unsigned(1),
            "job": job_layout(plan),
        }
    )


def unit_layout(plan: EnginePlan) -> data.StructLayout:
    """Four finished accumulators: gates i, f, g, o of hidden unit ``unit`` (layer
    directions), or head rows ``4 unit .. 4 unit + 3`` (head)."""
    units = max(m.units for m in plan.matrices)
    return data.StructLayout(
        {
            "gates": data.ArrayLayout(signed(plan.acc_width), GATES_PER_UNIT),
            "unit": index_shape(units),
            "job": job_layout(plan),
        }
    )


class MatrixVectorUnit(wiring.Component):
    """MAC lanes computing ``bias + W v`` row-parallel for every matrix of a plan, plus a
    drain.

    Lanes are laid out as in :class:`~lstm_fpga.hw.plan.EnginePlan` (``groups`` groups of
    ``row_lanes`` lanes). Every valid ``column`` beat carries one element of the job's vector
    per lane group; lane ``p`` (of group ``g``) multiplies ``elements[g]`` with ``weights[p]``
    (its row's weight of that column, from its own bank) and adds it, aligned by the shift of
    the column's segment in that matrix's accumulator plan, to its accumulator (the widest
    derived width of all matrices: none can overflow). A ``first`` beat starts the accumulator
    from ``biases[p] << bias_shift``. On a ``last`` beat the finished sums of each row (added
    over the groups) go to the drain buffer and the lanes are free for the next pass at once.

    The drain emits four rows (a hidden unit's gates i, f, g, o; or four head rows) per
    cycle on ``units``. When ``row_lanes`` is not a multiple of 4 a unit can straddle two
    passes: up to 3 rows wait in the drain for the rest of their unit. Every matrix has a
    multiple of 4 rows, so a job's units never mix with the next job's.

    Protocol: ``column`` has no ready; a ``last`` beat may only be sent when ``drain_free`` was
    1 and no other ``last`` beat is in flight (``loaded`` pulses when a pass lands in the
    drain, 1 cycle after its ``last`` beat). ``weights``/``biases`` are sampled with the beat.

    Latency: a ``last`` beat lands in the drain 1 cycle later (``loaded``); the first unit of
    that pass is offered on ``units`` in the cycle after. Throughput: one column per cycle.
    """

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        super().__init__(
            {
                "column": In(stream.Signature(beat_layout(plan), always_ready=True)),
                "weights": In(data.ArrayLayout(plan.weight_shape, plan.lanes)),
                "biases": In(data.ArrayLayout(plan.bias_shape, plan.lanes)),
                "units": Out(stream.Signature(unit_layout(plan))),
                "drain_free": Out(1),
                "loaded": Out(1),
            }
        )

    @property
    def drain_depth(self) -> int:
        """Rows the drain buffer holds: a pass, plus 3 carried rows when it is not a multiple
        of 4 rows."""
        rows = self._plan.row_lanes
        return rows if rows % GATES_PER_UNIT == 0 else rows + GATES_PER_UNIT - 1

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        lanes, row_lanes, groups = plan.lanes, plan.row_lanes, plan.groups
        acc_shape = signed(plan.acc_width)
        beat = self.column.payload

        # Stage 1: products (one DSP multiplier per lane) and the operands of stage 2.
        product_shape = (self.weights[0] * beat.elements[0]).shape()
        products = [Signal(product_shape, name=f"product{p}") for p in range(lanes)]
        biases = [Signal(self.biases[p].shape(), name=f"bias{p}") for p in range(lanes)]
        meta = Signal(beat_layout(plan))
        valid = Signal()
        m.d.sync += [valid.eq(self.column.valid), meta.eq(beat)]
        for p in range(lanes):
            m.d.sync += [
                products[p].eq(self.weights[p] * beat.elements[p // row_lanes]),
                biases[p].eq(self.biases[p]),
            ]

        # Stage 2: accumulate; a pass's final sums go straight into the drain.
        matrix = meta.job.matrix
        first_shifts = [mp.segments[0].shift for mp in plan.matrices]
        second_shifts = [mp.segments[-1].shift for mp in plan.matrices]
        bias_shifts = [mp.bias_shift for mp in plan.matrices]
        accumulators = [Signal(acc_shape, name=f"acc{p}") for p in range(lanes)]
        sums = [Signal(acc_shape, name=f"sum{p}") for p in range(lanes)]
        for p in range(lanes):
            segment = meta.segments[p // row_lanes]
            first = shift_select(products[p], first_shifts, matrix)
            second = shift_select(products[p], second_shifts, matrix)
            aligned = first if first_shifts == second_shifts else Mux(segment, second, first)
            base = Mux(meta.first, shift_select(biases[p], bias_shifts, matrix), accumulators[p])
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
            for group in range(1, groups):
                total = total + sums[group * row_lanes + q]
            m.d.comb += row_sums[q].eq(total)

        # Drain buffer: rows at the bottom go out 4 at a time; a pass loads above the carry.
        depth = self.drain_depth
        rows = [Signal(acc_shape, name=f"drain{e}") for e in range(depth)]
        count = Signal(range(depth + 1))
        unit = Signal.like(self.units.payload.unit)
        job = Signal(job_layout(plan))
        emit = Signal()
        m.d.comb += [
            self.units.valid.eq(count >= GATES_PER_UNIT),
            emit.eq(self.units.valid & self.units.ready),
            self.drain_free.eq(count < GATES_PER_UNIT),
            self.units.payload.unit.eq(unit),
            self.units.payload.job.eq(job),
        ]
        for gate in range(GATES_PER_UNIT):
            m.d.comb += self.units.payload.gates[gate].eq(rows[gate])
        last_rows = Array([mp.last_pass_rows for mp in plan.matrices])[matrix]
        pass_rows = Mux(meta.final_pass, last_rows, row_lanes)
        with m.If(load):
            m.d.sync += [count.eq(count + pass_rows), job.eq(meta.job)]
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
            units = Array([mp.units - 1 for mp in plan.matrices])[job.matrix]
            with m.If(unit == units):
                m.d.sync += unit.eq(0)
            with m.Else():
                m.d.sync += unit.eq(unit + 1)
        return m
