"""FPGA parts the flow targets, their capacity, and the resources a design needs.

:data:`DEVICES` is the one table of part capacities (from the vendors' data sheets, cited per
family in :data:`SOURCES`). :func:`estimate_resources` derives what a build needs from its
:class:`~lstm_fpga.hw.plan.EnginePlan` *before* any synthesis: the weight banks mapped onto
the family's block-RAM primitive at its real aspect ratios (packed as
:func:`~lstm_fpga.hw.banks.bank_packing` packs them); every other memory (activation ROMs,
the sequencer's buffers, with attention pooling the attention unit's ROMs and memories and
the FIFOs in front of it) with the block RAMs Yosys gives it; and the multipliers (``P``
lanes, the gate/cell pipeline's, the attention unit's) in the family's DSP tiles. LUTs and
flip-flops cannot be derived from the plan; they are checked against the part after
synthesis (``lstm-fpga synth``). :func:`check_fit` compares the two and
:func:`smallest_fits` lists the smallest parts of each family that hold a design.

Accuracy against ``yosys synth_ecp5`` (docs/hardware.md#devices-and-fit): block RAMs and DSPs
equal for the measured builds. On ECP5 whether a memory is block RAM is Yosys' own choice,
modelled from its costs (:func:`_memory_primitives`): a ROM of a few hundred bits (a
calibrated model's small activation tables) becomes logic, a 16-bit buffer of 81 words or
more a DP16KD; elsewhere every ROM counts, and every written memory from 2 kbit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Shape

from .activation import distinct_tables, interpolation_shapes, table_roms
from .jobs import state_memory_words, x_buffer_words
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
    # Yosys's memory library of the family (``memory_libmap``), where it is modelled: the
    # cost of one block-RAM primitive and the LUT-RAM cell as (depth, width, cost); see
    # _memory_primitives. ``None``: not modelled (every ROM counts as block RAM, every
    # written memory from 2 kbit).
    yosys_bram_cost: int | None = None
    yosys_lutram_cell: tuple[int, int, int] | None = None
    # Where Yosys's splitting of a product too wide for one tile is modelled (mul2dsp.v, the
    # operands signed or unsigned): its DSP_A_MINWIDTH = DSP_B_MINWIDTH, the narrowest slice
    # it gives a DSP (a narrower one becomes logic); see _product_dsps.
    yosys_dsp_min_width: int | None = None


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
        # share/lattice/brams_16kd.txt ($__DP16KD_, $__PDPW16KD_: cost 128) and
        # lutrams_trellis.txt ($__TRELLIS_DPR16X4_: abits 4, width 4, cost 4), Yosys 0.70
        128,
        (16, 4, 4),
        # techmap -map +/mul2dsp.v ... -D DSP_A_MINWIDTH=2 -D DSP_B_MINWIDTH=2 (synth_ecp5)
        2,
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


#: Where the family's memory mapping is not modelled: the smallest written memory counted
#: as block RAM (what Yosys did with ECP5's sequencer buffers before ``no_rw_check``).
_BUFFER_BLOCK_RAM_BITS = 2048

# Yosys's choice between soft logic, LUT RAM and block RAM (passes/memory/memory_libmap.cc,
# Yosys 0.70): the cheapest mapping by these costs, the library's cell costs
# (Family.yosys_bram_cost, yosys_lutram_cell) plus soft logic for the address decoding and the
# emulated port behaviour. Logic per stored bit (``-logic-cost-rom``, ``-logic-cost-ram``):
_LOGIC_COST_ROM_BIT = 1 / 16
_LOGIC_COST_RAM_BIT = 1.0
# Per read-data bit of each further address range (its multiplexer), per write enable of
# each range (its decoder), per emulation point (FACTOR_MUX, FACTOR_DEMUX, FACTOR_EMU):
_FACTOR_MUX = 0.5
_FACTOR_DEMUX = 0.5
_FACTOR_EMU = 2
# Emulation points: each read port not shared with a write port (a tie-breaker), and for a
# block RAM whose read must return the old word when the same cycle writes it (a memory
# without ``no_rw_check``; its two ports cannot): read-first emulation per write port and
# the transparency bypass per read port.
_EMU_READ_PORT = 1
_EMU_READ_FIRST = 3
_EMU_TRANSPARENCY = 3


def _primitives(family: Family, width: int, depth: int) -> int:
    """Block-RAM primitives for a ``width`` x ``depth`` memory: the cheapest aspect ratio."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in family.bram_shapes)


