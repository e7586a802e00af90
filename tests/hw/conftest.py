"""Tiny seeded IR models and stream drivers for the hardware tests."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.sw.ir import LayerDirection, LstmModel
from lstm_fpga.sw.numerics import FixedFormat, LstmFormats, quantize

Q = FixedFormat.parse

#: Format sets the tests sweep: 16-bit with differently scaled W_ih/W_hh (two product
#: alignment shifts), a narrow 12-bit set, and 8-bit inputs/W_ih next to 16-bit state.
FORMAT_SETS = {
    "q16": LstmFormats(
        x=Q("Q3.12"),
        w_ih=Q("Q1.14"),
        w_hh=Q("Q0.15"),
        bias=Q("Q3.12"),
        preact=Q("Q4.11"),
        gate=Q("Q0.15"),
        cell=Q("Q4.11"),
        hidden=Q("Q0.15"),
    ),
    "q12": LstmFormats(
        x=Q("Q2.9"),
        w_ih=Q("Q1.10"),
        w_hh=Q("Q1.10"),
        bias=Q("Q2.9"),
        preact=Q("Q3.8"),
        gate=Q("Q0.11"),
        cell=Q("Q3.8"),
        hidden=Q("Q0.11"),
    ),
    "mixed": LstmFormats(
        x=Q("Q3.4"),
        w_ih=Q("Q1.6"),
        w_hh=Q("Q1.14"),
        bias=Q("Q3.12"),
        preact=Q("Q4.11"),
        gate=Q("Q0.15"),
        cell=Q("Q4.11"),
        hidden=Q("Q0.15"),
    ),
}


def make_model(
    input_size: int,
    hidden_size: int,
    formats: str | LstmFormats = "q16",
    seed: int = 0,
    scale: float = 1.5,
) -> LstmModel:
    """A one-layer IR model with random weights quantised into ``formats``.

    ``scale`` stretches the weights so gates reach their saturated regions and some
    pre-activations and cell states saturate their formats.
    """
    f = FORMAT_SETS[formats] if isinstance(formats, str) else formats
    rng = np.random.default_rng(seed)
    H, I = hidden_size, input_size
    limit = scale / np.sqrt(H)
    w_ih = quantize(rng.uniform(-limit, limit, (4 * H, I)), f.w_ih)
    w_hh = quantize(rng.uniform(-limit, limit, (4 * H, H)), f.w_hh)
    bias = quantize(rng.uniform(-1.0, 1.0, 4 * H), f.bias)
    direction = LayerDirection(0, False, w_ih, w_hh, bias, f)
    return LstmModel(I, H, 1, False, True, (direction,))


def random_input(model: LstmModel, steps: int, seed: int = 1) -> np.ndarray:
    """Integer inputs ``(steps, I)`` spanning most of the input format."""
    rng = np.random.default_rng(seed)
    fmt = model.input_format
    return quantize(rng.uniform(-0.9, 0.9, (steps, model.input_size)) * fmt.max_value, fmt)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
