"""Tiny seeded IR models and stream drivers for the hardware tests."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.sw.ir import LayerDirection, LstmModel
from lstm_fpga.sw.numerics import FixedFormat, LstmFormats, quantize

Q = FixedFormat.parse

#: Format sets the tests sweep: 16-bit with differently scaled W_ih/W_hh (two product
#: alignment shifts), a narrow 12-bit set, 8-bit inputs/W_ih next to 16-bit state, and
#: "tight" ranges (pre-activation +-4, cell +-2, hidden +-0.5) where every rescale saturates.
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
    "tight": LstmFormats(
        x=Q("Q3.12"),
        w_ih=Q("Q1.14"),
        w_hh=Q("Q1.14"),
        bias=Q("Q3.12"),
        preact=Q("Q2.9"),
        gate=Q("Q0.11"),
        cell=Q("Q1.10"),
        hidden=Q("Q-1.13"),
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


async def send_beats(ctx, port, beats, rng, idle: float = 0.0):
    """Drive ``beats`` (payload values) into stream ``port`` with random idle cycles.

    Before each beat, ``valid`` stays low for a geometric number of cycles (mean
    ``idle / (1 - idle)``); the beat is held until ``ready``.
    """
    for beat in beats:
        while idle and rng.random() < idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, beat)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


async def receive_beats(ctx, port, count: int, rng, stall: float = 0.0, fields=None):
    """Collect ``count`` beats from stream ``port`` while dropping ``ready`` at random.

    Returns the payloads (as ``{field: int}`` dicts when ``fields`` is given, else ints).
    """
    got = []
    signals = [port.payload] if fields is None else [port.payload[f] for f in fields]
    while len(got) < count:
        ready = not (stall and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, *values = await ctx.tick().sample(port.valid, *signals)
        if ready and valid:
            got.append(values[0] if fields is None else dict(zip(fields, values, strict=True)))
    ctx.set(port.ready, 0)
    return got
