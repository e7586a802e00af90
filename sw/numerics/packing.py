"""Two multiplies per DSP: two weights against one shared element in one signed multiplier.

Every lane of the matrix-vector unit multiplies its own weight by the *same* broadcast element
``x`` in a cycle, so lanes ``2k`` and ``2k + 1`` can share one multiplier:

* packed operand ``A = w_even * 2**S + w_odd`` (``w_even``, ``w_odd``: signed ``w``-bit
  weights), element ``B = x`` (signed ``e`` bits), product ``p = A * x = w_even*x * 2**S +
  w_odd*x``;
* ``low`` = the low ``S`` bits of ``p`` read as a signed number = ``w_odd * x`` exactly, as
  long as ``S >= w + e`` (a product of a signed ``w``-bit and a signed ``e``-bit number fits
  ``w + e`` signed bits: the largest, ``(-2**(w-1)) * (-2**(e-1)) = 2**(w+e-2)``, needs all
  of them);
* ``high = (p - low) / 2**S = (p >> S) + p[S-1]`` = ``w_even * x`` exactly: the arithmetic
  shift ``p >> S`` is one less than ``w_even * x`` when ``low`` is negative, and ``low``'s
  sign bit ``p[S-1]`` adds that *borrow* back (the correction term).

Both results are exact integers, so the hardware stays bit-exact against the integer reference
with no change to it. The packed operand needs ``S + w + 1 = 2w + e + 1`` signed bits (the
``+ 1``: ``w_even = w_odd = -2**(w-1)`` gives ``A = -2**(2w+e-1) - 2**(w-1)``), and it must fit
the multiplier's wide port, the element its other port (:data:`DSP_PORTS`). :func:`dsp_packing`
checks both and names the widths that would fit.

This module is the one source of truth of the rule; the hardware
(:class:`lstm_fpga.hw.pipeline.PackedMultiplier`) takes its widths from
:class:`PackedProduct`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DSP_PORTS",
    "FAMILY_DSP",
    "PACKING_FACTORS",
    "UNPACKABLE_DSPS",
    "DspPackingError",
    "PackedProduct",
    "dsp_packing",
]

#: Values of ``--dsp-packing``: products per multiplier (1: one lane per DSP; 2: two).
PACKING_FACTORS = (1, 2)

#: Signed operand widths ``(wide port, narrow port)`` of the multipliers that take packed
#: products: Xilinx 7-series DSP48E1 (25 x 18, UG479) and UltraScale(+) DSP48E2 (27 x 18,
#: UG579).
DSP_PORTS = {"DSP48E1": (25, 18), "DSP48E2": (27, 18)}

#: Multipliers packing is refused on, and why.
UNPACKABLE_DSPS = {
    "MULT18X18D": "the ECP5 MULT18X18D is an 18 x 18 multiplier: a packed 8-bit pair needs 25 "
    "bits, and its 9 x 9 mode (MULT9X9D) is mapped by neither Yosys synth_ecp5 nor nextpnr-ecp5 "
    "(docs/precision.md, 'Two multiplies per DSP')",
    "SB_MAC16": "the iCE40 SB_MAC16 is a 16 x 16 multiplier: a packed 8-bit pair needs 25 bits",
}

#: The multiplier of each device family (:data:`lstm_fpga.hw.devices.FAMILIES`) and of the
#: generic Verilog (checked against the narrower Xilinx DSP, so it fits both).
FAMILY_DSP = {
    "generic": "DSP48E1",
    "xc7": "DSP48E1",
    "xcup": "DSP48E2",
    "ecp5": "MULT18X18D",
    "ice40": "SB_MAC16",
}


class DspPackingError(ValueError):
    """Two multiplies per DSP were asked for widths or a multiplier that cannot take them;
    the message names the widths and what to change."""


@dataclass(frozen=True)
class PackedProduct:
    """Two products ``w_even * x`` and ``w_odd * x`` of signed ``weight_bits``-bit weights and
    a signed ``element_bits``-bit element in one multiply (the scheme of this module)."""

    weight_bits: int
    element_bits: int
    dsp: str = "DSP48E1"

    @property
    def shift(self) -> int:
        """``S``: where the even weight sits in the packed operand (``w + e``)."""
        return self.weight_bits + self.element_bits

    @property
    def packed_bits(self) -> int:
        """Signed width of ``A = w_even * 2**S + w_odd``: ``2w + e + 1``."""
        return self.shift + self.weight_bits + 1

    @property
    def product_bits(self) -> int:
        """Signed width of ``p = A * x``."""
        return self.packed_bits + self.element_bits

    @property
    def result_bits(self) -> int:
        """Signed width of each of the two products (``w + e``)."""
        return self.weight_bits + self.element_bits

    def pack(self, w_even, w_odd):
        """``A = w_even * 2**S + w_odd`` (ints or int64 arrays)."""
        return w_even * (1 << self.shift) + w_odd

    def split(self, p):
        """``(high, low) = (w_even * x, w_odd * x)`` from ``p = A * x``: ``low`` is ``p``'s low
        ``S`` bits as a signed number, ``high = (p >> S) + p[S-1]`` (ints or int64 arrays)."""
        S = self.shift
        low_bits = p & ((1 << S) - 1)
        borrow = (p >> (S - 1)) & 1
        low = low_bits - (borrow << S)
        return (p >> S) + borrow, low

    def check(self) -> None:
        """Raise :class:`DspPackingError` unless both weights' products fit one ``dsp``."""
        w, e = self.weight_bits, self.element_bits
        if self.dsp in UNPACKABLE_DSPS:
            raise DspPackingError(
                f"two multiplies per DSP are not available on the {self.dsp}: "
                f"{UNPACKABLE_DSPS[self.dsp]}; build without --dsp-packing (one multiply per DSP)"
            )
        if self.dsp not in DSP_PORTS:
            raise DspPackingError(
                f"unknown DSP {self.dsp!r}; two multiplies per DSP know {', '.join(DSP_PORTS)}"
            )
        wide, narrow = DSP_PORTS[self.dsp]
        if self.packed_bits <= wide and e <= narrow:
            return
        most_w = (wide - min(e, narrow) - 1) // 2
        most_e = min(narrow, wide - 2 * w - 1)
        fixes = []
        if most_e >= 2:
            fixes.append(f"activations/states of at most {most_e} bits (--bits {most_e})")
        if most_w >= 2 and e <= narrow:
            fixes.append(f"weights of at most {most_w} bits (--weight-bits {most_w})")
        fix = " or ".join(fixes) or "narrower --weight-bits and --bits"
        raise DspPackingError(
            f"two multiplies per DSP do not fit the {self.dsp} ({wide} x {narrow} signed): "
            f"{w}-bit weights and {e}-bit elements need a {self.packed_bits}-bit packed operand "
            f"(2 x {w} + {e} + 1) on the {wide}-bit port and the {e}-bit element on the "
            f"{narrow}-bit port; use {fix}, or build without --dsp-packing"
        )


def dsp_packing(weight_bits: int, element_bits: int, dsp: str = "DSP48E1") -> PackedProduct:
    """The :class:`PackedProduct` of ``weight_bits``-bit weights and ``element_bits``-bit
    elements on ``dsp`` (a key of :data:`DSP_PORTS`); :class:`DspPackingError` when it does
    not fit (or ``dsp`` cannot pack), naming the widths that would."""
    for name, value in (("weight_bits", weight_bits), ("element_bits", element_bits)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise DspPackingError(f"{name} must be a positive int, not {value!r}")
    packed = PackedProduct(int(weight_bits), int(element_bits), dsp)
    packed.check()
    return packed
