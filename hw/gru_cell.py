"""The GRU cell pipeline: one hidden unit's accumulators and ``h_{t-1}`` to ``h_t``.

The GRU counterpart of :class:`~lstm_fpga.hw.cell.GateCellPipeline`, bit-exact to
:func:`lstm_fpga.sw.reference.gru_update` (the definition is
:class:`~lstm_fpga.sw.numerics.GruDatapath`, ``docs/gru.md``). :class:`GruUnitPipeline` is the
arithmetic of one layer direction; :class:`GruCellPipeline` wraps one per distinct datapath
with the ports of the LSTM's pipeline and keeps each unit's ``h_{t-1}``: the engine
(:class:`~lstm_fpga.hw.engine.LstmEngine`) uses it for a GRU plan. The matrix-vector unit
hands it four sums per unit (``r, z, xn, hn``: :data:`~lstm_fpga.hw.plan.GRU_UNIT_SUMS`, from
the three lane rows ``r, z, n``, the ``n`` row's lane keeping ``xn`` and ``hn`` apart).
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.numerics import GruDatapath
from .activation import ActivationUnit
from .cell import _CellPipelineFrame
from .fixed import format_shape, rescale_saturates, rescale_value
from .pipeline import delay

__all__ = ["GruCellPipeline", "GruUnitPipeline", "gru_unit_latency"]


def gru_unit_latency() -> int:
    """Cycles of :class:`GruUnitPipeline` from its inputs to ``h_new``: four rescale and
    arithmetic stages around two activations, and the hidden rescale."""
    return 5 + 2 * ActivationUnit.LATENCY


class GruUnitPipeline(wiring.Component):
    """One GRU hidden unit per cycle: six accumulators' worth of sums and ``h_{t-1}`` to
    ``h_t``, with the saturation events of every rescale.

    Formats (all from ``datapath``, a :class:`~lstm_fpga.sw.numerics.GruDatapath`):

    - ``acc_r``, ``acc_z``: the gate accumulator (``gate_acc.width`` bits, ``gate_acc.frac``
      fraction bits) of ``W_i x + W_h h + b`` for r and z;
    - ``acc_xn``: ``W_in x + b_in``, ``acc_hn``: ``W_hn h + b_hn``, both in the same
      accumulator format (aligned by ``gate_acc.shifts`` and ``bias_shift``);
    - ``h``: ``h_{t-1}`` of this unit in ``hidden``; ``h_new``: ``h_t`` in ``hidden``;
    - ``saturated``: ``preact`` (0-4 of the r, z, xn, hn and n rescales that clamped),
      ``hidden`` (1 when the update clamped) -- the reference's saturation counts.

    Pipeline (:attr:`latency` = 13 cycles from ``valid`` with the inputs to ``out_valid``
    with ``h_new`` and ``saturated``): the four pre-activation rescales (1), sigmoid of r and
    z (:attr:`ActivationUnit.LATENCY`), ``n_acc = r * hn + (xn << gate.frac)`` (1), its
    rescale (1), tanh (:attr:`ActivationUnit.LATENCY`), ``update = (one - z) * n + z * h``
    aligned by ``update_acc.shifts`` (1), its rescale (1). Throughput one unit per cycle;
    no handshake and no back-pressure: ``valid`` travels beside the data (reset to 0), the
    data registers have no reset.
    """

    def __init__(self, datapath: GruDatapath):
        if not isinstance(datapath, GruDatapath):
            self._MustUse__silence = True  # never elaborated: no "created but never used"
            raise TypeError(f"datapath must be a GruDatapath, not {type(datapath).__name__}")
        self._dp = datapath
        acc = signed(datapath.gate_acc.width)
        hidden = format_shape(datapath.formats.hidden)
        super().__init__(
            {
                "valid": In(1),
                "acc_r": In(acc),
                "acc_z": In(acc),
                "acc_xn": In(acc),
                "acc_hn": In(acc),
                "h": In(hidden),
                "out_valid": Out(1),
                "h_new": Out(hidden),
                "saturated_preact": Out(unsigned(3)),
                "saturated_hidden": Out(1),
            }
        )

    @property
    def datapath(self) -> GruDatapath:
        return self._dp

    @property
    def latency(self) -> int:
        """Cycles from the inputs to ``h_new`` (and ``out_valid``)."""
        return gru_unit_latency()

    def elaborate(self, platform):
        m = Module()
        dp, f = self._dp, self._dp.formats
        rounding, overflow = dp.rounding, dp.overflow
        act = ActivationUnit.LATENCY
        preact_shape = format_shape(f.preact)

        # Stage 1: the four pre-activation rescales and their saturation flags.
        frac = dp.gate_acc.frac
        pre = {}
        flags = []
        for name in ("r", "z", "xn", "hn"):
            value = getattr(self, f"acc_{name}")
            pre[name] = Signal(preact_shape, name=f"pre_{name}", reset_less=True)
            flag = Signal(name=f"sat_{name}", reset_less=True)
            m.d.sync += [
                pre[name].eq(rescale_value(value, frac, f.preact, rounding, overflow)),
                flag.eq(rescale_saturates(value, frac, f.preact, rounding)),
            ]
            flags.append(flag)
        h1 = delay(m, self.h, 1, "h")

        # Stages 2-5: sigmoid of r and z.
        m.submodules.sigmoid_r = sig_r = ActivationUnit(dp.sigmoid)
        m.submodules.sigmoid_z = sig_z = ActivationUnit(dp.sigmoid)
        m.d.comb += [sig_r.input.eq(pre["r"]), sig_z.input.eq(pre["z"])]
        xn = delay(m, pre["xn"], act, "xn")
        hn = delay(m, pre["hn"], act, "hn")

        # Stage 6: n's accumulator r * hn + xn (xn aligned as n_acc's bias).
        n_acc = Signal(signed(dp.n_acc.width), reset_less=True)
        m.d.sync += n_acc.eq(sig_r.output * hn + (xn << dp.n_acc.bias_shift))
        # Stage 7: its rescale to preact.
        n_pre = Signal(preact_shape, reset_less=True)
        sat_n = Signal(reset_less=True)
        m.d.sync += [
            n_pre.eq(rescale_value(n_acc, dp.n_acc.frac, f.preact, rounding, overflow)),
            sat_n.eq(rescale_saturates(n_acc, dp.n_acc.frac, f.preact, rounding)),
        ]
        # Stages 8-11: tanh.
        m.submodules.tanh_n = tanh = ActivationUnit(dp.tanh_gate)
        m.d.comb += tanh.input.eq(n_pre)
        z = delay(m, sig_z.output, 2 + act, "z")
        h = delay(m, h1, 2 * act + 2, "h_prev")

        # Stage 12: update = (one - z) * n + z * h, aligned.
        one_minus_z = Signal(format_shape(dp.one_minus_z))
        m.d.comb += one_minus_z.eq(dp.one - z)
        s_n, s_h = dp.update_acc.shifts
        update = Signal(signed(dp.update_acc.width), reset_less=True)
        m.d.sync += update.eq(((one_minus_z * tanh.output) << s_n) + ((z * h) << s_h))
        # Stage 13: the hidden rescale.
        hidden_frac = dp.update_acc.frac
        m.d.sync += [
            self.h_new.eq(rescale_value(update, hidden_frac, f.hidden, rounding, overflow)),
            self.saturated_hidden.eq(rescale_saturates(update, hidden_frac, f.hidden, rounding)),
        ]

        # Saturation flags of the pre-activations, summed when n's flag is known.
        early = Signal(unsigned(3), reset_less=True)
        m.d.comb += early.eq(sum(flags))
        early_at_n = delay(m, early, act + 2, "sat_early")
        total = Signal(unsigned(3), reset_less=True)
        m.d.sync += total.eq(early_at_n + sat_n)  # stage 8
        m.d.comb += self.saturated_preact.eq(delay(m, total, self.latency - 8, "sat_total"))
        m.d.comb += self.out_valid.eq(delay(m, self.valid, self.latency, "valid", control=True))
        return m


class GruCellPipeline(_CellPipelineFrame):
    """The four sums ``(r, z, xn, hn)`` of a GRU unit to ``h_t``, for every layer direction
    of a GRU plan (each with its own formats and tables): the ports and protocol of
    :class:`~lstm_fpga.hw.cell.GateCellPipeline`, with ``h`` as the only state.

    Exactly :func:`lstm_fpga.sw.reference.gru_update` with the datapath of the unit's layer
    direction (``job.matrix``): a :class:`GruUnitPipeline` per distinct datapath, the unit
    entering the one of its matrix. The pipeline keeps its own copy of every unit's
    ``h_{t-1}`` (``H`` words per layer direction, :attr:`EnginePlan.cell_shape
    <lstm_fpga.hw.plan.EnginePlan.cell_shape>`), read when the unit is accepted and written
    with ``h_t``; a unit with ``job.init`` (first step of a sequence started from the initial
    state) reads ``h0`` instead, from the memory written through ``h0_write``.

    Ports
    -----
    units : In, stream of :func:`~lstm_fpga.hw.mvu.unit_layout`
        One unit per beat, ``gates`` = the sums ``r, z, xn, hn``; ready while
        the output queues have room for what it emits (credit-based: no stall inside).
    hidden, state, hidden_write, announce, empty
        As :class:`~lstm_fpga.hw.cell.GateCellPipeline`'s (``state`` beats carry ``h`` only:
        :func:`~lstm_fpga.hw.cell.state_layout` of a GRU plan).
    h0_write : In, stream (always ready) of :func:`~lstm_fpga.hw.cell.c0_write_layout`
        Loads ``h0[k][u]`` at ``k * H + u`` (the same values the sequencer's state memory
        gets; only while no unit is in the pipeline).
    saturations : Out, :func:`~lstm_fpga.hw.cell.saturation_layout`
        ``preact`` (0-4 of the r, z, xn, hn and n rescales), ``hidden`` (the update), counted
        when the unit leaves; ``cell`` is always 0 (a GRU has no cell state).

    Protocol: unit ``u`` of a layer direction may only enter after the previous unit ``u``
    of the same layer direction has left (``hidden_write``), as for the LSTM pipeline.

    Latency: :attr:`LATENCY` cycles from an accepted unit to its ``hidden_write`` (the ``h``
    memory read, then :func:`gru_unit_latency`). Throughput: one unit per cycle.
    """

    #: Cycles from a ``units`` handshake to the ``hidden_write`` strobe: the sums and the
    #: ``h_{t-1}`` read are registered (1), then the unit pipeline.
    LATENCY = 1 + gru_unit_latency()

    _INIT_PORT = "h0_write"

    def __init__(self, plan, queue_depth: int = 16, announce: int = 0):
        if not plan.is_gru:
            raise ValueError("GruCellPipeline needs a GRU plan (an nn.GRU model)")
        super().__init__(plan, queue_depth, announce)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        H = plan.hidden_size
        dps = plan.datapaths
        payload = self.units.payload
        last = self.LATENCY - 1
        valid, metas, queues = self._meta_chain(m, self.LATENCY)

        # h_{t-1} (or h0): read with the handshake, there with the registered sums (stage 0).
        words = max(2, plan.state_words)
        m.submodules.h_state = h_state = Memory(shape=plan.cell_shape, depth=words, init=[])
        m.submodules.h_init = h_init = Memory(shape=plan.cell_shape, depth=words, init=[])
        h_read, h0_read = h_state.read_port(), h_init.read_port()
        h_write, h0_write = h_state.write_port(), h_init.write_port()
        bases = Array([k * H for k in range(len(dps))])
        address = bases[payload.job.matrix] + payload.unit
        m.d.comb += [
            h0_write.addr.eq(self.h0_write.payload.address),
            h0_write.data.eq(self.h0_write.payload.value),
            h0_write.en.eq(self.h0_write.valid),
            h_read.addr.eq(address),
            h0_read.addr.eq(address),
        ]
        h_prev = Mux(metas[0].job.init, h0_read.data, h_read.data)
        sums = [
            Signal(payload.gates[k].shape(), name=f"sum_{n}", reset_less=True)
            for k, n in enumerate(("r", "z", "xn", "hn"))
        ]
        m.d.sync += [sums[k].eq(payload.gates[k]) for k in range(4)]

        # One unit pipeline per distinct datapath; a unit enters its matrix's.
        distinct = []
        for dp in dps:
            if dp not in distinct:
                distinct.append(dp)
        which = [distinct.index(dp) for dp in dps]
        outputs = []
        for k, dp in enumerate(distinct):
            unit = m.submodules[f"gru{k}"] = GruUnitPipeline(dp)
            mine = valid[0]
            if len(distinct) > 1:
                mine = valid[0] & (Array(which)[metas[0].job.matrix] == k)
            m.d.comb += [
                unit.valid.eq(mine),
                unit.acc_r.eq(sums[0]),
                unit.acc_z.eq(sums[1]),
                unit.acc_xn.eq(sums[2]),
                unit.acc_hn.eq(sums[3]),
                unit.h.eq(h_prev),
            ]
            outputs.append(unit)
        h_new = Signal(plan.state_shape)
        preact = Signal(unsigned(3))
        hidden = Signal()
        if len(distinct) == 1:
            chosen = outputs[0]
            m.d.comb += [
                h_new.eq(chosen.h_new),
                preact.eq(chosen.saturated_preact),
                hidden.eq(chosen.saturated_hidden),
            ]
        else:
            index = Array(which)[metas[last].job.matrix]
            m.d.comb += [
                h_new.eq(Array([u.h_new for u in outputs])[index]),
                preact.eq(Array([u.saturated_preact for u in outputs])[index]),
                hidden.eq(Array([u.saturated_hidden for u in outputs])[index]),
            ]
        done = valid[last]
        m.d.comb += [
            self.saturations.preact.eq(Mux(done, preact, 0)),
            self.saturations.cell.eq(0),
            self.saturations.hidden.eq(done & hidden),
        ]
        out = metas[last]
        m.d.comb += [
            h_write.addr.eq(bases[out.job.matrix] + out.unit),
            h_write.data.eq(h_new),
            h_write.en.eq(done),
        ]

        def write_target(port, stage):  # where the unit of ``stage`` goes
            meta = metas[stage]
            region = Mux(meta.job.parity, 2 * plan.state_words, plan.state_words)
            m.d.comb += [
                port.valid.eq(valid[stage]),
                port.payload.address.eq(meta.job.vector_base + meta.unit),
                port.payload.final.eq(meta.job.final),
                port.payload.state_address.eq(region + bases[meta.job.matrix] + meta.unit),
            ]

        write_target(self.hidden_write, last)
        write_target(self.announce, last - self._announce)
        self._emit(m, queues, valid, metas, h_new, {})
        return m
