"""FPGA parts the flow targets, their capacity, and the resources a design needs.

:data:`DEVICES` is the one table of part capacities (from the vendors' data sheets, cited per
family in :data:`SOURCES`). :func:`estimate_resources` derives what a build needs from its
:class:`~lstm_fpga.hw.plan.EnginePlan` *before* any synthesis: every weight bank and
activation ROM mapped onto the family's block-RAM primitive at its real aspect ratios (the
weight banks packed as :func:`~lstm_fpga.hw.banks.bank_packing` packs them), and the
multipliers (``P`` lanes plus the gate/cell pipeline's) in the family's DSP tiles. LUTs and
flip-flops cannot be derived from the plan; they are checked against the part after
synthesis (``lstm-fpga synth``). :func:`check_fit` compares the two and
:func:`smallest_fits` lists the smallest parts of each family that hold a design.

Accuracy against ``yosys synth_ecp5`` (docs/hardware.md#devices-and-fit): block RAMs and DSPs
equal for the measured builds. The sequencer's buffers count as block RAM from 2 kbit, the
size where Yosys stops keeping them in LUT RAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .activation import distinct_tables
from .plan import EnginePlan

__all__ = [
    "DEVICES",
    "FAMILIES",
    "SOURCES",
    "Device",
    "DeviceFitError",
    "Family",
    "Fit",
    "ResourceEstimate",
    "check_fit",
    "device",
    "estimate_resources",
    "smallest_fits",
]


class DeviceFitError(ValueError):
    """The design does not fit the chosen part; the message gives the figures."""


@dataclass(frozen=True)
class Family:
    """A device family: its block-RAM primitive's shapes and its DSP multiplier tile.

    ``bram_shapes`` are the (width, depth) aspect ratios one primitive offers for a memory
    with one write and one read port; ``bram_byte`` is the write-enable granularity of the
    shapes wider than it (bits per byte enable; narrower shapes have one write enable);
    ``lutram_max_depth`` is the deepest packed weight bank worth keeping in LUT RAM rather
    than in block RAM it would fill to at most a quarter of its words
    (:func:`lstm_fpga.hw.banks.bank_packing`); ``dsp_tile`` is the (signed) operand widths
    one DSP multiplies.
    """

    name: str
    synth: str  # yosys synth_<synth>
    bram_primitive: str
    bram_bits: int
    bram_shapes: tuple[tuple[int, int], ...]
    bram_byte: int
    lutram_max_depth: int
    dsp_primitive: str
    dsp_tile: tuple[int, int]


FAMILIES = {
    "ecp5": Family(
        "ecp5",
        "ecp5",
        "DP16KD",
        18432,
        ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
        9,
        128,
        "MULT18X18D",
        (18, 18),
    ),
    "ice40": Family(
        "ice40",
        "ice40",
        "SB_RAM40_4K",
        4096,
        ((2, 2048), (4, 1024), (8, 512), (16, 256)),
        1,
        64,
        "SB_MAC16",
        (16, 16),
    ),
    "xc7": Family(
        "xc7",
        "xilinx",
        "RAMB18E1",
        18432,
        ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
        9,
        128,
        "DSP48E1",
        (25, 18),
    ),
    "xcup": Family(
        "xcup",
        "xilinx",
        "RAMB18E2",
        18432,
        ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)),
        9,
        128,
        "DSP48E2",
        (27, 18),
    ),
}

#: Where each family's figures come from.
SOURCES = {
    "ecp5": "Lattice FPGA-DS-02012, ECP5 and ECP5-5G Family Data Sheet, Table 1.1",
    "ice40": "Lattice FPGA-DS-02008, iCE40 UltraPlus Family Data Sheet, Table 1.1",
    "xc7": "AMD/Xilinx DS180, 7 Series FPGAs Data Sheet: Overview, Tables 3 and 6; "
    "DS190, Zynq-7000 SoC Data Sheet: Overview, Table 3 (programmable logic)",
    "xcup": "AMD/Xilinx DS891, Zynq UltraScale+ MPSoC Data Sheet: Overview, Table 2",
}


@dataclass(frozen=True)
class Device:
    """One part: LUTs (4-input on Lattice, 6-input on AMD), flip-flops, block RAMs (in
    units of the family's primitive, RAMB36 = two RAMB18), DSPs, and extra single-port RAM
    (iCE40 UltraPlus SPRAM) in bits. ``nextpnr`` is the nextpnr device option, if any."""

    name: str
    part: str
    family: str
    luts: int
    ffs: int
    brams: int
    dsps: int
    spram_bits: int = 0
    nextpnr: str | None = None

    @property
    def bram_bits(self) -> int:
        return self.brams * FAMILIES[self.family].bram_bits

    @property
    def source(self) -> str:
        return SOURCES[self.family]


#: The parts users pick, smallest first within a family.
DEVICES = {
    d.name: d
    for d in (
        # The data sheet gives the 12F's LUTs as "12 K" (no exact count, unlike the others).
        Device("ecp5-12", "LFE5U-12F", "ecp5", 12288, 12288, 32, 28, nextpnr="12k"),
        Device("ecp5-25", "LFE5U-25F", "ecp5", 24288, 24288, 56, 28, nextpnr="25k"),
        Device("ecp5-45", "LFE5U-45F", "ecp5", 43848, 43848, 108, 72, nextpnr="45k"),
        Device("ecp5-85", "LFE5U-85F", "ecp5", 83640, 83640, 208, 156, nextpnr="85k"),
        Device("up5k", "iCE40UP5K", "ice40", 5280, 5280, 30, 8, spram_bits=4 * 256 * 1024),
        Device("xc7a35t", "XC7A35T", "xc7", 20800, 41600, 2 * 50, 90),
        Device("xc7a100t", "XC7A100T", "xc7", 63400, 126800, 2 * 135, 240),
        Device("xc7a200t", "XC7A200T", "xc7", 134600, 269200, 2 * 365, 740),
        Device("xc7z020", "XC7Z020 (Zynq-7020 PL)", "xc7", 53200, 106400, 2 * 140, 220),
        Device("xc7k325t", "XC7K325T", "xc7", 203800, 407600, 2 * 445, 840),
        Device("xczu3eg", "XCZU3EG (Zynq UltraScale+ PL)", "xcup", 70560, 141120, 2 * 216, 360),
    )
}


def device(name: str) -> Device:
    """The part called ``name`` (case-insensitive); the error lists the known names."""
    found = DEVICES.get(name.lower())
    if found is None:
        raise DeviceFitError(
            f"unknown device {name!r}; choose one of {', '.join(DEVICES)} (see "
            f"docs/hardware.md for their capacities)"
        )
    return found


#: Smallest buffer Yosys maps to block RAM rather than LUT RAM (see estimate_resources).
_BUFFER_BLOCK_RAM_BITS = 2048


def _primitives(family: Family, width: int, depth: int) -> int:
    """Block-RAM primitives for a ``width`` x ``depth`` memory: the cheapest aspect ratio."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in family.bram_shapes)


def _dsps(family: Family, a: int, b: int) -> int:
    """DSP tiles for an ``a`` x ``b``-bit signed product (operands split across tiles)."""
    x, y = family.dsp_tile
    return min(math.ceil(a / x) * math.ceil(b / y), math.ceil(a / y) * math.ceil(b / x))


@dataclass(frozen=True)
class ResourceEstimate:
    """Block RAMs and DSPs a build needs on one family, with the memories behind them."""

    family: str
    brams: int
    dsps: int
    memories: tuple[tuple[str, int, int, int], ...]  # (name, width, depth, primitives)
    multipliers: tuple[tuple[str, int, int, int], ...]  # (name, a bits, b bits, DSPs)

    @property
    def bram_bits(self) -> int:
        return self.brams * FAMILIES[self.family].bram_bits

    def to_json_dict(self) -> dict:
        return {
            "family": self.family,
            "bram": self.brams,
            "dsp": self.dsps,
            "memories": [
                {"name": n, "width": w, "depth": d, "primitives": p} for n, w, d, p in self.memories
            ],
        }


def _gru_datapaths(plan: EnginePlan) -> list:
    """A GRU plan's distinct datapaths: one :class:`~lstm_fpga.hw.gru_cell.GruUnitPipeline`
    each."""
    distinct = []
    for dp in plan.datapaths:
        if dp not in distinct:
            distinct.append(dp)
    return distinct


def _tables(plan: EnginePlan):
    """The activation ROMs of the gate/cell pipeline: one per gate, one for tanh(c) (a GRU:
    sigmoid r, sigmoid z and tanh n per distinct datapath)."""
    dps = plan.datapaths
    if plan.is_gru:
        return {
            f"gru{k}_{name}": (table,)
            for k, dp in enumerate(_gru_datapaths(plan))
            for name, table in (("r", dp.sigmoid), ("z", dp.sigmoid), ("n", dp.tanh_gate))
        }
    kinds = {
        "act_i": [dp.sigmoid for dp in dps],
        "act_f": [dp.sigmoid for dp in dps],
        "act_g": [dp.tanh_gate for dp in dps],
        "act_o": [dp.sigmoid for dp in dps],
        "act_c": [dp.tanh_cell for dp in dps],
    }
    return {name: distinct_tables(tables)[0] for name, tables in kinds.items()}


def estimate_resources(plan: EnginePlan, family: str) -> ResourceEstimate:
    """Block RAMs and DSPs of ``plan`` on ``family`` (a key of :data:`FAMILIES`)."""
    from .banks import PACKING_FAMILY, bank_packing, block_ram_primitives

    fam = FAMILIES[family]
    width = plan.weight_shape.width
    # The packed weight memories as the generated Verilog has them (lstm_fpga.hw.banks), in
    # this family's primitives; LUT-RAM groups count as block RAM where it has no LUT RAM.
    packing = bank_packing(plan, PACKING_FAMILY)
    block = [g for g in packing.groups if g.block or fam.lutram_max_depth == 0]
    memories = [
        (
            f"weight banks: {len(block)} of {len(packing.groups)} memories of "
            f"{packing.lanes_per_group} lanes",
            packing.lanes_per_group * width,
            max((g.depth for g in block), default=0),
            sum(block_ram_primitives(fam, width, g.lanes, g.depth) for g in block),
        )
    ]
    if plan.config.weights == "external":  # no weight banks: the read master's FIFO
        from .external import axi_params

        params = axi_params(plan)
        bits, depth = params.data_width + 1, params.fifo_beats
        memories = [("weight prefetch FIFO", bits, depth, _primitives(fam, bits, depth))]
    # The sequencer's x, vector and state buffers: Yosys keeps them in LUT RAM up to 1.5 kbit
    # and moves them to block RAM from 2 kbit (measured on ECP5: 96 x 16 LUT RAM, 128 x 16
    # block RAM). Every read port of a column group reads its own copy.
    buffers = (
        (
            "x buffer",
            plan.input_shape.width,
            plan.x_slots * plan.x_slot_beats,
            plan.config.input_elements * plan.groups,
        ),
        ("vector buffer", plan.state_shape.width, plan.vector_depth, plan.groups),
        ("state buffer", plan.state_shape.width, 3 * plan.state_group_words, 1),
    )
    for name, bits, words, copies in buffers:
        if bits * words >= _BUFFER_BLOCK_RAM_BITS:
            memories.append((name, bits, words, copies * _primitives(fam, bits, words)))
    element = plan.element_shape.width
    multipliers = [
        (f"MVU lane x{plan.lanes}", element, width, plan.lanes * _dsps(fam, element, width))
    ]
    if plan.packed_product is not None:  # two lanes per DSP (odd groups: one lane alone)
        packed, pairs = plan.packed_product.packed_bits, len(plan.lane_pairs)
        alone = plan.lanes - 2 * pairs
        multipliers = [
            (f"MVU lane pair x{pairs}", packed, element, pairs * _dsps(fam, packed, element))
        ]
        if alone:
            multipliers.append(
                (f"MVU lane x{alone}", element, width, alone * _dsps(fam, element, width))
            )
    state = plan.state_shape.width
    for name, tables in _tables(plan).items():
        out = max(t.output.width for t in tables)
        delta = max(t.delta_width for t in tables)
        rom_depth = max(2, sum(len(t.values) for t in tables))
        # A ROM per entry field (``ActivationUnit``): values, and the differences where the
        # tables interpolate (otherwise synthesis drops the unread one).
        memories.append((f"{name} ROM", out, rom_depth, _primitives(fam, out, rom_depth)))
        if any(t.segment_shift > 0 for t in tables):
            memories.append(
                (f"{name} delta ROM", delta, rom_depth, _primitives(fam, delta, rom_depth))
            )
            shift = max(t.segment_shift for t in tables)
            multipliers.append(
                (f"{name} interpolation", delta, shift + 1, _dsps(fam, delta, shift + 1))
            )
    if plan.is_gru:  # r * hn, (1 - z) * n and z * h per GRU unit pipeline
        for k, dp in enumerate(_gru_datapaths(plan)):
            f = dp.formats
            gate, pre, hidden = f.gate.width, f.preact.width, f.hidden.width
            one_minus_z = dp.one_minus_z.width
            multipliers += [
                (f"gru{k} r*hn", gate, pre, _dsps(fam, gate, pre)),
                (f"gru{k} (1-z)*n", one_minus_z, gate, _dsps(fam, one_minus_z, gate)),
                (f"gru{k} z*h", gate, hidden, _dsps(fam, gate, hidden)),
            ]
    else:
        gate = max(t.output.width for t in _tables(plan)["act_i"])
        cell = plan.cell_shape.width
        multipliers += [
            ("f*c", gate, cell, _dsps(fam, gate, cell)),
            ("i*g", gate, gate, _dsps(fam, gate, gate)),
            ("o*tanh(c)", gate, state, _dsps(fam, gate, state)),
        ]
    return ResourceEstimate(
        family=family,
        brams=sum(m[3] for m in memories),
        dsps=sum(m[3] for m in multipliers),
        memories=tuple(memories),
        multipliers=tuple(multipliers),
    )


@dataclass(frozen=True)
class Fit:
    """Needed vs available per resource on one part."""

    device: Device
    needed: dict[str, int]
    available: dict[str, int]

    @property
    def fits(self) -> bool:
        return all(self.needed[r] <= self.available[r] for r in self.needed)

    @property
    def short(self) -> list[str]:
        """The resources that do not fit."""
        return [r for r in self.needed if self.needed[r] > self.available[r]]

    def utilisation(self) -> dict[str, float]:
        return {r: 100.0 * self.needed[r] / max(1, self.available[r]) for r in self.needed}

    def describe(self) -> str:
        names = {"bram": "block RAM", "dsp": "DSP", "lut": "LUT", "ff": "FF"}
        parts = []
        for r in self.needed:
            extra = ""
            if r == "bram":
                bits = FAMILIES[self.device.family].bram_bits
                extra = (
                    f" {FAMILIES[self.device.family].bram_primitive}, "
                    f"{self.needed[r] * bits / 1024:.0f} of {self.available[r] * bits / 1024:.0f}"
                    " kbit"
                )
            parts.append(f"{names.get(r, r)} {self.needed[r]}/{self.available[r]}{extra}")
        return ", ".join(parts)

    def to_json_dict(self) -> dict:
        return {
            "device": self.device.name,
            "part": self.device.part,
            "fits": self.fits,
            "needed": self.needed,
            "available": self.available,
            "utilisation_percent": {k: round(v, 1) for k, v in self.utilisation().items()},
            "source": self.device.source,
        }


def _available(dev: Device) -> dict[str, int]:
    return {"bram": dev.brams, "dsp": dev.dsps, "lut": dev.luts, "ff": dev.ffs}


def check_fit(plan: EnginePlan, dev: Device, measured: dict[str, int] | None = None) -> Fit:
    """Block RAMs and DSPs of ``plan`` (from :func:`estimate_resources`, or the ``measured``
    counts after synthesis, which add LUTs and FFs) against ``dev``."""
    needed = dict(measured) if measured is not None else None
    if needed is None:
        estimate = estimate_resources(plan, dev.family)
        needed = {"bram": estimate.brams, "dsp": estimate.dsps}
    available = _available(dev)
    return Fit(
        dev,
        {r: needed[r] for r in available if r in needed},
        {r: available[r] for r in available if r in needed},
    )


def smallest_fits(plan: EnginePlan) -> list[Fit]:
    """Per family, the smallest listed part that holds ``plan`` (block RAM and DSP)."""
    found = {}
    for dev in DEVICES.values():
        if dev.family in found:
            continue
        fit = check_fit(plan, dev)
        if fit.fits:
            found[dev.family] = fit
    return list(found.values())
