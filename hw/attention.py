"""Attention pooling in hardware: :class:`AttentionUnit`, bit-exact to the integer reference.

The unit sits after the last LSTM layer: it takes the top layer's ``h_t`` elements (the
engine's every-step output) and the score pre-activations ``u_t = rescale(W h_t + b,
preact)`` (the lanes' score job: the score matrix is a matrix of the engine's plan, computed
like a Linear head, :meth:`~lstm_fpga.sw.ir.AttentionPooling.score_head`), keeps each
sequence's ``h_t`` and scores ``e_t = v . tanh(u_t)`` (at most ``max_steps`` steps) and, at
the sequence's end, computes the softmax, the context and the Linear head on it
(``docs/attention.md``, "Hardware"). Every number (table entries,
accumulator alignments, the reciprocal's width) comes from
:class:`~lstm_fpga.sw.numerics.AttentionDatapath` and
:class:`~lstm_fpga.sw.numerics.HeadDatapath`; the order of operations, rounding and
saturation are those of :func:`lstm_fpga.sw.reference.attention_pool` and
:func:`~lstm_fpga.sw.reference.head_forward`.

One multiplier, shared by ``v . tanh``, the context and the head; one table unit, shared by
tanh and exp.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.ir import AttentionPooling, LinearHead
from ..sw.numerics import Overflow, Rounding
from .activation import ActivationUnit
from .cell import output_layout
from .config import index_shape
from .fixed import common_signed_shape, fit_rounded, format_shape, round_for
from .pipeline import RegisteredProduct, delay

__all__ = ["ATTENTION_SATURATION_KINDS", "AttentionResources", "AttentionUnit", "attention_cycles"]

#: The clamps the unit reports, one pulse each: the reference's ``result.attention
#: .saturations`` keys but ``preact`` (whose clamps the lanes' score job reports from its
#: output stage), then the head's. The top counts ``score``, ``alpha``, ``context`` (and the
#: score job's) in ``sat_attention``, ``head`` in ``sat_head``.
ATTENTION_SATURATION_KINDS = ("score", "alpha", "context", "head")

# Phases (the value of the unit's ``phase`` register).
_RECEIVE, _SCORE, _E, _EXP, _RECIP, _DIVIDE, _ALPHA, _CONTEXT, _HEAD, _EMIT = range(10)
_PHASES = 10


def attention_cycles(
    features: int,
    attention_size: int,
    out_features: int,
    steps: int,
    *,
    exp_width: int,
    recip_bits: int,
    max_steps: int,
) -> dict[str, int]:
    """Cycles :class:`AttentionUnit` spends on one sequence of ``steps`` steps, from its
    phases (``docs/attention.md``, "Hardware"): ``per_step`` (after a step's ``F`` elements
    are in: the score matrix and the score), ``per_sequence`` (after the final step's score:
    softmax, context, head, the ``O`` outputs with ``y`` always ready) and ``receive`` (one
    cycle per element while the engine offers one every cycle); ``per_step`` counts from a
    step's ``F`` elements, its ``A`` values ``u_t`` offered one per cycle from then on."""
    drain = AttentionUnit.DRAIN + 1
    F, A, O, T = features, attention_size, out_features, steps
    total_width = (max_steps * ((1 << exp_width) - 1)).bit_length()
    divide = total_width - 1 + recip_bits + 1
    per_step = (A + AttentionUnit.TABLE_WAIT + 1) + (A + drain)
    per_sequence = (T + drain) + 1 + divide + (T + drain) + (F * T + drain) + (O * F + drain) + O
    return {"receive": F, "per_step": per_step, "per_sequence": per_sequence}


