"""CreditQueue against a cycle model: credits, ``available`` and the items, under random
reserves, arrivals a fixed latency later and random consumer readiness."""

from __future__ import annotations

import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_fpga.hw.queue import CreditQueue

_VALUE_BITS = 8  # items are numbered modulo 2**8 (the test's payload)


def _run(depth, burst, latency, reserve_wish, ready_pattern):
    """Drive ``reserve`` when the producer wishes and ``available`` allows it (``burst``
    items back to back after one check), push each item ``latency`` cycles later, take items
    when ``ready_pattern`` says; return (pushed, popped, available trace, model trace)."""
    dut = CreditQueue(data.StructLayout({"value": unsigned(_VALUE_BITS)}), depth, burst)
    pushed, popped, seen, expected = [], [], [], []

    async def bench(ctx):
        in_flight = []  # (cycle of arrival, value)
        credits, burst_left, value = depth, 0, 0
        for cycle, (wish, ready) in enumerate(zip(reserve_wish, ready_pattern, strict=True)):
            available = ctx.get(dut.available)
            seen.append(available)
            expected.append(int(credits >= burst))
            reserve = 0
            if burst_left or (wish and available):
                burst_left = (burst_left or burst) - 1
                reserve = 1
                in_flight.append((cycle + latency, value))
                pushed.append(value)
                value = (value + 1) % (1 << _VALUE_BITS)
            arriving = [v for c, v in in_flight if c == cycle]
            in_flight = [(c, v) for c, v in in_flight if c != cycle]
            ctx.set(dut.reserve, reserve)
            ctx.set(dut.push.valid, len(arriving) == 1)
            if arriving:
                ctx.set(dut.push.payload.value, arriving[0])
            ctx.set(dut.output.ready, ready)
            taken = ctx.get(dut.output.valid) and ready
            if taken:
                popped.append(ctx.get(dut.output.payload.value))
            credits += int(taken) - reserve
            assert 0 <= credits <= depth
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return pushed, popped, seen, expected


@settings(max_examples=40, deadline=None)
@given(
    depth=st.integers(1, 6),
    data=st.data(),
    latency=st.integers(1, 4),
)
def test_credits_and_items_follow_the_model(depth, data, latency):
    burst = data.draw(st.integers(1, depth))
    cycles = 120
    wish = data.draw(st.lists(st.booleans(), min_size=cycles, max_size=cycles))
    ready = data.draw(st.lists(st.booleans(), min_size=cycles, max_size=cycles))
    pushed, popped, seen, expected = _run(depth, burst, latency, wish, ready)
    assert seen == expected  # available is exactly "a burst of credits is left"
    assert popped == pushed[: len(popped)]  # in order, nothing lost or invented


@pytest.mark.parametrize("depth, burst", [(1, 1), (2, 1), (2, 2), (3, 1), (4, 4), (5, 2)])
def test_a_full_queue_drains_and_refills(depth, burst):
    # (depth 2: two items arrive on consecutive cycles into an empty queue, which a
    # SyncFIFOBuffered of depth 2 would drop; hw/queue.py sizes it 3)
    cycles = 60
    wish = [True] * cycles
    ready = [False] * 20 + [True] * 40  # fill, stall, then drain
    pushed, popped, seen, expected = _run(depth, burst, 3, wish, ready)
    assert seen == expected
    assert 0 in seen[:20]  # the credits ran out while nothing left
    assert popped == pushed[: len(popped)] and len(popped) > depth
