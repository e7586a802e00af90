"""Sigmoid/tanh unit: the hardware form of :class:`~lstm_fpga.sw.numerics.ActivationTable`."""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..sw.numerics import ActivationTable
from .config import index_shape
from .fixed import common_signed_shape, format_shape, shift_round_value
from .pipeline import RegisteredProduct, delay

__all__ = ["ActivationUnit", "distinct_tables", "interpolation_shapes", "table_roms"]


def distinct_tables(tables: Sequence[ActivationTable]) -> tuple[list, list[int]]:
    """Deduplicate ``tables``: ``(unique tables, index of each input table among them)``."""
    unique: list[ActivationTable] = []
    index = []
    for table in tables:
        if table not in unique:
            unique.append(table)
        index.append(unique.index(table))
    return unique, index


def _entry_layout(tables: Sequence[ActivationTable]) -> data.StructLayout:
    """A ROM entry of :class:`ActivationUnit`: the table value and the difference to the
    next one."""
    value_shape = common_signed_shape(*(t.output for t in tables))
    if len(tables) == 1:
        value_shape = format_shape(tables[0].output)
    return data.StructLayout(
        {"value": value_shape, "delta": signed(max(t.delta_width for t in tables))}
    )


def table_roms(tables: Sequence[ActivationTable]) -> dict[str, tuple[Shape, int, list[int]]]:
    """The ROMs of an :class:`ActivationUnit` of ``tables``, one per entry field:
    ``{"value": ..., "delta": ...}``, each ``(shape, depth, words)`` (``words`` from address
    0, table after table; the rest of the ``depth`` words are 0). The unit builds them from
    here, and the resource estimate (:func:`lstm_fpga.hw.devices.estimate_resources`) counts
    them from here, without a unit."""
    entry = _entry_layout(tables)
    init = []
    for t in tables:
        values = list(t.values)
        init += [
            {"value": v, "delta": values[min(k + 1, len(values) - 1)] - v}
            for k, v in enumerate(values)
        ]
    # Two ROMs read at the same address, one per field: an entry wider than 18 bits would
    # take a block RAM's 36-bit mode, and a ROM's 36-bit mode has its write clock tied off,
    # so the flow cannot make its output register (``eda.bram`` takes a 36-bit read's
    # register only with both ports on one clock): its read (5.83 ns clock-to-out at ECP5
    # speed 6) and the route would share a cycle; each field alone fits the 18-bit mode.
    depth = max(2, len(init))
    return {
        name: (entry[name].shape, depth, [e[name] for e in init]) for name in ("value", "delta")
    }


def interpolation_shapes(tables: Sequence[ActivationTable]) -> tuple[Shape, Shape] | None:
    """Operand shapes of the interpolation product ``delta * weight`` of an
    :class:`ActivationUnit` of ``tables``; ``None`` when no table interpolates
    (``segment_shift`` 0: no product, and nothing reads the ``delta`` ROM)."""
    max_shift = max(t.segment_shift for t in tables)
    if max_shift == 0:
        return None
    return _entry_layout(tables)["delta"].shape, unsigned(max_shift)


