"""Bit-accurate integer reference: exactly what the generated hardware computes.

Every step uses the arithmetic of :class:`~lstm_fpga.sw.numerics.LstmDatapath` (accumulator
plans, rescale points, activation tables) and nothing else, so the hardware and this model
agree bit for bit by construction of the contract (``docs/numerics.md``).

The functions are vectorised over the batch; only time steps and layers are Python loops.
Matrix products run as float64 BLAS when that is provably exact (every partial sum below
2**53), else as int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from .float_model import (
    FloatAttention,
    FloatDirection,
    FloatHead,
    FloatLstm,
    TensorRecorder,
    _finish,
    _initial_state,
    check_attention_head_on,
    prepare_sequences,
)
from .ir import AttentionPooling, LayerDirection, LstmModel
from .numerics import (
    AttentionDatapath,
    GruDatapath,
    HeadDatapath,
    LstmDatapath,
    LstmpDatapath,
    dequantize,
    overflow_count,
    quantize,
    rescale,
    shift_round,
)
from .shape import CellType, lstm_shape

__all__ = [
    "AttentionResult",
    "ReferenceResult",
    "SaturationCounts",
    "SequenceTooLongError",
    "attention_pool",
    "cell_update",
    "dequantized_model",
    "exact_matmul",
    "gate_accumulators",
    "gru_accumulators",
    "gru_update",
    "head_forward",
    "project",
    "quantize_input",
    "run_float",
    "run_reference",
]


class SequenceTooLongError(ValueError):
    """A sequence is longer than the hardware's ``max_seq_len``."""


@dataclass(frozen=True)
class SaturationCounts:
    """How many rescale results were clamped, per tensor kind (the hardware's counters,
    ``lstm_fpga.hw.interface.SaturationKind``). ``attention`` is every clamp of attention
    pooling (:attr:`AttentionResult.saturations` summed: ``preact``, ``score``, ``alpha``,
    ``context``); its head's clamps are ``head``."""

    preact: int = 0
    cell: int = 0
    hidden: int = 0
    head: int = 0
    attention: int = 0

    def __add__(self, other: SaturationCounts) -> SaturationCounts:
        return SaturationCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """Attention pooling's integers (``docs/attention.md``): ``score`` (T, B) the scores
    ``e_t`` (score format), ``alpha`` (T, B) the weights (alpha format; 0 past a sequence's
    length), ``context`` (B, F) the pooled vector (context format), the softmax's ``total``
    (B, the sum of the exp values) and ``reciprocal`` (B), and ``saturations`` the clamps per
    tensor (``preact``, ``score``, ``alpha``, ``context``). Time-major whatever the input's
    layout; unbatched input gives ``B = 1``."""

    score: np.ndarray
    alpha: np.ndarray
    context: np.ndarray
    total: np.ndarray
    reciprocal: np.ndarray
    saturations: dict[str, int]


@dataclass(frozen=True, eq=False)
class ReferenceResult:
    """Integer results in ``nn.LSTM``'s shapes (see :meth:`FloatLstm.forward`); a GRU's
    ``c_n`` is ``None`` and its ``cell`` saturations 0.

    ``saturations`` are the totals (the hardware's counters); ``direction_saturations`` the
    same counts per layer direction name (``l0``, ``l0_reverse``, ...; ``head`` and
    ``attention`` are 0 there). Attention pooling's clamps are in ``attention.saturations``
    per tensor, and summed in ``saturations.attention`` (the hardware's ``sat_attention``);
    :attr:`total_saturations` counts every clamp of the run.
    """

    output: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    head: np.ndarray | None
    saturations: SaturationCounts
    direction_saturations: dict[str, SaturationCounts] = field(default_factory=dict)
    #: Attention pooling's integers (``None`` without attention).
    attention: AttentionResult | None = None

    @property
    def total_saturations(self) -> int:
        """Every clamp of the run (:attr:`saturations` total, attention pooling's included)."""
        return self.saturations.total


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer ``a @ b`` computed exactly (float64 BLAS when every sum stays below 2**53)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.size == 0 or b.size == 0:
        return np.zeros(a.shape[:-1] + b.shape[-1:], dtype=np.int64)
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * a.shape[-1]
    if bound < 2**53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def gate_accumulators(dp: LstmDatapath, d: LayerDirection, x, h) -> np.ndarray:
    """Accumulator values ``(B, 4H)`` of the matrix-vector unit for input ``x`` (B, I) and
    previous hidden state ``h`` (B, H): ``bias << bias_shift + (W_ih x) << s_x +
    (W_hh h) << s_h``, exact (``dp.gate_acc.width`` bits never overflow)."""
    x_part = exact_matmul(x, d.w_ih.T)
    h_part = exact_matmul(h, d.w_hh.T)
    return dp.gate_acc.accumulate([x_part, h_part], d.bias)


