"""Fixed-point numerics: formats, rounding, saturation, accumulator sizing, activation tables."""

import itertools

import numpy as np
import pytest

from lstm_fpga.sw.numerics import (
    Activation,
    FixedFormat,
    MacSegment,
    Overflow,
    Rounding,
    activation_table,
    clamp,
    dequantize,
    overflow_count,
    plan_accumulator,
    quantize,
    rescale,
    shift_round,
)

Q = FixedFormat.parse


@pytest.mark.parametrize(
    ("text", "width", "frac", "signed"),
    [
        ("Q3.12", 16, 12, True),
        ("Q0.15", 16, 15, True),
        ("UQ1.7", 8, 7, False),
        ("Q7.0", 8, 0, True),
    ],
)
def test_parse_and_print(text, width, frac, signed):
    fmt = Q(text)
    assert (fmt.width, fmt.frac, fmt.signed) == (width, frac, signed)
    assert str(fmt) == text
    assert FixedFormat.from_json(fmt.to_json()) == fmt


def test_format_errors_are_exact():
    with pytest.raises(ValueError) as info:
        Q("q3")
    assert str(info.value) == (
        "cannot parse fixed-point format 'q3': write Qm.n (signed, 1+m+n bits) "
        "or UQm.n (unsigned, m+n bits), e.g. Q3.12"
    )
    with pytest.raises(ValueError) as info:
        FixedFormat(width=1, frac=0)
    assert str(info.value) == "format width must be between 2 and 62 bits, not 1"
    with pytest.raises(TypeError) as info:
        FixedFormat(width=16.0, frac=3)
    assert str(info.value) == "format width must be an int, not 16.0"


def test_format_ranges():
    fmt = Q("Q3.12")
    assert (fmt.min_int, fmt.max_int) == (-32768, 32767)
    assert fmt.min_value == -8.0 and fmt.max_value == 8.0 - 2**-12
    assert (Q("UQ1.7").min_int, Q("UQ1.7").max_int) == (0, 255)


def _naive_shift_round(v: int, shift: int, rounding: Rounding) -> int:
    """Exact rational arithmetic: v / 2**shift rounded by the rule."""
    import math
    from fractions import Fraction

    value = Fraction(v, 2**shift) if shift >= 0 else Fraction(v * 2**-shift)
    if rounding is Rounding.FLOOR:
        return math.floor(value)
    return math.floor(value + Fraction(1, 2))


@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize("shift", [-3, 0, 1, 2, 7])
def test_shift_round_matches_exact_rationals(rounding, shift):
    values = np.arange(-300, 301)
    got = shift_round(values, shift, rounding)
    expected = [_naive_shift_round(int(v), shift, rounding) for v in values]
    assert got.tolist() == expected


@pytest.mark.parametrize("fmt", [Q("Q1.2"), Q("UQ2.1"), Q("Q0.7")])
def test_clamp_saturate_and_wrap(fmt):
    values = np.arange(-600, 600)
    sat = clamp(values, fmt, Overflow.SATURATE)
    assert sat.tolist() == [min(max(int(v), fmt.min_int), fmt.max_int) for v in values]
    wrapped = clamp(values, fmt, Overflow.WRAP)
    modulus = 1 << fmt.width
    expected = [((int(v) - fmt.min_int) % modulus) + fmt.min_int for v in values]
    assert wrapped.tolist() == expected
    assert overflow_count(values, fmt) == int(np.count_nonzero(sat != values))


def test_rescale_is_shift_then_clamp():
    rng = np.random.default_rng(1)
    values = rng.integers(-(2**30), 2**30, size=1000)
    out = rescale(values, 20, Q("Q3.12"), Rounding.HALF_UP, Overflow.SATURATE)
    assert np.array_equal(out, np.clip((values + 2**7) >> 8, -32768, 32767))


