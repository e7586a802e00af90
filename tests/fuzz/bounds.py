"""A worst-case bound on |integer reference - float math|, derived from the formats.

The float side is float64 math with exact sigmoid/tanh on the IR's dequantised weights, the
dequantised integer inputs and the dequantised ``h0``/``c0`` (``run_float``): both sides see
exactly the same numbers, so every difference comes from the integer datapath. Each step of
a layer direction does (``sw/numerics.py``, :class:`~lstm_fpga.sw.numerics.LstmDatapath`):

    a   = rescale(W_ih x + W_hh h + b, preact)     the accumulator itself is exact
    i,f,o = S(a),  g = T(a)                         tables with interpolation, gate format
    c'  = rescale(f c + i g, cell)                  the products are exact
    h'  = rescale(o Tc(c'), hidden)

Hats are reference values (known), plain letters the float ones, ``e`` bounds on their
difference, all per element. With no saturation (the bound only holds then, see
:func:`float_error_bound`) a rescale adds its rounding error ``r``: half an LSB of the target
format for round-half-up, one LSB for floor, nothing when no bits are dropped.

    e_a  = |W_ih| e_x + |W_hh| e_h + r_preact                    (matrix-vector with |W|)
    e_S  = eps_S + max S' on [|a^| - e_a, |a^| + e_a] * e_a       (mean value theorem;
    e_T  = eps_T + max T' on the same interval * e_a               S', T' peak at 0)
    e_c' = r_cell + |f^| e_c + (|c^| + e_c) e_f + |i^| e_g + min(1, |g^| + e_g) e_i
    e_h' = r_hidden + |o^| (eps_Tc + max T' near c^' * e_c') + min(1, |Tc^| + e_Tc) e_o

using ``x^ y^ - x y = x^ (y^ - y) + y (x^ - x)`` and ``|y| <= |y^| + e_y`` (and ``|S|,|T| <=
1`` for the float side). ``eps`` is the table's largest error against the exact function
over *every* integer of its input format (computed exhaustively, so it also covers the
output rounding and the clamp at the domain edge). The Linear head adds
``|W| e_h + r_output``. Stacked layers feed ``e_h`` of the layer below as ``e_x``; padded
steps keep the state and its error; ``carry_state`` chains the sequences. The only thing left
out is float64's own round-off (relative 2^-53 per operation, about 2^-40 absolute here),
far below the finest LSB (2^-15) and so below the slack of a worst case that is never met.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.numerics import (
    ActivationTable,
    FixedFormat,
    Rounding,
    dequantize,
    shift_round,
)
from lstm_fpga.sw.reference import cell_update, gate_accumulators, run_float, run_reference

__all__ = ["FloatCheck", "float_error_bound"]


def _rounding_error(from_frac: int, fmt: FixedFormat, rounding: Rounding) -> float:
    """Largest |rescaled - exact| of a rescale that drops ``from_frac - fmt.frac`` bits."""
    if from_frac <= fmt.frac:
        return 0.0
    return fmt.lsb / 2 if rounding is Rounding.HALF_UP else fmt.lsb


@cache
def _table_error(table: ActivationTable, function: str, fmt: FixedFormat, out: FixedFormat):
    """max |table(p) - f(p)| over every integer ``p`` of ``fmt`` (exhaustive)."""
    p = np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.int64)
    exact = _function(function)(dequantize(p, fmt))
    return float(np.max(np.abs(dequantize(table.evaluate(p), out) - exact)))


def _function(name: str):
    return (lambda z: 1 / (1 + np.exp(-z))) if name == "sigmoid" else np.tanh


def _unit(value: np.ndarray) -> np.ndarray:
    """Largest distance from ``value`` to a point of [0, 1] (a sigmoid's range)."""
    return np.maximum(np.abs(value), np.abs(1 - value))


def _max_slope(name: str, value: np.ndarray, error: np.ndarray) -> np.ndarray:
    """max |f'| on [value - error, value + error]; f' peaks at 0 and falls with |z|."""
    z = np.maximum(np.abs(value) - error, 0.0)
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-z))
        return s * (1 - s)
    return 1 - np.tanh(z) ** 2