def cell_update(dp: LstmDatapath, acc, c, counts: dict | None = None, trace=None, mask=None):
    """The gate and cell pipeline: accumulators ``(B, 4H)`` and ``c_{t-1}`` to ``(h_t, c_t)``.

    For an LSTMP (an :class:`LstmpDatapath`) the first result is the cell output
    ``o * tanh(c_t)`` in ``proj_in`` format, which :func:`project` turns into ``h_t``.
    ``counts`` (a dict with keys preact/cell/hidden) accumulates rescale saturations;
    ``trace`` (a :class:`TensorRecorder` and a direction name) records dequantised values.
    """
    f_ = dp.formats
    acc = np.asarray(acc, dtype=np.int64)
    preact = rescale(acc, dp.gate_acc.frac, f_.preact, dp.rounding, dp.overflow)
    i, f, g, o = np.split(preact, 4, axis=-1)
    i, f, o = dp.sigmoid.evaluate(i), dp.sigmoid.evaluate(f), dp.sigmoid.evaluate(o)
    g = dp.tanh_gate.evaluate(g)
    cell_acc = dp.cell_acc.accumulate([f * c, i * g])
    c_new = rescale(cell_acc, dp.cell_acc.frac, f_.cell, dp.rounding, dp.overflow)
    tanh_c = dp.tanh_cell.evaluate(c_new)
    hidden_product = o * tanh_c
    out_f = dp.cell_output  # hidden; proj_in for an LSTMP
    h_new = rescale(hidden_product, dp.hidden_product_frac, out_f, dp.rounding, dp.overflow)
    if counts is not None:
        # A value saturates when its rounded, shifted form leaves the format.
        sel = (lambda a: a) if mask is None else (lambda a: a[mask])
        counts["preact"] += overflow_count(
            sel(shift_round(acc, dp.gate_acc.frac - f_.preact.frac, dp.rounding)), f_.preact
        )
        counts["cell"] += overflow_count(
            sel(shift_round(cell_acc, dp.cell_acc.frac - f_.cell.frac, dp.rounding)), f_.cell
        )
        counts["hidden"] += overflow_count(
            sel(shift_round(hidden_product, dp.hidden_product_frac - out_f.frac, dp.rounding)),
            out_f,
        )
    if trace is not None:
        recorder, name = trace
        recorder.add(f"{name}.preact", dequantize(preact, f_.preact), mask)
        gates = np.concatenate([i, f, g, o, tanh_c], axis=-1)
        recorder.add(f"{name}.gate", dequantize(gates, f_.gate), mask)
        recorder.add(f"{name}.cell", dequantize(c_new, f_.cell), mask)
        out_name = "proj_in" if isinstance(dp, LstmpDatapath) else "hidden"
        recorder.add(f"{name}.{out_name}", dequantize(h_new, out_f), mask)
    return h_new, c_new


