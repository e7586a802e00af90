"""Extreme format overrides on the hardware (issue 16): every format set the IR accepts
(widths up to the exact limit, fraction bits far outside the usual range, either rounding
and overflow mode) runs bit-exactly on the generated Verilog, with the same draws that prove
the reference equal to exact Python-integer arithmetic in ``tests/sw/test_exact_reference``.
Refused sets are covered there."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from lstm_fpga.sim import compare, compile_model, simulate
from tests.sw.test_exact_reference import _ints, models

pytestmark = pytest.mark.slow


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(model=models(), data=st.data())
def test_accepted_extreme_formats_are_bit_exact_in_hardware(sim_cache, model, data):
    assume(not isinstance(model, Exception))
    f, H = model.directions[0].formats, model.hidden_size
    event(f"widest format: {max(fmt.width for fmt in f.__dict__.values())} bits")
    sequences = [
        np.array([_ints(data.draw, (model.input_size,), f.x) for _ in range(n)]) for n in (3, 1, 2)
    ]
    h0 = _ints(data.draw, (1, H), f.hidden)
    c0 = _ints(data.draw, (1, H), f.cell)
    design = compile_model(model, 3, "verilator", cache_dir=sim_cache)
    report = compare(simulate(design, sequences, h0=h0, c0=c0))
    assert report.bit_exact, str(report)
