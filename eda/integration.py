"""Files that hand a generated design to other flows: a FuseSoC core file and clock
constraints.

:func:`fusesoc_core` writes a CAPI2 ``.core`` (FuseSoC's format: a VLNV name, filesets and
targets; https://fusesoc.readthedocs.io) listing the Verilog, the memory images it loads and
the constraint files, with targets ``default`` (the sources and the top) and ``lint``
(Verilator, lint only). :func:`clock_constraints` is the constraint for one clock port in
the three dialects in use: Lattice ``.lpf`` (nextpnr, Diamond), Xilinx ``.xdc`` (Vivado) and
Synopsys ``.sdc`` (Quartus, Libero, Radiant, OpenROAD). Both are plain text, the YAML written
by hand (flow style, every string quoted), so no YAML library is needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

__all__ = ["CONSTRAINT_FILE_TYPES", "clock_constraints", "fusesoc_core", "vlnv_part"]

#: Constraint dialect (file suffix) -> FuseSoC ``file_type``.
CONSTRAINT_FILE_TYPES = {"lpf": "LPF", "xdc": "xdc", "sdc": "SDC"}


def vlnv_part(text: str) -> str:
    """``text`` as one part of a FuseSoC VLNV name: letters, digits, ``_``, ``-`` and
    ``.`` kept, every other run of characters one ``_`` (``"my build"`` -> ``"my_build"``)."""
    part = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.-")
    return part or "design"


def clock_constraints(port: str, mhz: float) -> dict[str, str]:
    """The constraint of a clock input ``port`` at ``mhz`` MHz, per dialect (keys of
    :data:`CONSTRAINT_FILE_TYPES`). They name a top-level port: for the design as the top of
    a build (out of context); inside a larger design, constrain the clock net that drives the
    port instead (its PLL output usually carries a derived constraint already)."""
    if not mhz > 0:
        raise ValueError(f"the clock frequency must be positive, not {mhz!r} MHz")
    period = 1000.0 / mhz
    header = f"clock {port}: {mhz:g} MHz (period {period:.3f} ns)"
    return {
        "lpf": f'# {header}\nFREQUENCY PORT "{port}" {mhz:g} MHZ;\n',
        "xdc": f"# {header}\ncreate_clock -period {period:.3f} -name {port} [get_ports {port}]\n",
        "sdc": (
            f"# {header}\ncreate_clock -name {port} -period {period:.3f} [get_ports {{{port}}}]\n"
        ),
    }


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML string


def fusesoc_core(
    *,
    vendor: str,
    library: str,
    name: str,
    version: str,
    description: str,
    top: str,
    verilog: Sequence[str],
    data_files: Sequence[str] = (),
    constraints: Sequence[str] = (),
) -> str:
    """A CAPI2 core file (text) for the design whose top module is ``top``.

    ``verilog`` are the Verilog sources and ``data_files`` files they read at elaboration
    (``$readmemh`` images, copied into the tool's work directory); ``constraints`` constraint
    files whose suffix is a key of :data:`CONSTRAINT_FILE_TYPES`. Paths are relative to the
    core file. The name is ``vendor:library:name:version``, each part through
    :func:`vlnv_part`.
    """
    vlnv = ":".join(vlnv_part(part) for part in (vendor, library, name, version))
    lines = ["CAPI=2:", f"# {description}", f"name: {_q(vlnv)}", f"description: {_q(description)}"]
    lines += ["filesets:", "  rtl:", "    files:"]
    lines += [f"      - {_q(path)}: {{file_type: verilogSource}}" for path in verilog]
    lines += [f"      - {_q(path)}: {{file_type: user, copyto: {_q(path)}}}" for path in data_files]
    by_type: dict[str, list[str]] = {}
    for path in constraints:
        suffix = path.rsplit(".", 1)[-1].lower()
        if suffix not in CONSTRAINT_FILE_TYPES:
            raise ValueError(
                f"constraint file {path}: suffix must be one of {', '.join(CONSTRAINT_FILE_TYPES)}"
            )
        by_type.setdefault(suffix, []).append(path)
    for suffix, paths in by_type.items():
        lines += [f"  constraints_{suffix}:", "    files:"]
        file_type = CONSTRAINT_FILE_TYPES[suffix]
        lines += [f"      - {_q(path)}: {{file_type: {file_type}}}" for path in paths]
    lines += [
        "targets:",
        "  default:",
        "    filesets: [rtl]",
        f"    toplevel: {_q(top)}",
        "  lint:",
        "    default_tool: verilator",
        "    filesets: [rtl]",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        f"    toplevel: {_q(top)}",
    ]
    return "\n".join(lines) + "\n"