def project(
    dp: LstmpDatapath, d: LayerDirection, m, counts: dict | None = None, trace=None, mask=None
) -> np.ndarray:
    """An LSTMP's projection: the cell output ``m`` (B, H) in ``proj_in`` format to
    ``h_t = rescale(W_hr @ m, hidden)`` (B, R). The projection's saturations count as
    ``hidden`` (with those of the cell output)."""
    f_ = dp.formats
    acc = dp.proj_acc.accumulate([exact_matmul(m, d.w_hr.T)])
    h_new = rescale(acc, dp.proj_acc.frac, f_.hidden, dp.rounding, dp.overflow)
    if counts is not None:
        value = shift_round(acc, dp.proj_acc.frac - f_.hidden.frac, dp.rounding)
        counts["hidden"] += overflow_count(value if mask is None else value[mask], f_.hidden)
    if trace is not None:
        recorder, name = trace
        recorder.add(f"{name}.hidden", dequantize(h_new, f_.hidden), mask)
    return h_new


def gru_accumulators(dp: GruDatapath, d: LayerDirection, x, h):
    """The matrix-vector unit's sums of a GRU step for input ``x`` (B, I) and ``h`` (B, H):
    ``(acc_rz (B, 2H), acc_xn (B, H), acc_hn (B, H))`` in the gate accumulator's format --
    ``W_i{r,z} x + W_h{r,z} h + b_{r,z}``, ``W_in x + b_in`` and ``W_hn h + b_hn``, exact."""
    H = d.hidden_size
    x_part = exact_matmul(x, d.w_ih.T)
    h_part = exact_matmul(h, d.w_hh.T)
    zero = np.zeros((x_part.shape[0], H), dtype=np.int64)
    bias, acc = d.bias, dp.gate_acc
    acc_rz = acc.accumulate([x_part[:, : 2 * H], h_part[:, : 2 * H]], bias[: 2 * H])
    acc_xn = acc.accumulate([x_part[:, 2 * H :], zero], bias[2 * H : 3 * H])
    acc_hn = acc.accumulate([zero, h_part[:, 2 * H :]], bias[3 * H :])
    return acc_rz, acc_xn, acc_hn


def gru_update(
    dp: GruDatapath, d: LayerDirection, x, h, counts: dict | None = None, trace=None, mask=None
):
    """One GRU step on integer input ``x`` (B, I) and ``h_{t-1}`` (B, H): ``h_t``.

    The arithmetic of :class:`~lstm_fpga.sw.numerics.GruDatapath`: the six matrix-vector
    products ``W_i{r,z,n} @ x`` and ``W_h{r,z,n} @ h`` are exact integer sums aligned to the
    gate accumulator's scale; r and z rescale the sum of both parts, n's input part ``xn`` and
    recurrent part ``hn`` (with ``b_hn``) rescale apart, ``r * hn + xn`` rescales once more
    before tanh, and ``(1 - z) * n + z * h`` to the hidden format. ``counts`` (keys
    preact/cell/hidden) accumulates the rescale saturations (all pre-activation rescales count
    as ``preact``, the update as ``hidden``); ``trace`` records dequantised values.
    """
    f_, acc = dp.formats, dp.gate_acc
    acc_rz, acc_xn, acc_hn = gru_accumulators(dp, d, x, h)
    pre_rz, xn, hn = (
        rescale(a, acc.frac, f_.preact, dp.rounding, dp.overflow) for a in (acc_rz, acc_xn, acc_hn)
    )
    r, z = np.split(dp.sigmoid.evaluate(pre_rz), 2, axis=-1)
    n_acc = dp.n_acc.accumulate([r * hn], xn)
    n_pre = rescale(n_acc, dp.n_acc.frac, f_.preact, dp.rounding, dp.overflow)
    n = dp.tanh_gate.evaluate(n_pre)
    update = dp.update_acc.accumulate([(dp.one - z) * n, z * h])
    h_new = rescale(update, dp.update_acc.frac, f_.hidden, dp.rounding, dp.overflow)
    if counts is not None:
        sel = (lambda a: a) if mask is None else (lambda a: a[mask])
        for value, frac in ((acc_rz, acc.frac), (acc_xn, acc.frac), (acc_hn, acc.frac)):
            counts["preact"] += overflow_count(
                sel(shift_round(value, frac - f_.preact.frac, dp.rounding)), f_.preact
            )
        counts["preact"] += overflow_count(
            sel(shift_round(n_acc, dp.n_acc.frac - f_.preact.frac, dp.rounding)), f_.preact
        )
        counts["hidden"] += overflow_count(
            sel(shift_round(update, dp.update_acc.frac - f_.hidden.frac, dp.rounding)),
            f_.hidden,
        )
    if trace is not None:
        recorder, name = trace
        preact = np.concatenate([pre_rz, xn, hn, n_pre], axis=-1)
        recorder.add(f"{name}.preact", dequantize(preact, f_.preact), mask)
        gates = np.concatenate([r, z, n], axis=-1)
        recorder.add(f"{name}.gate", dequantize(gates, f_.gate), mask)
        recorder.add(f"{name}.hidden", dequantize(h_new, f_.hidden), mask)
    return h_new


