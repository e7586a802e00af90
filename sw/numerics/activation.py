"""Sigmoid, tanh and exp as integer functions: interpolated tables generated from formats."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from .accumulator import _ceil_log2
from .fixed import FixedFormat, Overflow, Rounding, _as_int64, quantize, shift_round

#: Activation tables cover pre-activations in [-ACTIVATION_DOMAIN, ACTIVATION_DOMAIN); outside
#: they return the end values (|sigmoid(8) - 1| = 3.4e-4 and |tanh(8) - 1| = 2.3e-7, both
#: below the 2^-10 error budget).
ACTIVATION_DOMAIN = 8
#: Segments per unit of input in the interpolated activation tables: linear interpolation
#: error is h^2/8 * max|f''| = 2.3e-4 for tanh and 3e-5 for sigmoid with h = 1/16.
ACTIVATION_SEGMENTS_PER_UNIT = 16
#: Segments per unit of input in the exp table of attention's softmax (:func:`exp_table`):
#: the interpolation's relative error is h^2/8 = 1.2e-4 with h = 1/32 (exp'' = exp).
EXP_SEGMENTS_PER_UNIT = 32


class Activation(enum.Enum):
    SIGMOID = "sigmoid"
    TANH = "tanh"
    #: ``exp`` of a max-subtracted score (attention's softmax; inputs <= 0, :func:`exp_table`).
    EXP = "exp"

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        if self is Activation.SIGMOID:
            return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1/(1+exp(-x))
        if self is Activation.EXP:
            return np.exp(np.minimum(x, 0.0))  # the table's domain ends at 0
        return np.tanh(x)


@dataclass(frozen=True)
class ActivationTable:
    """An activation as an integer function: table lookup with linear interpolation.

    The input integer ``p`` (format ``input``) is clamped to ``[low, high]``; ``offset = p -
    low`` splits into a segment index ``offset >> segment_shift`` and an interpolation weight
    ``offset & (2**segment_shift - 1)``. With ``y0, y1 = values[index], values[index + 1]``
    the result is ``y0 + ((y1 - y0) * weight + rounding) >> segment_shift`` where rounding
    is half an LSB for :attr:`Rounding.HALF_UP` and 0 for :attr:`Rounding.FLOOR`.
    Entries are the function at segment starts, quantised (half-up, saturating) to ``output``.
    """

    function: Activation
    input: FixedFormat
    output: FixedFormat
    segment_shift: int
    low: int
    high: int
    values: tuple[int, ...]
    rounding: Rounding = Rounding.HALF_UP

    @property
    def segments(self) -> int:
        return len(self.values) - 1

    @property
    def delta_width(self) -> int:
        """Signed width that holds every ``values[k+1] - values[k]``."""
        deltas = np.diff(np.asarray(self.values, dtype=np.int64))
        if deltas.size == 0:
            return 2
        largest = int(max(deltas.max(), -deltas.min(), 1))
        return largest.bit_length() + 1

    @property
    def size_bits(self) -> int:
        """Storage cost of the table in bits."""
        return len(self.values) * self.output.width

    def evaluate(self, preactivation) -> np.ndarray:
        p = np.clip(_as_int64(preactivation), self.low, self.high)
        offset = p - self.low
        index = offset >> self.segment_shift
        table = np.asarray(self.values, dtype=np.int64)
        y0 = table[index]
        if self.segment_shift == 0:
            return y0
        weight = offset & ((1 << self.segment_shift) - 1)
        y1 = table[np.minimum(index + 1, len(table) - 1)]
        return y0 + shift_round((y1 - y0) * weight, self.segment_shift, self.rounding)


def activation_table(
    function: Activation,
    input: FixedFormat,
    output: FixedFormat,
    rounding: Rounding = Rounding.HALF_UP,
) -> ActivationTable:
    """Generate the interpolated table for ``function`` from its input and output formats."""
    segment_shift = max(0, input.frac - _ceil_log2(ACTIVATION_SEGMENTS_PER_UNIT))
    step = 1 << segment_shift
    domain = max(1, int(math.ldexp(ACTIVATION_DOMAIN, input.frac)))
    low = max(input.min_int, -domain)
    high = min(input.max_int, domain - 1)
    # Align the clamped range to whole segments (it already is for power-of-two ranges).
    low -= low % step
    n_segments = -(-(high + 1 - low) // step)
    starts = low + step * np.arange(n_segments + 1, dtype=np.int64)
    exact = function(np.ldexp(starts.astype(np.float64), -input.frac))
    values = quantize(exact, output, Rounding.HALF_UP, Overflow.SATURATE)
    return ActivationTable(
        function=function,
        input=input,
        output=output,
        segment_shift=segment_shift,
        low=int(low),
        high=int(high),
        values=tuple(int(v) for v in values),
        rounding=rounding,
    )


def exp_domain(output: FixedFormat) -> int:
    """How far below 0 the exp table reaches: the smallest integer ``E`` with ``exp(-E)``
    below half an LSB of ``output``, so that clamping an input at ``-E`` changes no result
    (``E = 12`` for 15 fraction bits)."""
    return max(1, math.ceil((output.frac + 1) * math.log(2.0)))


def exp_table(
    input: FixedFormat, output: FixedFormat, rounding: Rounding = Rounding.HALF_UP
) -> ActivationTable:
    """``exp`` on ``[-exp_domain(output), 0]`` as an interpolated :class:`ActivationTable`.

    The input is a max-subtracted score (never positive); :data:`EXP_SEGMENTS_PER_UNIT`
    segments per unit; the last entry is ``exp(0) = 1`` exactly (``output`` must hold 1), so
    the largest score of a sequence always weighs exactly 1. Inputs below the domain clamp to
    its end, where ``exp`` is already below half an output LSB (the clamp loses nothing).
    """
    segment_shift = max(0, input.frac - _ceil_log2(EXP_SEGMENTS_PER_UNIT))
    step = 1 << segment_shift
    domain = max(1, int(math.ldexp(exp_domain(output), input.frac)))
    low = max(input.min_int, -domain)
    low -= low % step  # whole segments up to 0, which is a segment start
    starts = low + step * np.arange(-low // step + 1, dtype=np.int64)
    exact = Activation.EXP(np.ldexp(starts.astype(np.float64), -input.frac))
    values = quantize(exact, output, Rounding.HALF_UP, Overflow.SATURATE)
    return ActivationTable(
        function=Activation.EXP,
        input=input,
        output=output,
        segment_shift=segment_shift,
        low=int(low),
        high=0,
        values=tuple(int(v) for v in values),
        rounding=rounding,
    )