def _dsps(family: Family, a: int, b: int) -> int:
    """DSP tiles for an ``a`` x ``b``-bit signed product (operands split across tiles)."""
    x, y = family.dsp_tile
    return min(math.ceil(a / x) * math.ceil(b / y), math.ceil(a / y) * math.ceil(b / x))


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _live_width(width: int, words: list[int] | None) -> int:
    """Bits of a ROM word that vary: Yosys (``opt_mem``) drops the bit lanes where every
    word holds the same bit (the sign of a table of positive values); a written memory keeps
    its ``width``."""
    if words is None:
        return width
    varying = 0
    for word in words:
        varying |= word ^ words[0]
    return (varying & ((1 << width) - 1)).bit_count()


def _block_cost(fam: Family, width: int, depth: int, *, rom: bool, reads: int, emu: int):
    """Yosys's cheapest block-RAM geometry for a ``width`` x ``depth`` memory with ``reads``
    read ports (one copy per read port) and ``emu`` emulation points: ``(cost,
    primitives)``."""
    best = None
    for unit, unit_depth in fam.bram_shapes:
        # A written word is padded to whole write-enable bytes; a ROM packs bit by bit.
        byte = 1 if rom else min(fam.bram_byte, unit)
        ranges = _ceil(depth, unit_depth)
        primitives = _ceil(ranges * _ceil(width, byte) * byte, unit) * reads
        cost = fam.yosys_bram_cost * primitives
        cost += _FACTOR_MUX * (ranges - 1) * width * reads
        if not rom and ranges > 1:
            cost += _FACTOR_DEMUX * ranges
        cost += _FACTOR_EMU * emu
        if best is None or cost < best[0]:
            best = (cost, primitives)
    return best


def _lutram_cost(fam: Family, width: int, depth: int, *, reads: int) -> float:
    """Yosys's cost of a written ``width`` x ``depth`` memory in LUT-RAM cells, one copy per
    read port (the cells read asynchronously, the read register stays in the fabric)."""
    cell_depth, cell_width, cell_cost = fam.yosys_lutram_cell
    ranges = _ceil(depth, cell_depth)
    cost = cell_cost * ranges * _ceil(width, cell_width) * reads
    cost += _FACTOR_MUX * (ranges - 1) * width * reads
    if ranges > 1:
        cost += _FACTOR_DEMUX * ranges
    return cost + _FACTOR_EMU * _EMU_READ_PORT * reads


def _memory_primitives(
    fam: Family,
    width: int,
    depth: int,
    *,
    words: list[int] | None = None,
    reads: int = 1,
    rw_check: bool = True,
) -> int:
    """Block-RAM primitives Yosys gives a memory of ``depth`` words of ``width`` bits: 0
    when it builds it from logic or LUT RAM. ``words``: a ROM's contents (``None``: a
    written memory, one write port); ``reads``: the read ports of a written memory, each
    reading its own copy beside the write port (the ROMs here have one); ``rw_check``: a
    read in the cycle of a write of the same word must return the old word (no
    ``no_rw_check``).

    Where the family's mapping is modelled (:attr:`Family.yosys_bram_cost`), Yosys's choice:
    block RAM when it costs less than soft logic (a ROM: 1/16 per bit, so from about 2 kbit
    of varying bits per primitive) and than LUT RAM; elsewhere every ROM is block RAM and
    every written memory from :data:`_BUFFER_BLOCK_RAM_BITS`."""
    rom = words is not None
    if fam.yosys_bram_cost is None:
        if rom or width * depth >= _BUFFER_BLOCK_RAM_BITS:
            return reads * _primitives(fam, width, depth)
        return 0
    if rom:
        words = words + [0] * (depth - len(words))
    width = _live_width(width, words)
    if width == 0:  # every word the same: no memory left
        return 0
    emu = _EMU_READ_PORT * reads
    if not rom and rw_check:
        emu += _EMU_READ_FIRST + _EMU_TRANSPARENCY * reads
    cost, primitives = _block_cost(fam, width, depth, rom=rom, reads=reads, emu=emu)
    # Yosys compares against the logic cost rounded down, then the LUT RAM's (a written
    # memory; its cells are no ROMs), and the first of equal costs wins.
    others = [int(width * depth * (_LOGIC_COST_ROM_BIT if rom else _LOGIC_COST_RAM_BIT))]
    if not rom and fam.yosys_lutram_cell is not None:
        others.append(_lutram_cost(fam, width, depth, reads=reads))
    return primitives if cost < min(others) else 0


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


def _signed_bits(shape) -> int:
    """Bits of ``shape`` as a signed multiplier operand (an unsigned one takes a sign bit)."""
    shape = Shape.cast(shape)
    return shape.width + (not shape.signed)


