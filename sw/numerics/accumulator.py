"""Accumulator plans: aligning products of differently scaled operands into one exact sum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import FixedFormat, _as_int64


def _ceil_log2(n: int) -> int:
    return max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class MacSegment:
    """``length`` products of a ``weight``-format and an ``operand``-format integer."""

    weight: FixedFormat
    operand: FixedFormat
    length: int

    @property
    def frac(self) -> int:
        return self.weight.frac + self.operand.frac

    @property
    def width(self) -> int:
        return self.weight.width + self.operand.width


@dataclass(frozen=True)
class AccumulatorPlan:
    """How products of several segments and a bias are summed exactly.

    Every product of segment ``k`` is shifted left by ``shifts[k]`` and the bias by
    ``bias_shift`` so that all terms have ``frac`` fraction bits; the sum of all terms always
    fits a signed ``width``-bit accumulator (no overflow is possible).
    """

    frac: int
    width: int
    shifts: tuple[int, ...]
    bias_shift: int
    terms: int

    def accumulate(self, products, bias=None) -> np.ndarray:
        """Sum per-segment partial sums (each already summed over its segment) and the bias.

        ``products`` is a sequence of integer arrays, one per segment, each the exact sum of
        that segment's raw (unshifted) products. Returns the accumulator value.
        """
        total = None
        for partial, shift in zip(products, self.shifts, strict=True):
            term = _as_int64(partial) << shift
            total = term if total is None else total + term
        if bias is not None:
            total = total + (_as_int64(bias) << self.bias_shift)
        return total


def accumulator_frac(segments) -> int:
    """Fraction bits of an accumulator of ``segments``: those of its finest product."""
    return max(segment.frac for segment in segments)


def check_bias_frac(bias: FixedFormat, frac: int) -> None:
    """The bias rule: a bias has at most the ``frac`` fraction bits of the products it is added
    to (finer bits would fall below the accumulator's LSB); ``ValueError`` otherwise."""
    if bias.frac > frac:
        raise ValueError(
            f"bias format {bias} has {bias.frac} fraction bits but the products it is added "
            f"to have only {frac}; use a bias format with at most {frac} fraction bits"
        )


def plan_accumulator(
    segments: tuple[MacSegment, ...] | list[MacSegment], bias: FixedFormat | None
) -> AccumulatorPlan:
    """Align ``segments`` (and ``bias``) to the finest scale and size the accumulator.

    The width is ``max(aligned product width + ceil(log2(terms)), aligned bias width) + 1``:
    a sum of ``terms`` signed products of ``a``- and ``b``-bit operands is bounded by
    ``terms * 2**(a+b-2)``, so this width leaves room for the bias and cannot overflow.
    """
    if not segments:
        raise ValueError("an accumulator needs at least one segment of products")
    frac = accumulator_frac(segments)
    shifts = tuple(frac - segment.frac for segment in segments)
    terms = sum(segment.length for segment in segments)
    product_width = max(s.width + shift for s, shift in zip(segments, shifts, strict=True))
    width = product_width + _ceil_log2(terms)
    bias_shift = 0
    if bias is not None:
        check_bias_frac(bias, frac)
        bias_shift = frac - bias.frac
        width = max(width, bias.width + bias_shift)
    return AccumulatorPlan(
        frac=frac, width=width + 1, shifts=shifts, bias_shift=bias_shift, terms=terms
    )
