"""The GRU cell pipeline: one hidden unit's accumulators and ``h_{t-1}`` to ``h_t``.

The GRU counterpart of :class:`~lstm_fpga.hw.cell.GateCellPipeline`'s arithmetic, bit-exact to
:func:`lstm_fpga.sw.reference.gru_update` (the definition is
:class:`~lstm_fpga.sw.numerics.GruDatapath`, ``docs/gru.md``). It is a building block of the
GRU engine: the matrix-vector unit's jobs (3H rows of ``W_i*`` over ``x``, 3H rows of
``W_h*`` over ``h``) are not yet wired to it, so ``lstm-fpga build`` still refuses a GRU.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..sw.numerics import GruDatapath
from .activation import ActivationUnit
from .fixed import format_shape, rescale_saturates, rescale_value
from .pipeline import delay

__all__ = ["GruUnitPipeline"]


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
        return 5 + 2 * ActivationUnit.LATENCY

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
