"""Sigmoid/tanh unit: the hardware form of :class:`~lstm_fpga.sw.numerics.ActivationTable`."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.numerics import ActivationTable
from .fixed import format_shape, shift_round_value

__all__ = ["ActivationUnit"]


class ActivationUnit(wiring.Component):
    """Table lookup with linear interpolation, bit-exact to ``ActivationTable.evaluate``.

    The table ROM stores ``(values[k], values[k+1] - values[k])`` per entry, so one read gives
    both interpolation end points. The last entry's difference is 0, which equals the
    reference's clamped ``values[min(k + 1, last)]``.

    Ports
    -----
    input : In, ``table.input`` format
        The pre-activation; a new value every cycle.
    output : Out, ``table.output`` format
        ``table.evaluate(input)`` exactly, :attr:`LATENCY` cycles after ``input``.

    Latency 2 cycles (ROM read, then interpolation register); throughput 1 per cycle; no
    handshake (the enclosing pipeline carries its own valid bits).
    """

    LATENCY = 2

    def __init__(self, table: ActivationTable):
        self._table = table
        super().__init__(
            {"input": In(format_shape(table.input)), "output": Out(format_shape(table.output))}
        )

    @property
    def table(self) -> ActivationTable:
        return self._table

    def elaborate(self, platform):
        m = Module()
        t = self._table
        entry = data.StructLayout({"value": format_shape(t.output), "delta": signed(t.delta_width)})
        values = list(t.values)
        init = [
            {"value": v, "delta": values[min(k + 1, len(values) - 1)] - v}
            for k, v in enumerate(values)
        ]
        m.submodules.rom = rom = Memory(shape=entry, depth=len(values), init=init)
        read = rom.read_port()

        span = t.high - t.low
        offset = Signal(unsigned(max(1, span.bit_length())))
        clamped = self.input
        m.d.comb += offset.eq(
            (Mux(clamped > t.high, t.high, Mux(clamped < t.low, t.low, clamped)) - t.low)[
                : len(offset)
            ]
        )
        shift = t.segment_shift
        m.d.comb += read.addr.eq(offset >> shift)
        if shift == 0:
            # No interpolation: the register keeps the latency equal to the general case.
            m.d.sync += self.output.eq(read.data.value)
            return m
        weight = Signal(unsigned(shift))
        m.d.sync += weight.eq(offset[:shift])
        step = shift_round_value(read.data.delta * weight, shift, t.rounding)
        m.d.sync += self.output.eq(read.data.value + step)
        return m
