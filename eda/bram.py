"""ECP5 block-RAM output registers: the flip-flop behind a ``DP16KD`` read absorbed into the
block RAM's own output register (``REGMODE = "OUTREG"``).

Yosys maps memories to ``DP16KD`` with ``REGMODE_A = REGMODE_B = "NOREG"`` only (its
``brams_map_16kd.v``; the memory library has no output-register option), so a synchronous
read followed by a register costs the block RAM's clock-to-out without the output register
(5.83 ns at speed 6) plus the route to a fabric flip-flop. With ``OUTREG`` the same two
registers are the array's read latch and the block's output register, whose clock-to-out is
a fraction of that. The transformation is the one vendor tools make and changes no cycle: a
``DP16KD`` port's data still appears two clock edges after its address.

:func:`absorb_output_registers` rewrites a flattened ``synth_ecp5`` JSON netlist. A port
(``A`` or ``B``, in a 1- to 18-bit mode) qualifies when every data bit that is used at all
drives exactly one load, the ``DI`` of a ``TRELLIS_FF`` on the same clock net and edge, with
no clock enable, no set/reset (``LSR`` tied to 0) and the power-up value 0; and the port's
output clock enable is tied to 1 and its reset to 0. Then the port's ``REGMODE`` becomes
``OUTREG``, its data bits drive the flip-flops' nets and the flip-flops are removed.

A block RAM in the 36-bit mode (Yosys' ``$__PDPW16KD_``: port ``A`` writes 36 bits, port
``B`` reads, its 36 bits on ``DOA`` and ``DOB``) has one read, whose output register is the
two ports' registers together: it qualifies when every used bit of ``DOA`` and ``DOB`` drives
one plain flip-flop as above, both ports are clocked by the same net, and the read port's
output clock enable is tied to 1 and both resets to 0. Then both ports' ``REGMODE`` become
``OUTREG`` and ``OCEA`` is tied to 1 too. That is how nextpnr lowers Lattice's own 36-bit
primitive (``PDPW16KD``, whose one ``REGMODE`` becomes ``REGMODE_A`` and ``REGMODE_B``),
and how Lattice's tools configure one; tying ``OCEA`` (Yosys ties it to 0) keeps the ``DOA``
half's register loading whichever enable the silicon takes for it.

Any other port (a LUT or a second load between the read and the register, a clock enable,
another clock) is left as it is.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

__all__ = ["absorb_output_registers", "absorb_output_registers_in_file"]

#: Per ``DP16KD`` port: (data outputs, clock, output clock enable, reset, clock mux
#: parameter and its non-inverted value, register mode parameter, width parameter).
_PORTS = {
    side: (
        tuple(f"DO{side}{k}" for k in range(18)),
        f"CLK{side}",
        f"OCE{side}",
        f"RST{side}",
        (f"CLK{side}MUX", f"CLK{side}"),
        f"REGMODE_{side}",
        f"DATA_WIDTH_{side}",
    )
    for side in ("A", "B")
}


def _parameter(value) -> str:
    """A Yosys JSON parameter as text (strings that look like bits carry a trailing space)."""
    return str(value).strip()


def _width(value) -> int:
    text = _parameter(value)
    return int(text, 2) if set(text) <= {"0", "1"} else int(text)


def _plain_register(ff: dict, clock) -> bool:
    """A ``TRELLIS_FF`` that loads ``DI`` on every rising edge of ``clock``, never set or
    reset, starting at 0."""
    p, c = ff.get("parameters", {}), ff["connections"]
    return (
        c.get("CLK") == clock
        and _parameter(p.get("CLKMUX", "CLK")) == "CLK"
        and _parameter(p.get("CEMUX", "1")) == "1"
        and c.get("LSR", ["0"]) == ["0"]
        and _parameter(p.get("REGSET", "RESET")) == "RESET"
    )


def _port_free(parameters: dict, connections: dict, side: str) -> bool:
    """Port ``side`` reads with no output register yet, its output clock enable tied to 1,
    its reset to 0 and its clock not inverted."""
    _, _, enable, reset, (mux, plain), regmode, _ = _PORTS[side]
    return (
        _parameter(parameters.get(regmode, "NOREG")) == "NOREG"
        and connections.get(enable) == ["1"]
        and connections.get(reset) == ["0"]
        and _parameter(parameters.get(mux, plain)) == plain
    )


def _registers_behind(cells, loads, removed, cell, outputs, clock) -> list[tuple[str, str]]:
    """``(pin, flip-flop)`` for every used pin of ``outputs``, each pin's one load a plain
    register on ``clock``; empty when any used pin has another load (or none is used)."""
    connections = cell["connections"]
    registers = []
    for pin in outputs:
        if pin not in connections or not isinstance(connections[pin][0], int):
            continue
        net = connections[pin][0]
        if not loads.get(net):
            continue
        (load, port), *others = loads[net]
        ff = cells.get(load)
        if (
            others
            or port != "DI"
            or ff is None
            or ff["type"] != "TRELLIS_FF"
            or load in removed
            or not _plain_register(ff, connections[clock])
        ):
            return []
        registers.append((pin, load))
    return registers


def _take(cells, connections, removed, registers) -> None:
    """The flip-flops of ``registers`` leave; their pins drive the flip-flops' nets."""
    for pin, load in registers:
        connections[pin] = cells[load]["connections"]["Q"]
        removed.add(load)