def attention_pool(
    ad: AttentionDatapath, pooling: AttentionPooling, output, valid, recorder=None
) -> AttentionResult:
    """Attention pooling of integer LSTM outputs ``output`` (T, B, F) over each sequence's
    ``valid`` (T, B) steps: the arithmetic of :class:`~lstm_fpga.sw.numerics.AttentionDatapath`
    (score matrix, tanh table, scores, the softmax with max-subtraction, exp table and one
    reciprocal per sequence, the context). Steps past a sequence's length take no part: they
    get no score in the max, weight 0 and add nothing to the context. ``recorder`` records
    dequantised values (valid steps only)."""
    f, rounding, overflow = ad.formats, ad.rounding, ad.overflow
    output = np.asarray(output, dtype=np.int64)
    acc = ad.score_acc.accumulate([exact_matmul(output, pooling.w.T)], pooling.bias)
    preact = rescale(acc, ad.score_acc.frac, f.preact, rounding, overflow)
    th = ad.tanh.evaluate(preact)
    e_acc = ad.e_acc.accumulate([exact_matmul(th, pooling.v[:, None])[..., 0]])
    score = rescale(e_acc, ad.e_acc.frac, f.score, rounding, overflow)
    softmax = ad.softmax(score, valid)
    alpha = softmax.alpha
    context_acc = (alpha[:, :, None] * output).sum(axis=0)
    context = rescale(context_acc, ad.context_frac, f.context, rounding, overflow)
    saturations = {
        "preact": overflow_count(
            shift_round(acc, ad.score_acc.frac - f.preact.frac, rounding)[valid], f.preact
        ),
        "score": overflow_count(
            shift_round(e_acc, ad.e_acc.frac - f.score.frac, rounding)[valid], f.score
        ),
        "alpha": softmax.saturations,
        "context": overflow_count(
            shift_round(context_acc, ad.context_frac - f.context.frac, rounding), f.context
        ),
    }
    if recorder is not None:
        values = (("preact", preact), ("tanh", th), ("score", score), ("exp", softmax.p))
        values += (("alpha", alpha),)
        for name, value in values:
            recorder.add(f"attention.{name}", dequantize(value, getattr(f, name)), valid)
        recorder.add("attention.context", dequantize(context, f.context))
    return AttentionResult(score, alpha, context, softmax.total, softmax.reciprocal, saturations)


def head_forward(hd: HeadDatapath, weight, bias, x, counts: dict | None = None) -> np.ndarray:
    """The Linear head on integer features ``x`` (..., D) in the LSTM output format."""
    acc = hd.acc.accumulate([exact_matmul(x, np.asarray(weight).T)], bias)
    if counts is not None:
        counts["head"] += overflow_count(
            shift_round(acc, hd.acc.frac - hd.formats.output.frac, hd.rounding),
            hd.formats.output,
        )
    return rescale(acc, hd.acc.frac, hd.formats.output, hd.rounding, hd.overflow)