class AttentionResources:
    """What an :class:`AttentionUnit` of these parameters is built from, without the
    component: the datapaths (``ad``, ``hd``: :class:`~lstm_fpga.sw.numerics
    .AttentionDatapath`, :class:`~lstm_fpga.sw.numerics.HeadDatapath`), the memories, the
    products, the table unit's tables and the stream layouts. The unit builds itself from
    one; the resource estimate (:func:`lstm_fpga.hw.devices.estimate_resources`) counts one
    (a unit it built and never elaborated would be an unused elaboratable). Raises
    ``ValueError`` for parameters the unit does not take (see :class:`AttentionUnit`)."""

    def __init__(
        self,
        pooling: AttentionPooling,
        head: LinearHead,
        *,
        rounding: Rounding,
        overflow: Overflow,
        max_steps: int,
    ):
        ad = pooling.datapath(rounding, overflow)
        hd = head.datapath(rounding, overflow)
        if head.in_features != pooling.features:
            raise ValueError(
                f"the head takes {head.in_features} features, attention pools {pooling.features}"
            )
        if hd.formats.x != ad.formats.context:
            raise ValueError(
                f"head.x {hd.formats.x} must be attention.context {ad.formats.context}"
            )
        if not 1 <= max_steps <= ad.max_steps:
            raise ValueError(
                f"max_steps must be 1 .. {ad.max_steps} (the longest sequence attention pooling "
                f"computes exactly with these formats), not {max_steps}"
            )
        for plan in (ad.e_acc, hd.acc):
            # One segment of products: its alignment shift is 0 (only the bias is shifted).
            assert plan.shifts == (0,)
        self.pooling, self.head = pooling, head
        self.ad, self.hd = ad, hd
        self.max_steps = max_steps

    @property
    def total_width(self) -> int:
        """Bits of the exp sum ``S`` of ``max_steps`` steps."""
        return (self.max_steps * self.ad.formats.exp.max_int).bit_length()

    @property
    def dividend_width(self) -> int:
        """Bits of the dividend ``2**k (+ S // 2)``: ``k + 1``, ``k`` at most
        ``total_width - 1 + recip_bits``; the division takes this many cycles."""
        return self.total_width - 1 + self.ad.recip_bits + 1

    def stream_layouts(self) -> dict[str, data.StructLayout]:
        """Payload layouts of the unit's ``h``, ``u`` and ``y`` streams."""
        f = self.ad.formats
        return {
            "h": output_layout(format_shape(f.x)),
            "u": output_layout(format_shape(f.preact)),
            "y": output_layout(format_shape(self.hd.formats.output)),
        }

    @property
    def tables(self) -> list:
        """The tables of the unit's one :class:`~lstm_fpga.hw.activation.ActivationUnit`:
        tanh (the scores) and exp (the softmax)."""
        return [self.ad.tanh, self.ad.exp]

    def memories(self) -> dict[str, tuple[Shape, int, list[int] | None]]:
        """The unit's memories, name -> ``(shape, depth, words)``: ``words`` the contents
        of a ROM (from address 0, the rest 0), ``None`` for a memory the unit writes. ROMs:
        ``v``, the head's weights (row by row) and biases; written: ``h_t`` (``max_steps *
        F``), ``tanh(u_t)`` (``A``), the scores, ``exp`` and ``alpha`` (``max_steps`` each),
        the context (``F``). At least 2 words each (no zero-width address)."""
        f, hd = self.ad.formats, self.hd
        F, A = self.pooling.features, self.pooling.attention_size
        T = self.max_steps

        def rom(shape, values):
            values = [int(v) for v in values]
            return shape, max(2, len(values)), values + [0] * (len(values) < 2)

        def ram(shape, depth):
            return shape, max(2, depth), None

        # (W and b of the score matrix: the lanes' weight and bias banks)
        return {
            "v_rom": rom(format_shape(f.v), self.pooling.v),
            "head_w_rom": rom(format_shape(hd.formats.weight), self.head.weight.reshape(-1)),
            "head_bias_rom": rom(format_shape(hd.formats.bias), self.head.bias),
            "h_mem": ram(format_shape(f.x), T * F),
            "tanh_mem": ram(format_shape(f.tanh), A),
            "score_mem": ram(format_shape(f.score), T),
            "exp_mem": ram(format_shape(f.exp), T),
            "alpha_mem": ram(format_shape(f.alpha), T),
            "context_mem": ram(format_shape(f.context), F),
        }

    def products(self) -> dict[str, tuple[Shape, Shape]]:
        """Operand shapes of the unit's two products (:class:`~lstm_fpga.hw.pipeline
        .RegisteredProduct`): ``multiply`` (``v . tanh``, the context and the head share
        it) and ``alpha_multiply`` (``p_t`` times the reciprocal's ``RECIP_BITS + 1`` low
        quotient bits). The table unit's interpolation product is the
        :class:`~lstm_fpga.hw.activation.ActivationUnit`'s."""
        f, hd = self.ad.formats, self.hd.formats
        return {
            "multiply": (
                common_signed_shape(f.w, f.v, f.alpha, hd.weight),
                common_signed_shape(f.x, f.tanh, f.context),
            ),
            "alpha_multiply": (
                format_shape(f.exp),
                unsigned(min(self.dividend_width, self.ad.recip_bits + 1)),
            ),
        }


