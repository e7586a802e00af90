"""The whole nn.LSTM engine against ``run_reference``: layers, directions, head, states,
output modes, variable lengths, sequence overflow and run-time weight reload."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import (
    EnginePlan,
    HardwareConfig,
    HardwareConfigError,
    LstmEngine,
    TopInterface,
    weight_load_words,
)
from lstm_fpga.hw.banks import bank_packing
from lstm_fpga.testing import random_input, random_model, random_state
from tests.hw.engine_driver import (
    InitLoad,
    Sequence,
    WeightLoad,
    expected_results,
    run_engine,
)


def _check(model, config, operations, result):
    expected = expected_results(model, config, operations)
    assert len(result["y"]) == len(expected.y)
    for k, (got, want) in enumerate(zip(result["y"], expected.y, strict=True)):
        mismatch = np.flatnonzero(got != want) if got.shape == want.shape else [-1]
        assert len(mismatch) == 0, (
            f"sequence {k}: y differs at element {mismatch[0]} of {want.size}\n"
            f"hardware  {got.tolist()}\nreference {want.tolist()}"
        )
    assert len(result["states"]) == len(expected.states)
    for k, ((h, c), (h_ref, c_ref)) in enumerate(
        zip(result["states"], expected.states, strict=True)
    ):
        np.testing.assert_array_equal(h, h_ref, err_msg=f"h_n of state packet {k}")
        np.testing.assert_array_equal(c, c_ref, err_msg=f"c_n of state packet {k}")
    s = expected.saturations
    assert result["saturations"] == {
        "preact": s.preact,
        "cell": s.cell,
        "hidden": s.hidden,
        "head": s.head,
        "attention": s.attention,
    }
    assert result["overflow"] == int(expected.overflows > 0)
    assert result["busy"] == 0
    return expected


# (layers, bidirectional, bias, head outputs, output mode, lanes, input elements)
MODELS = [
    (1, False, True, None, "all", 3, 1),  # the one-layer engine of before
    (2, False, False, 3, "last", 1, 1),  # stacked forecaster/classifier, one lane
    (3, False, True, 2, "all", 7, 1),  # head on every step; P divides neither 4H nor I+H
    (2, False, True, None, "last", 100, 1),  # two column groups
    (1, True, True, None, "last", 5, 1),
    (2, True, True, 4, "all", 4, 2),  # two input elements per beat
    (3, True, False, None, "all", 12, 1),
    (2, True, True, 3, "last", 100, 1),  # two column groups, bidirectional
]


def _model_id(params):
    layers, bidirectional, bias, head, output, lanes, elements = params
    return (
        f"L{layers}{'bi' if bidirectional else 'uni'}{'' if bias else '-nobias'}"
        f"-{'head' + str(head) if head else 'nohead'}-{output}-P{lanes}"
        + (f"-k{elements}" if elements > 1 else "")
    )


@pytest.mark.parametrize("params", MODELS, ids=[_model_id(p) for p in MODELS])
def test_random_models_with_states_and_variable_lengths(params):
    """Odd sizes (I=5, H=11), formats differing per layer, sequences of different lengths
    back to back in both state modes, an h0/c0 load, final states read back."""
    layers, bidirectional, bias, head, output, lanes, elements = params
    seed = layers * 10 + lanes
    model = random_model(
        5,
        11,
        layers,
        bidirectional,
        bias,
        head,
        formats=("q16", "tight", "q12"),
        head_formats="tight",
        seed=seed,
        scale=2.5,
    )
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=5, input_elements=elements)
    rng = np.random.default_rng(seed)
    h0, c0 = random_state(model, rng)

    def seq(steps, carry, read):
        return Sequence(random_input(model, steps, rng), carry, read)

    operations = [
        seq(4, True, True),  # carry right after reset: starts from zeros (h0, c0 = 0)
        seq(1, True, False),
        seq(3, False, True),
        InitLoad(h0, c0),
        seq(5, False, True),
        seq(2, True, True),
    ]
    result = run_engine(model, config, operations, seed=seed)
    _check(model, config, operations, result)


@pytest.mark.slow
@pytest.mark.parametrize(
    "layers, bidirectional, head, output, lanes",
    [(3, False, 3, "all", 7), (2, True, 4, "last", 9), (2, True, None, "all", 44)],
)
def test_longer_sequences(layers, bidirectional, head, output, lanes):
    model = random_model(
        5, 11, layers, bidirectional, True, head, formats=("tight", "q16"), seed=lanes, scale=2.0
    )
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=14)
    rng = np.random.default_rng(lanes)
    operations = [
        Sequence(random_input(model, steps, rng), carry, read)
        for steps, carry, read in ((14, False, True), (9, True, True), (13, True, False))
    ]
    result = run_engine(model, config, operations, seed=lanes, idle=0.5, stall=0.5)
    _check(model, config, operations, result)


def test_top_layer_output_leaves_while_input_streams():
    """Unidirectional stacks pipeline per step: h_t of the top layer leaves before the input
    of later steps has even arrived (the input is paced slower than the engine)."""
    model = random_model(5, 3, 3, seed=4, scale=2.0)
    config = HardwareConfig(lanes=8)
    rng = np.random.default_rng(4)
    operations = [Sequence(random_input(model, 12, rng))]
    result = run_engine(model, config, operations, seed=4, idle=0.9, stall=0.0)
    _check(model, config, operations, result)
    first_step_done = result["y_cycles"][model.hidden_size - 1]
    assert first_step_done < result["x_cycles"][-5 * model.input_size]


@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_outputs_stream_while_the_next_sequence_computes(layers):
    """Without a head, a bidirectional model's outputs leave from a sequence buffer while the
    next sequence already computes; a slow consumer makes the next sequence wait for the
    buffer, never overwrite it."""
    model = random_model(
        3, 4, layers, bidirectional=True, formats=("q16", "tight"), seed=9, scale=2.0
    )
    config = HardwareConfig(lanes=16, output="all", max_seq_len=6)
    rng = np.random.default_rng(9)
    operations = [Sequence(random_input(model, n, rng)) for n in (6, 2, 5, 1, 6)]
    result = run_engine(model, config, operations, seed=9, idle=0.0, stall=0.8)
    _check(model, config, operations, result)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_weight_reload_between_sequences(bidirectional):
    """Words loaded through weight_write replace every weight and bias: later sequences
    equal the reference of the new model; the state carried across the reload too."""
    args = dict(bidirectional=bidirectional, head=2, formats=("q16", "tight"), head_formats="tight")
    first = random_model(5, 4, 2, seed=1, scale=3.0, **args)
    second = random_model(5, 4, 2, seed=2, scale=3.0, **args)
    config = HardwareConfig(lanes=3, output="all", max_seq_len=4)
    rng = np.random.default_rng(7)
    operations = [
        Sequence(random_input(first, 4, rng), read_state=True),
        WeightLoad(second),
        Sequence(random_input(first, 3, rng), carry=True, read_state=True),
        Sequence(random_input(first, 2, rng)),
        WeightLoad(first),
        Sequence(random_input(first, 4, rng), carry=True),
    ]
    result = run_engine(first, config, operations, seed=7)
    _check(first, config, operations, result)


def test_too_long_sequence_sets_overflow_and_leaves_state_clean():
    """A sequence over max_seq_len is dropped (no output), sets the sticky overflow flag and
    changes no state: the next sequence, carrying state, continues from the one before."""
    model = random_model(5, 3, 2, bidirectional=True, head=2, seed=5, scale=2.0)
    config = HardwareConfig(lanes=4, output="last", max_seq_len=4)
    rng = np.random.default_rng(5)
    operations = [
        Sequence(random_input(model, 4, rng), read_state=True),
        Sequence(random_input(model, 5, rng), read_state=True),  # too long
        Sequence(random_input(model, 9, rng), carry=True),  # far too long
        Sequence(random_input(model, 2, rng), carry=True, read_state=True),
    ]
    result = run_engine(model, config, operations, seed=5)
    expected = _check(model, config, operations, result)
    assert expected.overflows == 2 and result["overflow"] == 1


def test_clear_status_resets_counters_and_overflow():
    from amaranth.sim import Simulator

    model = random_model(2, 2, 1, bidirectional=True, seed=3, scale=6.0)
    dut = LstmEngine(EnginePlan(model, HardwareConfig(lanes=2, max_seq_len=1)))
    x = random_input(model, 2, np.random.default_rng(3))
    seen = {}

    async def bench(ctx):
        for t in range(2):
            for j in range(2):
                ctx.set(dut.x.payload, {"data": int(x[t, j]), "last": int(t == 1 and j == 1)})
                ctx.set(dut.x.valid, 1)
                await ctx.tick().until(dut.x.ready)
        ctx.set(dut.x.valid, 0)
        await ctx.tick()
        seen["overflow"] = ctx.get(dut.overflow)
        ctx.set(dut.clear_status, 1)
        await ctx.tick()
        ctx.set(dut.clear_status, 0)
        await ctx.tick()
        seen["cleared"] = ctx.get(dut.overflow)
        seen["busy"] = ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"overflow": 1, "cleared": 0, "busy": 0}


def test_plan_bounds_and_refusals():
    model = random_model(5, 11, 3, bidirectional=True, head=3, scale=2.0)
    plan = EnginePlan(model, HardwareConfig(lanes=7, max_seq_len=8, output="last"))
    H = 11
    per_step = -(-4 * H * (5 + H) // 7) * 2 + -(-4 * H * (2 * H + H) // 7) * 4
    assert plan.step_bound() == per_step
    assert plan.sequence_bound(6) == 6 * per_step + -(-3 * 2 * H // 7)
    assert [m.name for m in plan.matrices] == [
        "l0",
        "l0_reverse",
        "l1",
        "l1_reverse",
        "l2",
        "l2_reverse",
        "head",
    ]
    with pytest.raises(HardwareConfigError, match="max_seq_len"):
        EnginePlan(model, HardwareConfig(lanes=7))
    other = random_model(5, 11, 3, bidirectional=True, head=3, formats=("q12",), scale=2.0)
    with pytest.raises(HardwareConfigError, match="formats differ"):
        plan.bank_images(other)


def test_weight_words_cover_every_bank_word_and_pack_into_w_tdata():
    model = random_model(5, 3, 2, bidirectional=True, head=2, seed=8, scale=2.0)
    plan = EnginePlan(model, HardwareConfig(lanes=5, max_seq_len=4))
    words = weight_load_words(plan, model)
    images = plan.images
    # Every stored word of the packed weight memories (a lane's words past its group's depth
    # are structural zeros without storage), every bias word.
    packing = bank_packing(plan)
    stored = sum(packing.group_of(lane).depth for lane in range(images.lanes))
    assert stored < images.lanes * plan.bank_depth  # the head's row lives in lane 0 only
    assert len(words) == stored + images.lanes * plan.bias_depth
    interface = TopInterface(plan)
    fields = interface.weight_word_fields
    address_bits = max(1, (max(plan.bank_depth, plan.bias_depth) - 1).bit_length())
    data_bits = max(images.weight_width, images.bias_width)
    assert fields["target"] == (0, 1)
    assert fields["lane"] == (1, max(1, (images.lanes - 1).bit_length()))
    assert fields["address"][1] == address_bits and fields["data"][1] == data_bits
    assert sum(width for _, width in fields.values()) == 1 + 3 + address_bits + data_bits
    for word in words[:: max(1, len(words) // 200)]:
        bank = images.weights if word.target == 0 else images.biases
        assert bank[word.lane, word.address] == word.value
        packed = interface.pack_weight_word(word)
        unpacked = {
            name: (packed >> offset) & ((1 << width) - 1)
            for name, (offset, width) in fields.items()
        }
        assert unpacked == word.payload(plan)


@pytest.mark.parametrize("head, output, lanes", [(6, "all", 5), (9, "last", 8), (4, "all", 3)])
def test_head_final_row_in_a_later_unit_or_row(head, output, lanes):
    """``HeadOutput``'s registered ``y.last`` on heads whose final row is in unit 1 or 2 (6, 9
    rows) or row 3 (4 rows), under back-pressure: every sequence ends where it should."""
    model = random_model(4, 5, 1, False, True, head, seed=head)
    config = HardwareConfig(lanes=lanes, output=output)
    rng = np.random.default_rng(head)
    operations = [Sequence(random_input(model, n, rng), False, True) for n in (3, 1, 4)]
    result = run_engine(model, config, operations, seed=head, idle=0.4, stall=0.5)
    _check(model, config, operations, result)