def _check_ints(array, fmt, name):
    array = np.asarray(array)
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be integers in format {fmt}; quantize floats first "
            f"(lstm_fpga.sw.reference.quantize_input)"
        )
    array = array.astype(np.int64)
    if array.size and (array.min() < fmt.min_int or array.max() > fmt.max_int):
        raise ValueError(f"{name} holds values outside its format {fmt}")
    return array


def run_reference(
    model: LstmModel,
    x,
    h0=None,
    c0=None,
    *,
    batch_first: bool = False,
    lengths=None,
    head_on: str = "last",
    max_seq_len: int | None = None,
    recorder: TensorRecorder | None = None,
) -> ReferenceResult:
    """Run the integer model on integer input ``x`` (format ``model.input_format``).

    ``h0`` (hidden formats) and ``c0`` (cell formats) are integer ``(L*D, B, H)`` (an
    LSTMP's ``h0`` ``(L*D, B, proj_size)``). Shapes of input and results are those of
    ``nn.LSTM``; see :meth:`FloatLstm.forward` for ``lengths``
    and ``head_on``. ``max_seq_len`` mirrors the hardware's sequence buffer limit. A GRU
    (``model.cell_type``) takes no ``c0`` and returns ``c_n=None``.
    """
    gru = model.cell_type is CellType.GRU
    if gru and c0 is not None:
        raise ValueError("an nn.GRU has no cell state: give h0 only (c0 must be None)")
    x = _check_ints(x, model.input_format, "input")
    xs, lengths, unbatched = prepare_sequences(
        x, batch_first, lengths, model.input_size, dtype=np.int64
    )
    if max_seq_len is not None and lengths.max() > max_seq_len:
        raise SequenceTooLongError(
            f"a sequence has {lengths.max()} steps but max_seq_len is {max_seq_len}; "
            f"split the sequence or generate the hardware with a larger max_seq_len"
        )
    T, B = xs.shape[:2]
    H, D, L = model.hidden_size, model.num_directions, model.num_layers
    Hr = model.real_hidden_size
    h0 = _initial_state(h0, L * D, B, Hr, unbatched, "h0").astype(np.int64)
    c0 = _initial_state(c0, L * D, B, H, unbatched, "c0").astype(np.int64)
    for k, d in enumerate(model.directions):
        _check_ints(h0[k], d.formats.hidden, f"h0[{k}]")
        if not gru:
            _check_ints(c0[k], d.formats.cell, f"c0[{k}]")
    run = _int_gru_direction if gru else _int_direction
    valid = np.arange(T)[:, None] < lengths[None, :]
    counts = {"head": 0}
    by_direction = {}
    h_n = np.zeros((L * D, B, Hr), dtype=np.int64)
    c_n = np.zeros((L * D, B, H), dtype=np.int64)
    layer_in = xs
    for layer in range(L):
        outs = []
        for reverse in (False, True)[:D]:
            k = layer * D + int(reverse)
            d = model.direction(layer, reverse)
            dp = model.datapath(layer, reverse)
            direction_counts = {"preact": 0, "cell": 0, "hidden": 0}
            out, h_n[k], c_n[k] = run(
                dp, d, layer_in, h0[k], c0[k], valid, direction_counts, recorder
            )
            by_direction[d.name] = SaturationCounts(**direction_counts)
            outs.append(out)
        layer_in = np.concatenate(outs, axis=2)
    output = layer_in
    head_out = pooled = None
    if model.attention is not None:
        check_attention_head_on(head_on)
        pooled = attention_pool(
            model.attention_datapath(), model.attention, output, valid, recorder
        )
        hd = model.head_datapath()
        head_out = head_forward(hd, model.head.weight, model.head.bias, pooled.context, counts)
        if recorder is not None:
            recorder.add("head.output", dequantize(head_out, hd.formats.output))
    elif model.head is not None:
        hd = model.head_datapath()
        if head_on == "last":
            last = output[lengths - 1, np.arange(B)]
            head_out = head_forward(hd, model.head.weight, model.head.bias, last, counts)
        elif head_on == "all":
            head_out = np.zeros((*output.shape[:2], model.head.out_features), dtype=np.int64)
            # Only valid steps run through the head (and its saturation counter).
            head_out[valid] = head_forward(
                hd, model.head.weight, model.head.bias, output[valid], counts
            )
        else:
            raise ValueError(f"head_on must be 'last' or 'all', not {head_on!r}")
        if recorder is not None:
            values = head_out if head_on == "last" else head_out[valid]
            recorder.add("head.output", dequantize(values, hd.formats.output))
    output, (h_n, c_n), head_out = _finish(
        output, h_n, None if gru else c_n, head_out, head_on, batch_first, unbatched
    )
    pooled_clamps = 0 if pooled is None else sum(pooled.saturations.values())
    totals = sum(
        by_direction.values(), SaturationCounts(head=counts["head"], attention=pooled_clamps)
    )
    return ReferenceResult(output, h_n, c_n, head_out, totals, by_direction, pooled)


