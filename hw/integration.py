"""Integration files of a build's ``rtl/``: a FuseSoC core file and the clock constraint.

``lstm-fpga build`` writes, beside ``lstm_top.v`` and its ``.hex`` images:

* ``lstm_top.core`` -- a FuseSoC CAPI2 core (:func:`lstm_fpga.eda.fusesoc_core`) named
  ``lstm-fpga:build:<build directory name>:<lstm-fpga version>``, fileset ``rtl``
  (``lstm_top.v``, the ``.hex`` images copied to the tool's work directory), filesets
  ``constraints_lpf``/``_xdc``/``_sdc`` and targets ``default`` and ``lint``;
* ``lstm_top.lpf``, ``lstm_top.xdc``, ``lstm_top.sdc`` -- the clock ``clk`` at
  :data:`CONSTRAINT_MHZ` (:func:`lstm_fpga.eda.clock_constraints`); edit the figure to
  your clock (``lstm-fpga synth`` measures the Fmax of the build).
"""

from __future__ import annotations

from pathlib import Path

from ..eda.integration import clock_constraints, fusesoc_core
from .interface import CLOCK, TOP_NAME

__all__ = ["CONSTRAINT_MHZ", "CORE_VERSION_PREFIX", "write_integration_files"]

#: Clock of the constraint files ``build`` writes (MHz): what the demo model closes at with
#: margin on the slowest ECP5 speed grade (docs/board.md).
CONSTRAINT_MHZ = 100.0
#: FuseSoC VLNV ``vendor:library`` of the core file.
CORE_VERSION_PREFIX = ("lstm-fpga", "build")


def write_integration_files(rtl, *, name: str, version: str, description: str) -> list[str]:
    """Write the core file and the clock constraints into ``rtl`` (a build's ``rtl/``,
    holding ``lstm_top.v`` and its ``.hex`` images); return the names written."""
    rtl = Path(rtl)
    written = []
    for suffix, text in clock_constraints(CLOCK, CONSTRAINT_MHZ).items():
        path = rtl / f"{TOP_NAME}.{suffix}"
        path.write_text(text)
        written.append(path.name)
    hexes = sorted(p.name for p in rtl.glob("*.hex"))
    core = fusesoc_core(
        vendor=CORE_VERSION_PREFIX[0],
        library=CORE_VERSION_PREFIX[1],
        name=name,
        version=version,
        description=description,
        top=TOP_NAME,
        verilog=[f"{TOP_NAME}.v"],
        data_files=hexes,
        constraints=list(written),
    )
    path = rtl / f"{TOP_NAME}.core"
    path.write_text(core)
    return [*written, path.name]