@dataclass(frozen=True)
class _Direction:
    """One layer direction's step arithmetic with per-element error propagation."""

    model: LstmModel
    layer: int
    reverse: bool

    def run(self, x_int, e_x, h, c, e_h, e_c, valid):
        """Reference states and their error bounds over ``x_int`` (T, B, I) and ``e_x``."""
        d = self.model.direction(self.layer, self.reverse)
        dp = self.model.datapath(self.layer, self.reverse)
        f = d.formats
        H = d.hidden_size
        abs_ih = np.abs(dequantize(d.w_ih, f.w_ih)).T
        abs_hh = np.abs(dequantize(d.w_hh, f.w_hh)).T
        r_pre = _rounding_error(dp.gate_acc.frac, f.preact, dp.rounding)
        r_cell = _rounding_error(dp.cell_acc.frac, f.cell, dp.rounding)
        r_hidden = _rounding_error(dp.hidden_product_frac, f.hidden, dp.rounding)
        eps_s = _table_error(dp.sigmoid, "sigmoid", f.preact, f.gate)
        eps_t = _table_error(dp.tanh_gate, "tanh", f.preact, f.gate)
        eps_tc = _table_error(dp.tanh_cell, "tanh", f.cell, f.gate)
        T = x_int.shape[0]
        out = np.zeros((T, x_int.shape[1], H), dtype=np.int64)
        e_out = np.zeros(out.shape)
        for t in range(T - 1, -1, -1) if self.reverse else range(T):
            acc = gate_accumulators(dp, d, x_int[t], h)
            h_new, c_new = cell_update(dp, acc, c)
            preact = shift_round(acc, dp.gate_acc.frac - f.preact.frac, dp.rounding)
            a = dequantize(np.clip(preact, f.preact.min_int, f.preact.max_int), f.preact)
            e_a = e_x[t] @ abs_ih + e_h @ abs_hh + r_pre
            ints = np.split(np.clip(preact, f.preact.min_int, f.preact.max_int), 4, axis=-1)
            a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
            ea_i, ea_f, ea_g, ea_o = np.split(e_a, 4, axis=-1)
            gate = f.gate
            i = dequantize(dp.sigmoid.evaluate(ints[0]), gate)
            f_ = dequantize(dp.sigmoid.evaluate(ints[1]), gate)
            g = dequantize(dp.tanh_gate.evaluate(ints[2]), gate)
            o = dequantize(dp.sigmoid.evaluate(ints[3]), gate)
            # Each bound is also capped by the trivial one the ranges give (S in [0, 1],
            # T in [-1, 1], |h| <= 1, |c_t| <= |c_t-1| + 1), which keeps long runs finite.
            e_i = np.minimum(eps_s + _max_slope("sigmoid", a_i, ea_i) * ea_i, _unit(i))
            e_f = np.minimum(eps_s + _max_slope("sigmoid", a_f, ea_f) * ea_f, _unit(f_))
            e_g = np.minimum(eps_t + _max_slope("tanh", a_g, ea_g) * ea_g, np.abs(g) + 1)
            e_o = np.minimum(eps_s + _max_slope("sigmoid", a_o, ea_o) * ea_o, _unit(o))
            c_prev = dequantize(c, f.cell)
            c_val = dequantize(c_new, f.cell)
            e_c_new = np.minimum(
                r_cell
                + np.abs(f_) * e_c
                + (np.abs(c_prev) + e_c) * e_f
                + np.abs(i) * e_g
                + np.minimum(1.0, np.abs(g) + e_g) * e_i,
                np.abs(c_val) + np.abs(c_prev) + e_c + 1,
            )
            tanh_c = dequantize(dp.tanh_cell.evaluate(c_new), gate)
            e_tc = eps_tc + _max_slope("tanh", c_val, e_c_new) * e_c_new
            e_h_new = np.minimum(
                r_hidden + np.abs(o) * e_tc + np.minimum(1.0, np.abs(tanh_c) + e_tc) * e_o,
                np.abs(dequantize(h_new, f.hidden)) + 1,
            )
            m = valid[t][:, None]
            h, c = np.where(m, h_new, h), np.where(m, c_new, c)
            e_h, e_c = np.where(m, e_h_new, e_h), np.where(m, e_c_new, e_c)
            out[t] = np.where(m, h_new, 0)
            e_out[t] = np.where(m, e_h_new, 0.0)
        return out, e_out, h, c, e_h, e_c


def _run(model: LstmModel, x_int, lengths, h0, c0, e_h0, e_c0, head_on):
    """Reference states with per-element error bounds for one batch (no chaining)."""
    T, B = x_int.shape[:2]
    valid = np.arange(T)[:, None] < lengths[None, :]
    layer_in, e_in = x_int, np.zeros(x_int.shape)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    e_hn, e_cn = np.zeros(h0.shape), np.zeros(c0.shape)
    for layer in range(model.num_layers):
        outs, errors = [], []
        for reverse in (False, True)[: model.num_directions]:
            k = layer * model.num_directions + int(reverse)
            direction = _Direction(model, layer, reverse)
            out, e_out, h_n[k], c_n[k], e_hn[k], e_cn[k] = direction.run(
                layer_in, e_in, h0[k], c0[k], e_h0[k], e_c0[k], valid
            )
            outs.append(out)
            errors.append(e_out)
        layer_in, e_in = np.concatenate(outs, axis=2), np.concatenate(errors, axis=2)
    bounds = {"output": e_in, "h_n": e_hn, "c_n": e_cn}
    if model.head is not None:
        hd = model.head_datapath()
        abs_w = np.abs(dequantize(model.head.weight, hd.formats.weight)).T
        r_out = _rounding_error(hd.acc.frac, hd.formats.output, hd.rounding)
        last = e_in[lengths - 1, np.arange(B)] if head_on == "last" else e_in
        bounds["head"] = last @ abs_w + r_out
    return bounds, h_n, c_n, e_hn, e_cn