def _int_direction(dp, d, xs, h, c, valid, counts, recorder):
    T, B = xs.shape[:2]
    out = np.zeros((T, B, d.real_hidden_size), dtype=np.int64)
    trace = None if recorder is None else (recorder, d.name)
    for t in range(T - 1, -1, -1) if d.reverse else range(T):
        acc = gate_accumulators(dp, d, xs[t], h)
        mask = valid[t]
        h_new, c_new = cell_update(dp, acc, c, counts, trace, mask)
        if d.w_hr is not None:  # LSTMP: h_t = W_hr (o * tanh(c_t))
            h_new = project(dp, d, h_new, counts, trace, mask)
        m = mask[:, None]
        c = np.where(m, c_new, c)
        h = np.where(m, h_new, h)
        out[t] = np.where(m, h_new, 0)
    return out, h, c


def _int_gru_direction(dp, d, xs, h, c, valid, counts, recorder):
    T, B = xs.shape[:2]
    out = np.zeros((T, B, d.hidden_size), dtype=np.int64)
    trace = None if recorder is None else (recorder, d.name)
    for t in range(T - 1, -1, -1) if d.reverse else range(T):
        mask = valid[t]
        h_new = gru_update(dp, d, xs[t], h, counts, trace, mask)
        m = mask[:, None]
        h = np.where(m, h_new, h)
        out[t] = np.where(m, h_new, 0)
    return out, h, c


def quantize_input(model: LstmModel, x) -> np.ndarray:
    """Quantise float input to the model's input format (rounding and overflow of the IR)."""
    return quantize(x, model.input_format, model.rounding, model.overflow)


def dequantized_model(model: LstmModel) -> FloatLstm:
    """The IR's integer weights as floats: the float path for comparisons."""
    directions = tuple(
        FloatDirection(
            d.layer,
            d.reverse,
            dequantize(d.w_ih, d.formats.w_ih),
            dequantize(d.w_hh, d.formats.w_hh),
            dequantize(d.bias, d.formats.bias),
            None if d.w_hr is None else dequantize(d.w_hr, d.formats.w_hr),
        )
        for d in model.directions
    )
    head = None
    if model.head is not None:
        f = model.head.formats
        head = FloatHead(
            dequantize(model.head.weight, f.weight), dequantize(model.head.bias, f.bias)
        )
    attention = None
    if model.attention is not None:
        a, f = model.attention, model.attention.formats
        attention = FloatAttention(
            dequantize(a.w, f.w), dequantize(a.bias, f.bias), dequantize(a.v, f.v)
        )
    return FloatLstm(
        **lstm_shape(model),
        directions=directions,
        head=head,
        cell_type=model.cell_type,
        attention=attention,
    )


def run_float(model: LstmModel, x, h0=None, c0=None, **kwargs):
    """Float64 forward pass of the dequantised weights (exact activations, no rescaling)."""
    return dequantized_model(model).forward(x, h0, c0, **kwargs)
