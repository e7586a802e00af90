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
``OUTREG``, its data bits drive the flip-flops' nets and the flip-flops are removed. Any
other port (a LUT or a second load between the read and the register, a 36-bit mode) is
left as it is.
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
        if any(_width(parameters.get(f"DATA_WIDTH_{s}", "18")) > 18 for s in _PORTS):
            continue  # the 36-bit mode splits one read over both ports' outputs
        for outputs, clock, enable, reset, (mux, plain), regmode, _ in _PORTS.values():
            if _parameter(parameters.get(regmode, "NOREG")) != "NOREG":
                continue
            if connections.get(enable) != ["1"] or connections.get(reset) != ["0"]:
                continue
            if _parameter(parameters.get(mux, plain)) != plain:
                continue
            used = [
                (pin, connections[pin][0])
                for pin in outputs
                if pin in connections
                and isinstance(connections[pin][0], int)
                and loads.get(connections[pin][0])
            ]
            registers = []
            for pin, net in used:
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
                    break
                registers.append((pin, load))
            else:
                if not registers:
                    continue
                parameters[regmode] = "OUTREG"
                for pin, load in registers:
                    connections[pin] = cells[load]["connections"]["Q"]
                    removed.add(load)
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
