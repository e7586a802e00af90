"""Regression (issue 15): the quantisation report's per-direction saturation counts equal
the reference's totals under every rounding and overflow mode.

With ``Overflow.WRAP`` a saturated (wrapped) value is not at the edge of its format, so the
report's "only rows at a format edge can have clamped" shortcut found none and the build
stopped with ``internal error: preact saturations per direction sum to 0, run_reference
counted ...``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.numerics import Overflow, Rounding
from lstm_fpga.sw.reference import quantize_input, run_reference

KINDS = ("preact", "cell", "hidden")


def _large_weight_lstm(I, H, L, bidirectional, scale, seed):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(I, H, L, bidirectional=bidirectional)
    with torch.no_grad():
        for parameter in lstm.parameters():
            parameter.mul_(scale)
    return lstm


@pytest.mark.parametrize("overflow", list(Overflow))
@pytest.mark.parametrize("rounding", list(Rounding))
@pytest.mark.parametrize(
    ("width", "I", "H", "L", "bidirectional"), [(8, 3, 1, 1, True), (16, 5, 6, 2, False)]
)
def test_report_saturations_per_direction_sum_to_the_reference(
    width, I, H, L, bidirectional, rounding, overflow
):
    lstm = _large_weight_lstm(I, H, L, bidirectional, scale=30.0, seed=34)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 3, I)) * 10
    lengths = np.array([20, 13, 1])
    # A narrow pre-activation format makes every mode saturate often.
    overrides = {"l0.preact": f"Q1.{width - 2}"}
    model, report = quantize_from_torch(
        lstm,
        x,
        batch_first=False,
        lengths=lengths,
        width=width,
        overrides=overrides,
        rounding=rounding,
        overflow=overflow,
    )
    reference = run_reference(model, quantize_input(model, x), lengths=lengths)
    by_kind = {kind: 0 for kind in KINDS}
    for row in report.tensors:
        owner, _, kind = row.name.partition(".")
        if owner != "head" and kind in by_kind:
            by_kind[kind] += row.saturations
    assert by_kind == {kind: getattr(reference.saturations, kind) for kind in KINDS}
    assert by_kind["preact"] > 0
