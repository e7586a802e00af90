"""Property: the generated hardware equals the integer reference, as integers, and the
reference stays within the derived bound of float math, for random configurations.

Hypothesis draws configurations from four families (so even the smallest profile covers
each feature) and a seed for the data cases; every configuration is built once and runs
``PROFILE.cases`` cases in one simulation (:mod:`tests.fuzz.campaign`)."""

from __future__ import annotations

import pytest
from hypothesis import given, seed
from hypothesis import strategies as st

from lstm_fpga.sw.numerics import Overflow, Rounding

from .campaign import Configuration, random_cases, record, run_configuration
from .profiles import PROFILE, log_record

pytestmark = pytest.mark.slow


def _first(first, values):
    """``values`` with ``first`` put first. Hypothesis starts from each strategy's simplest
    value, the first of a ``sampled_from``, and the CI profile draws one configuration per
    family: that one is then a typical member of the family rather than I = H = 1."""
    return st.sampled_from([first, *(v for v in values if v != first)])


_SIZES = range(1, 7)


@st.composite
def _configuration(draw, family: dict) -> Configuration:
    """A configuration; ``family`` maps a field to its strategy where it deviates."""

    def pick(name, default):
        return draw(family.get(name, default))

    I, H = pick("input_size", _first(3, _SIZES)), pick("hidden_size", _first(4, _SIZES))
    rows = 4 * H * (I + H)
    # Lanes beyond 4H(I+H) of the first layer: column groups and lanes left unbuilt.
    lanes = _first(rows + 3, range(rows + 1, 3 * rows + 4)) if family.get("wide") else None
    return Configuration(
        input_size=I,
        hidden_size=H,
        layers=pick("layers", _first(1, range(1, 4))),
        bidirectional=pick("bidirectional", st.just(False)),
        head=pick("head", _first(0, range(4))),
        output=pick("output", _first("all", ["all", "last"])),
        width=pick("width", _first(16, [16, 8, 12])),
        lanes=draw(lanes if lanes is not None else _first(H + 1, range(1, 4 * H + 1))),
        input_elements=pick("input_elements", st.just(1)),
        rounding=pick("rounding", st.just(Rounding.HALF_UP)),
        overflow=pick("overflow", st.just(Overflow.SATURATE)),
        max_seq_len=pick("max_seq_len", _first(7, range(1, 11))),
        bias=pick("bias", _first(True, [True, False])),
    )


_FAMILIES = {
    # stacked unidirectional layers (2-3) with a head on every step, P <= 4H
    "stacked": dict(
        layers=_first(2, [2, 3]),
        head=_first(2, range(4)),
        width=_first(8, [8, 12, 16]),
        input_size=_first(5, _SIZES),
    ),
    # bidirectional, 1-2 layers, sequence buffer of 1-10 steps, output of the last step
    "bidirectional": dict(
        layers=_first(2, [2, 1]),
        bidirectional=st.just(True),
        output=_first("last", ["all", "last"]),
        width=_first(12, [8, 12, 16]),
        hidden_size=_first(3, _SIZES),
    ),
    # P > 4H(I+H) (column groups, unbuilt lanes), several input elements per beat
    "wide": dict(
        wide=True,
        bidirectional=_first(False, [False, True]),
        input_elements=_first(2, [1, 2, 4]),
        head=_first(1, range(4)),
        output=_first("last", ["all", "last"]),
        input_size=_first(2, _SIZES),
        hidden_size=_first(2, _SIZES),
    ),
    # floor rounding, wrapping overflow, no bias
    "modes": dict(
        bidirectional=_first(True, [False, True]),
        rounding=_first(Rounding.FLOOR, list(Rounding)),
        overflow=_first(Overflow.WRAP, list(Overflow)),
        bias=_first(False, [True, False]),
        width=_first(8, [8, 12, 16]),
        max_seq_len=_first(5, range(1, 11)),
    ),
}
FAMILIES = {name: _configuration(family) for name, family in _FAMILIES.items()}


def _seeded(test):
    return test if PROFILE.seed is None else seed(PROFILE.seed)(test)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_hardware_equals_reference(family, sim_cache):
    @_seeded
    @PROFILE.settings()
    @given(config=FAMILIES[family], case_seed=st.integers(0, 2**31 - 1))
    def check(config, case_seed):
        cases = random_cases(config, case_seed, PROFILE.cases)
        outcomes, build_s, run_s = run_configuration(config, cases, sim_cache)
        line = record(config, outcomes, build_s, run_s)
        log_record(line | {"family": family, "case_seed": case_seed})
        assert not line["mismatches"], "\n".join(line["mismatches"])
        assert not line["bound_violations"], "\n".join(line["bound_violations"])

    check()
