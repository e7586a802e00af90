"""Reading flattened netlists: cell counts by resource class and design-hierarchy names.

Yosys keeps the Amaranth hierarchy in the names of flattened cells and nets
(``engine.cell.act_o.rom.0.0``, ``engine.mvu.$2_MULT18X18D_P9``,
``engine.cell.output$85_TRELLIS_FF_Q_2``), and nextpnr keeps yosys' names, so both tools'
reports can be mapped back to the blocks of the design with :func:`hierarchy_of`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

__all__ = ["FAMILY_RESOURCES", "HierarchyName", "count_cells", "dsp_registers", "hierarchy_of"]

#: Per synthesis family: resource class -> (cell type, LUTs it occupies). ECP5 carry cells
#: (CCU2C) hold two LUT4s each and TRELLIS_DPR16X4 distributed RAMs are counted apart.
FAMILY_RESOURCES: dict[str, dict[str, dict[str, int]]] = {
    "ecp5": {
        "lut": {"LUT4": 1, "CCU2C": 2},
        "ff": {"TRELLIS_FF": 1},
        "dsp": {"MULT18X18D": 1, "ALU54B": 1},
        "bram": {"DP16KD": 1, "PDPW16KD": 1},
        "lutram": {"TRELLIS_DPR16X4": 1},
    },
    "ice40": {
        # SB_CARRY shares the logic cell of the LUT beside it: it adds no LUT.
        "lut": {"SB_LUT4": 1},
        "ff": {
            t: 1
            for t in (
                "SB_DFF SB_DFFE SB_DFFSR SB_DFFR SB_DFFS SB_DFFESR SB_DFFER SB_DFFES SB_DFFSS "
                "SB_DFFESS SB_DFFN SB_DFFNE SB_DFFNSR SB_DFFNR SB_DFFNS SB_DFFNESR SB_DFFNER "
                "SB_DFFNES SB_DFFNSS SB_DFFNESS"
            ).split()
        },
        "dsp": {"SB_MAC16": 1},
        "bram": {"SB_RAM40_4K": 1},
        "spram": {"SB_SPRAM256KA": 1},
    },
    "xilinx": {
        "lut": {f"LUT{n}": 1 for n in range(1, 7)},
        "ff": {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1},
        "carry": {"CARRY4": 1},
        "dsp": {"DSP48E1": 1},
        "bram": {"RAMB18E1": 1, "RAMB36E1": 2},  # in RAMB18 units
        "lutram": {
            t: 1 for t in ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1D")
        },
    },
}

#: Per family: DSP cell type -> {register name: (parameter, value meaning "not used")}.
_DSP_REGISTERS = {
    "ecp5": {
        "MULT18X18D": {
            "input A": ("REG_INPUTA_CLK", "NONE"),
            "input B": ("REG_INPUTB_CLK", "NONE"),
            "pipeline": ("REG_PIPELINE_CLK", "NONE"),
            "output": ("REG_OUTPUT_CLK", "NONE"),
        }
    },
    "xilinx": {
        "DSP48E1": {
            "AREG": ("AREG", 0),
            "BREG": ("BREG", 0),
            # The pre-adder's input (D) and output (AD) registers: two lanes packed on one
            # DSP (``--dsp-packing 2``) have Yosys add their weights there.
            "DREG": ("DREG", 0),
            "ADREG": ("ADREG", 0),
            "MREG": ("MREG", 0),
            "PREG": ("PREG", 0),
        }
    },
    "ice40": {
        "SB_MAC16": {
            "input A": ("A_REG", 0),
            "input B": ("B_REG", 0),
            "pipeline": ("PIPELINE_16x16_MULT_REG2", 0),
            "output": ("TOPOUTPUT_SELECT", 0),
        }
    },
}


def _parameter(value):
    """Yosys JSON parameters are bit strings ("0...01") for numbers, plain text otherwise."""
    if isinstance(value, str) and value and set(value) <= {"0", "1"}:
        return int(value, 2)
    return value.strip() if isinstance(value, str) else value


def count_cells(cells: dict, family: str) -> dict[str, int]:
    """Resources used by the ``cells`` of a yosys JSON module, per resource class."""
    types = Counter(cell["type"] for cell in cells.values())
    return {
        resource: sum(types[t] * weight for t, weight in members.items())
        for resource, members in FAMILY_RESOURCES[family].items()
    }


def dsp_registers(cells: dict, family: str) -> dict[str, int]:
    """How many DSP cells use each of their internal registers (``{"PREG": 3, ...}``)."""
    used = Counter()
    for cell in cells.values():
        registers = _DSP_REGISTERS.get(family, {}).get(cell["type"])
        if registers is None:
            continue
        parameters = cell.get("parameters", {})
        for register, (parameter, unused) in registers.items():
            value = _parameter(parameters.get(parameter, unused))
            if register == "output" and family == "ice40":
                used[register] += value == 1  # TOPOUTPUT_SELECT 1: registered accumulator
            elif value != unused:
                used[register] += 1
    return {
        register: used[register]
        for regs in _DSP_REGISTERS.get(family, {}).values()
        for register in regs
    }


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class HierarchyName:
    """A flattened cell or net name split into the design hierarchy and the local name.

    ``engine.cell.output$85_TRELLIS_FF_Q_2`` -> path ``("engine", "cell")``, local
    ``"output"``; ``engine.cell.act_o.rom.0.0`` -> path ``("engine", "cell", "act_o", "rom")``,
    local ``""`` (a memory primitive: the path names it).
    """

    path: tuple[str, ...]
    local: str

    def __str__(self) -> str:
        return ".".join((*self.path, self.local) if self.local else self.path) or "(top)"


#: Suffixes the technology mappers append to the signal a cell drives or reads.
_MAPPER_SUFFIX = re.compile(
    r"_(?:LUT[1-6]|CCU2C|TRELLIS_|PFUMX|L6MUX21|DP16KD|MULT18X18D|ALU54B|DPR16X4|SB_|CARRY4|"
    r"MUXF[78]|FD[RSCP]E|DSP48|RAMB)"
)


def hierarchy_of(name: str) -> HierarchyName:
    """Split a yosys/nextpnr flattened name into :class:`HierarchyName`; the local name is
    the design's signal (``layer_LUT4_D_Z_CCU2C_COUT`` -> ``layer``)."""
    where = _split(name)
    local = _MAPPER_SUFFIX.split(where.local, maxsplit=1)[0]
    return HierarchyName(where.path, local)


def _split(name: str) -> HierarchyName:
    text = name.replace("$flatten\\", "").replace("\\", "")
    text = re.sub(r"^[A-Za-z_][A-Za-z0-9_]*/", "", text)  # "lstm_top/engine..." in stat lists
    text = re.sub(r"\$\d+(?=\.)", "", text)  # "weights$88.weights_bank0": Amaranth suffixes
    parts = text.split(".")
    path: list[str] = []
    for index, part in enumerate(parts):
        if _IDENTIFIER.fullmatch(part):
            path.append(part)
            continue
        head = _IDENTIFIER.match(part)
        if head is not None and index == len(parts) - 1:
            return HierarchyName(tuple(path), head.group(0))
        break
    else:
        # Every part was an identifier: the last one is the local name (a net or register).
        return HierarchyName(tuple(path[:-1]), path[-1] if path else "")
    return HierarchyName(tuple(path), "")
