"""The integer reference never overflows: on extreme format combinations it equals an
independent model of the numeric contract in Python integers (unbounded), or the IR refuses
the formats at construction and names the tensor and the width.

The exact model below is written from ``docs/numerics.md`` alone: it shares with the
reference only the activation tables' entries (part of the IR's contract), not their
evaluation, the accumulator alignment or the rescale.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from lstm_fpga.sw.ir import IRError, IRFormatWidthError, LayerDirection, LstmModel
from lstm_fpga.sw.numerics import (
    MAX_EXACT_WIDTH,
    FixedFormat,
    FormatWidthError,
    LstmFormats,
    Overflow,
    Rounding,
)
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import FORMAT_SETS, random_model

Q = FixedFormat.parse
STEPS = 2


# -- the exact model ------------------------------------------------------------------------
def _shift(value: int, shift: int, rounding: Rounding) -> int:
    """``value * 2**-shift`` rounded as the contract says (Python ints never wrap)."""
    if shift <= 0:
        return value << -shift
    if rounding is Rounding.HALF_UP:
        value += 1 << (shift - 1)
    return value >> shift


def _fit(value: int, fmt: FixedFormat, overflow: Overflow) -> tuple[int, int]:
    """``value`` in ``fmt`` and 1 if it did not fit (a saturation event), else 0."""
    outside = int(not fmt.min_int <= value <= fmt.max_int)
    if overflow is Overflow.SATURATE:
        return min(max(value, fmt.min_int), fmt.max_int), outside
    value &= (1 << fmt.width) - 1
    return (value - (1 << fmt.width) if value > fmt.max_int else value), outside


def _rescale(value, from_frac, fmt, model):
    return _fit(_shift(value, from_frac - fmt.frac, model.rounding), fmt, model.overflow)


def _lookup(table, p: int, rounding: Rounding) -> int:
    p = min(max(p, table.low), table.high)
    offset = p - table.low
    index, s = offset >> table.segment_shift, table.segment_shift
    y0 = table.values[index]
    if s == 0:
        return y0
    y1 = table.values[min(index + 1, len(table.values) - 1)]
    return y0 + _shift((y1 - y0) * (offset & ((1 << s) - 1)), s, rounding)


def exact_run(model: LstmModel, xs, h, c):
    """One layer direction over ``xs`` (steps of ints) in Python integers: hidden outputs,
    final (h, c) and saturation counts per kind."""
    d = model.directions[0]
    f, dp, H = d.formats, model.datapath(0), model.hidden_size
    w_ih, w_hh, bias = d.w_ih.tolist(), d.w_hh.tolist(), d.bias.tolist()
    acc_frac = max(f.w_ih.frac + f.x.frac, f.w_hh.frac + f.hidden.frac)
    cell_frac = f.gate.frac + max(f.cell.frac, f.gate.frac)
    counts = {"preact": 0, "cell": 0, "hidden": 0}
    outputs = []
    for x in xs:
        preact = []
        for r in range(4 * H):
            acc = sum(a * b for a, b in zip(w_ih[r], x, strict=True)) << (
                acc_frac - f.w_ih.frac - f.x.frac
            )
            acc += sum(a * b for a, b in zip(w_hh[r], h, strict=True)) << (
                acc_frac - f.w_hh.frac - f.hidden.frac
            )
            acc += bias[r] << (acc_frac - f.bias.frac)
            value, saturated = _rescale(acc, acc_frac, f.preact, model)
            preact.append(value)
            counts["preact"] += saturated
        sig = [_lookup(dp.sigmoid, p, model.rounding) for p in preact]
        tanh = [_lookup(dp.tanh_gate, p, model.rounding) for p in preact]
        h_new, c_new = [], []
        for k in range(H):
            i, f_gate, g, o = sig[k], sig[H + k], tanh[2 * H + k], sig[3 * H + k]
            acc = (f_gate * c[k]) << (cell_frac - f.gate.frac - f.cell.frac)
            acc += (i * g) << (cell_frac - 2 * f.gate.frac)
            cell, saturated = _rescale(acc, cell_frac, f.cell, model)
            counts["cell"] += saturated
            product = o * _lookup(dp.tanh_cell, cell, model.rounding)
            hidden, saturated = _rescale(product, 2 * f.gate.frac, f.hidden, model)
            counts["hidden"] += saturated
            c_new.append(cell)
            h_new.append(hidden)
        h, c = h_new, c_new
        outputs.append(h)
    return outputs, h, c, counts


def exact_table_entry(table, k: int) -> int:
    """Entry ``k``: the function at the segment start, rounded half up and saturated, with
    rational arithmetic (the float function value is the specification's input)."""
    start = table.low + (k << table.segment_shift)
    x = float(Fraction(start) / Fraction(2) ** table.input.frac)  # exact: start = j * 2**shift
    scaled = Fraction(float(table.function(x))) * Fraction(2) ** table.output.frac
    value = math.floor(scaled + Fraction(1, 2))
    return min(max(value, table.output.min_int), table.output.max_int)


# -- strategies ------------------------------------------------------------------------------
@st.composite
def fixed_formats(draw, max_width: int):
    """Any format (a third of the time) or one whose integer bits are plausible for a
    tensor, of any width up to ``max_width``."""
    width = draw(st.integers(2, max_width))
    if draw(st.integers(0, 2)) == 0:
        return FixedFormat(width, draw(st.integers(-64, 64)))
    int_bits = draw(st.integers(-4, 8))
    return FixedFormat(width, max(-64, min(64, width - 1 - int_bits)))


def _ints(draw, shape, fmt: FixedFormat) -> np.ndarray:
    count = int(np.prod(shape))
    values = draw(st.lists(st.integers(fmt.min_int, fmt.max_int), min_size=count, max_size=count))
    return np.array(values, dtype=object).reshape(shape).astype(np.int64)


@st.composite
def models(draw):
    I, H = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    # Any width up to the widest; narrower limits make more combinations computable.
    max_width = draw(st.sampled_from((8, 16, 24, 31, MAX_EXACT_WIDTH)))
    f = LstmFormats(*(draw(fixed_formats(max_width)) for _ in range(8)))
    if draw(st.booleans()):  # mostly a bias its accumulator can hold
        acc_frac = max(f.w_ih.frac + f.x.frac, f.w_hh.frac + f.hidden.frac)
        f = replace(f, bias=FixedFormat(f.bias.width, min(f.bias.frac, acc_frac)))
    rounding = draw(st.sampled_from(Rounding))
    overflow = draw(st.sampled_from(Overflow))
    try:
        direction = LayerDirection(
            0,
            False,
            _ints(draw, (4 * H, I), f.w_ih),
            _ints(draw, (4 * H, H), f.w_hh),
            _ints(draw, (4 * H,), f.bias),
            f,
        )
        return LstmModel(I, H, 1, False, True, (direction,), None, rounding, overflow)
    except IRFormatWidthError as error:
        return error
    except IRError as error:  # e.g. a bias finer than its accumulator: not a width question
        return error


def _refusal(error: IRError) -> None:
    """A refusal names a tensor format and a width beyond what int64 holds exactly."""
    assert isinstance(error, IRError)
    if isinstance(error, FormatWidthError):
        assert error.width > MAX_EXACT_WIDTH
        assert error.tensor.split(".")[1] in LstmFormats.__dataclass_fields__
        assert f"needs {error.width} bits, more than {MAX_EXACT_WIDTH}" in str(error)
        event(f"refused: {error.tensor.split('.')[1]}")
    else:
        event("refused: bias")


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(model=models(), data=st.data())
def test_reference_equals_exact_arithmetic_or_refuses(model, data):
    if isinstance(model, Exception):
        _refusal(model)
        return
    event("computed")
    f, H = model.directions[0].formats, model.hidden_size
    xs = [list(map(int, _ints(data.draw, (model.input_size,), f.x))) for _ in range(STEPS)]
    h0 = list(map(int, _ints(data.draw, (H,), f.hidden)))
    c0 = list(map(int, _ints(data.draw, (H,), f.cell)))
    outputs, h_n, c_n, counts = exact_run(model, xs, h0, c0)
    result = run_reference(model, np.array(xs), np.array([h0]), np.array([c0]))
    assert result.output.tolist() == outputs
    assert result.h_n[0].tolist() == h_n and result.c_n[0].tolist() == c_n
    assert counts == {k: getattr(result.saturations, k) for k in counts}
    dp = model.datapath(0)
    for table in (dp.sigmoid, dp.tanh_gate, dp.tanh_cell):
        entries = [exact_table_entry(table, k) for k in range(len(table.values))]
        assert list(table.values) == entries


def _one_layer(formats: LstmFormats, scale: float, seed: int = 0) -> LstmModel:
    return random_model(3, 2, formats=formats, scale=scale, seed=seed)


@pytest.mark.parametrize(
    "overrides, tensor",
    [
        # issue 16: table interpolation products of 73 bits wrapped int64
        ({"preact": Q("Q2.50"), "gate": Q("Q0.29"), "cell": Q("Q0.15")}, "l0.preact"),
        # issue 16: the rescale's left shift by 33 bits wrapped int64
        ({"preact": Q("Q2.59"), "gate": Q("Q0.7")}, "l0.preact"),
        # the o * tanh(c) product shifted left into a very fine hidden format
        ({"hidden": Q("Q-30.64"), "gate": Q("Q0.20")}, "l0.hidden"),
    ],
)
def test_formats_the_reference_cannot_hold_are_refused(overrides, tensor):

    formats = replace(FORMAT_SETS["q16"], **overrides)
    with pytest.raises(IRFormatWidthError) as info:
        _one_layer(formats, scale=4.0)
    assert info.value.tensor == tensor and info.value.width > MAX_EXACT_WIDTH
    assert str(info.value).startswith("l0: the ") and "more than 62" in str(info.value)


def test_right_shifts_of_any_length_are_exact():
    """A cell format far coarser than its accumulator: shifts past 62 bits round exactly."""

    formats = replace(FORMAT_SETS["q16"], gate=Q("Q-25.40"), cell=Q("Q3.10"))
    model = _one_layer(formats, scale=1.0)
    dp = model.datapath(0)
    assert dp.cell_acc.frac - formats.cell.frac > 62
    assert dp.hidden_product_frac - formats.hidden.frac > 62
    xs = [[5, -7, 3], [-(2**15), 2**15 - 1, 0]]
    for rounding in Rounding:
        m = replace(model, rounding=rounding)
        outputs, h_n, c_n, counts = exact_run(m, xs, [0, 0], [0, 0])
        result = run_reference(m, np.array(xs))
        assert result.output.tolist() == outputs
        assert result.h_n[0].tolist() == h_n and result.c_n[0].tolist() == c_n
        assert counts == {k: getattr(result.saturations, k) for k in counts}