class AttentionUnit(wiring.Component):
    """Attention pooling and the Linear head over each sequence (``docs/attention.md``).

    ``pooling`` and ``head`` are the IR's :class:`~lstm_fpga.sw.ir.AttentionPooling` and
    :class:`~lstm_fpga.sw.ir.LinearHead` (``v`` and the head's weights become ROMs; ``W``
    and ``b`` are the lanes'); ``rounding`` and
    ``overflow`` the model's; ``max_steps`` the longest sequence kept (``h_t`` and ``e_t``
    memories of ``max_steps * F`` and ``max_steps`` words; at most the datapath's
    :attr:`~lstm_fpga.sw.numerics.AttentionDatapath.max_steps`).

    Ports
    -----
    h : In, stream of ``{data, last}``, ``data`` in ``attention.x`` (the last layer's hidden
        format)
        ``h_t`` elements ``0 .. F-1`` per step, steps in order; ``last`` on the final element
        of the sequence's final step. Taken one per cycle while the unit receives (``ready``
        is low while it takes a step's ``u_t``, computes its score or the pooling).
    u : In, stream of ``{data, last}``, ``data`` in ``attention.preact``
        ``u_t`` elements ``0 .. A-1`` of each step (``last`` ignored), after that step's
        ``h_t``; taken one per cycle once the step's ``h_t`` is in (also the steps of a
        sequence longer than ``max_steps``: taken and dropped).
    y : Out, stream of ``{data, last}``, ``data`` in ``head.output``
        The head's ``O`` outputs of each sequence, once per sequence, ``last`` on the final
        one: ``head_forward(context)`` of the reference exactly.
    saturated : Out, one bit per :data:`ATTENTION_SATURATION_KINDS`
        A pulse (one cycle) for every value whose rescale clamps (or wraps), counted as the
        reference counts them: ``score`` per step, ``alpha`` per step, ``context`` per
        feature, ``head`` per output.
    overflow : Out
        Pulses when a sequence longer than ``max_steps`` ends: it is dropped (its elements
        are taken, nothing leaves on ``y``).
    empty : Out
        No sequence is in the unit (idle, waiting for a sequence's first element).

    Protocol and timing: one sequence at a time, phase by phase. After a step's ``F``
    elements: its ``A`` values ``u_t`` through the tanh table (one per cycle, then
    :attr:`TABLE_WAIT` cycles), then ``v . tanh`` (``A`` multiply-accumulates, one per
    cycle), rescaled to ``score``, stored, and the running maximum. After the final step:
    ``exp(e_t - max)`` (``T`` cycles, the sum ``S`` beside), the reciprocal of ``S`` (one
    restoring division, one quotient bit per cycle), ``alpha_t`` (``T`` cycles), the context
    (``F * T``), the head (``O * F``), then ``y``. Each phase ends with :attr:`DRAIN` cycles
    for its pipeline to empty; :func:`attention_cycles` adds them up. Pipeline of the
    multiply-accumulate: memory read, the operand registers, the product register, the
    accumulator, the rescale (registered), the write.
    """

    #: Cycles a phase waits after its last issue (the longest pipeline: read, the operand
    #: and product registers, accumulate, rescale, the table unit's 4, the write).
    DRAIN = 11
    #: Cycles the score phase waits after a step's last ``u`` element for its ``tanh`` to be
    #: written (the table's input register, the table unit's 4).
    TABLE_WAIT = 5

    def __init__(
        self,
        pooling: AttentionPooling,
        head: LinearHead,
        *,
        rounding: Rounding,
        overflow: Overflow,
        max_steps: int,
    ):
        self._resources = res = AttentionResources(
            pooling, head, rounding=rounding, overflow=overflow, max_steps=max_steps
        )
        self._pooling, self._head = pooling, head
        self._ad, self._hd = res.ad, res.hd
        self._max_steps = max_steps
        layouts = res.stream_layouts()
        super().__init__(
            {
                "h": In(stream.Signature(layouts["h"])),
                "u": In(stream.Signature(layouts["u"])),
                "y": Out(stream.Signature(layouts["y"])),
                "saturated": Out(
                    data.StructLayout({k: unsigned(1) for k in ATTENTION_SATURATION_KINDS})
                ),
                "overflow": Out(1),
                "empty": Out(1),
            }
        )

    @property
    def max_steps(self) -> int:
        return self._max_steps

    @property
    def resources(self) -> AttentionResources:
        """The unit's memories, products and tables (:class:`AttentionResources`)."""
        return self._resources

    @property
    def total_width(self) -> int:
        """Bits of the exp sum ``S`` of ``max_steps`` steps."""
        return self._resources.total_width

    @property
    def dividend_width(self) -> int:
        """Bits of the dividend ``2**k (+ S // 2)``: ``k + 1``, ``k`` at most
        ``total_width - 1 + recip_bits``; the division takes this many cycles."""
        return self._resources.dividend_width

    def cycles(self, steps: int) -> dict[str, int]:
        """:func:`attention_cycles` of this unit."""
        ad = self._ad
        return attention_cycles(
            self._pooling.features,
            self._pooling.attention_size,
            self._head.out_features,
            steps,
            exp_width=ad.formats.exp.width,
            recip_bits=ad.recip_bits,
            max_steps=self._max_steps,
        )

    def elaborate(self, platform):
        m = Module()
        ad, hd = self._ad, self._hd
        f = ad.formats
        pooling, head = self._pooling, self._head
        rounding, overflow = ad.rounding, ad.overflow
        F, A, O, T = pooling.features, pooling.attention_size, head.out_features, self._max_steps

        def ports_of(mem, written):
            # A ROM has its read port; a memory the unit writes, a read and a write port.
            # (Returned, not assigned to a name, which Amaranth would give the port signals:
            # the Verilog keeps the signal names the netlists and timing reports show.)
            return (mem.read_port(), mem.write_port()) if written else mem.read_port()

        ports = {}
        for name, (shape, depth, words) in self._resources.memories().items():
            m.submodules[name] = mem = Memory(shape=shape, depth=depth, init=words or [])
            ports[name] = ports_of(mem, words is None)
        v_rom, hw_rom, hb_rom = ports["v_rom"], ports["head_w_rom"], ports["head_bias_rom"]
        h_read, h_write = ports["h_mem"]
        th_read, th_write = ports["tanh_mem"]
        e_read, e_write = ports["score_mem"]
        p_read, p_write = ports["exp_mem"]
        a_read, a_write = ports["alpha_mem"]
        c_read, c_write = ports["context_mem"]

        m.submodules.table = table = ActivationUnit(self._resources.tables)

        phase = Signal(range(_PHASES))
        # The current step (the number of stored steps before it); ``T`` marks a sequence
        # longer than ``max_steps`` (dropped). ``base`` = step * F, ``j`` the element.
        step = Signal(range(T + 1))
        base = Signal(range(T * F + 1))
        j = Signal(index_shape(F))
        final = Signal()  # the current step is the sequence's final one
        steps = Signal(range(T + 1))  # T_cur = step + 1 during the pooling
        m.d.comb += steps.eq(step + 1)

        # -- issue counters of the phases with a loop: rows x columns -----------------------
        issuing = Signal()
        wait = Signal(range(self.DRAIN + 1))
        max_rows = max(A, F, O, 1)
        max_cols = max(F, A, T, 1)
        row = Signal(index_shape(max_rows))
        col = Signal(index_shape(max_cols))
        rom_index = Signal(index_shape(O * F))
        h_pointer = Signal(range(T * F + 1))  # the context's h_t[row] address: col * F + row
        cols = Array([0, 0, A, steps, 0, 0, steps, steps, F, 0])[phase]
        rows = Array([0, 0, 1, 1, 0, 0, 1, F, O, 0])[phase]
        last_col = col == cols - 1
        last_row = row == rows - 1
        issue = Signal()
        m.d.comb += issue.eq(issuing)

        def start(m, next_phase, loop=True):
            m.d.sync += [
                phase.eq(next_phase),
                issuing.eq(int(loop)),
                row.eq(0),
                col.eq(0),
                rom_index.eq(0),
                h_pointer.eq(0),
            ]

        with m.If(issue):
            m.d.sync += rom_index.eq(rom_index + 1)
            with m.If(last_col):
                m.d.sync += [col.eq(0), h_pointer.eq(row + 1)]
                with m.If(last_row):
                    m.d.sync += [issuing.eq(0), wait.eq(self.DRAIN)]
                with m.Else():
                    m.d.sync += row.eq(row + 1)
            with m.Else():
                m.d.sync += [col.eq(col + 1), h_pointer.eq(h_pointer + F)]
        drained = ~issuing & (wait == 0)
        with m.If(~issuing & (wait != 0)):
            m.d.sync += wait.eq(wait - 1)

        # -- stage 0: addresses ---------------------------------------------------------------
        m.d.comb += [
            hw_rom.addr.eq(rom_index),
            hb_rom.addr.eq(row),
            v_rom.addr.eq(col),
            th_read.addr.eq(col),
            e_read.addr.eq(col),
            p_read.addr.eq(col),
            a_read.addr.eq(col),
            c_read.addr.eq(col),
            h_read.addr.eq(Mux(phase == _CONTEXT, h_pointer, base + col)),
        ]
        v1 = Signal()
        first1, last1 = Signal(), Signal()
        row1 = Signal.like(row)
        col1 = Signal.like(col)
        m.d.sync += [v1.eq(issue), first1.eq(col == 0), last1.eq(last_col)]
        m.d.sync += [row1.eq(row), col1.eq(col)]

        # -- stage 1: operands (memory outputs) to the product register ---------------------
        a_shape, b_shape = self._resources.products()["multiply"]
        a_op = Signal(a_shape)
        b_op = Signal(b_shape)
        with m.Switch(phase):
            with m.Case(_E):
                m.d.comb += [a_op.eq(v_rom.data), b_op.eq(th_read.data)]
            with m.Case(_CONTEXT):
                m.d.comb += [a_op.eq(a_read.data), b_op.eq(h_read.data)]
            with m.Case(_HEAD):
                m.d.comb += [a_op.eq(hw_rom.data), b_op.eq(c_read.data)]
        acc_width = 1 + max(ad.e_acc.width, ad.context_width, hd.acc.width)
        bias_term = Signal(signed(acc_width))
        m.d.comb += bias_term.eq(Mux(phase == _HEAD, hb_rom.data << hd.acc.bias_shift, 0))
        # The operands are registered before the multiply and the product after it (the
        # DSP's input and output registers): a memory's output through the operand choice
        # into a combinational multiply does not fit a cycle (14.8 ns on ECP5 at speed 6).
        m.submodules.multiply = multiply = RegisteredProduct(a_shape, b_shape)
        m.d.comb += [multiply.a.eq(a_op), multiply.b.eq(b_op)]
        product = multiply.product
        stages = multiply.latency
        bias2 = delay(m, bias_term, stages, "bias")
        mac = v1 & (phase != _EXP) & (phase != _ALPHA)
        v2 = delay(m, mac, stages, "mac_valid", control=True)
        first2, last2 = delay(m, first1, stages, "first"), delay(m, last1, stages, "last")
        row2 = delay(m, row1, stages, "row")

        # -- stage 2: the accumulator -----------------------------------------------------------
        acc = Signal(signed(acc_width), reset_less=True)
        done3 = Signal()
        row3 = Signal.like(row)
        with m.If(v2):
            m.d.sync += acc.eq(Mux(first2, bias2, acc) + product)
        m.d.sync += [done3.eq(v2 & last2), row3.eq(row2)]

        # -- stage 3: a finished row, rescaled ------------------------------------------------
        sat = self.saturated
        pulses = {k: Signal(name=f"pulse_{k}") for k in ATTENTION_SATURATION_KINDS}
        for k, pulse in pulses.items():
            m.d.sync += getattr(sat, k).eq(pulse)
        table_in = Signal(table.input.shape(), reset_less=True)
        score = round_for(acc, ad.e_acc.frac, f.score, rounding)
        score_value = Signal(format_shape(f.score))
        m.d.comb += score_value.eq(fit_rounded(score, f.score, overflow))
        context = round_for(acc, ad.context_frac, f.context, rounding)
        head_out = round_for(acc, hd.acc.frac, hd.formats.output, rounding)
        outputs = [
            Signal(format_shape(hd.formats.output), name=f"out{o}", reset_less=True)
            for o in range(O)
        ]
        peak = Signal(format_shape(f.score), reset_less=True)
        # The score rows: ``u_t[row]`` from ``u`` (the lanes' score job, rescaled to
        # ``preact`` there), the tanh table, the write of tanh(u)[row].
        taking_u = Signal()  # the score phase takes u_t's A elements
        u_take = Signal()
        m.d.comb += [
            self.u.ready.eq((phase == _SCORE) & taking_u),
            u_take.eq(self.u.valid & self.u.ready),
        ]
        with m.If(u_take):
            m.d.sync += table_in.eq(self.u.payload.data)
        # The score is registered after its rescale before the write and the running maximum
        # (the rescale's add and clamp and the maximum's compare are three carry chains).
        score_done = Signal()
        score_saturates = Signal()
        score_reg = Signal(format_shape(f.score), reset_less=True)
        m.d.sync += [
            score_done.eq(done3 & (phase == _E)),
            score_saturates.eq(score.saturates),
            score_reg.eq(score_value),
        ]
        with m.If(score_done):
            m.d.comb += [
                e_write.addr.eq(step),
                e_write.data.eq(score_reg),
                e_write.en.eq(1),
                pulses["score"].eq(score_saturates),
            ]
            with m.If((step == 0) | (score_reg > peak)):
                m.d.sync += peak.eq(score_reg)
        with m.If(done3):
            with m.Switch(phase):
                with m.Case(_CONTEXT):
                    m.d.comb += [
                        c_write.addr.eq(row3),
                        c_write.data.eq(fit_rounded(context, f.context, overflow)),
                        c_write.en.eq(1),
                        pulses["context"].eq(context.saturates),
                    ]
                with m.Case(_HEAD):
                    with m.Switch(row3):
                        for o in range(O):
                            with m.Case(o):
                                m.d.sync += outputs[o].eq(
                                    fit_rounded(head_out, hd.formats.output, overflow)
                                )
                    m.d.comb += pulses["head"].eq(head_out.saturates)
        assert self.TABLE_WAIT >= 1 + table.latency
        tanh_valid = delay(m, u_take, 1 + table.latency, "tanh_valid", control=True)
        tanh_row = delay(m, row, 1 + table.latency, "tanh_row")
        m.d.comb += [
            th_write.addr.eq(tanh_row),
            th_write.data.eq(table.output),
            th_write.en.eq(tanh_valid),
        ]

        # -- exp(e_t - max): read, subtract (registered), the table, the write and the sum ---
        shifted = Signal(format_shape(ad.shifted_score), reset_less=True)
        m.d.sync += shifted.eq(e_read.data - peak)
        exp_phase = phase == _EXP
        m.d.comb += [
            table.input.eq(Mux(exp_phase, shifted, table_in)),
            table.select.eq(exp_phase),
        ]
        exp_valid = delay(m, v1 & exp_phase, 1 + table.latency, "exp_valid", control=True)
        exp_step = delay(m, col1, 1 + table.latency, "exp_step")
        total = Signal(unsigned(self.total_width))
        m.d.comb += [
            p_write.addr.eq(exp_step),
            p_write.data.eq(table.output),
            p_write.en.eq(exp_valid),
        ]
        with m.If(exp_valid):
            m.d.sync += total.eq(total + table.output[: f.exp.width])

        # -- the reciprocal: n = bit_length(S), k = n - 1 + RECIP_BITS, r = N // S ------------
        D = self.dividend_width
        n = Signal(range(self.total_width + 1))
        for i in range(self.total_width):
            with m.If(total[i]):
                m.d.comb += n.eq(i + 1)
        # n, then k and the half's shift, registered: S is final from the exp phase's last
        # sum on, and the phase's drain leaves them the cycles to settle before the
        # reciprocal phase reads them (the priority encoder, the adds and the decoders of
        # one << k in one cycle were 10 ns on ECP5 at speed 6).
        assert self.DRAIN >= 1 + (1 + table.latency) + 1 + 2
        n_reg = Signal.like(n)
        k = Signal(range(D + 1))
        half_shift = Signal(range(D + 1))  # k - alpha.frac - 1 (k >= RECIP_BITS > alpha.frac)
        m.d.sync += [
            n_reg.eq(n),
            k.eq(n_reg - 1 + ad.recip_bits),
            half_shift.eq(n_reg - 2 + ad.recip_bits - f.alpha.frac),
        ]
        shift = Signal(range(D + 1))
        half = Signal(unsigned(D))  # the rounding offset 2**(shift - 1) (HALF_UP)
        dividend = Signal(unsigned(D))
        remainder = Signal(unsigned(self.total_width + 1))
        quotient = Signal(unsigned(D))
        count = Signal(range(D + 1))
        one = Const(1, unsigned(D))
        # -- alpha_t = clamp((p_t * r + half) >> shift): read, product, add, shift (registered) --
        reciprocal = quotient[: ad.recip_bits + 1]
        # (operands and product registered, as the multiply-accumulate's)
        p_shape, r_shape = self._resources.products()["alpha_multiply"]
        assert (p_shape, r_shape) == (p_read.data.shape(), reciprocal.shape())
        m.submodules.alpha_multiply = alpha_multiply = RegisteredProduct(p_shape, r_shape)
        m.d.comb += [alpha_multiply.a.eq(p_read.data), alpha_multiply.b.eq(reciprocal)]
        alpha_product = alpha_multiply.product
        alpha_stages = alpha_multiply.latency
        # The rounding add and the shift by the sequence's ``shift`` (a barrel shifter) each
        # get a register: with the clamp's compare they are three carry chains and a wide
        # multiplexer, 14.6 ns in one cycle on ECP5 at speed 6.
        rounded = Signal(unsigned(max(len(alpha_product), len(half)) + 1), reset_less=True)
        unclamped = Signal(unsigned(f.exp.width + ad.recip_bits + 2), reset_less=True)
        m.d.sync += [rounded.eq(alpha_product + half), unclamped.eq(rounded >> shift)]
        alpha_stages += 2
        # A phase's drain outlasts its pipeline: the multiply-accumulate's (the read, the
        # multiply's registers, the accumulator, the score's register, the write and maximum)
        # and alpha's (the read, the multiply's registers, the add, the shift, the write).
        assert self.DRAIN >= max(1 + stages + 3, 1 + alpha_stages + 1)
        alpha_valid = delay(m, v1 & (phase == _ALPHA), alpha_stages, "alpha_valid", control=True)
        alpha_step = delay(m, col1, alpha_stages, "alpha_step")
        above = unclamped > f.alpha.max_int
        alpha = unclamped[: f.alpha.width]
        if overflow is Overflow.SATURATE:
            alpha = Mux(above, f.alpha.max_int, alpha)
        m.d.comb += [
            a_write.addr.eq(alpha_step),
            a_write.data.eq(alpha),
            a_write.en.eq(alpha_valid),
            pulses["alpha"].eq(alpha_valid & above),
        ]

        # -- the phases -----------------------------------------------------------------------
        out_row = Signal(index_shape(O))
        h = self.h
        m.d.comb += [
            self.empty.eq((phase == _RECEIVE) & (step == 0) & (j == 0)),
            h.ready.eq(phase == _RECEIVE),
            self.y.valid.eq(phase == _EMIT),
            self.y.payload.data.eq(Array(outputs)[out_row]),
            self.y.payload.last.eq(out_row == O - 1),
        ]
        dropping = step == T
        with m.Switch(phase):
            with m.Case(_RECEIVE):
                with m.If(h.valid):
                    m.d.comb += [
                        h_write.addr.eq(base + j),
                        h_write.data.eq(h.payload.data),
                        h_write.en.eq(~dropping),
                    ]
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == F - 1):
                        m.d.sync += j.eq(0)
                        # The step's u_t next (a dropped step's too: taken, not used).
                        start(m, _SCORE, loop=False)
                        m.d.sync += [taking_u.eq(1), final.eq(h.payload.last)]
            with m.Case(_SCORE):
                with m.If(u_take):
                    m.d.sync += row.eq(row + 1)
                    with m.If(row == A - 1):
                        m.d.sync += [taking_u.eq(0), wait.eq(self.TABLE_WAIT)]
                with m.If(drained & ~taking_u):
                    with m.If(dropping):
                        start(m, _RECEIVE, loop=False)
                        with m.If(final):  # (the end of a sequence longer than max_steps)
                            m.d.comb += self.overflow.eq(1)
                            m.d.sync += [step.eq(0), base.eq(0), final.eq(0)]
                    with m.Else():
                        start(m, _E)
            with m.Case(_E):
                with m.If(drained):
                    with m.If(final):
                        start(m, _EXP)
                        m.d.sync += total.eq(0)
                    with m.Else():
                        start(m, _RECEIVE, loop=False)
                        m.d.sync += [step.eq(step + 1), base.eq(base + F)]
            with m.Case(_EXP):
                with m.If(drained):
                    start(m, _RECIP, loop=False)
            with m.Case(_RECIP):
                m.d.sync += [
                    dividend.eq((one << k) + (total >> 1 if rounding is Rounding.HALF_UP else 0)),
                    shift.eq(half_shift + 1),
                    half.eq(one << half_shift if rounding is Rounding.HALF_UP else 0),
                    remainder.eq(0),
                    quotient.eq(0),
                    count.eq(D),
                ]
                start(m, _DIVIDE, loop=False)
            with m.Case(_DIVIDE):
                # One restoring step per cycle, the dividend's bits from the top.
                trial = Cat(dividend[D - 1], remainder)
                fits = trial >= total
                m.d.sync += [
                    remainder.eq(Mux(fits, trial - total, trial)),
                    quotient.eq(Cat(fits, quotient)),
                    dividend.eq(dividend << 1),
                    count.eq(count - 1),
                ]
                with m.If(count == 1):
                    start(m, _ALPHA)
            with m.Case(_ALPHA):
                with m.If(drained):
                    start(m, _CONTEXT)
            with m.Case(_CONTEXT):
                with m.If(drained):
                    start(m, _HEAD)
            with m.Case(_HEAD):
                with m.If(drained):
                    start(m, _EMIT, loop=False)
                    m.d.sync += out_row.eq(0)
            with m.Case(_EMIT):
                with m.If(self.y.ready):
                    m.d.sync += out_row.eq(out_row + 1)
                    with m.If(out_row == O - 1):
                        start(m, _RECEIVE, loop=False)
                        m.d.sync += [step.eq(0), base.eq(0), final.eq(0)]
        return m
