"""Matrix-vector unit: ``P`` multiply-accumulate lanes and the drain buffer behind them."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import GATES_PER_UNIT, index_shape
from .fixed import shift_select
from .pipeline import (
    DSP_FANOUT,
    FANOUT,
    Multiplier,
    PackedMultiplier,
    broadcast,
    delay,
    fanout_levels,
    kept_delay,
    replicas,
    tree_levels,
)
from .plan import GRU_UNIT_ROWS, EnginePlan, SegmentKind

__all__ = ["MatrixVectorUnit", "beat_layout", "job_layout", "pass_latency", "unit_layout"]


def job_layout(plan: EnginePlan) -> data.StructLayout:
    """What a matrix evaluation (a *job*) produces and where its results go.

    ``matrix``: the matrix index; ``vector_base``: word of the vector memory where unit 0 of a
    layer direction's ``h`` goes (unit ``u`` at ``vector_base + u``); ``init``: the step starts
    from the initial state (``c0``); ``final``: the sequence's final step of this layer
    direction (``h``/``c`` are the final state); ``emit_state``: send ``(h, c)`` to the state
    output; ``emit_y``: send ``h`` to ``y``; ``y_last``: the job produces its sequence's final
    ``y`` element; ``parity``: which of the two final-state regions it writes; ``sequence``
    (interleaved plans only, ``B > 1``): which of the group's sequences the job computes.
    """
    interleaved = {"sequence": index_shape(plan.interleave)} if plan.interleave > 1 else {}
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
            **interleaved,
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


def _multiplier_latency(plan: EnginePlan) -> int:
    """Cycles from a lane's multiplier inputs to its product: :class:`Multiplier`'s, or
    :class:`PackedMultiplier`'s when the plan packs two lanes per DSP."""
    return PackedMultiplier.LATENCY if plan.packed_product is not None else Multiplier.LATENCY


def _unit_counter(m, depth, load, pass_rows, emit, unit_rows, head=None):
    """The drain's row count and its ``has_unit`` register, retimed for the unit handshake.

    Returns ``(count, has_unit, has_unit_next)``: ``count`` (range ``depth + 1``, reset 0)
    is the rows the drain holds; ``has_unit`` (reset 0) is 1 when they include a whole unit
    of the drain's job (``has_unit_next``: its next value, for copies of the register). A
    unit is ``unit_rows`` rows (4 for an LSTM, 3 for a GRU layer direction), or, when ``head
    = (is_head, landing_head)`` is given, :data:`GATES_PER_UNIT` rows where ``is_head`` (the
    drain's job is the head: from registers) or, for a landing pass, ``landing_head`` says
    so. ``load`` (a register) adds ``pass_rows`` (from registers; the count wraps at
    its width, as a pass never overfills the drain); a handshake ``emit`` takes a unit away,
    unless a pass lands in that cycle (it never does: the drain's callers say why).

    Timing: ``emit`` follows the consumer's ``ready``, the latest signal of the drain. Both
    next values of ``count`` and ``has_unit`` are computed from registers, the count after
    this cycle's load (its add and compare) and the count one unit lower (``count - k`` and
    ``count >= 2 k``, compares against constants), so ``emit`` only chooses between them: no
    carry chain follows ``ready`` (36cf25a's form, shared by the LSTM and GRU drains).
    """
    count = Signal(range(depth + 1))
    landed = Signal.like(count)
    taken = Signal()
    has_unit = Signal()

    def per_unit(value, is_head):  # ``value(k)`` for the unit rows ``k`` that ``is_head`` picks
        if head is None:
            return value(unit_rows)
        return Mux(is_head, value(GATES_PER_UNIT), value(unit_rows))

    is_head, landing_head = head if head is not None else (None, None)
    landed_head = None if head is None else Mux(load, landing_head, is_head)
    has_unit_next = Signal()
    m.d.comb += [
        taken.eq(emit & ~load),
        has_unit_next.eq(
            Mux(
                taken,
                per_unit(lambda k: count >= 2 * k, is_head),
                per_unit(lambda k: landed >= k, landed_head),
            )
        ),
    ]
    m.d.sync += [
        count.eq(Mux(taken, per_unit(lambda k: count - k, is_head), landed)),
        has_unit.eq(has_unit_next),
    ]
    m.d.comb += landed.eq(count)
    with m.If(load):
        m.d.comb += landed.eq(count + pass_rows)
    return count, has_unit, has_unit_next


def _product_latency(plan: EnginePlan) -> int:
    """Cycles from the multiplier inputs to the aligned product at the accumulator."""
    return _multiplier_latency(plan) + 1


def _broadcast_levels(plan: EnginePlan) -> int:
    # Up to FANOUT lanes the sequencer's element register drives them all (they sit close
    # together); beyond, a tree of DSP_FANOUT at every hop from that register on.
    if plan.lanes <= FANOUT:
        return 0
    return tree_levels(plan.lanes, DSP_FANOUT)


def _reduction_levels(plan: EnginePlan) -> int:
    return (plan.groups - 1).bit_length()