class ActivationUnit(wiring.Component):
    """Table lookup with linear interpolation, bit-exact to ``ActivationTable.evaluate``.

    ``tables`` is one :class:`ActivationTable` or several (the layer directions of a model may
    use different formats); with several, ``select`` picks the table of each input. All
    tables live in one ROM (table ``k`` from word ``base_k``), whose entry stores ``(values[i],
    values[i+1] - values[i])``, so one read gives both interpolation end points (the two
    fields are two memories read at the same address, each narrow enough for a block RAM
    mode whose output register the synthesis flow absorbs). The last
    entry's difference is 0, which equals the reference's clamped ``values[min(i + 1, last)]``.

    Ports
    -----
    input : In, a signed shape holding every table's input format
        The pre-activation; a new value every cycle.
    select : In, table index (only with several tables)
        Which table evaluates ``input`` (same cycle as ``input``).
    output : Out, a shape holding every table's output format
        ``tables[select].evaluate(input)`` exactly, :attr:`LATENCY` cycles after ``input``;
        without ``output_register``, the value the output register would load, so
        :attr:`LATENCY` - 1 cycles after ``input`` (for a consumer whose own register takes
        its place, such as a DSP's input register).

    Pipeline: the clamped table offset addresses the ROM (stage 1, the synchronous read), the
    ROM's output registers (stage 2), the interpolation product ``delta * weight`` (stage 3),
    rounding and the add to the table value (stage 4): :attr:`LATENCY` cycles; throughput
    1 per cycle; no handshake (the enclosing pipeline carries its own valid bits); no reset.
    The product register is a :class:`~lstm_fpga.hw.pipeline.RegisteredProduct` (on ECP5 the
    ``MULT18X18D``'s output register).
    """

    #: ROM read, ROM output register, interpolation multiply, add.
    LATENCY = 4

    def __init__(
        self,
        tables: ActivationTable | Sequence[ActivationTable],
        *,
        output_register: bool = True,
    ):
        if isinstance(tables, ActivationTable):
            tables = [tables]
        tables = list(tables)
        if not tables:
            raise ValueError("an activation unit needs at least one table")
        self._tables = tables
        self._output_register = output_register
        if len(tables) == 1:
            input_shape = format_shape(tables[0].input)
            output_shape = format_shape(tables[0].output)
        else:
            input_shape = common_signed_shape(*(t.input for t in tables))
            output_shape = common_signed_shape(*(t.output for t in tables))
        ports = {"input": In(input_shape), "output": Out(output_shape)}
        if len(tables) > 1:
            ports["select"] = In(index_shape(len(tables)))
        super().__init__(ports)

    @property
    def latency(self) -> int:
        """Cycles from ``input`` to ``output`` (:attr:`LATENCY`, one less without the output
        register)."""
        return self.LATENCY - (not self._output_register)

    @property
    def table(self) -> ActivationTable:
        return self._tables[0]

    @property
    def tables(self) -> list[ActivationTable]:
        return list(self._tables)

    def elaborate(self, platform):
        m = Module()
        tables = self._tables
        entry = _entry_layout(tables)
        bases = [sum(len(t.values) for t in tables[:k]) for k in range(len(tables))]
        fields = {}
        for name, (shape, depth, words) in table_roms(tables).items():
            rom = m.submodules[f"rom_{name}"] = Memory(shape=shape, depth=depth, init=words)
            fields[name] = rom.read_port()

        select = self.select if len(tables) > 1 else 0
        max_shift = max(t.segment_shift for t in tables)
        addresses, weights = [], []
        for k, t in enumerate(tables):
            span = t.high - t.low
            offset = Signal(unsigned(max(1, span.bit_length())), name=f"offset{k}")
            p = self.input
            # The clamp compares and ``p - low`` run side by side (one carry chain deep).
            m.d.comb += offset.eq(
                Mux(p > t.high, span, Mux(p < t.low, 0, (p - t.low)[: len(offset)]))
            )
            addresses.append(bases[k] + (offset >> t.segment_shift))
            if t.segment_shift:
                weights.append(offset[: t.segment_shift])
            else:
                weights.append(0)
        address = Array(addresses)[select] if len(tables) > 1 else addresses[0]
        m.d.comb += [port.addr.eq(address) for port in fields.values()]
        # Stage 2: the ROMs' output registers.
        entry_q = data.View(
            entry,
            Cat(
                delay(m, fields["value"].data, 1, "value_q"),
                delay(m, fields["delta"].data, 1, "delta_q"),
            ),
        )
        if max_shift == 0:
            # No interpolation: registers keep the latency equal to the general case.
            m.d.comb += self.output.eq(delay(m, entry_q.value, self.latency - 2, "value"))
            return m
        weight = Signal(unsigned(max_shift))
        m.d.comb += weight.eq(Array(weights)[select] if len(tables) > 1 else weights[0])
        weight_q = delay(m, weight, 2, "weight")
        selected = delay(m, select, self.LATENCY - 1, "selected") if len(tables) > 1 else 0
        # Stage 3: the interpolation product; stage 4: rounded and added to the value.
        delta_shape, weight_shape = interpolation_shapes(tables)
        assert (delta_shape, weight_shape) == (entry_q.delta.shape(), weight_q.shape())
        m.submodules.product = multiply = RegisteredProduct(
            delta_shape, weight_shape, input_registers=False
        )
        m.d.comb += [multiply.a.eq(entry_q.delta), multiply.b.eq(weight_q)]
        product = multiply.product
        value = delay(m, entry_q.value, 1, "value")
        steps = [
            shift_round_value(product, t.segment_shift, t.rounding)
            if t.segment_shift
            else product * 0
            for t in tables
        ]
        step = Array(steps)[selected] if len(tables) > 1 else steps[0]
        m.d.comb += self.output.eq(delay(m, value + step, int(self._output_register), "output"))
        return m
