"""Two multiplies per DSP (issue 13 item 4): the packed operand and its split are exact
integer arithmetic at every width the feasibility rule admits, and the rule refuses the
rest with the widths that would fit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_fpga.sw.numerics import (
    DSP_PORTS,
    FAMILY_DSP,
    UNPACKABLE_DSPS,
    DspPackingError,
    PackedProduct,
    dsp_packing,
)


def _fitting_widths(dsp: str):
    """(weight bits, element bits) that fit ``dsp``, up to its boundary."""
    wide, narrow = DSP_PORTS[dsp]
    return [(w, e) for w in range(2, 13) for e in range(2, narrow + 1) if 2 * w + e + 1 <= wide]


def _signed(bits: int):
    return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)


@st.composite
def _packed_case(draw):
    dsp = draw(st.sampled_from(sorted(DSP_PORTS)))
    w, e = draw(st.sampled_from(_fitting_widths(dsp)))

    # Extremes (most negative/positive) drawn often: the cases the widths are chosen for.
    def value(bits):
        ends = [-(1 << (bits - 1)), (1 << (bits - 1)) - 1, -1, 0]
        return draw(st.one_of(st.sampled_from(ends), _signed(bits)))

    return dsp, w, e, value(w), value(w), value(e)


@settings(max_examples=400, deadline=None)
@given(_packed_case())
def test_split_recovers_both_products_exactly(case):
    dsp, w, e, w_even, w_odd, x = case
    packed = dsp_packing(w, e, dsp)
    wide, narrow = DSP_PORTS[dsp]
    a = packed.pack(w_even, w_odd)
    # The packed operand fits its signed width, which fits the DSP's wide port.
    assert -(1 << (packed.packed_bits - 1)) <= a < 1 << (packed.packed_bits - 1)
    assert packed.packed_bits <= wide and e <= narrow
    p = a * x
    assert -(1 << (packed.product_bits - 1)) <= p < 1 << (packed.product_bits - 1)
    assert packed.split(p) == (w_even * x, w_odd * x)


@pytest.mark.parametrize("dsp", sorted(DSP_PORTS))
def test_packed_width_is_tight_at_the_boundary(dsp):
    """``2w + e + 1`` bits are needed: the most negative pair reaches the bottom of them."""
    for w, e in _fitting_widths(dsp):
        packed = PackedProduct(w, e, dsp)
        low = -(1 << (w - 1))
        a = packed.pack(low, low)
        assert a < -(1 << (packed.packed_bits - 2))  # does not fit one bit fewer
        assert a >= -(1 << (packed.packed_bits - 1))
        # S = w + e is the least shift: the product of the most negative values needs it.
        assert packed.split(a * -(1 << (e - 1))) == (low * -(1 << (e - 1)),) * 2


def test_split_of_arrays():
    packed = dsp_packing(8, 8)
    rng = np.random.default_rng(13)
    w_even, w_odd = rng.integers(-128, 128, (2, 1000))
    x = rng.integers(-128, 128, 1000)
    high, low = packed.split(packed.pack(w_even, w_odd) * x)
    np.testing.assert_array_equal(high, w_even * x)
    np.testing.assert_array_equal(low, w_odd * x)


@pytest.mark.parametrize(
    "w, e, dsp, fits",
    [
        (8, 8, "DSP48E1", True),  # 25 bits: the 7-series boundary
        (8, 9, "DSP48E1", False),
        (9, 8, "DSP48E2", True),  # 27 bits
        (8, 10, "DSP48E2", True),
        (8, 11, "DSP48E2", False),
        (4, 16, "DSP48E1", True),  # narrow weights, 16-bit elements
        (4, 18, "DSP48E2", True),
        (2, 19, "DSP48E2", False),  # the element is wider than the 18-bit port
        (16, 16, "DSP48E1", False),
    ],
)
def test_feasibility_rule(w, e, dsp, fits):
    if fits:
        assert dsp_packing(w, e, dsp).packed_bits == 2 * w + e + 1
        return
    with pytest.raises(DspPackingError, match=rf"{w}-bit weights and {e}-bit elements") as info:
        dsp_packing(w, e, dsp)
    assert "--dsp-packing" in str(info.value)


def test_refusal_names_the_widths_that_fit():
    with pytest.raises(DspPackingError) as info:
        dsp_packing(8, 16, "DSP48E1")
    message = str(info.value)
    assert "33-bit packed operand" in message
    assert "--bits 8" in message and "--weight-bits 4" in message


@pytest.mark.parametrize("dsp", sorted(UNPACKABLE_DSPS))
def test_lattice_multipliers_refuse_packing(dsp):
    with pytest.raises(DspPackingError, match="not available"):
        dsp_packing(4, 4, dsp)
    assert dsp in FAMILY_DSP.values()


@pytest.mark.parametrize("bad", [0, -3, True, 2.0])
def test_widths_must_be_positive_ints(bad):
    with pytest.raises(DspPackingError, match="positive int"):
        dsp_packing(bad, 8)
