"""The interleave contract without simulation: configuration checks, the wire order of the
streams (``TopInterface.group_order``), ``init`` values per sequence and the bounds per
sequence-step."""

import numpy as np
import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError, TopInterface
from lstm_fpga.testing import random_model


def _interface(B, lanes=16, *shape, **options):
    model = random_model(*(shape or (5, 16)), **options)
    return TopInterface(EnginePlan(model, HardwareConfig(lanes=lanes, interleave=B)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_interleave_must_be_a_positive_int(bad):
    with pytest.raises(HardwareConfigError, match="interleave must be a positive int"):
        HardwareConfig(interleave=bad)


def test_bidirectional_and_external_are_refused():
    model = random_model(3, 4, bidirectional=True)
    config = HardwareConfig(lanes=8, interleave=2, max_seq_len=4)
    with pytest.raises(HardwareConfigError, match="unidirectional models only"):
        EnginePlan(model, config)
    model = random_model(3, 4)
    config = HardwareConfig(lanes=15, interleave=2, weights="external")
    with pytest.raises(HardwareConfigError, match="--lanes at least 4 x hidden size = 16"):
        EnginePlan(model, config)
    head = random_model(3, 4, head=17)  # 20 head rows: two passes on 16 lanes
    config = HardwareConfig(lanes=64, interleave=2, weights="external")
    with pytest.raises(HardwareConfigError, match="a head of at most 16 outputs"):
        EnginePlan(head, config)


@pytest.mark.parametrize("B", [2, 3])
def test_external_weights_are_shared_by_the_group(B):
    """Weight reuse: one pass per matrix on ``P >= 4H`` lanes; the weight bytes per
    sequence-step are ``1/B`` of ``B = 1``'s; the walk model's bound per sequence-step is at
    least the lane bound."""
    from lstm_fpga.hw.limits import design_limits

    model = random_model(3, 4, num_layers=2, head=3)
    plans = {
        b: EnginePlan(model, HardwareConfig(lanes=17, interleave=b, weights="external"))
        for b in (1, B)
    }
    assert plans[B].weight_reuse and not plans[1].weight_reuse
    assert plans[B].x_slot_beats == B * plans[B].x_beats_per_step
    limits = {b: design_limits(plan) for b, plan in plans.items()}
    assert limits[B].bytes_per_step * B == limits[1].bytes_per_step
    assert limits[B].cycles_per_step >= plans[B].step_bound() + limits[B].head.lane_bound


@pytest.mark.parametrize("B", [1, 2, 3])
@pytest.mark.parametrize("per_step", [1, 3])
def test_group_order_interleaves_steps(B, per_step):
    interface = _interface(B, 5, 3, 4)
    lengths = [2] * B + [3] * B
    order = interface.group_order(lengths, per_step)
    starts = np.r_[0, np.cumsum(np.array(lengths) * per_step)[:-1]]
    expected = [
        starts[g + b] + t * per_step + e
        for g in range(0, len(lengths), B)
        for t in range(lengths[g])
        for b in range(B)
        for e in range(per_step)
    ]
    assert order.tolist() == expected
    assert sorted(order.tolist()) == list(range(sum(lengths) * per_step))


def test_groups_need_equal_lengths_and_whole_groups():
    interface = _interface(3, 5, 3, 4)
    with pytest.raises(ValueError, match="multiple of 3 sequences"):
        interface.check_groups([2, 2])
    with pytest.raises(ValueError, match="equal length"):
        interface.check_groups([2, 2, 3])


def test_init_values_per_sequence():
    B, L, H = 3, 2, 4
    interface = _interface(B, 5, 3, H, num_layers=L)
    h0 = np.arange(L * B * H).reshape(L, B, H)
    c0 = -h0
    values = interface.init_values(h0, c0)
    words = L * H
    for b in range(B):
        assert values[b * words : (b + 1) * words].tolist() == h0[:, b].reshape(-1).tolist()
        c = values[(B + b) * words : (B + b + 1) * words]
        assert c.tolist() == c0[:, b].reshape(-1).tolist()
    shared = interface.init_values(h0[:, 0], c0[:, 0])
    assert shared.size == 2 * B * words


@pytest.mark.parametrize(("B", "expected"), [(1, 36), (2, 21), (4, 21)])
def test_interleave_reaches_the_lane_bound_of_lstm_5_16_p64(B, expected):
    """LSTM(5,16) at P=64: the recurrence bound per sequence-step (lane bound 21)."""
    interface = _interface(B, 64)
    assert interface.step_bound == 21
    assert interface.recurrence_step_bound == expected


@pytest.mark.parametrize("B", [2, 3])
def test_weight_reuse_flags_a_group_whose_tlast_disagree(B):
    """Weight reuse: a sequence whose step ends with another ``tlast`` than the group's
    first sequence's pulses ``mismatch`` (the sequencer's sticky ``overflow``); a group of
    equal lengths never does."""
    from amaranth.sim import Simulator

    from lstm_fpga.hw.streaming import StreamingSchedule

    model = random_model(3, 2)
    plan = EnginePlan(model, HardwareConfig(lanes=9, interleave=B, weights="external"))
    dut = StreamingSchedule(plan)
    beats = plan.x_beats_per_step
    # Two group steps: the first ends no sequence; in the second only sequence 0 ends
    # (a mismatch at each other sequence's last beat).
    lasts = [0] * (B * beats) + [
        int(b == 0 and e == beats - 1) for b in range(B) for e in range(beats)
    ]
    pulses = []

    async def bench(ctx):
        ctx.set(dut.may_start, 1)
        for last in lasts:
            ctx.set(dut.x.valid, 1)
            ctx.set(dut.x.payload.last, last)
            while not ctx.get(dut.x.ready):
                await ctx.tick()
            pulses.append(ctx.get(dut.mismatch))
            await ctx.tick()
        ctx.set(dut.x.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    expected = [0] * (B * beats) + [
        int(b != 0 and e == beats - 1) for b in range(B) for e in range(beats)
    ]
    assert pulses == expected


def test_weight_reuse_mismatch_sets_the_sticky_overflow():
    """The sequencer turns the schedule's ``mismatch`` into ``overflow``, held until
    ``clear_status``."""
    from amaranth.sim import Simulator

    from lstm_fpga.hw.sequencer import Sequencer

    model = random_model(3, 2)
    plan = EnginePlan(model, HardwareConfig(lanes=9, interleave=2, weights="external"))
    dut = Sequencer(plan)
    beats = plan.x_beats_per_step
    lasts = [int(b == 0 and e == beats - 1) for b in range(2) for e in range(beats)]
    seen = []

    async def bench(ctx):
        for last in lasts:
            ctx.set(dut.x.valid, 1)
            ctx.set(dut.x.payload.last, last)
            while not ctx.get(dut.x.ready):
                await ctx.tick()
            seen.append(ctx.get(dut.overflow))
            await ctx.tick()
        ctx.set(dut.x.valid, 0)
        await ctx.tick().repeat(3)
        seen.append(ctx.get(dut.overflow))
        ctx.set(dut.clear_status, 1)
        await ctx.tick()
        ctx.set(dut.clear_status, 0)
        await ctx.tick()
        seen.append(ctx.get(dut.overflow))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0] * len(lasts) + [1, 0]