@pytest.mark.parametrize("rounding", list(Rounding))
def test_quantize_roundtrip(rounding):
    fmt = Q("Q3.12")
    ints = np.arange(fmt.min_int, fmt.max_int + 1, 37)
    assert np.array_equal(quantize(dequantize(ints, fmt), fmt, rounding), ints)
    assert quantize([100.0, -100.0], fmt).tolist() == [fmt.max_int, fmt.min_int]
    assert quantize([0.5 * fmt.lsb], fmt, Rounding.HALF_UP).tolist() == [1]
    assert quantize([0.5 * fmt.lsb], fmt, Rounding.FLOOR).tolist() == [0]
    with pytest.raises(ValueError, match="cannot quantize NaN or infinite values"):
        quantize([np.nan], fmt)


@pytest.mark.parametrize(
    ("w", "x", "terms"),
    [(Q("Q1.14"), Q("Q3.12"), 16), (Q("Q2.5"), Q("Q0.7"), 11), (Q("Q0.3"), Q("Q0.3"), 1)],
)
def test_accumulator_width_holds_the_worst_case(w, x, terms):
    """Every operand at its most negative value gives the largest sum; it must fit."""
    h = Q("Q0.15")
    bias = Q("Q4.11")
    plan = plan_accumulator((MacSegment(w, x, terms), MacSegment(w, h, terms)), bias)
    worst = plan.accumulate(
        [terms * w.min_int * x.min_int, terms * w.min_int * h.min_int], bias.max_int
    )
    assert -(1 << (plan.width - 1)) <= worst < (1 << (plan.width - 1))


def test_accumulator_alignment_and_bias_error():
    plan = plan_accumulator((MacSegment(Q("Q1.14"), Q("Q3.12"), 4),), Q("Q2.13"))
    assert (plan.frac, plan.shifts, plan.bias_shift) == (26, (0,), 13)
    with pytest.raises(ValueError) as info:
        plan_accumulator((MacSegment(Q("Q1.6"), Q("Q1.6"), 4),), Q("Q0.15"))
    assert str(info.value) == (
        "bias format Q0.15 has 15 fraction bits but the products it is added to have only 12; "
        "use a bias format with at most 12 fraction bits"
    )


ACTIVATION_INPUTS = ["Q3.12", "Q4.11", "Q5.10", "Q2.13", "Q7.8", "Q0.15", "Q6.9"]


@pytest.mark.parametrize(
    ("function", "fmt"), list(itertools.product(list(Activation), ACTIVATION_INPUTS))
)
def test_activation_error_bound_over_whole_input_range(function, fmt):
    """Default 16-bit formats: |table(p) - f(p)| <= 2^-10 for every representable input."""
    table = activation_table(function, Q(fmt), Q("Q0.15"))
    p = np.arange(table.input.min_int, table.input.max_int + 1)
    error = np.abs(
        dequantize(table.evaluate(p), table.output) - function(dequantize(p, table.input))
    )
    assert error.max() <= 2**-10
    assert len(table.values) <= 257  # documented cost: at most 257 x 16 bits per table


def test_activation_table_is_naive_interpolation():
    """The vectorised evaluate equals a scalar, obviously-correct reading of the contract."""
    table = activation_table(Activation.TANH, Q("Q2.9"), Q("Q0.11"))
    step = 1 << table.segment_shift
    for p in range(table.input.min_int, table.input.max_int + 1, 7):
        q = min(max(p, table.low), table.high)
        k, r = divmod(q - table.low, step)
        y0 = table.values[k]
        y1 = table.values[k + 1] if r else y0
        expected = y0 + (((y1 - y0) * r + step // 2) // step if step > 1 else 0)
        assert int(table.evaluate(np.array([p]))[0]) == expected


def test_activation_tables_are_monotonic():
    for function in Activation:
        table = activation_table(function, Q("Q3.12"), Q("Q0.15"))
        p = np.arange(table.input.min_int, table.input.max_int + 1)
        assert np.all(np.diff(table.evaluate(p)) >= 0)
