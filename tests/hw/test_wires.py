# amaranth: UnusedElaboratable=no
"""``connect_members``: same-named members of two interfaces, checked like ``wiring.connect``."""

import pytest
from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from lstm_fpga.hw.wires import connect_members

#: A block's ports, and those of a block they go to (``narrow`` one bit too wide there).
_SOURCE = wiring.Signature({"a": Out(4), "b": Out(3), "narrow": Out(2), "back": In(1)})
_SINK = wiring.Signature({"a": In(4), "b": In(3), "narrow": In(3), "back": Out(1)})


class _Block(wiring.Component):
    def elaborate(self, platform):
        return Module()


class _Relay(wiring.Component):
    """Wires its own ports, two components and a struct view by name."""

    a: In(4)
    b: Out(3)
    back: Out(1)
    fields: Out(data.StructLayout({"a": unsigned(4), "b": unsigned(3)}))

    def elaborate(self, platform):
        m = Module()
        m.submodules.source = source = _Block(_SOURCE)
        m.submodules.sink = sink = _Block(_SINK)
        ports = wiring.flipped(self)
        connect_members(m, ports, sink, "a")
        connect_members(m, sink, ports, "back")
        m.d.comb += [source.b.eq(5), sink.back.eq(1)]
        connect_members(m, source, ports, "b")
        connect_members(m, ports, self.fields, "a")
        connect_members(m, source, self.fields, "b")
        return m


@pytest.mark.parametrize("value", [0, 9, 15])
def test_members_are_driven_by_name(value):
    dut = _Relay()

    async def bench(ctx):
        ctx.set(dut.a, value)
        assert (ctx.get(dut.b), ctx.get(dut.back)) == (5, 1)
        assert (ctx.get(dut.fields.a), ctx.get(dut.fields.b)) == (value, 5)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize(
    "source_is_sink, name, message",
    [
        (False, "back", "'back' is not an output of the source"),
        (True, "a", "'a' is not an output of the source"),
        (False, "narrow", "'narrow': the source has 2 bits, the sink 3"),
    ],
)
def test_wrong_direction_or_width_is_refused(source_is_sink, name, message):
    source, sink = _SOURCE.create(), _SINK.create()
    if source_is_sink:
        source, sink = sink, source
    with pytest.raises(TypeError, match=message):
        connect_members(Module(), source, sink, name)


def test_an_output_as_the_sink_is_refused():
    with pytest.raises(TypeError, match="'a' is not an input of the sink"):
        connect_members(Module(), _SOURCE.create(), _SOURCE.create(), "a")
