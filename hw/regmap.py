"""The AXI4-Lite register map of ``lstm_axi`` (``build --control axi-lite``), in one table.

:data:`REGISTERS` is the single source of the map: :class:`~lstm_fpga.hw.control.LstmAxi`
decodes it, :func:`c_header` writes ``lstm_regs.h`` from it, :func:`markdown_table` is the
table in ``docs/axi-lite.md`` (a test checks the two agree), and :class:`RegisterMap` holds
the values of its build-constant registers (ID, version, model hash, shapes, formats) for
one :class:`~lstm_fpga.hw.interface.TopInterface`.

Registers are 32 bits wide at 4-byte aligned byte offsets. Access: ``RO`` (writes answer
``SLVERR`` and change nothing), ``RW`` (byte strobes honoured), ``WO`` (write-1 pulses; reads
0). Any address outside the table answers ``SLVERR`` (reads return 0); ``DECERR`` is left to
interconnects.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..sw.ir import LstmModel
from ..sw.numerics import FixedFormat
from .config import HardwareConfigError
from .interface import SaturationKind, TopInterface

__all__ = [
    "ADDRESS_WIDTH",
    "DATA_WIDTH",
    "HASH_BITS",
    "ID_VALUE",
    "MIN_APERTURE_BITS",
    "PROT_WIDTH",
    "REGISTERS",
    "REGISTER_MAP_VERSION",
    "RESP_WIDTH",
    "Access",
    "BitField",
    "Register",
    "RegisterMap",
    "Resp",
    "c_header",
    "format_word",
    "markdown_table",
    "model_hash",
    "register",
]

#: Register (and AXI4-Lite data bus) width.
DATA_WIDTH = 32
_BYTES = DATA_WIDTH // 8
#: The smallest address segment Vivado's address editor assigns (4 KiB): the slave decodes
#: every bit of it, so no register aliases inside its segment.
MIN_APERTURE_BITS = 12
#: Version of this table, ``(major, minor)``: major changes break drivers, minor ones add.
REGISTER_MAP_VERSION = (1, 1)
#: ``ID`` register: ASCII ``LSTM``.
ID_VALUE = int.from_bytes(b"LSTM", "big")
#: Bits of the model hash in ``MODEL_HASH_LO``/``_HI``.
HASH_BITS = 2 * DATA_WIDTH


class Access(enum.Enum):
    RO = "RO"
    RW = "RW"
    WO = "WO"


class Resp(enum.IntEnum):
    """AXI ``BRESP``/``RRESP`` codes this slave answers (``EXOKAY``/``DECERR``: never)."""

    OKAY = 0b00
    SLVERR = 0b10


#: Width of ``BRESP``/``RRESP`` and of ``AWPROT``/``ARPROT`` (AXI4 spec).
RESP_WIDTH = 2
PROT_WIDTH = 3


@dataclass(frozen=True)
class BitField:
    """Bits ``[lsb, lsb + width)`` of a register; ``reset`` its value after ``rst``."""

    name: str
    lsb: int
    width: int
    doc: str
    reset: int = 0

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    """One 32-bit register. ``fields`` empty: one value over the whole word. ``constant``:
    the build-constant value (an int, or per-field ints) computed from the interface."""

    name: str
    offset: int
    access: Access
    doc: str
    fields: tuple[BitField, ...] = ()
    constant: Callable[[RegisterMap], int | dict[str, int]] | None = None

    @property
    def bit_fields(self) -> tuple[BitField, ...]:
        """The fields, or one ``VALUE`` field covering the word."""
        return self.fields or (BitField("VALUE", 0, DATA_WIDTH, self.doc),)

    @property
    def reset(self) -> int:
        """Value after ``rst`` of a non-constant register."""
        return sum(f.reset << f.lsb for f in self.fields)

    def field(self, name: str) -> BitField:
        for f in self.bit_fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")


def _fmt(what: str) -> tuple[BitField, ...]:
    return (
        BitField("WIDTH", 0, 8, f"bits of {what}"),
        BitField("FRAC", 8, 8, "fraction bits, two's complement (value = integer * 2**-FRAC)"),
        BitField("SIGNED", 16, 1, "1: two's complement"),
    )


def _counter(name, offset, doc):
    return Register(name, offset, Access.RO, doc)


#: The saturation counters' offsets: the first four (map 1.0) at 0x30..0x3C, ``SAT_ATTENTION``
#: (added in 1.1) after the map's last register of 1.0.
_SAT_OFFSETS = {
    SaturationKind.PREACT: 0x30,
    SaturationKind.CELL: 0x34,
    SaturationKind.HIDDEN: 0x38,
    SaturationKind.HEAD: 0x3C,
    SaturationKind.ATTENTION: 0x6C,
}
_SAT_DOCS = {
    SaturationKind.PREACT: "pre-activation",
    SaturationKind.CELL: "cell state",
    SaturationKind.HIDDEN: "hidden state",
    SaturationKind.HEAD: "head output",
    SaturationKind.ATTENTION: "attention pooling (score pre-activation, score, alpha, context)",
}


def _sat_counter(kind: SaturationKind) -> Register:
    return _counter(kind.port.upper(), _SAT_OFFSETS[kind], f"saturations of the {_SAT_DOCS[kind]}")


#: The register map (offset order). See ``docs/axi-lite.md`` for the semantics.
REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x00, Access.RO, "0x4C53544D (ASCII `LSTM`)", constant=lambda r: ID_VALUE),
    Register(
        "VERSION",
        0x04,
        Access.RO,
        "register map version",
        (BitField("MINOR", 0, 16, "minor (additions)"), BitField("MAJOR", 16, 16, "major")),
        constant=lambda r: {"MAJOR": REGISTER_MAP_VERSION[0], "MINOR": REGISTER_MAP_VERSION[1]},
    ),
    Register(
        "MODEL_HASH_LO",
        0x08,
        Access.RO,
        "model hash bits 31:0 (first 64 bits of the IR's SHA-256, `build.json`)",
        constant=lambda r: r.hash_word(0),
    ),
    Register(
        "MODEL_HASH_HI", 0x0C, Access.RO, "model hash bits 63:32", constant=lambda r: r.hash_word(1)
    ),
    Register(
        "CONTROL",
        0x10,
        Access.RW,
        "mode bits",
        (
            BitField(
                "ENABLE",
                0,
                1,
                "1: `s_axis_x` passes beats (sequences start); 0: holds `s_axis_x_tready` low "
                "from the next beat boundary",
                reset=1,
            ),
            BitField("CARRY_STATE", 1, 1, "core `carry_state`: start from the last h_n/c_n"),
            BitField("READ_STATE", 2, 1, "core `read_state`: h_n/c_n out on `m_axis_state`"),
            BitField("IRQ_ENABLE", 3, 1, "1: `irq` follows STATUS.DONE"),
        ),
    ),
    Register(
        "COMMAND",
        0x14,
        Access.WO,
        "write 1: one-cycle pulses (reads 0)",
        (
            BitField(
                "CLEAR_STATUS",
                0,
                1,
                "core `clear_status`: clears SAT_*, OVERFLOW, DONE, SEQ_*, BUSY_CYCLES",
            ),
            BitField("CLEAR_DONE", 1, 1, "clears STATUS.DONE (acknowledges `irq`)"),
        ),
    ),
    Register(
        "STATUS",
        0x18,
        Access.RO,
        "status bits",
        (
            BitField("BUSY", 0, 1, "core `busy`: a sequence is in, computing or output"),
            BitField("DONE", 1, 1, "sticky: a sequence's last `y` beat left (core `done`)"),
            BitField("OVERFLOW", 2, 1, "core `overflow` (sticky): a sequence was dropped"),
            BitField("X_OPEN", 3, 1, "`s_axis_x` gate (CONTROL.ENABLE at a beat boundary)", 1),
        ),
    ),
    _counter("SEQ_STARTED", 0x1C, "sequences started (first `x` beat), saturating"),
    _counter("SEQ_DONE", 0x20, "sequences finished (last `y` beat), saturating"),
    _counter("LAST_CYCLES", 0x24, "core `cycles`: first `x` to last `y` beat of the latest"),
    _counter("BUSY_CYCLES_LO", 0x28, "cycles with BUSY high, bits 31:0 (latches _HI)"),
    _counter("BUSY_CYCLES_HI", 0x2C, "bits 63:32 as latched by the last BUSY_CYCLES_LO read"),
    # Map 1.0's counters by name (not by the enum's order, which a new kind may change).
    *(
        _sat_counter(kind)
        for kind in (
            SaturationKind.PREACT,
            SaturationKind.CELL,
            SaturationKind.HIDDEN,
            SaturationKind.HEAD,
        )
    ),
    Register(
        "GEOMETRY",
        0x40,
        Access.RO,
        "model sizes",
        (
            BitField("INPUT_SIZE", 0, 16, "`I`"),
            BitField("HIDDEN_SIZE", 16, 16, "`H`"),
        ),
        constant=lambda r: {"INPUT_SIZE": r.plan.input_size, "HIDDEN_SIZE": r.plan.hidden_size},
    ),
    Register(
        "LAYERS",
        0x44,
        Access.RO,
        "model structure",
        (
            BitField("NUM_LAYERS", 0, 8, "`L`"),
            BitField("NUM_DIRECTIONS", 8, 8, "`D` (2: bidirectional)"),
            BitField("HEAD_OUT", 16, 16, "head outputs `O` (0: no head)"),
        ),
        constant=lambda r: {
            "NUM_LAYERS": r.plan.num_layers,
            "NUM_DIRECTIONS": r.plan.num_directions,
            "HEAD_OUT": r.plan.model_head_out,
        },
    ),
    Register(
        "OUTPUT",
        0x48,
        Access.RO,
        "stream shape",
        (
            BitField("Y_FEATURES", 0, 16, "`y` beats per output vector"),
            BitField("X_ELEMENTS", 16, 8, "`x` elements per beat"),
            BitField("LAST_ONLY", 24, 1, "1: one output vector per sequence (`--output last`)"),
        ),
        constant=lambda r: {
            "Y_FEATURES": r.interface.y_features,
            "X_ELEMENTS": r.interface.x_elements,
            "LAST_ONLY": int(r.interface.output_mode == "last"),
        },
    ),
    Register(
        "LANES",
        0x4C,
        Access.RO,
        "MAC lanes",
        (BitField("BUILT", 0, 16, "physical lanes"), BitField("REQUESTED", 16, 16, "`--lanes`")),
        constant=lambda r: {"BUILT": r.plan.lanes, "REQUESTED": r.plan.config.lanes},
    ),
    Register(
        "MAX_SEQ_LEN",
        0x50,
        Access.RO,
        "longest sequence (0: unlimited)",
        constant=lambda r: r.plan.max_seq_len or 0,
    ),
    Register(
        "X_FORMAT",
        0x54,
        Access.RO,
        "format of `x` elements",
        _fmt("an `x` element"),
        constant=lambda r: format_word(r.plan.model.input_format),
    ),
    Register(
        "Y_FORMAT",
        0x58,
        Access.RO,
        "format of `y` beats",
        _fmt("a `y` beat"),
        constant=lambda r: format_word(r.interface.y_format),
    ),
    Register(
        "TDATA_WIDTHS",
        0x5C,
        Access.RO,
        "`tdata` bits of the streams",
        (
            BitField("X", 0, 8, "`s_axis_x`"),
            BitField("Y", 8, 8, "`m_axis_y`"),
            BitField("STATE", 16, 8, "`m_axis_state`"),
            BitField("INIT", 24, 8, "`s_axis_init`"),
        ),
        constant=lambda r: {
            "X": r.interface.x.width,
            "Y": r.interface.y.width,
            "STATE": r.interface.state.width,
            "INIT": r.interface.init.width,
        },
    ),
    Register(
        "W_WIDTH",
        0x60,
        Access.RO,
        "`tdata` bits of `s_axis_w`",
        constant=lambda r: r.interface.w.width,
    ),
    Register(
        "STATE_FIELDS",
        0x64,
        Access.RO,
        "`m_axis_state_tdata` layout",
        (
            BitField("H_WIDTH", 0, 8, "bits of `h` (from bit 0)"),
            BitField("C_OFFSET", 8, 8, "first bit of `c` (0: a GRU, no `c`)"),
            BitField("C_WIDTH", 16, 8, "bits of `c` (0: a GRU, no `c`)"),
        ),
        constant=lambda r: {
            "H_WIDTH": r.interface.state.field("h").width,
            **_c_field(r.interface),
        },
    ),
    Register(
        "STATE_BEATS",
        0x68,
        Access.RO,
        "beats of one h_n/c_n read-out (`L*D*H`)",
        constant=lambda r: r.interface.state_beats,
    ),
    _sat_counter(SaturationKind.ATTENTION),
)


def _c_field(interface) -> dict:
    """``C_OFFSET``/``C_WIDTH`` of the state stream's ``c`` (zeros for a GRU: no ``c``)."""
    if "c" not in interface.state_fields:
        return {"C_OFFSET": 0, "C_WIDTH": 0}
    c = interface.state.field("c")
    return {"C_OFFSET": c.offset, "C_WIDTH": c.width}


