"""ElementStore: reads see every write announced before them, forwarded while the write has
not reached the memory (the scoreboards count a unit complete at its announcement)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.elements import ElementStore
from lstm_fpga.hw.jobs import Source
from lstm_fpga.testing import random_model

#: Word of the vector memory and of the state memory the unit writes (``final``).
VECTOR_WORD, STATE_WORD = 5, 7
OLD, NEW = 1234, -567
WRITE_CYCLE = 12


def _plan(lanes: int) -> EnginePlan:
    return EnginePlan(random_model(3, 4, formats="q16_even"), HardwareConfig(lanes=lanes))


def _read_after_write(plan, source, address, offset) -> int:
    """The element a read of ``address`` in ``source`` returns when issued ``offset`` cycles
    after a write of :data:`NEW` (announced :attr:`ElementStore.ANNOUNCE` cycles ahead) over
    :data:`OLD`."""
    dut = ElementStore(plan)
    read_cycle = WRITE_CYCLE + offset
    result = {}

    async def bench(ctx):
        for cycle in range(read_cycle + dut.LATENCY + 1):
            write = cycle in (0, WRITE_CYCLE)
            ctx.set(dut.hidden_write.valid, write)
            ctx.set(dut.hidden_write.payload.value, OLD if cycle == 0 else NEW)
            ctx.set(dut.hidden_write.payload.address, VECTOR_WORD)
            ctx.set(dut.hidden_write.payload.state_address, STATE_WORD)
            ctx.set(dut.hidden_write.payload.final, 1)
            ctx.set(dut.announce.valid, cycle == WRITE_CYCLE - dut.ANNOUNCE)
            ctx.set(dut.announce.payload.address, VECTOR_WORD)
            ctx.set(dut.announce.payload.state_address, STATE_WORD)
            ctx.set(dut.announce.payload.final, 1)
            for g in range(plan.groups):
                ctx.set(dut.reads[g].source, source)
                ctx.set(dut.reads[g].address, address)
                ctx.set(dut.reads[g].beyond, 0)
            if cycle == read_cycle + dut.LATENCY:
                result["element"] = [ctx.get(dut.elements[g]) for g in range(plan.groups)]
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    elements = result["element"]
    assert len(set(elements)) == 1, "every lane group reads the same word"
    return elements[0]


@pytest.mark.parametrize("lanes", [4, 64])  # one lane group; several
@pytest.mark.parametrize(
    "source, address", [(Source.VECTOR, VECTOR_WORD), (Source.STATE, STATE_WORD)]
)
@pytest.mark.parametrize("offset", range(-ElementStore.ANNOUNCE, 3))
def test_reads_after_the_announcement_see_the_write(lanes, source, address, offset):
    plan = _plan(lanes)
    got = _read_after_write(plan, source, address, offset)
    # A read issued from the cycle after the announcement on returns the new value.
    announced = offset > -ElementStore.ANNOUNCE
    assert got == (NEW if announced else OLD)


@pytest.mark.parametrize("offset", [-2, -1, 0])
def test_forwarding_matches_the_word_and_the_memory(offset):
    # The state word's address read from the vector memory is another word: not forwarded.
    plan = _plan(4)
    assert _read_after_write(plan, Source.VECTOR, STATE_WORD, offset) == 0