def _mul2dsp(fam: Family, a: int, b: int, *, top: bool = True) -> int:
    """DSPs Yosys's mul2dsp.v gives an ``a`` x ``b``-bit product: the wider operand first
    (``top``: the original product only), each operand wider than the tile cut into
    tile-wide slices from the bottom and the rest, a slice narrower than
    :attr:`Family.yosys_dsp_min_width` left to logic."""
    x, y = fam.dsp_tile
    if top and a < b:
        a, b = b, a
    if min(a, b) < fam.yosys_dsp_min_width:
        return 0
    if a > x:
        n = (a - 1) // x
        return n * _mul2dsp(fam, x, b, top=False) + _mul2dsp(fam, a - n * x, b, top=False)
    if b > y:
        n = (b - 1) // y
        return n * _mul2dsp(fam, a, y, top=False) + _mul2dsp(fam, a, b - n * y, top=False)
    return 1


def _product_dsps(fam: Family, a, b) -> int:
    """DSPs of a product of operand shapes ``a`` and ``b``: one where both fit one tile as
    signed operands (on ECP5 the ``MULT18X18D`` primitive,
    :class:`~lstm_fpga.hw.pipeline.RegisteredProduct`); a wider one is inferred, and where
    the family's splitting is modelled, split as Yosys splits it (two unsigned operands stay
    unsigned, the DSPs multiply them so; with a signed one both are signed), else in whole
    tiles."""
    a, b = Shape.cast(a), Shape.cast(b)
    tiles = _dsps(fam, _signed_bits(a), _signed_bits(b))
    if tiles == 1 or fam.yosys_dsp_min_width is None:
        return tiles
    if a.signed or b.signed:
        return _mul2dsp(fam, _signed_bits(a), _signed_bits(b))
    return _mul2dsp(fam, a.width, b.width)


def _product(fam: Family, name: str, a, b) -> tuple[str, int, int, int]:
    """A multiplier entry: the product of operand shapes ``a`` and ``b`` (its operand bits
    as signed operands) and its DSPs."""
    return (name, _signed_bits(a), _signed_bits(b), _product_dsps(fam, a, b))


def _table_unit(fam: Family, name: str, tables, memories, multipliers) -> None:
    """The ROMs of an :class:`~lstm_fpga.hw.activation.ActivationUnit` of ``tables``
    (values, and the differences where it interpolates: otherwise synthesis drops the unread
    ROM) and its interpolation product."""
    roms, operands = table_roms(tables), interpolation_shapes(tables)
    for field in ("value", "delta") if operands is not None else ("value",):
        shape, depth, words = roms[field]
        bits = Shape.cast(shape).width
        label = f"{name} ROM" if field == "value" else f"{name} delta ROM"
        memories.append((label, bits, depth, _memory_primitives(fam, bits, depth, words=words)))
    if operands is not None:
        multipliers.append(_product(fam, f"{name} interpolation", *operands))


def _attention(fam: Family, plan: EnginePlan, memories, multipliers) -> None:
    """The attention unit's memories and products (hw/attention.py), its table unit's, and
    the FIFOs in front of it (hw/engine.py)."""
    from .engine import attention_buffer_steps, attention_resources

    unit = attention_resources(plan)
    for name, (shape, depth, words) in unit.memories().items():
        bits = Shape.cast(shape).width
        label = "attention " + name.replace("_rom", " ROM").replace("_mem", " memory")
        memories.append((label, bits, depth, _memory_primitives(fam, bits, depth, words=words)))
    _table_unit(fam, "attention table", unit.tables, memories, multipliers)
    # h_t and u_t through a SyncFIFOBuffered of a few steps each: one payload in its output
    # register, the other depth - 1 in its memory.
    steps, layouts = attention_buffer_steps(plan), unit.stream_layouts()
    for name, per_step in (("h", unit.pooling.features), ("u", unit.pooling.attention_size)):
        bits, words = Shape.cast(layouts[name]).width, steps * per_step - 1
        if words >= 1:
            primitives = _memory_primitives(fam, bits, words)
            memories.append((f"attention {name} buffer", bits, words, primitives))
    for name, (a, b) in unit.products().items():
        multipliers.append(_product(fam, "attention " + name.replace("_", " "), a, b))


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
    # The sequencer's x, vector and state buffers (hw/elements.py): one x bank per input
    # element; each column group reads every buffer through its own port (the output reader
    # the vectors through one more). ``no_rw_check``: none needs the old word on a collision.
    buffers = (
        ("x buffer", plan.input_shape.width, x_buffer_words(plan), plan.groups),
        (
            "vector buffer",
            plan.state_shape.width,
            max(2, plan.vector_depth),
            plan.groups + plan.copies_outputs,
        ),
        ("state buffer", plan.state_shape.width, state_memory_words(plan), plan.groups),
    )
    for name, bits, words, reads in buffers:
        banks = plan.config.input_elements if name == "x buffer" else 1
        primitives = _memory_primitives(fam, bits, words, reads=reads, rw_check=False)
        memories.append((name, bits, words, banks * primitives))
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
        _table_unit(fam, name, list(tables), memories, multipliers)
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
    if plan.attention is not None:
        _attention(fam, plan, memories, multipliers)
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
