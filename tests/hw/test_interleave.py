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


def test_bidirectional_is_refused_external_weights_are_not():
    model = random_model(3, 4, bidirectional=True)
    config = HardwareConfig(lanes=8, interleave=2, max_seq_len=4)
    with pytest.raises(HardwareConfigError, match="unidirectional models only"):
        EnginePlan(model, config)
    # External weights: weight reuse on any lane count, matrices of several passes too.
    model = random_model(3, 4, head=17)  # 16 gate rows, 20 head rows
    for lanes in (15, 16, 64):
        plan = EnginePlan(model, HardwareConfig(lanes=lanes, interleave=2, weights="external"))
        assert plan.weight_reuse


@pytest.mark.parametrize("B", [2, 3])
@pytest.mark.parametrize("lanes", [17, 5])
def test_external_weights_are_shared_by_the_group(B, lanes):
    """Weight reuse: one pass per matrix on ``P >= 4H`` lanes, or several (5 lanes for 16
    rows); the weight bytes per sequence-step are ``1/B`` of ``B = 1``'s; the walk model's
    bound per sequence-step is at least the lane bound."""
    from lstm_fpga.hw.limits import design_limits

    model = random_model(3, 4, num_layers=2, head=3)
    plans = {
        b: EnginePlan(model, HardwareConfig(lanes=lanes, interleave=b, weights="external"))
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


@pytest.mark.parametrize(("B", "expected"), [(1, 38), (2, 21), (4, 21)])
def test_interleave_reaches_the_lane_bound_of_lstm_5_16_p64(B, expected):
    """LSTM(5,16) at P=64: the recurrence bound per sequence-step (lane bound 21)."""
    interface = _interface(B, 64)
    assert interface.step_bound == 21
    assert interface.recurrence_step_bound == expected


async def _drive_x(ctx, dut, lasts, sample):
    """Drive ``dut.x`` one beat per entry of ``lasts`` (its ``last`` flag), each held until
    ``ready``; the value of ``sample`` at each beat's handshake, in order. ``valid`` is low
    after the last beat."""
    seen = []
    for last in lasts:
        ctx.set(dut.x.valid, 1)
        ctx.set(dut.x.payload.last, last)
        while not ctx.get(dut.x.ready):
            await ctx.tick()
        seen.append(ctx.get(sample))
        await ctx.tick()
    ctx.set(dut.x.valid, 0)
    return seen


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
        ctx.set(dut.may_start_next, 1)
        pulses.extend(await _drive_x(ctx, dut, lasts, dut.mismatch))

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
        seen.extend(await _drive_x(ctx, dut, lasts, dut.overflow))
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


@pytest.mark.parametrize(
    "B, lanes, elements, lengths, shape",
    [
        (2, 11, 2, [3, 3, 2, 2], (5, 2, 2, 3)),
        (4, 9, 1, [2, 2, 2, 2], (5, 2, 2, 3)),
        (3, 10, 2, [2, 2, 2], (5, 2, 2, 3)),
        # several passes per matrix (4H = 16 rows): odd lane counts (units straddle two
        # passes, each drain bank carries its rows), 6 not dividing 16, a head of 3 passes
        (2, 5, 1, [3, 3, 2, 2], (3, 4, 2, 9)),
        (3, 7, 2, [2, 2, 2, 3, 3, 3], (5, 4, 1, 5)),
        (2, 6, 1, [2, 2, 3, 3], (4, 4, 1, None, "last")),
        (3, 8, 1, [2, 2, 2], (3, 4, 2, None)),
        (4, 5, 1, [2, 2, 2, 2], (3, 4, 1, 6)),
        (3, 2, 1, [1, 1, 1], (2, 2, 1, None)),  # 2 lanes: a pass of 2 rows holds no unit
        # column groups (P >= 8H: 2 groups of 8 lanes) and a head of 2 passes
        (2, 16, 1, [2, 2], (3, 2, 1, 9)),
    ],
)
def test_weight_reuse_engine_is_bit_exact(B, lanes, elements, lengths, shape):
    """The engine with weight reuse in the Amaranth simulator (fast; the cocotb tests run
    the Verilog against cocotbext-axi): two layers and a head, packed input beats, ``B`` up
    to 4, groups of different lengths, a behavioural AXI4 memory with random gaps and random
    ``x``/``y`` pacing; every ``y`` (in the wire's order ``TopInterface.y_order``: chunk by
    chunk with several passes) and every final state (``read_state``,
    ``TopInterface.state_order``) equal to the reference of its sequence (``carry_state``:
    continuing sequence ``b`` of the previous group), one weight
    word per column and group step; several passes per matrix with odd lane counts."""
    from amaranth.sim import Simulator

    from lstm_fpga.hw.engine import LstmEngine
    from lstm_fpga.hw.external import AxiReadParams, weight_image
    from lstm_fpga.sw.reference import run_reference
    from lstm_fpga.testing import padded, random_sequences

    I, H, L, head, *output = shape
    output = output[0] if output else "all"
    model = random_model(I, H, num_layers=L, head=head, seed=B)
    params = AxiReadParams(data_width=64, burst=4, latency=8)
    config = HardwareConfig(
        lanes=lanes,
        weights="external",
        axi=params,
        interleave=B,
        input_elements=elements,
        output=output,
    )
    plan = EnginePlan(model, config)
    interface = TopInterface(plan)
    dut = LstmEngine(plan)
    image = weight_image(plan, data_width=params.data_width)
    sequences = random_sequences(model, lengths, rng=B)
    x = np.array([int(v) for s in sequences for v in interface.pack_x(s)], dtype=object)
    last = np.asarray(interface.x_last(lengths), dtype=bool)
    order = interface.x_order(lengths)
    rng = np.random.default_rng(B)
    got, beats_read, states = [], [], []

    async def memory(ctx):  # in-order bursts, a random gap before each beat
        pending = []
        ctx.set(dut.m_axi_arready, 1)
        async for _, _, av, address, length, rv, ready in ctx.tick().sample(
            dut.m_axi_arvalid,
            dut.m_axi_araddr,
            dut.m_axi_arlen,
            dut.m_axi_rvalid,
            dut.m_axi_rready,
        ):
            if av:
                pending += [(address + n * 8, n == length) for n in range(length + 1)]
            if rv and ready:
                beats_read.append(pending.pop(0))
            if pending and rng.random() < 0.8:
                offset = pending[0][0] - params.base
                word = int.from_bytes(image.data[offset : offset + 8].ljust(8, b"\0"), "little")
                ctx.set(dut.m_axi_rvalid, 1)
                ctx.set(dut.m_axi_rdata, word)
                ctx.set(dut.m_axi_rlast, int(pending[0][1]))
            else:
                ctx.set(dut.m_axi_rvalid, 0)

    first_group = B * lengths[0] * interface.x_beats_per_step

    async def source(ctx):  # every group after the first continues from the previous one's
        ctx.set(dut.read_state, 1)
        for k, (value, end) in enumerate(zip(x[order], last[order], strict=True)):
            ctx.set(dut.carry_state, int(k >= first_group))
            while rng.random() < 0.2:
                ctx.set(dut.x.valid, 0)
                await ctx.tick()
            ctx.set(dut.x.valid, 1)
            data = dut.x.payload.data
            ctx.set(data.as_value() if elements > 1 else data, int(value))
            ctx.set(dut.x.payload.last, int(end))
            await ctx.tick().until(dut.x.ready)
        ctx.set(dut.x.valid, 0)

    async def sink(ctx):
        async for _, _, valid, ready, data in ctx.tick().sample(
            dut.y.valid, dut.y.ready, dut.y.payload.data
        ):
            if valid and ready:
                got.append(data)
            ctx.set(dut.y.ready, int(rng.random() < 0.8))

    async def state_sink(ctx):
        async for _, _, valid, ready, h, c in ctx.tick().sample(
            dut.state.valid, dut.state.ready, dut.state.payload.h, dut.state.payload.c
        ):
            if valid and ready:
                states.append((h, c))
            ctx.set(dut.state.ready, int(rng.random() < 0.7))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(memory)
    sim.add_testbench(source)
    sim.add_process(sink)
    sim.add_process(state_sink)
    sim.run_until(1e-8 * 200 * plan.step_bound() * sum(lengths))
    outs, finals, h0, c0 = [], [], None, None
    for g in range(0, len(lengths), B):  # sequence b of a group from b of the previous one
        n, group = lengths[g], slice(g, g + B)
        ref = run_reference(
            model, padded(sequences[group]), h0, c0, lengths=lengths[group], head_on="all"
        )
        out = ref.output if head is None else ref.head
        for b in range(B):
            outs.append(out[n - 1 : n, b] if output == "last" else out[:n, b])
            finals.append((ref.h_n[:, b].reshape(-1), ref.c_n[:, b].reshape(-1)))
        h0, c0 = ref.h_n, ref.c_n
    expected = np.concatenate([o.reshape(-1) for o in outs])
    y = np.zeros(expected.size, dtype=np.int64)
    assert len(got) == expected.size
    y[interface.y_order(lengths)] = got
    np.testing.assert_array_equal(y, expected)
    # Final states, a group at a time in the wire's order.
    LDH = interface.state_beats
    assert len(states) == len(lengths) * LDH
    for g in range(0, len(lengths), B):
        wire = np.array(states[g * LDH : (g + B) * LDH], dtype=np.int64)
        values = np.zeros_like(wire)
        values[interface.state_order()] = wire
        for b in range(B):
            h_n, c_n = finals[g + b]
            np.testing.assert_array_equal(values[b * LDH : (b + 1) * LDH, 0], h_n)
            np.testing.assert_array_equal(values[b * LDH : (b + 1) * LDH, 1], c_n)
    # One weight word per column and group step: whole image sweeps, one per group step,
    # plus at most the prefetch (the FIFO, the word being assembled and the word held).
    group_steps = sum(lengths) // B
    word_beats = -(-image.word_bits // params.data_width)
    assert group_steps * image.beats <= len(beats_read)
    assert len(beats_read) <= group_steps * image.beats + params.fifo_beats + 2 * word_beats


def test_weight_reuse_orders_y_and_state_chunk_by_chunk():
    """With several passes per matrix a group step's ``y`` and the ``state`` read-out come
    chunk by chunk (the units each pass completes), sequences ``0 .. B-1`` per chunk; one
    pass: whole vectors, the on-chip order."""

    def interface(lanes, *shape):
        config = HardwareConfig(lanes=lanes, interleave=2, weights="external")
        return TopInterface(EnginePlan(random_model(*shape), config))

    doc = interface(24, 5, 16)  # docs/interleave.md's example: 64 rows in 3 passes
    assert doc.plan.lstm_matrices[0].pass_units == ((0, 6), (6, 12), (12, 16))
    assert doc.y_chunks() == ((0, 6), (6, 12), (12, 16))
    wire = doc.y_order([1, 1])  # sequence b's h[u] at b * 16 + u
    expected = [*range(6), *range(16, 22), *range(6, 12), *range(22, 28), *range(12, 16)]
    assert wire.tolist() == [*expected, *range(28, 32)]
    straddling = EnginePlan(random_model(3, 2), HardwareConfig(lanes=2, weights="external"))
    assert straddling.lstm_matrices[0].pass_units == ((0, 0), (0, 1), (1, 1), (1, 2))
    head = TopInterface(
        EnginePlan(
            random_model(3, 4, num_layers=2, head=9),
            HardwareConfig(lanes=5, interleave=3, weights="external"),
        )
    )
    # 12 head rows on 5 lanes: units 0 | 1 | 2 (outputs 0-3 | 4-7 | 8)
    assert head.y_chunks() == ((0, 4), (4, 8), (8, 9))
    order = head.state_order()  # 2 layers x (4 chunks of 1 unit) x 3 sequences
    LDH = 8
    assert order.tolist() == [
        b * LDH + k * 4 + u for k in range(2) for u in range(4) for b in range(3)
    ]
    one_pass = interface(16, 5, 4)
    assert one_pass.y_chunks() == ((0, 4),)
    assert one_pass.state_order().tolist() == list(range(8))
    on_chip = TopInterface(EnginePlan(random_model(5, 4), HardwareConfig(lanes=5, interleave=2)))
    assert on_chip.y_chunks() == ((0, 4),)
    assert on_chip.y_order([2, 2]).tolist() == [
        *range(4),
        *range(8, 12),
        *range(4, 8),
        *range(12, 16),
    ]