#: Address bits of ``s_axi_awaddr``/``araddr``: the map's extent, at least the 4 KiB segment.
ADDRESS_WIDTH = max(MIN_APERTURE_BITS, (max(r.offset for r in REGISTERS) + _BYTES - 1).bit_length())


def register(name: str) -> Register:
    for r in REGISTERS:
        if r.name == name:
            return r
    raise KeyError(f"no register {name!r}")


def _check_table() -> None:
    offsets = [r.offset for r in REGISTERS]
    names = {r.name for r in REGISTERS}
    if any(kind.port.upper() not in names for kind in SaturationKind):
        raise AssertionError("every saturation counter must have its register")
    if offsets != sorted(set(offsets)) or any(o % _BYTES for o in offsets):
        raise AssertionError("register offsets must be distinct, ascending and word aligned")
    for r in REGISTERS:
        used = 0
        for f in r.fields:
            if f.mask & used or f.lsb + f.width > DATA_WIDTH or f.reset >> f.width:
                raise AssertionError(f"register {r.name}: field {f.name} overlaps or overflows")
            used |= f.mask
        if r.constant is not None and r.access is not Access.RO:
            raise AssertionError(f"register {r.name}: constants are read-only")


_check_table()


def format_word(fmt: FixedFormat) -> dict[str, int]:
    """The ``*_FORMAT`` fields of ``fmt`` (``FRAC`` as its 8-bit two's complement)."""
    return {"WIDTH": fmt.width, "FRAC": fmt.frac & 0xFF, "SIGNED": int(fmt.signed)}


