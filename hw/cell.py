"""Gate and cell pipeline: accumulators of one hidden unit to ``h_t``, with the ``c`` state."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .activation import ActivationUnit, distinct_tables
from .config import index_shape
from .fixed import (
    common_signed_shape,
    fit_rounded,
    format_shape,
    rescale_saturates,
    rescale_value,
    round_for,
    shift_select,
)
from .mvu import job_layout, unit_layout
from .pipeline import RegisteredProduct, delay
from .plan import EnginePlan
from .queue import CreditQueue

__all__ = [
    "EXTRA_STAGES",
    "GateCellPipeline",
    "c0_write_layout",
    "hidden_announce_layout",
    "hidden_write_layout",
    "output_layout",
    "saturation_layout",
    "select_rescale",
    "staged_rescale",
    "state_layout",
]


def output_layout(shape) -> data.StructLayout:
    """An output beat: ``data`` and ``last`` (the final element of a sequence's output)."""
    return data.StructLayout({"data": shape, "last": unsigned(1)})


def state_layout(plan: EnginePlan) -> data.StructLayout:
    """A final-state beat: ``h_n[k][u]`` and ``c_n[k][u]`` of one unit (a GRU: ``h_n`` only);
    ``last`` on the final unit of the final layer direction."""
    if plan.is_gru:
        return data.StructLayout({"h": plan.state_shape, "last": unsigned(1)})
    return data.StructLayout({"h": plan.state_shape, "c": plan.cell_shape, "last": unsigned(1)})


def hidden_write_layout(plan: EnginePlan) -> data.StructLayout:
    """A finished ``h_t[u]``: into the vector memory at ``address``; with ``final`` also into
    the final-state memory at ``state_address``. With weight reuse
    (:attr:`~lstm_fpga.hw.plan.EnginePlan.weight_reuse`) ``counted`` marks the units of the
    group's last sequence, the only ones the walker's scoreboards count."""
    counted = {"counted": unsigned(1)} if plan.weight_reuse else {}
    return data.StructLayout(
        {
            "value": plan.state_shape,
            "address": index_shape(plan.vector_depth),
            "final": unsigned(1),
            "state_address": index_shape(3 * plan.state_group_words),
            **counted,
        }
    )


def hidden_announce_layout(plan: EnginePlan) -> data.StructLayout:
    """Where a finished ``h_t[u]`` will be written: :func:`hidden_write_layout` without the
    value."""
    return data.StructLayout(
        {name: field.shape for name, field in hidden_write_layout(plan) if name != "value"}
    )


def c0_write_layout(plan: EnginePlan) -> data.StructLayout:
    """A write of ``c0[k][u]`` (of interleaved sequence ``b``) at ``address = b * L * D * H +
    k * H + u``."""
    return data.StructLayout(
        {"address": index_shape(plan.state_group_words), "value": plan.cell_shape}
    )


def saturation_layout() -> data.StructLayout:
    """Saturations detected in one cycle, per tensor kind."""
    return data.StructLayout({"preact": unsigned(3), "cell": unsigned(1), "hidden": unsigned(1)})


def _distinct(options):
    distinct = []
    for option in options:
        if option not in distinct:
            distinct.append(option)
    return distinct


def _select(m, matrix, options, distinct, results, flags, shape):
    """``results[k]`` and ``flags[k]`` of the distinct option of ``options[matrix]``."""
    if len(distinct) == 1:
        return results[0], flags[0]
    which = Array([distinct.index(o) for o in options])[matrix]
    result = Signal(shape)
    flag = Signal()
    m.d.comb += [result.eq(Array(results)[which]), flag.eq(Array(flags)[which])]
    return result, flag


def select_rescale(m, matrix, value, options, shape):
    """``rescale(value)`` with the parameters ``options[matrix]`` (``(from_frac, format,
    rounding, overflow)``), and whether it saturates; identical options share hardware."""
    distinct = _distinct(options)
    results, flags = [], []
    for from_frac, fmt, rounding, overflow in distinct:
        results.append(rescale_value(value, from_frac, fmt, rounding, overflow))
        flags.append(rescale_saturates(value, from_frac, fmt, rounding))
    return _select(m, matrix, options, distinct, results, flags, shape)


def staged_rescale(m, next_matrix, value, options, shape, name):
    """:func:`select_rescale` over two cycles: ``value`` rounded and compared
    (:func:`~lstm_fpga.hw.fixed.round_for`) into stage registers, fitted and chosen by
    ``next_matrix`` (the matrix of the registered value) the cycle after, so that no carry
    chain and the clamp share a cycle. Returns the fitted value and its saturation flag,
    both of the registered value."""
    distinct = _distinct(options)
    results, flags = [], []
    for k, (from_frac, fmt, rounding, overflow) in enumerate(distinct):
        rounded = round_for(value, from_frac, fmt, rounding).registered(m, f"{name}_r{k}")
        results.append(fit_rounded(rounded, fmt, overflow))
        flags.append(rounded.saturates)
    return _select(m, next_matrix, options, distinct, results, flags, shape)


class _CellPipelineFrame(wiring.Component):
    """The frame of a cell pipeline (:class:`GateCellPipeline`,
    :class:`~lstm_fpga.hw.gru_cell.GruCellPipeline`): the ports both share, the output
    queues with the ``units`` handshake, and the ``valid``/``metas`` chain that carries each
    accepted unit to its outputs. A subclass names its initial-state port (:attr:`_INIT_PORT`,
    a stream of :func:`c0_write_layout`), sets :attr:`LATENCY` and builds its unit datapath in
    ``elaborate`` between :meth:`_meta_chain` and :meth:`_emit`.

    Ports (the subclasses' docstrings give their formats and contracts)
    ------------------------------------------------------------------
    units : In, stream of :func:`~lstm_fpga.hw.mvu.unit_layout`
        One unit per beat; ready while the output queues have room for what it emits
        (credit-based: a queue's slot is reserved when the unit is accepted, so the pipeline
        never stalls).
    hidden : Out, stream of :func:`output_layout` (the model's output format)
    state : Out, stream of :func:`state_layout`
    hidden_write : Out, stream (always ready) of :func:`hidden_write_layout`
    announce : Out, stream (always ready) of :func:`hidden_announce_layout`
        ``announce`` cycles (``0 .. LATENCY - 1``) ahead of ``hidden_write``.
    <_INIT_PORT> : In, stream (always ready) of :func:`c0_write_layout`
    saturations : Out, :func:`saturation_layout`
    empty : Out, 1
        No unit in the pipeline and none offered.

    Latency: ``LATENCY`` cycles from an accepted unit to its ``hidden_write``; throughput one
    unit per cycle while the output queues keep up.
    """

    #: Cycles from a ``units`` handshake to the ``hidden_write`` strobe (a subclass's).
    LATENCY: int
    #: Name of the initial-state write port (``c0_write`` or ``h0_write``).
    _INIT_PORT: str

    def __init__(self, plan: EnginePlan, queue_depth: int = 16, announce: int = 0):
        if queue_depth < 1:
            raise ValueError(f"queue_depth must be at least 1, not {queue_depth}")
        if not 0 <= announce < self.LATENCY:
            raise ValueError(f"announce must be in 0 .. {self.LATENCY - 1}, not {announce}")
        self._announce = announce
        self._plan = plan
        self._queue_depth = queue_depth
        y_shape = plan.model.output_format
        super().__init__(
            {
                "units": In(stream.Signature(unit_layout(plan))),
                "hidden": Out(stream.Signature(output_layout(format_shape(y_shape)))),
                "state": Out(stream.Signature(state_layout(plan))),
                "hidden_write": Out(stream.Signature(hidden_write_layout(plan), always_ready=True)),
                "announce": Out(stream.Signature(hidden_announce_layout(plan), always_ready=True)),
                self._INIT_PORT: In(stream.Signature(c0_write_layout(plan), always_ready=True)),
                "saturations": Out(saturation_layout()),
                "empty": Out(1),
            }
        )

    @property
    def latency(self) -> int:
        """Cycles from an accepted unit to its ``hidden_write`` (:attr:`LATENCY`)."""
        return self.LATENCY

    @property
    def announce_lead(self) -> int:
        """Cycles by which ``announce`` precedes ``hidden_write`` (the constructor's
        ``announce``)."""
        return self._announce

    def _queue(self, m, name, port, emits):
        """An output queue fed by the pipeline's last stage; ``emits`` takes its credit."""
        queue = m.submodules[f"{name}_queue"] = CreditQueue(port.payload.shape(), self._queue_depth)
        wiring.connect(m, queue.output, wiring.flipped(port))
        m.d.comb += queue.reserve.eq(emits)
        return queue

    def _meta_chain(self, m, latency):
        """The output queues, the ``units`` handshake and the chain of the accepted units:
        ``valid[k]`` and ``metas[k]`` (``unit`` and ``job``) of the unit ``k + 1`` cycles
        after its handshake, for ``k < latency``; drives ``units.ready`` and ``empty``.
        Returns ``(valid, metas, queues)``, ``queues`` for :meth:`_emit`."""
        payload = self.units.payload
        meta_layout = data.StructLayout(
            {"unit": payload.unit.shape(), "job": job_layout(self._plan)}
        )
        accept = Signal()
        y_queue = self._queue(m, "y", self.hidden, accept & payload.job.emit_y)
        s_queue = self._queue(m, "state", self.state, accept & payload.job.emit_state)
        m.d.comb += [
            self.units.ready.eq(
                (~payload.job.emit_y | y_queue.available)
                & (~payload.job.emit_state | s_queue.available)
            ),
            accept.eq(self.units.valid & self.units.ready),
        ]
        valid = [Signal(name=f"valid{k}") for k in range(latency)]
        metas = [Signal(meta_layout, name=f"meta{k}", reset_less=True) for k in range(latency)]
        m.d.sync += [valid[0].eq(accept), metas[0].unit.eq(payload.unit)]
        m.d.sync += metas[0].job.eq(payload.job)
        for k in range(1, latency):
            m.d.sync += [valid[k].eq(valid[k - 1]), metas[k].eq(metas[k - 1])]
        m.d.comb += self.empty.eq(~Cat(*valid).any() & ~self.units.valid)
        return valid, metas, (y_queue, s_queue)

    def _emit(self, m, queues, valid, metas, h_new, state):
        """The last stage's unit to its outputs: ``hidden_write`` (its value ``h_new``) and
        the output queues (``state``: the ``state`` beat's fields besides ``h`` and
        ``last``). The write targets (``hidden_write``, ``announce``) are the subclass's."""
        y_queue, s_queue = queues
        out = metas[-1]  # the last stage (``valid`` and ``metas`` as the subclass staged them)
        done = valid[-1]
        unit_last = out.unit == self._plan.hidden_size - 1
        m.d.comb += [
            self.hidden_write.payload.value.eq(h_new),
            y_queue.push.valid.eq(done & out.job.emit_y),
            y_queue.push.payload.data.eq(h_new),
            y_queue.push.payload.last.eq(out.job.y_last & unit_last),
            s_queue.push.valid.eq(done & out.job.emit_state),
            s_queue.push.payload.h.eq(h_new),
            *(s_queue.push.payload[name].eq(value) for name, value in state.items()),
            s_queue.push.payload.last.eq(
                (out.job.matrix == len(self._plan.datapaths) - 1) & unit_last
            ),
        ]


#: Registers between the drain and the cell's first stage with ``extra_stages``.
_INPUT_STAGES = 1
#: Cycles ``c_t``'s rescale takes more with ``extra_stages`` (its add and its clamp apart).
_RESCALE_STAGES = 1
#: Cycles a :class:`GateCellPipeline` with ``extra_stages`` takes more: its input register and
#: the second cycle of ``c_t``'s rescale.
EXTRA_STAGES = _INPUT_STAGES + _RESCALE_STAGES


class GateCellPipeline(_CellPipelineFrame):
    """``(i, f, g, o)`` accumulators of a unit and ``c_{t-1}`` to ``h_t`` and ``c_t``, for every
    layer direction of a plan (each with its own formats and tables).

    Exactly :func:`lstm_fpga.sw.reference.cell_update` with the datapath of the unit's layer
    direction (``job.matrix``): rescale each accumulator to the ``preact`` format,
    sigmoid(i, f, o) and tanh(g) from the tables, ``c_t = rescale((f*c << s0) + (i*g << s1),
    cell)``, ``h_t = rescale(o * tanh_cell(c_t), hidden)``; rounding and saturation of the
    model. ``c`` is kept here (``H`` words per layer direction, per interleaved sequence
    ``job.sequence`` with ``B > 1``: ``B*L*D*H`` words); a unit with ``job.init``
    (first step of a sequence started from the initial state) uses ``c0`` instead, from the
    ``c0`` memory written through ``c0_write``.

    Ports
    -----
    units : In, stream of :func:`~lstm_fpga.hw.mvu.unit_layout`
        One unit per beat; ready while the output queues have room for what it emits
        (credit-based, so the pipeline itself never stalls).
    hidden : Out, stream of :func:`output_layout` (last layer's hidden format)
        ``h_t[u]`` of units with ``job.emit_y``, in arrival order; ``last`` on unit ``H-1`` of
        a ``job.y_last`` job.
    state : Out, stream of :func:`state_layout`
        ``(h_t[u], c_t[u])`` of units with ``job.emit_state``; ``last`` on the final unit of
        the final layer direction.
    hidden_write : Out, stream (always ready) of :func:`hidden_write_layout`
        Every ``h_t[u]`` as it leaves the pipeline, for the vector memory (and the
        final-state memory).
    announce : Out, stream (always ready) of :func:`hidden_announce_layout`
        The same writes ``announce`` cycles (a constructor argument, default 0) before their
        ``hidden_write`` (certain then: the pipeline never stalls), for the sequencer's
        scoreboard and its forwarding of values not yet in memory.
    c0_write : In, stream (always ready) of :func:`c0_write_layout`
        Loads the initial cell state (only while no unit is in the pipeline).
    saturations : Out, :func:`saturation_layout`
        Rescale results clamped this cycle (pre-activations 0..4, cell, hidden), as the
        reference's ``SaturationCounts`` count them.

    Protocol: unit ``u`` of a layer direction may only enter after the previous unit ``u``
    of the same layer direction has left (``hidden_write``), since its ``c`` is read in stage
    ``_C_READ`` and written in ``_CELL``. The sequencer guarantees it: a step's recurrent
    columns wait for every unit of the previous step of the same layer direction.

    Latency: :attr:`latency` cycles from an accepted unit to its ``hidden_write``, and 2 more
    to the head of the output queues. Throughput: one unit per cycle while the outputs keep up.

    With ``extra_stages`` (:data:`EXTRA_STAGES` = 2 cycles more: :attr:`latency` =
    :attr:`LATENCY` + 2) two stages become routes and carry chains of their own: an *input
    register* holds the accepted unit's accumulators as they are (no logic between the
    drain's registers and these: the route from the matrix-vector unit's drain, spread with
    its lanes over the device, is a cycle of its own), and ``c_t``'s rescale takes two
    cycles (rounded and compared, then fitted, as the pre-activations': no carry chain and
    the clamp share a cycle). :func:`~lstm_fpga.hw.interface.cell_extra_stages` chooses them
    wherever the schedule hides the two cycles.
    """

    # Stages (index k: the cycle after ``k + 1`` registers). Derived from the activation
    # unit's latency; each stage is one register transfer, one multiply or one short add.
    #: Pre-activations (rescaled accumulators) are valid in this stage: rounded and compared
    #: into stage 0, fitted into stage 1 (:func:`staged_rescale`).
    _PREACT = 1
    #: Gate activations (sigmoid/tanh outputs) are valid in this stage.
    _GATES = _PREACT + ActivationUnit.LATENCY
    #: The c state's memory (read, output register) is addressed in this stage; ``c_{t-1}``
    #: (or ``c0``) is then chosen into ``c_prev``, the ``f * c`` product's operand register.
    _C_READ = _GATES - 3
    #: ``f * c`` and ``i * g`` products are valid in this stage.
    _CELL_PRODUCTS = _GATES + 1
    #: Their aligned sum is valid in this stage; ``c_t`` is computed (rounded and fitted) in it.
    _CELL_SUM = _CELL_PRODUCTS + 1
    #: ``c_t`` is valid (registered) in this stage, written to the c memory; ``tanh(c_t)`` starts.
    _CELL = _CELL_SUM + 1
    #: ``tanh(c_t)`` is valid in this stage, where ``o * tanh(c_t)`` is multiplied.
    _TANH_CELL = _CELL + ActivationUnit.LATENCY
    #: Cycles from a ``units`` handshake to the ``hidden_write`` strobe.
    LATENCY = _TANH_CELL + 3
    _INIT_PORT = "c0_write"

    def __init__(
        self,
        plan: EnginePlan,
        queue_depth: int = 16,
        announce: int = 0,
        *,
        extra_stages: bool = False,
    ):
        self._extra_stages = bool(extra_stages)
        super().__init__(plan, queue_depth, announce)

    @property
    def extra_stages(self) -> bool:
        """Whether the pipeline has the input register and the two-cycle ``c_t`` rescale."""
        return self._extra_stages

    @property
    def latency(self) -> int:
        """Cycles from an accepted unit to its ``hidden_write``: :attr:`LATENCY`, plus
        :data:`EXTRA_STAGES` with :attr:`extra_stages`."""
        return self.LATENCY + EXTRA_STAGES * self._extra_stages

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        H = plan.hidden_size
        dps = plan.datapaths
        valid, metas, queues = self._meta_chain(m, self.latency)
        gates_in = self.units.payload.gates
        # (``staged``: the extra stage of c_t's rescale; the stages after it come a cycle on)
        staged = _RESCALE_STAGES * self._extra_stages
        if self._extra_stages:
            # The drain's registers straight into the cell's (only a route between them);
            # the stages below count from these registers, so they see the chain a cycle on.
            gates_in = [
                delay(m, gates_in[k], _INPUT_STAGES, f"unit_gates{k}") for k in range(len(gates_in))
            ]
            valid, metas = valid[_INPUT_STAGES:], metas[_INPUT_STAGES:]

        def matrix(stage):
            return metas[stage].job.matrix

        # Handshake -> stage 0: accumulators (the drain's registers) rounded and compared
        # into stage registers; stage 0 -> _PREACT: fitted (the clamp) into the
        # pre-activation registers. The saturation flags are counted from the stage
        # registers (the count's adder is off the carry chains).
        preact_shape = _common([dp.formats.preact for dp in dps])
        preacts = [Signal(preact_shape, name=f"preact_{n}", reset_less=True) for n in "ifgo"]
        preact_options = [
            (dp.gate_acc.frac, dp.formats.preact, dp.rounding, dp.overflow) for dp in dps
        ]
        flags = []
        for k in range(4):
            value, flag = staged_rescale(
                m, matrix(0), gates_in[k], preact_options, preact_shape, f"preact{k}"
            )
            m.d.sync += preacts[k].eq(value)
            flags.append(valid[0] & flag)
        preact_saturated = Signal(range(5))
        m.d.comb += preact_saturated.eq(sum(flags))

        # Stages _PREACT -> _GATES: activations.
        kinds = (
            [dp.sigmoid for dp in dps],
            [dp.sigmoid for dp in dps],
            [dp.tanh_gate for dp in dps],
            [dp.sigmoid for dp in dps],
        )
        gates = []
        for k, (name, tables) in enumerate(zip("ifgo", kinds, strict=True)):
            unique, index = distinct_tables(tables)
            # Every unit ends in its output register: the interpolation's rounding and add end
            # at a fabric register, not at a DSP's input register across a route; the cell
            # products take these registers as their operands.
            unit = m.submodules[f"act_{name}"] = ActivationUnit(unique)
            m.d.comb += unit.input.eq(preacts[k])
            if len(unique) > 1:
                m.d.comb += unit.select.eq(Array(index)[matrix(self._PREACT)])
            gates.append(unit.output)
        gate_i, gate_f, gate_g, gate_o = gates

        # c state: addressed in stage _C_READ (registered data in _GATES - 1), written in
        # _CELL. Reading a stage before the operand register is safe: a unit's c is
        # written long before the unit can come again (its next step needs every h_t).
        words = max(2, plan.state_group_words)
        m.submodules.cell_state = cell_state = Memory(shape=plan.cell_shape, depth=words, init=[])
        m.submodules.cell_init = cell_init = Memory(shape=plan.cell_shape, depth=words, init=[])
        c_read = cell_state.read_port()
        c0_read = cell_init.read_port()
        c_write = cell_state.write_port()
        c0_write = cell_init.write_port()
        m.d.comb += [
            c0_write.addr.eq(self.c0_write.payload.address),
            c0_write.data.eq(self.c0_write.payload.value),
            c0_write.en.eq(self.c0_write.valid),
        ]
        bases = Array([k * H for k in range(len(dps))])

        def sequenced(address, stage):  # interleaved sequence b's states at b * L*D*H on
            if plan.interleave == 1:
                return address
            return address + metas[stage].job.sequence * plan.state_words

        c_address = sequenced(bases[matrix(self._C_READ)] + metas[self._C_READ].unit, self._C_READ)
        m.d.comb += [c_read.addr.eq(c_address), c0_read.addr.eq(c_address)]
        c_data = delay(m, c_read.data, 1, "c_q")
        c0_data = delay(m, c0_read.data, 1, "c0_q")
        c_prev = delay(m, Mux(metas[self._GATES - 1].job.init, c0_data, c_data), 1, "c_prev")

        # Stage _GATES -> _CELL_PRODUCTS: the cell products, each from its operands' registers
        # (the activation units' output registers and c_prev, loaded at the end of _GATES - 1)
        # to the product register (on ECP5 a MULT18X18D's output register).
        f_times_c = _product(m, "f_times_c", gate_f, c_prev, input_registers=False)
        i_times_g = _product(m, "i_times_g", gate_i, gate_g, input_registers=False)
        # o waits for tanh(c_t) (in registers up to _TANH_CELL, an operand of o * tanh(c_t)).
        o_gate = delay(m, gate_o, self._TANH_CELL + staged - self._GATES, "o_gate")

        # Stage _CELL_PRODUCTS -> _CELL_SUM: the aligned sum; _CELL_SUM -> _CELL: c_t
        # (rounded and fitted), written back to the c memory from its register in _CELL.
        shift_fc = [dp.cell_acc.shifts[0] for dp in dps]
        shift_ig = [dp.cell_acc.shifts[1] for dp in dps]
        stage = self._CELL_PRODUCTS
        cell_sum = delay(
            m,
            shift_select(f_times_c, shift_fc, matrix(stage))
            + shift_select(i_times_g, shift_ig, matrix(stage)),
            1,
            "cell_sum",
        )
        stage = self._CELL_SUM
        cell_options = [(dp.cell_acc.frac, dp.formats.cell, dp.rounding, dp.overflow) for dp in dps]
        if staged:  # rounded and compared into stage registers, fitted the cycle after
            stage += 1
            c_new_value, cell_flag = staged_rescale(
                m, matrix(stage), cell_sum, cell_options, plan.cell_shape, "c_t"
            )
        else:
            c_new_value, cell_flag = select_rescale(
                m, matrix(stage), cell_sum, cell_options, plan.cell_shape
            )
        cell_stage, tanh_stage = self._CELL + staged, self._TANH_CELL + staged
        last = self.LATENCY + staged - 1
        c_new = [
            Signal(plan.cell_shape, name=f"c_new{k}", reset_less=True)
            for k in range(cell_stage, last + 1)
        ]
        cell_saturated = Signal()
        m.d.sync += [c_new[0].eq(c_new_value), cell_saturated.eq(valid[stage] & cell_flag)]
        for k in range(1, len(c_new)):
            m.d.sync += c_new[k].eq(c_new[k - 1])
        # c_t is written from its register a stage later (the rescale's carry chains end at
        # a flip-flop, not at the memory's write port); still long before the unit's c is
        # read again (its next step waits for this step's hidden_write).
        written = cell_stage
        m.d.comb += [
            c_write.addr.eq(sequenced(bases[matrix(written)] + metas[written].unit, written)),
            c_write.data.eq(c_new[0]),
            c_write.en.eq(valid[written]),
        ]

        # Stages _CELL -> _TANH_CELL: tanh(c_t) (into the unit's output register: its rounding
        # and add end at a fabric register, not at a DSP's input register across a route);
        # then o * tanh(c_t) from the registers of both operands (the DSP's output register
        # only); then h_t.
        unique, index = distinct_tables([dp.tanh_cell for dp in dps])
        tanh_cell = m.submodules.act_c = ActivationUnit(unique)
        m.d.comb += tanh_cell.input.eq(c_new[0])
        if len(unique) > 1:
            m.d.comb += tanh_cell.select.eq(Array(index)[matrix(cell_stage)])
        hidden_product = _product(
            m, "hidden_product", o_gate, tanh_cell.output, input_registers=False
        )
        hidden_options = [
            (dp.hidden_product_frac, dp.cell_output, dp.rounding, dp.overflow) for dp in dps
        ]
        h_value, hidden_flag = select_rescale(
            m, matrix(tanh_stage + 1), hidden_product, hidden_options, plan.state_shape
        )
        h_new = Signal(plan.state_shape, reset_less=True)
        hidden_saturated = Signal()
        m.d.sync += [
            h_new.eq(h_value),
            hidden_saturated.eq(valid[tanh_stage + 1] & hidden_flag),
        ]
        m.d.comb += [
            self.saturations.preact.eq(preact_saturated),
            self.saturations.cell.eq(cell_saturated),
            self.saturations.hidden.eq(hidden_saturated),
        ]

        def write_target(port, stage):  # where the unit of ``stage`` goes
            meta = metas[stage]
            final_base = Array([k * H for k in range(len(dps))])[meta.job.matrix]
            region = Mux(meta.job.parity, 2 * plan.state_group_words, plan.state_group_words)
            region = sequenced(region, stage)
            m.d.comb += [
                port.valid.eq(valid[stage]),
                port.payload.address.eq(meta.job.vector_base + meta.unit),
                port.payload.final.eq(meta.job.final),
                port.payload.state_address.eq(region + final_base + meta.unit),
            ]
            if plan.weight_reuse:
                m.d.comb += port.payload.counted.eq(meta.job.sequence == plan.interleave - 1)

        write_target(self.hidden_write, last)
        write_target(self.announce, last - self._announce)
        self._emit(m, queues, valid, metas, h_new, {"c": c_new[-1]})
        return m


def _product(m, name, a, b, *, input_registers=True):
    """``a * b`` registered 2 cycles later, the operand registers and the product register
    those of a :class:`RegisteredProduct` (a DSP's, where the platform has one); without
    ``input_registers``, ``a`` and ``b`` are registers already and the product comes a cycle
    later."""
    product = m.submodules[name] = RegisteredProduct(
        a.shape(), b.shape(), input_registers=input_registers
    )
    m.d.comb += [product.a.eq(a), product.b.eq(b)]
    return product.product


def _common(formats):
    return common_signed_shape(*formats)
