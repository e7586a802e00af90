"""AttentionUnit in the Amaranth simulator: the head's outputs and every saturation pulse equal
the integer reference (``run_reference``) bit for bit, fed the reference's LSTM outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from lstm_fpga.hw.attention import ATTENTION_SATURATION_KINDS, AttentionUnit
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from lstm_fpga.sw.numerics import Overflow, Rounding
from lstm_fpga.sw.reference import quantize_input, run_reference


def _model(I, H, A, O, bidirectional, R, seed, w_scale=1.0, **quantize):
    torch.manual_seed(seed)
    net = AttentionClassifier(I, H, A, O, bidirectional=bidirectional, proj_size=R).double()
    with torch.no_grad():
        net.attention.v.weight.mul_(8.0)  # sharper attention: spread scores
        net.attention.W.weight.mul_(w_scale)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (3, 6, I))
    lengths = np.array([6, 1, int(rng.integers(2, 6))])
    model, _ = quantize_from_torch(net, x, lengths=lengths, **quantize)
    return model, x, lengths


def _simulate(unit, sequences, y_ready_every=1):
    """``sequences``: lists of (steps, F) integer arrays. Returns the ``y`` values per
    sequence, the saturation pulses per kind, the overflow pulses and the cycles."""
    outputs, pulses, state, ends = [], dict.fromkeys(ATTENTION_SATURATION_KINDS, 0), {}, []

    async def feed(ctx):
        for seq in sequences:
            flat = seq.reshape(-1)
            for k, value in enumerate(flat):
                ctx.set(unit.h.payload.data, int(value))
                ctx.set(unit.h.payload.last, int(k == flat.size - 1))
                ctx.set(unit.h.valid, 1)
                while not ctx.get(unit.h.ready):
                    await ctx.tick()
                await ctx.tick()
            ctx.set(unit.h.valid, 0)

    async def watch(ctx):
        current, cycles, overflows = [], 0, 0
        while len(outputs) + overflows < len(sequences):
            ready = int(cycles % y_ready_every == 0)
            ctx.set(unit.y.ready, ready)
            await ctx.delay(1e-9)
            valid, value, last = ctx.get(unit.y.valid), None, None
            if valid and ready:
                value, last = ctx.get(unit.y.payload.data), ctx.get(unit.y.payload.last)
            for kind in ATTENTION_SATURATION_KINDS:
                pulses[kind] += ctx.get(getattr(unit.saturated, kind))
            overflows += ctx.get(unit.overflow)
            await ctx.tick()
            cycles += 1
            if value is not None:
                current.append(value)
                if last:
                    outputs.append(current)
                    current = []
                    ends.append(cycles)  # cycles up to and with this one
            assert cycles < 200_000
        for _ in range(4):  # pulses one cycle after their value
            for kind in ATTENTION_SATURATION_KINDS:
                pulses[kind] += ctx.get(getattr(unit.saturated, kind))
            await ctx.tick()
        state.update(cycles=cycles, overflows=overflows, empty=ctx.get(unit.empty), ends=ends)

    sim = Simulator(unit)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(watch)
    sim.run()
    return outputs, pulses, state


def _check(model, x, lengths, y_ready_every=1, max_steps=None):
    xi = quantize_input(model, x)
    result = run_reference(model, xi, batch_first=True, lengths=lengths)
    out = result.output  # (B, T, F)
    unit = AttentionUnit(
        model.attention,
        model.head,
        rounding=model.rounding,
        overflow=model.overflow,
        max_steps=max_steps or int(lengths.max()),
    )
    sequences = [out[b, : lengths[b]] for b in range(len(lengths))]
    outputs, pulses, state = _simulate(unit, sequences, y_ready_every)
    np.testing.assert_array_equal(np.array(outputs), result.head)
    expected = dict(result.attention.saturations, head=result.saturations.head)
    assert pulses == expected
    assert state["empty"] == 1
    return result, pulses


@pytest.mark.parametrize(
    ("I", "H", "A", "O", "bidirectional", "R", "seed"),
    [
        (3, 5, 4, 2, False, 0, 0),  # odd sizes
        (2, 3, 7, 5, True, 0, 1),  # F = 6, A = 7
        (4, 6, 3, 1, False, 3, 2),  # LSTMP: F = 3, one output
    ],
)
def test_unit_equals_reference(I, H, A, O, bidirectional, R, seed):
    model, x, lengths = _model(I, H, A, O, bidirectional, R, seed)
    _check(model, x, lengths)


def test_unit_floor_wrap_and_saturations_counted_as_the_reference():
    """FLOOR rounding, WRAP overflow and narrow preact/score/context/head formats: the
    clamps (wraps) happen, and each pulse count equals the reference's."""
    overrides = {
        "attention.preact": "Q-2.9",
        "attention.score": "Q-3.10",
        "attention.context": "Q-2.7",
        "head.output": "Q-1.5",
    }
    for overflow in (Overflow.WRAP, Overflow.SATURATE):
        model, x, lengths = _model(
            3,
            4,
            5,
            3,
            False,
            0,
            3,
            width=12,
            overrides=overrides,
            rounding=Rounding.FLOOR,
            overflow=overflow,
        )
        _, pulses = _check(model, x, lengths, y_ready_every=3)
        assert pulses["preact"] and pulses["context"] and pulses["head"]


def test_unit_drops_a_sequence_longer_than_max_steps():
    model, x, lengths = _model(3, 4, 2, 2, False, 0, 4)
    xi = quantize_input(model, x)
    result = run_reference(model, xi, batch_first=True, lengths=lengths)
    unit = AttentionUnit(
        model.attention,
        model.head,
        rounding=model.rounding,
        overflow=model.overflow,
        max_steps=3,
    )
    keep = lengths <= 3
    sequences = [result.output[b, : lengths[b]] for b in range(len(lengths))]
    outputs, _, state = _simulate(unit, sequences)
    assert state["overflows"] == int((~keep).sum())
    np.testing.assert_array_equal(np.array(outputs), result.head[keep])


@pytest.mark.parametrize("steps", [1, 4])
def test_unit_cycles_are_attention_cycles(steps):
    """One sequence, ``h`` offered every cycle and ``y`` always ready: from its first element
    to its final output the unit takes ``T * (F + per_step) + per_sequence`` cycles
    (:func:`~lstm_fpga.hw.attention.attention_cycles`, docs/attention.md)."""
    model, x, lengths = _model(3, 5, 4, 2, False, 0, 0)
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    unit = AttentionUnit(
        model.attention,
        model.head,
        rounding=model.rounding,
        overflow=model.overflow,
        max_steps=6,
    )
    _, _, state = _simulate(unit, [result.output[0, :steps]])
    parts = unit.cycles(steps)
    assert state["ends"] == [steps * (parts["receive"] + parts["per_step"]) + parts["per_sequence"]]