def model_hash(model: LstmModel) -> str:
    """SHA-256 (hex) of the IR: its readable part (shapes, formats) and every integer array
    (weights, biases, projections, attention pooling, head), so two builds of one model carry
    the same hash and models that differ in any weight do not."""
    digest = hashlib.sha256(json.dumps(model.to_json_dict(), sort_keys=True).encode())
    arrays = [a for d in model.directions for a in (d.w_ih, d.w_hh, d.bias)]
    arrays += [d.w_hr for d in model.directions if d.w_hr is not None]
    if model.attention is not None:
        arrays += [model.attention.w, model.attention.bias, model.attention.v]
    if model.head is not None:
        arrays += [model.head.weight, model.head.bias]
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


class RegisterMap:
    """:data:`REGISTERS` with the build-constant values of one :class:`TopInterface`."""

    def __init__(self, interface: TopInterface):
        self.interface = interface
        self.plan = interface.plan

    @cached_property
    def model_hash(self) -> str:
        return model_hash(self.plan.model)

    def hash_word(self, index: int) -> int:
        """Word ``index`` (0: ``LO``) of :attr:`hash64`."""
        return (self.hash64 >> (DATA_WIDTH * index)) & ((1 << DATA_WIDTH) - 1)

    @property
    def hash64(self) -> int:
        """``MODEL_HASH_HI:MODEL_HASH_LO``: the hash's first 16 hex digits as a number."""
        return int(self.model_hash[: HASH_BITS // 4], 16)

    @cached_property
    def constants(self) -> dict[str, int]:
        """Value of every build-constant register; raises if a value does not fit its field."""
        values = {}
        for r in REGISTERS:
            if r.constant is None:
                continue
            value = r.constant(self)
            parts = value if isinstance(value, dict) else {"VALUE": value}
            word = 0
            for name, part in parts.items():
                f = r.field(name)
                if not 0 <= part < 1 << f.width:
                    raise HardwareConfigError(
                        f"register {r.name}.{name} cannot hold {part} ({f.width} bits): this "
                        f"model is too large for --control axi-lite's register map"
                    )
                word |= part << f.lsb
            values[r.name] = word
        return values

    def reset_value(self, r: Register) -> int:
        """What ``r`` reads right after ``rst`` (constants: their value; ``WO``: 0)."""
        return self.constants.get(r.name, r.reset if r.access is not Access.WO else 0)

    def records(self) -> list[dict]:
        """Every register's name, offset, access and reset value (``build.json``, manifests)."""
        return [
            {
                "name": r.name,
                "offset": r.offset,
                "access": r.access.value,
                "reset": self.reset_value(r),
            }
            for r in REGISTERS
        ]


# -- generated text ------------------------------------------------------------------------------
PREFIX = "LSTM"


def _reset_text(r: Register) -> str:
    if r.name in ("ID", "VERSION"):
        return f"0x{_fixed_constant(r):08X}"
    if r.constant is not None:
        return "build"
    return f"0x{r.reset:08X}"


def _fixed_constant(r: Register) -> int:
    value = r.constant(None)
    if isinstance(value, dict):
        return sum(v << r.field(k).lsb for k, v in value.items())
    return value


def _bits(f: BitField) -> str:
    return f"{f.lsb}" if f.width == 1 else f"{f.lsb + f.width - 1}:{f.lsb}"


def markdown_table() -> str:
    """The register table of ``docs/axi-lite.md`` (one row per register; fields listed)."""
    rows = [
        "| Offset | Name | Access | Reset | Fields (bits: name, meaning) |",
        "|---|---|---|---|---|",
    ]
    for r in REGISTERS:
        fields = (
            "<br>".join(f"{_bits(f)}: `{f.name}` {f.doc}" for f in r.fields) if r.fields else r.doc
        )
        rows.append(
            f"| 0x{r.offset:03X} | `{r.name}` | {r.access.value} | {_reset_text(r)} | {fields} |"
        )
    return "\n".join(rows) + "\n"


def c_header(regmap: RegisterMap) -> str:
    """``lstm_regs.h``: offsets, field shifts and masks, reset values, and this build's
    constants (``*_VALUE``) for a driver to check it talks to the model it expects."""
    major, minor = REGISTER_MAP_VERSION
    lines = [
        "/* lstm_regs.h: AXI4-Lite register map of lstm_axi, generated by lstm-fpga",
        f" * (register map {major}.{minor}, hw/regmap.py). Do not edit.",
        " * Registers are 32 bits at byte offsets from the slave's base address. Unmapped",
        " * addresses and writes to read-only registers answer SLVERR (reads return 0). */",
        "#ifndef LSTM_REGS_H",
        "#define LSTM_REGS_H",
        "",
        f"#define {PREFIX}_REGMAP_VERSION_MAJOR {major}u",
        f"#define {PREFIX}_REGMAP_VERSION_MINOR {minor}u",
        f"#define {PREFIX}_ADDRESS_WIDTH {ADDRESS_WIDTH}u",
        f"#define {PREFIX}_RESP_OKAY 0x{Resp.OKAY:X}u",
        f"#define {PREFIX}_RESP_SLVERR 0x{Resp.SLVERR:X}u",
        f'#define {PREFIX}_MODEL_HASH "{regmap.model_hash}"',
        "",
    ]
    for r in REGISTERS:
        lines.append(f"/* {r.name} ({r.access.value}): {r.doc} */")
        lines.append(f"#define {PREFIX}_REG_{r.name} 0x{r.offset:03X}u")
        lines.append(f"#define {PREFIX}_{r.name}_RESET 0x{regmap.reset_value(r):08X}u")
        if r.name in regmap.constants:
            lines.append(f"#define {PREFIX}_{r.name}_VALUE 0x{regmap.constants[r.name]:08X}u")
        for f in r.fields:
            lines.append(f"#define {PREFIX}_{r.name}_{f.name}_SHIFT {f.lsb}u")
            lines.append(f"#define {PREFIX}_{r.name}_{f.name}_MASK 0x{f.mask:08X}u")
        lines.append("")
    lines.append("#endif /* LSTM_REGS_H */")
    return "\n".join(lines) + "\n"
