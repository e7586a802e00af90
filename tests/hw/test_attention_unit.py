"""AttentionUnit in the Amaranth simulator: the head's outputs and every saturation pulse equal
the integer reference (``run_reference``) bit for bit, fed the reference's LSTM outputs and
the score pre-activations ``u_t`` the lanes' score job hands it (computed here as that job
does: the score matrix as a Linear head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amaranth.sim import Simulator

from lstm_fpga.hw.attention import ATTENTION_SATURATION_KINDS, AttentionUnit
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from lstm_fpga.sw.numerics import Overflow, Rounding
from lstm_fpga.sw.reference import head_forward, quantize_input, run_reference


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


def _scores(model, sequences):
    """The lanes' score job on each sequence: ``u_t = rescale(W h_t + b, preact)`` (the
    score matrix as a head, :meth:`AttentionPooling.score_head`) and its clamps."""
    score = model.attention.score_head()
    hd = score.datapath(model.rounding, model.overflow)
    counts = {"head": 0}
    u = [head_forward(hd, score.weight, score.bias, seq, counts) for seq in sequences]
    return u, counts["head"]


async def _offer(ctx, port, value, last):
    ctx.set(port.payload.data, int(value))
    ctx.set(port.payload.last, int(last))
    ctx.set(port.valid, 1)
    while not ctx.get(port.ready):
        await ctx.tick()
    await ctx.tick()
    ctx.set(port.valid, 0)


def _simulate(unit, sequences, scores, y_ready_every=1):
    """``sequences``: lists of (steps, F) integer arrays, ``scores`` their (steps, A) ``u_t``
    (each step's after its ``h_t``). Returns the ``y`` values per
    sequence, the saturation pulses per kind, the overflow pulses and the cycles."""
    outputs, pulses, state, ends = [], dict.fromkeys(ATTENTION_SATURATION_KINDS, 0), {}, []

    async def feed(ctx):
        for b, seq in enumerate(sequences):
            for t, h_t in enumerate(seq):
                for k, value in enumerate(h_t):
                    await _offer(ctx, unit.h, value, t == len(seq) - 1 and k == len(h_t) - 1)
                for a, value in enumerate(scores[b][t]):
                    await _offer(ctx, unit.u, value, a == len(scores[b][t]) - 1)

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
    expected = dict(result.attention.saturations, head=result.saturations.head)
    # (the preact clamps: the score job's output stage's, as the reference counts them)
    scores, preact_clamps = _scores(model, sequences)
    assert preact_clamps == expected.pop("preact")
    outputs, pulses, state = _simulate(unit, sequences, scores, y_ready_every)
    np.testing.assert_array_equal(np.array(outputs), result.head)
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
    clamps (wraps) happen, and each pulse count equals the reference's (the preact clamps
    are the score job's, computed as its output stage does)."""
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
        result, pulses = _check(model, x, lengths, y_ready_every=3)
        assert result.attention.saturations["preact"] and pulses["context"] and pulses["head"]


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
    # (the steps past max_steps too: their u_t are taken and dropped with their h_t)
    outputs, _, state = _simulate(unit, sequences, _scores(model, sequences)[0])
    assert state["overflows"] == int((~keep).sum())
    np.testing.assert_array_equal(np.array(outputs), result.head[keep])


@pytest.mark.parametrize("steps", [1, 4])
def test_unit_cycles_are_attention_cycles(steps):
    """One sequence, ``h`` (and ``u``) offered every cycle and ``y`` always ready: from its
    first element to its final output the unit takes ``T * (F + per_step) + per_sequence``
    cycles (:func:`~lstm_fpga.hw.attention.attention_cycles`, docs/attention.md)."""
    model, x, lengths = _model(3, 5, 4, 2, False, 0, 0)
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    unit = AttentionUnit(
        model.attention,
        model.head,
        rounding=model.rounding,
        overflow=model.overflow,
        max_steps=6,
    )
    sequences = [result.output[0, :steps]]
    _, _, state = _simulate(unit, sequences, _scores(model, sequences)[0])
    parts = unit.cycles(steps)
    assert state["ends"] == [steps * (parts["receive"] + parts["per_step"]) + parts["per_sequence"]]