@dataclass(frozen=True)
class FloatCheck:
    """Largest |reference - float| per tensor, its bound there and the worst ratio."""

    max_error: dict[str, float]
    max_ratio: float  # max over values of error / bound (<= 1 when the bound holds)
    holds: bool


def float_error_bound(
    model: LstmModel, x_int, lengths, h0, c0, *, carry_state: bool, head_on: str
) -> FloatCheck:
    """Check |run_reference - run_float| <= the derived bound, element by element.

    ``x_int`` (T, B, I) time-major, ``h0``/``c0`` (L*D, B, H) integers. Call it only for
    runs without saturation (the reference's counters at zero): a clamped value can be any
    distance from the float one."""
    lengths = np.asarray(lengths)
    B = h0.shape[1]
    if carry_state:
        pieces = []
        h, c = h0[:, :1], c0[:, :1]
        e_h, e_c = np.zeros(h.shape), np.zeros(c.shape)
        for b in range(B):
            bounds, h, c, e_h, e_c = _run(
                model, x_int[: lengths[b], b : b + 1], lengths[b : b + 1], h, c, e_h, e_c, head_on
            )
            pieces.append(bounds)
        return _check_chained(model, x_int, lengths, h0, c0, head_on, pieces)
    zeros = np.zeros(h0.shape)
    bounds, *_ = _run(model, x_int, lengths, h0, c0, zeros, zeros, head_on)
    floats = _float(model, x_int, lengths, h0, c0, head_on)
    refs = _reference(model, x_int, lengths, h0, c0, head_on)
    valid = np.arange(x_int.shape[0])[:, None] < lengths[None, :]
    return _verdict(bounds, floats, refs, valid, head_on)


def _float(model, x_int, lengths, h0, c0, head_on):
    hidden = [d.formats.hidden for d in model.directions]
    h0f = np.stack([dequantize(s, fmt) for s, fmt in zip(h0, hidden, strict=True)])
    c0f = np.stack([dequantize(s, fmt) for s, fmt in zip(c0, model.cell_formats, strict=True)])
    x = dequantize(x_int, model.input_format)
    out, (h_n, c_n), head = run_float(model, x, h0f, c0f, lengths=lengths, head_on=head_on)
    return {"output": out, "h_n": h_n, "c_n": c_n, "head": head}


def _reference(model, x_int, lengths, h0, c0, head_on):
    r = run_reference(model, x_int, h0, c0, lengths=lengths, head_on=head_on)
    hidden = [d.formats.hidden for d in model.directions]
    values = {
        "output": dequantize(r.output, model.output_format),
        "h_n": np.stack([dequantize(s, f) for s, f in zip(r.h_n, hidden, strict=True)]),
        "c_n": np.stack([dequantize(s, f) for s, f in zip(r.c_n, model.cell_formats, strict=True)]),
        "head": None if r.head is None else dequantize(r.head, model.head.formats.output),
    }
    return values


def _verdict(bounds, floats, refs, valid, head_on) -> FloatCheck:
    max_error, ratio = {}, 0.0
    for name, bound in bounds.items():
        err = np.abs(refs[name] - floats[name])
        if name == "output" or (name == "head" and head_on == "all"):
            err, bound = err[valid], bound[valid]
        max_error[name] = float(err.max()) if err.size else 0.0
        if err.size:
            ratio = max(ratio, float(np.max(err / np.maximum(bound, math.ulp(0.0)))))
    return FloatCheck(max_error, ratio, ratio <= 1.0)


def _check_chained(model, x_int, lengths, h0, c0, head_on, pieces) -> FloatCheck:
    """Sequence by sequence, each from the previous one's final reference/float state."""
    max_error: dict[str, float] = {}
    ratio = 0.0
    h, c = h0[:, :1], c0[:, :1]
    hidden = [d.formats.hidden for d in model.directions]
    hf = np.stack([dequantize(s, f) for s, f in zip(h, hidden, strict=True)])
    cf = np.stack([dequantize(s, f) for s, f in zip(c, model.cell_formats, strict=True)])
    for b, bounds in enumerate(pieces):
        n = int(lengths[b])
        x = x_int[:n, b : b + 1]
        r = run_reference(model, x, h, c, head_on=head_on)
        out, (hf, cf), head = run_float(
            model, dequantize(x, model.input_format), hf, cf, head_on=head_on
        )
        refs = {
            "output": dequantize(r.output, model.output_format),
            "h_n": np.stack([dequantize(s, f) for s, f in zip(r.h_n, hidden, strict=True)]),
            "c_n": np.stack(
                [dequantize(s, f) for s, f in zip(r.c_n, model.cell_formats, strict=True)]
            ),
            "head": None if r.head is None else dequantize(r.head, model.head.formats.output),
        }
        floats = {"output": out, "h_n": hf, "c_n": cf, "head": head}
        check = _verdict(bounds, floats, refs, np.ones((n, 1), dtype=bool), head_on)
        for name, value in check.max_error.items():
            max_error[name] = max(max_error.get(name, 0.0), value)
        ratio = max(ratio, check.max_ratio)
        h, c = r.h_n, r.c_n
    return FloatCheck(max_error, ratio, ratio <= 1.0)
