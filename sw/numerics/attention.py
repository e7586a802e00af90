"""Attention pooling over time: its formats and the integer arithmetic derived from them.

The float function (``docs/attention.md``) over one sequence's valid steps ``h_1 .. h_T``::

    u_t = W h_t + b        e_t = v . tanh(u_t)        alpha = softmax_t(e)
    context = sum_t alpha_t h_t                       (then the Linear head on the context)

and its integer form, which the reference computes and the hardware will match bit for bit
(every rescale is :func:`~.fixed.rescale`: shift, round by the model's rounding, clamp by its
overflow rule, each clamp counted)::

    u_t  = rescale(score_acc.accumulate([W @ h_t], b), preact)
    th_t = tanh_table(u_t)                                        (tanh format)
    e_t  = rescale(e_acc.accumulate([v @ th_t]), score)
    m    = max over the valid t of e_t                           (exact)
    p_t  = exp_table(e_t - m)   (0 for steps past the length; exp format; p of the max = 1)
    S    = sum_t p_t                                             (exact)
    r, k = reciprocal(S): n = bit_length(S), k = n - 1 + RECIP_BITS,
           r = round(2**k / S)           (one division per sequence, RECIP_BITS + 1 bits)
    alpha_t = clamp((p_t * r) >> (k - alpha.frac) with rounding, alpha)
    context = rescale(sum_t alpha_t * h_t, context)

The reciprocal is normalised by the leading one of ``S``, so it keeps ``RECIP_BITS``
significant bits whatever the sequence length; ``alpha_t`` sums to 1 within rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .accumulator import AccumulatorPlan, MacSegment, plan_accumulator
from .activation import Activation, ActivationTable, activation_table, exp_table
from .datapath import (
    IntermediateWidth,
    _BiasedFormats,
    _Datapath,
    _interpolation_width,
    _shift_width,
)
from .fixed import MAX_EXACT_WIDTH, FixedFormat, Rounding, _as_int64, clamp, overflow_count

__all__ = ["RECIP_GUARD_BITS", "AttentionDatapath", "AttentionFormats", "AttentionSoftmax"]

#: Bits of the reciprocal beyond the alpha format's width: ``RECIP_BITS = alpha.width + 2``.
RECIP_GUARD_BITS = 2


@dataclass(frozen=True)
class AttentionFormats(_BiasedFormats):
    """Formats of every tensor of attention pooling (names ``attention.<field>``).

    ``x`` is what it pools: the last layer's hidden format (``D * H`` features per step, or
    ``D * proj_size``); ``w`` (A x D*H), ``bias`` (A) and ``v`` (A) are its weights;
    ``preact`` the score pre-activation ``W h_t + b``, ``tanh`` its tanh (a table, like the
    LSTM's gates), ``score`` the scores ``e_t``, ``exp`` the table's ``exp(e_t - max e)``,
    ``alpha`` the attention weights and ``context`` the pooled vector (the head's input).
    ``exp`` and ``alpha`` must hold 1.0 (the maximum's weight, a one-step sequence's alpha).
    """

    x: FixedFormat
    w: FixedFormat
    bias: FixedFormat
    preact: FixedFormat
    tanh: FixedFormat
    v: FixedFormat
    score: FixedFormat
    exp: FixedFormat
    alpha: FixedFormat
    context: FixedFormat

    def __post_init__(self):
        for name, _ in self.items():
            if not isinstance(getattr(self, name), FixedFormat):
                raise TypeError(f"attention.{name} must be a FixedFormat")
        for name in ("exp", "alpha"):
            fmt = getattr(self, name)
            if fmt.max_value < 1.0 or fmt.min_int > 0:
                raise ValueError(
                    f"attention.{name} is {fmt}, which cannot hold 1.0 (the weight of a "
                    f"sequence's largest score); use a format with an integer bit, e.g. "
                    f"UQ1.{fmt.width - 1}"
                )

    def segments(self, features: int = 1) -> tuple[MacSegment, ...]:
        """The products the score accumulator sums: ``W @ h_t``."""
        return (MacSegment(self.w, self.x, features),)

    def datapath(self, features: int, attention_size: int, **arithmetic) -> AttentionDatapath:
        """The arithmetic of these formats over ``features`` inputs per step and
        ``attention_size`` rows of ``W`` (``arithmetic``: ``rounding``, ``overflow``)."""
        return AttentionDatapath(self, features, attention_size, **arithmetic)


@dataclass(frozen=True)
class AttentionSoftmax:
    """One batch's softmax over time in integers (see the module docstring): ``p`` (T, B) the
    exp table's outputs (0 past each length), ``total`` (B) their sums, ``reciprocal`` (B)
    and ``shift`` (B) the normalisation, ``alpha`` (T, B) the weights, ``saturations`` the
    clamps of ``alpha`` (none can happen; counted all the same)."""

    p: np.ndarray
    total: np.ndarray
    reciprocal: np.ndarray
    shift: np.ndarray
    alpha: np.ndarray
    saturations: int


@dataclass(frozen=True)
class AttentionDatapath(_Datapath):
    """Everything derived from :class:`AttentionFormats` at ``features`` (D*H) inputs and
    ``attention_size`` (A) rows: accumulators, tables, the softmax and the context."""

    formats: AttentionFormats
    features: int
    attention_size: int

    @cached_property
    def score_acc(self) -> AccumulatorPlan:
        """``W @ h_t + b`` over ``features`` products."""
        return self.formats.accumulator(self.features)

    @cached_property
    def tanh(self) -> ActivationTable:
        f = self.formats
        return activation_table(Activation.TANH, f.preact, f.tanh, self.rounding)

    @cached_property
    def e_acc(self) -> AccumulatorPlan:
        """``v . tanh(u_t)`` over ``attention_size`` products (no bias: PyTorch's ``v`` has
        none)."""
        f = self.formats
        return plan_accumulator((MacSegment(f.v, f.tanh, self.attention_size),), None)

    @property
    def shifted_score(self) -> FixedFormat:
        """The format of ``e_t - max e`` (one bit wider than ``score``; never positive)."""
        return FixedFormat(self.formats.score.width + 1, self.formats.score.frac)

    @cached_property
    def exp(self) -> ActivationTable:
        return exp_table(self.shifted_score, self.formats.exp, self.rounding)

    @property
    def recip_bits(self) -> int:
        """Significant bits of the reciprocal ``round(2**k / S)``: it lies in
        ``[2**(RECIP_BITS-1), 2**RECIP_BITS]``."""
        return self.formats.alpha.width + RECIP_GUARD_BITS

    @property
    def context_frac(self) -> int:
        return self.formats.alpha.frac + self.formats.x.frac

    @property
    def context_width(self) -> int:
        """Signed bits of ``sum_t alpha_t h_t``: the alphas sum to at most ``1 + T/2`` LSBs
        above 1 (one rounding each), below 2 for ``T <= 2**alpha.frac`` steps
        (:attr:`max_steps`), so one bit above a single product suffices."""
        f = self.formats
        return f.alpha.width + 1 + f.x.width

    @property
    def max_steps(self) -> int:
        """The longest sequence the integer arithmetic holds exactly: the sum ``S`` of ``T``
        exp values and ``2**k`` within :data:`MAX_EXACT_WIDTH` bits, and ``T <=
        2**alpha.frac`` (the context bound)."""
        f = self.formats
        sum_bits = MAX_EXACT_WIDTH - 1 - self.recip_bits - f.exp.width
        return max(1, min(1 << max(0, sum_bits), 1 << max(0, f.alpha.frac)))

    def softmax(self, score, valid) -> AttentionSoftmax:
        """The softmax over time of integer scores ``score`` (T, B) restricted to ``valid``
        (T, B) steps (every sequence has at least one)."""
        e = _as_int64(score)
        valid = np.asarray(valid, dtype=bool)
        if e.shape != valid.shape or e.ndim != 2:
            raise ValueError(f"scores {e.shape} and valid steps {valid.shape} must be (T, B)")
        if not valid.any(axis=0).all():
            raise ValueError("every sequence needs at least one valid step")
        if valid.sum(axis=0).max() > self.max_steps:
            raise ValueError(
                f"a sequence of {valid.sum(axis=0).max()} steps is longer than attention "
                f"pooling computes exactly with these formats ({self.max_steps})"
            )
        f = self.formats
        peak = np.where(valid, e, np.iinfo(np.int64).min).max(axis=0)
        p = np.where(valid, self.exp.evaluate(np.where(valid, e - peak, 0)), 0)
        total = p.sum(axis=0)
        # bit_length(S) from the float exponent: exact, S < 2**53.
        n = np.frexp(total.astype(np.float64))[1].astype(np.int64)
        k = n - 1 + self.recip_bits
        one = np.left_shift(np.int64(1), k)
        if self.rounding is Rounding.HALF_UP:
            reciprocal = (one + (total >> 1)) // total
        else:
            reciprocal = one // total
        shift = k - f.alpha.frac
        product = p * reciprocal
        if self.rounding is Rounding.HALF_UP:
            product = product + np.left_shift(np.int64(1), shift - 1)
        unclamped = product >> shift
        alpha = np.where(valid, clamp(unclamped, f.alpha, self.overflow), 0)
        saturations = overflow_count(unclamped[valid], f.alpha)
        return AttentionSoftmax(p, total, reciprocal, shift, alpha, saturations)

    def intermediate_widths(self) -> tuple[IntermediateWidth, ...]:
        """Every value attention pooling computes whose width the formats decide."""
        f = self.formats
        acc, e_acc = self.score_acc, self.e_acc
        return (
            IntermediateWidth(
                "score accumulator",
                f"w {f.w} * x {f.x}, bias {f.bias}",
                acc.width,
                "w",
                "override attention.w or attention.bias with fewer fraction bits",
            ),
            IntermediateWidth(
                "score pre-activation rescale",
                f"accumulator with {acc.frac} fraction bits to preact {f.preact}",
                _shift_width(acc.width, acc.frac - f.preact.frac),
                "preact",
                "the left shift is too long; use a preact format with fewer fraction bits",
            ),
            IntermediateWidth(
                "tanh table interpolation",
                f"preact {f.preact} to tanh {f.tanh}",
                _interpolation_width(self.tanh),
                "preact",
                "use a preact format with fewer fraction bits or a narrower tanh format",
            ),
            IntermediateWidth(
                "score accumulator (v)",
                f"v {f.v} * tanh {f.tanh}",
                e_acc.width,
                "v",
                "use narrower v or tanh formats",
            ),
            IntermediateWidth(
                "score rescale",
                f"accumulator with {e_acc.frac} fraction bits to score {f.score}",
                _shift_width(e_acc.width, e_acc.frac - f.score.frac),
                "score",
                "the left shift is too long; use a score format with fewer fraction bits",
            ),
            IntermediateWidth(
                "exp table interpolation",
                f"score - max {self.shifted_score} to exp {f.exp}",
                _interpolation_width(self.exp),
                "score",
                "use a score format with fewer fraction bits or a narrower exp format",
            ),
            IntermediateWidth(
                "alpha product",
                f"exp {f.exp} * reciprocal ({self.recip_bits + 1} bits)",
                f.exp.width + self.recip_bits + 2,
                "alpha",
                "use narrower exp or alpha formats",
            ),
            IntermediateWidth(
                "context accumulator",
                f"alpha {f.alpha} * x {f.x}",
                self.context_width,
                "alpha",
                "use narrower alpha or hidden formats",
            ),
            IntermediateWidth(
                "context rescale",
                f"accumulator with {self.context_frac} fraction bits to context {f.context}",
                _shift_width(self.context_width, self.context_frac - f.context.frac),
                "context",
                "the left shift is too long; use a context format with fewer fraction bits",
            ),
        )