def _absorb_wide_read(cells, loads, removed, cell) -> int:
    """A 36-bit-mode block RAM (port A writes, port B reads on ``DOA`` and ``DOB``): both
    ports' output registers take the flip-flops behind the read (1), or nothing (0)."""
    parameters, connections = cell["parameters"], cell["connections"]
    outputs_a, clock_a, enable_a, reset_a, (mux_a, plain_a), regmode_a, _ = _PORTS["A"]
    outputs_b, clock_b, _, _, _, regmode_b, _ = _PORTS["B"]
    if (
        not _port_free(parameters, connections, "B")
        or _parameter(parameters.get(regmode_a, "NOREG")) != "NOREG"
        or connections.get(reset_a) != ["0"]
        or _parameter(parameters.get(mux_a, plain_a)) != plain_a
        or connections.get(clock_a) != connections.get(clock_b)
        or connections.get("WEB", ["0"]) != ["0"]
    ):
        return 0
    registers = _registers_behind(cells, loads, removed, cell, outputs_a + outputs_b, clock_b)
    if not registers:
        return 0
    parameters[regmode_a] = parameters[regmode_b] = "OUTREG"
    connections[enable_a] = ["1"]
    _take(cells, connections, removed, registers)
    return 1


def absorb_output_registers(design: dict, top: str) -> int:
    """Absorb the flip-flops behind ``DP16KD`` reads of module ``top`` of a Yosys JSON
    ``design`` (modified in place) into the ports' output registers; returns how many ports
    were switched to ``OUTREG``."""
    module = design["modules"][top]
    cells = module["cells"]
    loads: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in cells.items():
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if directions.get(port, "input") != "output":
                for bit in bits:
                    if isinstance(bit, int):
                        loads[bit].append((name, port))
    for port in module.get("ports", {}).values():
        if port["direction"] != "input":
            for bit in port["bits"]:
                if isinstance(bit, int):
                    loads[bit].append(("", "port"))
    switched = 0
    removed: set[str] = set()
    for cell in list(cells.values()):
        if cell["type"] != "DP16KD":
            continue
        parameters, connections = cell["parameters"], cell["connections"]
        if _width(parameters.get("DATA_WIDTH_A", "18")) > 18:
            # The 36-bit mode: one read (port B) over both ports' outputs.
            switched += _absorb_wide_read(cells, loads, removed, cell)
            continue
        if _width(parameters.get("DATA_WIDTH_B", "18")) > 18:
            continue  # not a mode Yosys maps
        for side, (outputs, clock, *_, regmode, _width_name) in _PORTS.items():
            if not _port_free(parameters, connections, side):
                continue
            registers = _registers_behind(cells, loads, removed, cell, outputs, clock)
            if registers:
                parameters[regmode] = "OUTREG"
                _take(cells, connections, removed, registers)
                switched += 1
    for name in removed:
        del cells[name]
    return switched


def absorb_output_registers_in_file(netlist: Path, top: str) -> int:
    """:func:`absorb_output_registers` on the JSON netlist file ``netlist`` (rewritten when a
    port was switched)."""
    netlist = Path(netlist)
    design = json.loads(netlist.read_text())
    switched = absorb_output_registers(design, top)
    if switched:
        netlist.write_text(json.dumps(design))
    return switched