def _registered_sums(plan: EnginePlan) -> bool:
    # The drain (or the group reduction) takes a pass's sums from the accumulators, a cycle
    # after the last add: with column groups always; beyond FANOUT lanes too, where the add's
    # carry chain, the route to the drain row and the row's select made one stage (acc ->
    # drain 8.18 ns at I=H=64 P=64, 122.2 MHz). Up to FANOUT lanes the drain takes the sum
    # straight from the adder (a cycle less of the recurrence loop, which short jobs show).
    return plan.groups > 1 or plan.lanes > FANOUT


def pass_latency(plan: EnginePlan) -> int:
    """Cycles from a pass's ``last`` beat to its ``loaded`` pulse in the unit of ``plan``
    (:attr:`MatrixVectorUnit.load_latency`): broadcast, multiplier, the accumulating add
    (straight into the drain with one column group of up to ``FANOUT`` lanes; else into the
    accumulator, then through the group reduction when there are several groups)."""
    reduction = _registered_sums(plan) + _reduction_levels(plan)
    return _broadcast_levels(plan) + _product_latency(plan) + reduction


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

    GRU plans (:attr:`EnginePlan.is_gru <lstm_fpga.hw.plan.EnginePlan.is_gru>`): a layer
    direction has three rows per unit, ``r, z, n`` (:data:`~lstm_fpga.hw.plan.GRU_UNIT_ROWS`).
    Every lane has a second accumulator; in a pass where the lane holds an ``n`` row (row
    ``3u + 2``: lane ``q`` of a pass whose first row has ``phase = row % 3`` with ``(phase +
    q) % 3 = 2``, the phase kept by the unit from the passes' ``last`` and ``final_pass``
    beats) the recurrent columns' products go to the second accumulator, which starts from
    ``biases_hn[p]`` (``b_hn``), the input columns' to the first (from ``b_in``); in the other
    rows, and in the head, every product goes to the first, as for an LSTM. The drain keeps
    both sums of each row and hands out a GRU unit as ``gates = (r, z, W_in x + b_in, W_hn h
    + b_hn)`` (the ``n`` row's two sums), whichever order the segments have (layer 0
    ``[x; h]``, layers above ``[h; input]``); head units are four rows as for an LSTM.

    The drain emits four rows (a hidden unit's gates i, f, g, o; or four head rows) per
    cycle on ``units``. When ``row_lanes`` is not a multiple of 4 a unit can straddle two
    passes: up to 3 rows wait in the drain for the rest of their unit. Every matrix has a
    multiple of 4 rows, so a job's units never mix with the next job's. Interleaved plans
    (``B > 1``) with whole-unit passes have two drain banks (:attr:`double_drain`): a
    ``last`` beat then needs only the bank its pass lands in to be empty.

    Weight reuse (:attr:`EnginePlan.weight_reuse <lstm_fpga.hw.plan.EnginePlan.weight_reuse>`:
    external weights, ``B > 1``): each column comes ``B`` times in a row, ``job.sequence =
    0 .. B-1``, with the same weight word and sequence ``b``'s element. Each lane's
    accumulator is a circular delay line of ``B`` registers (the add reads the entry written
    ``B`` beats before: the same sequence's sum of the previous column; ``B`` accumulators of
    :attr:`acc_width` bits per lane). A pass ends with ``B`` back-to-back ``last`` beats
    whose sums load ``B`` drain banks of :attr:`drain_depth` rows (bank ``b`` for sequence
    ``b``, each with its own carry; ``drain_free`` = no bank holds a whole unit); units
    leave sequence by sequence, tagged with their ``job`` (``sequence``, ``vector_base`` of
    that sequence) and their own unit index, so a matrix of several passes hands out its
    units ordered ``(pass, sequence, unit)``; ``loaded`` pulses with the last sequence's
    load.

    Pipeline (every stage one register transfer, one DSP multiply or one short add): the beat
    is broadcast to the lanes through :attr:`broadcast_levels` replicated register levels
    (each register drives at most :data:`~lstm_fpga.hw.pipeline.FANOUT` loads, the last
    level :data:`~lstm_fpga.hw.pipeline.DSP_FANOUT` lanes), each lane's
    :class:`~lstm_fpga.hw.pipeline.Multiplier` takes :attr:`Multiplier.LATENCY
    <lstm_fpga.hw.pipeline.Multiplier.LATENCY>` cycles, a fabric register takes the product
    aligned by its segment's shift (the route out of the DSP block is one stage, the
    accumulator's carry chain the next: :attr:`product_latency` in all), its control bits
    ride along in the lane's own registers, the accumulator adds, and the column groups'
    partial sums meet in a registered adder tree of :attr:`reduction_levels` levels.
    Datapath registers have no reset; valid bits and the drain's counters do.

    Two multiplies per DSP (``HardwareConfig(dsp_packing=2)``): lanes ``2k`` and ``2k + 1``
    of a group (:attr:`EnginePlan.lane_pairs <lstm_fpga.hw.plan.EnginePlan.lane_pairs>`)
    multiply the same element, so one
    :class:`~lstm_fpga.hw.pipeline.PackedMultiplier` computes both products with the
    latency of a :class:`~lstm_fpga.hw.pipeline.Multiplier`: the pack add sits between the
    weight banks' output registers and the DSP's input registers, the split's borrow add in
    front of the even lane's alignment multiplexer (one short add each, no extra stage); an
    odd group's last lane keeps its own multiplier. The sums are the same integers.

    Protocol: ``column`` has no ready; a ``last`` beat may only be sent when ``drain_free`` was
    1 and no other ``last`` beat is in flight (``loaded`` pulses when a pass lands in the
    drain, :attr:`load_latency` cycles after its ``last`` beat). ``weights[p]`` is sampled
    :attr:`weight_lag` cycles after the beat it belongs to, ``biases[p]`` :attr:`bias_lag`
    cycles after a ``first`` beat (the memory is read that much later).

    Latency: :attr:`load_latency` cycles from a ``last`` beat to ``loaded``; the first unit of
    that pass is offered on ``units`` in the cycle after. Throughput: one column per cycle.
    """

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        super().__init__(
            {
                "column": In(stream.Signature(beat_layout(plan), always_ready=True)),
                "weights": In(data.ArrayLayout(plan.weight_shape, plan.lanes)),
                "biases": In(data.ArrayLayout(plan.bias_shape, plan.lanes)),
                **(
                    {"biases_hn": In(data.ArrayLayout(plan.bias_shape, plan.lanes))}
                    if plan.is_gru
                    else {}
                ),
                "units": Out(stream.Signature(unit_layout(plan))),
                "drain_free": Out(1),
                "loaded": Out(1),
            }
        )

    @property
    def broadcast_levels(self) -> int:
        """Registers between a beat and the lanes' multiplier inputs: the levels of the
        replicated broadcast beyond the sequencer's element register (0 up to
        :data:`~lstm_fpga.hw.pipeline.FANOUT` lanes; beyond, a balanced tree that fans out
        by at most :data:`~lstm_fpga.hw.pipeline.DSP_FANOUT` at every hop from that register
        on: 2 levels for 17 to 64 lanes)."""
        return _broadcast_levels(self._plan)

    @property
    def product_latency(self) -> int:
        """Cycles from the multiplier inputs to the aligned product at the accumulator: the
        multiplier's (:class:`~lstm_fpga.hw.pipeline.Multiplier`, or
        :class:`~lstm_fpga.hw.pipeline.PackedMultiplier` with packing), then the register of
        the aligned product."""
        return _product_latency(self._plan)

    @property
    def weight_lag(self) -> int:
        """Cycles after its beat that ``weights`` are sampled (at the multiplier inputs)."""
        return self.broadcast_levels

    @property
    def bias_lag(self) -> int:
        """Cycles after its ``first`` beat that ``biases`` are sampled (by the accumulator)."""
        return self.broadcast_levels + self.product_latency

    @property
    def reduction_levels(self) -> int:
        """Registered adder levels that sum a row's partial sums over the column groups."""
        return _reduction_levels(self._plan)

    @property
    def load_latency(self) -> int:
        """Cycles from a ``last`` beat to its ``loaded`` pulse: :func:`pass_latency`."""
        return pass_latency(self._plan)

    @property
    def drain_depth(self) -> int:
        """Rows the drain buffer holds: a pass, plus the rows carried for a unit that
        straddles two passes (up to ``k - 1`` when a pass is not a multiple of the ``k``
        :attr:`~lstm_fpga.hw.plan.MatrixPlan.unit_rows` of a matrix: 3 with 4 rows per unit,
        2 with a GRU layer's 3)."""
        rows = self._plan.row_lanes
        carried = [mp.unit_rows - 1 for mp in self._plan.matrices if rows % mp.unit_rows]
        return rows + max(carried, default=0)

    @property
    def double_drain(self) -> bool:
        """Two drain banks that passes fill in turn (interleaved plans, ``B > 1``, whose
        passes are whole units): a pass's ``last`` beat waits only until the bank it lands in
        has drained, so back-to-back jobs of independent sequences need not wait for the
        previous pass's units to leave."""
        plan = self._plan
        return plan.interleave > 1 and plan.row_lanes % GATES_PER_UNIT == 0

    def _double_drain(self, m, row_sums, load, meta) -> None:
        """The drain as two banks of ``row_lanes`` rows: a pass loads into bank ``load_bank``
        (empty: ``drain_free`` said so at its ``last`` beat and only this pass loads into
        it), units leave bank ``out_bank`` 4 rows at a time; each bank toggles once per
        pass, so passes leave in the order they landed. Units are counted per bank."""
        plan = self._plan
        rows_per_bank = plan.row_lanes
        acc_shape = signed(plan.acc_width)
        units_per_bank = rows_per_bank // GATES_PER_UNIT
        banks = []
        for k in range(2):
            rows = [
                Signal(acc_shape, name=f"drain{k}_{e}", reset_less=True)
                for e in range(rows_per_bank)
            ]
            left = Signal(range(units_per_bank + 1), name=f"drain{k}_units")
            job = Signal(job_layout(plan), name=f"drain{k}_job", reset_less=True)
            banks.append((rows, left, job))
        load_bank = Signal()
        out_bank = Signal()
        unit = Signal.like(self.units.payload.unit)
        emit = Signal()
        out_job = Mux(out_bank, banks[1][2].as_value(), banks[0][2].as_value())
        out_job = data.View(job_layout(plan), out_job)
        m.d.comb += [
            self.units.valid.eq(Mux(out_bank, banks[1][1] != 0, banks[0][1] != 0)),
            emit.eq(self.units.valid & self.units.ready),
            self.drain_free.eq(Mux(load_bank, banks[1][1] == 0, banks[0][1] == 0)),
            self.units.payload.unit.eq(unit),
            self.units.payload.job.eq(out_job),
        ]
        for gate in range(GATES_PER_UNIT):
            m.d.comb += self.units.payload.gates[gate].eq(
                Mux(out_bank, banks[1][0][gate], banks[0][0][gate])
            )
        last_rows = Array([mp.last_pass_rows for mp in plan.matrices])[meta.job.matrix]
        pass_units = Mux(meta.final_pass, last_rows, rows_per_bank) >> 2
        for k, (rows, left, job) in enumerate(banks):
            emitting = emit & (out_bank == k)
            with m.If(load & (load_bank == k)):
                m.d.sync += [left.eq(pass_units), job.eq(meta.job)]
                m.d.sync += [rows[q].eq(row_sums[q]) for q in range(rows_per_bank)]
            with m.Elif(emitting):
                m.d.sync += left.eq(left - 1)
                for e in range(rows_per_bank - GATES_PER_UNIT):
                    m.d.sync += rows[e].eq(rows[e + GATES_PER_UNIT])
        with m.If(load):
            m.d.sync += load_bank.eq(~load_bank)
        with m.If(emit):
            last_unit = Mux(out_bank, banks[1][1], banks[0][1]) == 1
            with m.If(last_unit):
                m.d.sync += out_bank.eq(~out_bank)
            units = Array([mp.units - 1 for mp in plan.matrices])[out_job.matrix]
            with m.If(unit == units):
                m.d.sync += unit.eq(0)
            with m.Else():
                m.d.sync += unit.eq(unit + 1)

    def _sequence_drain(self, m, row_sums, load, meta) -> None:
        """Weight reuse (:attr:`~lstm_fpga.hw.plan.EnginePlan.weight_reuse`): the drain as
        ``B`` banks of :attr:`drain_depth` rows, bank ``b`` for sequence ``b``. A pass ends
        with ``B`` back-to-back ``last`` beats, sequences ``0 .. B-1``; their sums load bank
        ``job.sequence`` in consecutive cycles, above the up to 3 rows the bank carries from
        the previous pass when ``row_lanes`` is not a multiple of 4 (``drain_free``: no bank
        holds a whole unit, was 1 at the first of those beats). Units leave 4 rows at a time
        from the lowest bank holding one: a pass's units leave sequence by sequence (bank
        ``b`` loads before bank ``b + 1`` and empties before it may emit), each sequence's in
        order; with several passes per matrix the job's units therefore leave ordered
        ``(pass, sequence, unit)``. Each bank counts its own units (``unit`` restarts per
        sequence and job). ``loaded`` pulses with the last sequence's load."""
        plan = self._plan
        B = plan.interleave
        rows_per_pass = plan.row_lanes
        depth = self.drain_depth
        acc_shape = signed(plan.acc_width)
        banks = []
        for k in range(B):
            rows = [Signal(acc_shape, name=f"drain{k}_{e}", reset_less=True) for e in range(depth)]
            count = Signal(range(depth + 1), name=f"drain{k}_rows")
            unit = Signal.like(self.units.payload.unit, name=f"drain{k}_unit")
            job = Signal(job_layout(plan), name=f"drain{k}_job", reset_less=True)
            banks.append((rows, count, unit, job))
        holds = [count >= GATES_PER_UNIT for _, count, _, _ in banks]
        # The lowest bank holding a unit emits.
        out_bank = Signal(index_shape(B))
        for k in reversed(range(B)):
            with m.If(holds[k]):
                m.d.comb += out_bank.eq(k)
        emit = Signal()
        out_job = data.View(job_layout(plan), Array([job for *_, job in banks])[out_bank])
        m.d.comb += [
            self.units.valid.eq(Cat(*holds).any()),
            emit.eq(self.units.valid & self.units.ready),
            self.drain_free.eq(~Cat(*holds).any()),
            self.units.payload.unit.eq(Array([unit for _, _, unit, _ in banks])[out_bank]),
            self.units.payload.job.eq(out_job),
        ]
        for gate in range(GATES_PER_UNIT):
            m.d.comb += self.units.payload.gates[gate].eq(
                Array([rows[gate] for rows, *_ in banks])[out_bank]
            )
        last_rows = Array([mp.last_pass_rows for mp in plan.matrices])[meta.job.matrix]
        pass_rows = Mux(meta.final_pass, last_rows, rows_per_pass)
        for k, (rows, count, unit, job) in enumerate(banks):
            # (a bank never emits in the cycle it loads: it held no unit since the pass's
            # first ``last`` beat)
            with m.If(load & (meta.job.sequence == k)):
                m.d.sync += [count.eq(count + pass_rows), job.eq(meta.job)]
                if depth == rows_per_pass:  # whole units per pass: the bank is empty
                    m.d.sync += [rows[q].eq(row_sums[q]) for q in range(rows_per_pass)]
                else:  # the pass lands above the ``count`` carried rows
                    for e in range(depth):
                        with m.Switch(count):
                            for carried in range(GATES_PER_UNIT):
                                if 0 <= e - carried < rows_per_pass:
                                    with m.Case(carried):
                                        m.d.sync += rows[e].eq(row_sums[e - carried])
            with m.Elif(emit & (out_bank == k)):
                m.d.sync += count.eq(count - GATES_PER_UNIT)
                for e in range(depth - GATES_PER_UNIT):
                    m.d.sync += rows[e].eq(rows[e + GATES_PER_UNIT])
                units = Array([mp.units - 1 for mp in plan.matrices])[job.matrix]
                m.d.sync += unit.eq(Mux(unit == units, 0, unit + 1))

    def _gru_phase(self, m):
        """The row of lane 0 in its GRU unit for the current column beat: 0 at a job's first
        pass, ``row_lanes`` more (modulo 3) with every pass (a register updated by the
        ``last`` beats: after a ``final_pass`` one the next job starts from 0)."""
        plan = self._plan
        beat = self.column.payload
        phase = Signal(2)
        step = plan.row_lanes % 3
        advanced = Mux(phase + step >= 3, phase + step - 3, phase + step)
        with m.If(self.column.valid & beat.last):
            m.d.sync += phase.eq(Mux(beat.final_pass, 0, advanced))
        return phase

    def _drain_handshake(
        self, m, platform, depth, load, meta, job, unit, emit, unit_rows, head=None
    ):
        """The ``units`` handshake of a single drain of ``depth`` rows (the LSTM's and the
        GRU's; not the banked drains): the row count (:func:`_unit_counter`, ``unit_rows``
        and ``head`` as there, a landing pass adding its rows), ``units.valid`` from the
        ``has_unit`` register, ``emit`` (the handshake), ``drain_free``, ``units``' ``unit``
        and ``job`` from the registers ``unit`` and ``job``. ``ready`` only chooses between
        next values precomputed from registers, so no carry chain follows it; a pass never
        lands in a cycle that emits (its ``last`` beat needed ``drain_free``).

        A handshake's shift by one unit happens in the next cycle, enabled by registered
        copies of the handshake (one per four rows, one for the output choice: ``shift[g]``
        for rows ``4 g .. 4 g + 3``, ``shift[-1]`` for ``units``' gates): the handshake's
        logic (the consumer's ``ready``) drives these few flip-flops, not the enable of
        every drain row. In that cycle ``units`` must show the rows one unit up, which are
        the rows at the bottom once the shift is done. A pass never loads in that cycle (its
        ``last`` beat needed ``drain_free``, so no unit left since, and ``load_latency`` >
        0), so the load sees the drain shifted. Returns ``(count, shift)``."""
        plan = self._plan
        last_rows = Array([mp.last_pass_rows for mp in plan.matrices])[meta.job.matrix]
        pass_rows = Mux(meta.final_pass, last_rows, plan.row_lanes)
        count, has_unit, has_unit_next = _unit_counter(
            m, depth, load, pass_rows, emit, unit_rows, head
        )
        # The sequencer's own copy of ``has_unit`` (same value every cycle, kept apart by
        # synthesis): the original sits by the cell's input; its route into the walker's
        # load and issue logic was 1.49 ns of a 9.19 ns path at I=H=64 P=64.
        walker_copy = kept_delay(m, platform, has_unit_next, 1, "drain_has_unit", control=True)
        m.d.comb += [
            self.units.valid.eq(has_unit),
            emit.eq(self.units.valid & self.units.ready),
            self.drain_free.eq(~walker_copy),
            self.units.payload.unit.eq(unit),
            self.units.payload.job.eq(job),
        ]
        groups_of_rows = -(-depth // GATES_PER_UNIT)
        shift = replicas(m, platform, emit, groups_of_rows + 1, "drain_shift")
        return count, shift

    def _drain_job(self, m, load, emit, meta, job, unit) -> None:
        """A single drain's ``job`` (the landing pass's) and ``unit`` (the index of the unit
        at its bottom in that job's matrix: 0 with a load, one more with each handshake,
        wrapping after the matrix's last unit) registers."""
        with m.If(load):
            m.d.sync += job.eq(meta.job)
        with m.Elif(emit):
            units = Array([mp.units - 1 for mp in self._plan.matrices])[job.matrix]
            with m.If(unit == units):
                m.d.sync += unit.eq(0)
            with m.Else():
                m.d.sync += unit.eq(unit + 1)

    def _row_loads(self, m, platform, strobe, levels) -> list:
        """The load strobe per drain row, ``levels`` cycles after ``strobe``: a balanced tree
        of kept registers with one leaf per row, so a row's enable drives that row's
        flip-flops only (they sit by the row's lane) and no register reaches every row."""
        return broadcast(m, platform, strobe, self.drain_depth, levels, "drain_load", leaf_fanout=1)

    def _gru_drain(self, m, platform, row_sums, hn_sums, load, loads, meta) -> None:
        """The drain of a GRU plan: as the LSTM's (rows at the bottom go out a unit at a
        time, a pass loads above the carried rows, the shift a cycle after its handshake),
        each row with its second sum, ``k`` = 3 rows per unit of a layer direction (``gates
        = (r, z, n, n's second sum)``) and 4 of the head."""
        plan = self._plan
        row_lanes = plan.row_lanes
        acc_shape = signed(plan.acc_width)
        depth = self.drain_depth
        rows = [Signal(acc_shape, name=f"drain{e}", reset_less=True) for e in range(depth)]
        hns = [Signal(acc_shape, name=f"drain_hn{e}", reset_less=True) for e in range(depth)]
        unit = Signal.like(self.units.payload.unit)
        job = Signal(job_layout(plan), reset_less=True)
        emit = Signal()
        groups_of_rows = -(-depth // GATES_PER_UNIT)
        # Rows per unit of the drain's job (4: the head's), and of the landing pass's. The
        # row multiplexers (one unit up: 3 or 4 rows) take ``is_head`` from registered,
        # kept copies (one per four rows, one for the output choice) of its next value (the
        # job changes with a load only), not from one compare driving every drain row.
        if plan.head is None:
            is_head, head = Const(0), None
            heads = [is_head] * (groups_of_rows + 1)
        else:
            is_head = job.matrix == plan.head_index
            head = (is_head, meta.job.matrix == plan.head_index)
            next_matrix = Mux(load, meta.job.matrix, job.matrix)
            heads = replicas(m, platform, next_matrix == plan.head_index, groups_of_rows + 1,
                             "drain_head")  # fmt: skip
        count, shift = self._drain_handshake(
            m, platform, depth, load, meta, job, unit, emit, len(GRU_UNIT_ROWS), head
        )

        def up(values, e, is_head):  # ``values[e]`` one unit up (the head's unit: 4 rows)
            three = values[e + 3] if e + 3 < depth else values[e]
            four = values[e + 4] if e + 4 < depth else three
            return Mux(is_head, four, three)

        bottom = [Mux(shift[-1], up(rows, g, heads[-1]), rows[g]) for g in range(3)]
        fourth = Mux(shift[-1], up(hns, 2, heads[-1]), hns[2])
        if plan.head is not None:
            fourth = Mux(heads[-1], Mux(shift[-1], up(rows, 3, heads[-1]), rows[3]), fourth)
        for g, value in enumerate([*bottom, fourth]):
            m.d.comb += self.units.payload.gates[g].eq(value)
        # Where a pass lands: above the ``count`` carried rows (0 .. ``depth - row_lanes``),
        # as a one-hot choice registered a cycle ahead from ``count`` and kept per four rows
        # (``landing``), so the counter's decode drives a few flip-flops, not the source
        # choice of every drain row (chained with the shift's). The count a load sees is
        # the count of the cycle before: from a ``last`` beat to its load no other pass
        # lands (the walker's ``loaded`` wait) and no unit leaves (the beat needed
        # ``drain_free``, and only a load makes a unit).
        carries = range(depth - row_lanes + 1)
        if depth > row_lanes:
            decode = Cat(*(count == carried for carried in carries))
            landing = replicas(m, platform, decode, groups_of_rows, "drain_landing")
        for e in range(depth):
            group = e // GATES_PER_UNIT
            for values, sums in ((rows, row_sums), (hns, hn_sums)):
                with m.If(loads[e]):
                    if depth == row_lanes:  # whole units per pass: the drain is empty
                        m.d.sync += values[e].eq(sums[e])
                    else:  # the pass lands above the carried rows
                        with m.Switch(landing[group]):
                            for carried in carries:
                                if 0 <= e - carried < row_lanes:
                                    pattern = ["-"] * len(carries)
                                    pattern[len(carries) - 1 - carried] = "1"
                                    with m.Case("".join(pattern)):
                                        m.d.sync += values[e].eq(sums[e - carried])
                if e + 3 < depth:
                    with m.Elif(shift[group]):
                        m.d.sync += values[e].eq(up(values, e, heads[group]))
        self._drain_job(m, load, emit, meta, job, unit)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        row_lanes, groups = plan.row_lanes, plan.groups
        acc_shape = signed(plan.acc_width)
        beat = self.column.payload
        matrix_shape = beat.job.matrix.shape()

        # Broadcast: each lane's element and control bits through a replicated register tree.
        fields = {"valid": 1, "first": 1, "last": 1, "segment": 1, "matrix": matrix_shape}
        gru = plan.is_gru
        if gru:
            # ``hn``: the group's column is a recurrent column of a GRU layer direction;
            # ``phase``: the row of lane 0 in its unit (the pass's first row modulo 3).
            fields |= {"hn": 1, "phase": 2}
            phase = self._gru_phase(m)
        control = data.StructLayout(fields)
        lane_inputs = []
        for g in range(groups):
            bundle = Signal(data.StructLayout({"element": plan.element_shape, "control": control}))
            m.d.comb += [
                bundle.element.eq(beat.elements[g]),
                bundle.control.valid.eq(self.column.valid),
                bundle.control.first.eq(beat.first),
                bundle.control.last.eq(beat.last),
                bundle.control.segment.eq(beat.segments[g]),
                bundle.control.matrix.eq(beat.job.matrix),
            ]
            if gru:
                # (segment 1 is the recurrent ``h`` of layer 0, segment 0 that of layers above)
                recurrent = Array(
                    [int(mp.split_n and mp.segments[s].kind == SegmentKind.RECURRENT)
                     for mp in plan.matrices for s in (0, 1)]
                )  # fmt: skip
                m.d.comb += [
                    bundle.control.hn.eq(recurrent[Cat(beat.segments[g], beat.job.matrix)]),
                    bundle.control.phase.eq(phase),
                ]
            copies = broadcast(
                m,
                platform,
                bundle,
                row_lanes,
                self.broadcast_levels,
                f"broadcast{g}",
                leaf_fanout=DSP_FANOUT,
            )
            lane_inputs += [data.View(bundle.shape(), c) for c in copies]

        # Multiply (DSP with its input and output registers); the control bits ride
        # along in each lane's own registers, so no enable fans out to every lane.
        first_shifts = [mp.segments[0].shift for mp in plan.matrices]
        second_shifts = [mp.segments[-1].shift for mp in plan.matrices]
        bias_shifts = [mp.bias_shift for mp in plan.matrices]
        accumulators = []
        hn_accumulators = []  # (GRU plans: every lane's second sum)
        multiplier_latency = _multiplier_latency(plan)
        registered_sums = _registered_sums(plan)
        products = {}
        for even, odd in plan.lane_pairs:
            # Two lanes of a group, one DSP: the same element, two weights.
            multiplier = PackedMultiplier(plan.packed_product)
            m.submodules[f"multiplier{even}_{odd}"] = multiplier
            m.d.comb += [
                multiplier.a_even.eq(self.weights[even]),
                multiplier.a_odd.eq(self.weights[odd]),
                multiplier.b.eq(lane_inputs[even].element),
            ]
            products[even], products[odd] = multiplier.even, multiplier.odd
        for p, lane in enumerate(lane_inputs):
            if p not in products:
                multiplier = Multiplier(plan.weight_shape, plan.element_shape)
                m.submodules[f"multiplier{p}"] = multiplier
                m.d.comb += [multiplier.a.eq(self.weights[p]), multiplier.b.eq(lane.element)]
                # An unpaired lane (odd group size) meets its packed neighbours' products
                # (no delay while the two multipliers' latencies are equal).
                extra = multiplier_latency - Multiplier.LATENCY
                products[p] = delay(m, multiplier.product, extra, f"product{p}")
            # The lane's control beside its product in the lane's own kept registers:
            # synthesis merged the lanes' identical chains into one flip-flop per broadcast
            # copy, driving 16 lanes across the device (the aligned-product selects, 496
            # loads: an 8.78 ns route at I=H=64 P=64, 103.4 MHz on one seed; with only the
            # last register kept, a 7.96 ns route into it, 117.8 MHz).
            product_ctrl = data.View(
                control,
                kept_delay(m, platform, lane.control, multiplier_latency, f"control{p}"),
            )
            # The accumulator's control (``first``, ``matrix``) in the lane's own register, kept
            # apart from its siblings (without a broadcast level every lane's chain holds the
            # same bits, and merged they would drive every lane's adder and accumulator).
            ctrl = data.View(
                control, replicas(m, platform, product_ctrl, 1, f"aligned_control{p}_")[0]
            )
            # The accumulator's enable likewise (reset as a control register would be: merged,
            # one flip-flop enabled 16 lanes' accumulators, 704 flip-flops).
            valid = kept_delay(
                m, platform, lane.control.valid, self.product_latency, f"valid{p}", control=True
            )
            product = products[p]
            first = shift_select(product, first_shifts, product_ctrl.matrix)
            second = shift_select(product, second_shifts, product_ctrl.matrix)
            aligned = (
                first if first_shifts == second_shifts else Mux(product_ctrl.segment, second, first)
            )
            aligned = delay(m, aligned, 1, f"aligned{p}")
            bias = shift_select(self.biases[p], bias_shifts, ctrl.matrix)
            # With registered sums (``_registered_sums``) the accumulator also holds a pass's
            # final sum for one cycle (the group reduction or the drain reads it there) while
            # the next pass's first beat replaces it; else the drain takes the final sum
            # straight from the adder.
            acc = Signal(acc_shape, name=f"acc{p}", reset_less=True)
            total = Signal(acc_shape, name=f"sum{p}")
            if plan.weight_reuse:
                # A circular delay line of B accumulators (one per sequence of the group):
                # the add reads the entry written B beats earlier (the same sequence's, the
                # previous column's) and writes the head; every beat shifts it.
                chain = [acc] + [
                    Signal(acc_shape, name=f"acc{p}_{k}", reset_less=True)
                    for k in range(1, plan.interleave)
                ]
                m.d.comb += total.eq(Mux(ctrl.first, bias, chain[-1]) + aligned)
                with m.If(valid):
                    m.d.sync += [chain[0].eq(total)]
                    m.d.sync += [chain[k].eq(chain[k - 1]) for k in range(1, len(chain))]
            elif gru:
                # The n row's recurrent products go to the second accumulator (from b_hn).
                q = p % row_lanes
                to_hn = Signal(name=f"to_hn{p}")
                m.d.comb += to_hn.eq(ctrl.hn & (ctrl.phase == (2 - q) % 3))
                acc_hn = Signal(acc_shape, name=f"acc_hn{p}", reset_less=True)
                total_hn = Signal(acc_shape, name=f"sum_hn{p}")
                bias_hn = shift_select(self.biases_hn[p], bias_shifts, ctrl.matrix)
                m.d.comb += [
                    total.eq(Mux(ctrl.first, bias, acc) + Mux(to_hn, 0, aligned)),
                    total_hn.eq(Mux(ctrl.first, bias_hn, acc_hn) + Mux(to_hn, aligned, 0)),
                ]
                with m.If(valid):
                    m.d.sync += [acc.eq(total), acc_hn.eq(total_hn)]
                hn_accumulators.append(acc_hn if registered_sums else total_hn)
            else:
                m.d.comb += total.eq(Mux(ctrl.first, bias, acc) + aligned)
                with m.If(valid):
                    m.d.sync += acc.eq(total)
            accumulators.append(acc if registered_sums else total)

        # A row's result: its lanes' sums added over the column groups in a registered tree
        # (the partial sums are sums of subsets of the row's terms: none can overflow either).
        def reduce(lane_sums, prefix):
            row_sums = []
            for q in range(row_lanes):
                level = [lane_sums[g * row_lanes + q] for g in range(groups)]
                for k in range(self.reduction_levels):
                    pairs = []
                    for j in range(0, len(level), 2):
                        name = f"{prefix}{q}_l{k + 1}_{j // 2}"
                        total = Signal(acc_shape, name=name, reset_less=True)
                        m.d.sync += total.eq(sum(level[j : j + 2]))
                        pairs.append(total)
                    level = pairs
                row_sums.append(level[0])
            return row_sums

        row_sums = reduce(accumulators, "row")

        # The pass's job fields and the load strobe, delayed to the row sums.
        load_latency = self.load_latency
        # The strobe's last registers are a tree with a leaf per drain row (:meth:`_row_loads`),
        # so no flip-flop drives the load enable of every row: one drove 64 rows' copies
        # across the die at I=H=64 P=64 (a 9.95 ns route).
        load = Signal()
        load_levels = min(fanout_levels(self.drain_depth), load_latency)
        strobe = delay(
            m, self.column.valid & beat.last, load_latency - load_levels, "last", control=True
        )
        arriving = delay(m, strobe, load_levels - 1, "arriving", control=True)
        m.d.sync += load.eq(arriving)
        if not plan.weight_reuse:
            m.d.comb += self.loaded.eq(load)
        pass_layout = data.StructLayout({"job": job_layout(plan), "final_pass": 1})
        meta = Signal(pass_layout)
        m.d.comb += meta.eq(delay(m, Cat(beat.job, beat.final_pass), load_latency, "pass"))
        if plan.weight_reuse:
            # (the group's pass has landed with its last sequence's load)
            m.d.comb += self.loaded.eq(load & (meta.job.sequence == plan.interleave - 1))
            self._sequence_drain(m, row_sums, load, meta)
            return m
        if self.double_drain:
            self._double_drain(m, row_sums, load, meta)
            return m
        if gru:
            hn_sums = reduce(hn_accumulators, "row_hn")
            loads = self._row_loads(m, platform, strobe, load_levels)
            self._gru_drain(m, platform, row_sums, hn_sums, load, loads, meta)
            return m

        # Drain buffer: rows at the bottom go out 4 at a time; a pass loads above the carry.
        depth = self.drain_depth
        rows = [Signal(acc_shape, name=f"drain{e}", reset_less=True) for e in range(depth)]
        unit = Signal.like(self.units.payload.unit)
        job = Signal(job_layout(plan), reset_less=True)
        emit = Signal()
        # ``count >= 4`` kept in its own register (``has_unit``), so that the drain's handshake
        # starts at a flip-flop rather than at the counter's compare; a handshake's shift by
        # one unit a cycle later, from registered copies of it (:meth:`_drain_handshake`).
        count, shift = self._drain_handshake(
            m, platform, depth, load, meta, job, unit, emit, GATES_PER_UNIT
        )
        for gate in range(GATES_PER_UNIT):
            above = GATES_PER_UNIT + gate
            bottom = Mux(shift[-1], rows[above], rows[gate]) if above < depth else rows[gate]
            m.d.comb += self.units.payload.gates[gate].eq(bottom)
        # One copy of the load strobe per row: a row's enable (load or shift) then drives that
        # row's flip-flops only, which sit by the row's lane; a copy per four rows made an
        # enable of 4 x ``acc_width`` loads across four lanes (176 at I=H=64 P=64, its
        # critical route). The shift's copies stay one per four rows: each drives four
        # enables, not the rows' data.
        loads = self._row_loads(m, platform, strobe, load_levels)
        for e in range(depth):
            with m.If(loads[e]):
                if depth == row_lanes:
                    # Whole units per pass: the drain is always empty when a pass lands.
                    m.d.sync += rows[e].eq(row_sums[e])
                else:  # the pass lands above the ``count`` carried rows
                    with m.Switch(count):
                        for carried in range(GATES_PER_UNIT):
                            if 0 <= e - carried < row_lanes:
                                with m.Case(carried):
                                    m.d.sync += rows[e].eq(row_sums[e - carried])
            if e < depth - GATES_PER_UNIT:
                with m.Elif(shift[e // GATES_PER_UNIT]):
                    m.d.sync += rows[e].eq(rows[e + GATES_PER_UNIT])
        self._drain_job(m, load, emit, meta, job, unit)
        return m
