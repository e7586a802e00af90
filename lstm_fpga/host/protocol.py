"""The host link protocol: every number of it (frame layout, types, flags, error codes, CRC)
and frame encoding/decoding, shared by the hardware bridge (:mod:`lstm_fpga.hw.hostlink`),
the driver (:class:`lstm_fpga.host.Device`) and the tests. ``docs/host.md`` is its prose.

A frame (both directions)::

    SYNC | VERSION | TYPE | SEQ | LENGTH (u16 LE) | PAYLOAD (LENGTH bytes) | CRC (u16 LE)

``CRC`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no
final XOR) over ``VERSION`` .. the last payload byte. A response carries the ``SEQ`` of the
request it answers. Multi-byte numbers are little-endian; a stream beat is
``ceil(bits / 8)`` bytes, little-endian, zero-padded above its bits.

This module imports nothing from the rest of the project (no Amaranth, no serial port).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

__all__ = [
    "ARG_BYTES",
    "CRC_BYTES",
    "CRC_INIT",
    "CRC_POLY",
    "CRC_WIDTH",
    "DROPPED_WIDTH",
    "ERROR_BYTES",
    "HEADER_BYTES",
    "INFO_LAYOUT",
    "LENGTH_BYTES",
    "MAX_LENGTH",
    "OVERHEAD_BYTES",
    "RESPONSE_BIT",
    "SEQ_MODULUS",
    "STATUS_FLAG_NAMES",
    "SYNC",
    "VERSION",
    "ErrorCode",
    "Frame",
    "FrameError",
    "FrameType",
    "InputFlags",
    "LoadFlags",
    "StatusFlags",
    "beat_bytes",
    "crc16",
    "decode_frame",
    "encode_frame",
    "from_le",
    "info_values",
    "read_frame",
    "status_layout",
    "to_le",
]

#: First byte of every frame.
SYNC = 0xA5
#: Protocol version; a device answers a frame of another version with ``BAD_VERSION``.
#: 2: ``READ_STATUS`` answers ``sat_attention`` too (after ``sat_head``).
VERSION = 2
#: SYNC, VERSION, TYPE, SEQ, LENGTH.
LENGTH_BYTES = 2
HEADER_BYTES = 4 + LENGTH_BYTES
#: CRC-16/CCITT-FALSE.
CRC_WIDTH = 16
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_BYTES = CRC_WIDTH // 8
#: Bytes a frame adds to its payload.
OVERHEAD_BYTES = HEADER_BYTES + CRC_BYTES
#: Largest payload the LENGTH field can describe (a device accepts up to its own maximum,
#: reported by ``INFO``).
MAX_LENGTH = (1 << (8 * LENGTH_BYTES)) - 1
#: Bytes of the argument of ``READ_OUTPUTS`` and ``READ_STATE`` (most beats wanted).
ARG_BYTES = 2
#: Bytes of an ``ERROR`` frame's payload: the code and a detail.
ERROR_BYTES = 2
#: Sequence numbers count modulo this.
SEQ_MODULUS = 256
#: A response's TYPE is its request's TYPE with this bit set.
RESPONSE_BIT = 0x80


class FrameType(enum.IntEnum):
    """Request types (host to device). The response to a request has type
    ``request | RESPONSE_BIT``, or is an ``ERROR`` frame."""

    #: Empty payload. Answer: the device's geometry (:data:`INFO_LAYOUT`). Accepted with any
    #: SEQ, it sets the next expected SEQ to SEQ + 1 (how a host starts a session).
    INFO = 0x01
    #: ``LoadFlags`` byte, then weight words (``w`` beats). Answer after the core took them.
    LOAD_WEIGHTS = 0x02
    #: ``LoadFlags`` byte, then ``init`` beats (``h0`` then ``c0``). Answer after taken.
    LOAD_STATE = 0x03
    #: ``InputFlags`` byte, then ``x`` beats. Answer after the core took them.
    INPUT = 0x04
    #: u16 LE: most ``y`` beats wanted. Answer: up to that many beats from the output queue,
    #: each ``y`` data with ``tlast`` in the bit above it.
    READ_OUTPUTS = 0x05
    #: u16 LE: most ``state`` beats wanted. Answer: up to that many ``state`` beats (``h`` low,
    #: ``c`` above, ``tlast`` in the bit above both).
    READ_STATE = 0x06
    #: ``StatusFlags`` byte. Answer: the fields of :func:`status_layout`.
    READ_STATUS = 0x07
    #: Device to host only: payload ``ErrorCode`` byte and a detail byte.
    ERROR = 0x7F


class ErrorCode(enum.IntEnum):
    """First payload byte of an ``ERROR`` frame; the second byte is a detail."""

    #: The CRC does not match (detail: 0). The frame had no effect.
    BAD_CRC = 1
    #: LENGTH exceeds the device's maximum, or does not fit the type (detail: the TYPE).
    BAD_LENGTH = 2
    #: A frame stopped: no byte for the device's inter-byte timeout (detail: 0).
    TRUNCATED = 3
    #: TYPE is not a request (detail: the TYPE).
    UNKNOWN_TYPE = 4
    #: SEQ is not the expected one (detail: the expected SEQ). The frame had no effect.
    OUT_OF_ORDER = 5
    #: VERSION is not the device's (detail: the device's VERSION).
    BAD_VERSION = 6


class LoadFlags(enum.IntFlag):
    #: ``tlast`` on this frame's final beat (the load ends with this frame).
    LAST = 1


class InputFlags(enum.IntFlag):
    #: ``tlast`` on this frame's final beat (the sequence ends with this frame).
    LAST = 1
    #: The core's ``carry_state`` while this frame's beats are offered.
    CARRY_STATE = 2
    #: The core's ``read_state`` while this frame's beats are offered.
    READ_STATE = 4


class StatusFlags(enum.IntFlag):
    """Request: ``READ_STATUS`` payload byte. Answer: the status flag byte."""

    #: Request: pulse ``clear_status`` after sampling. Answer: ``busy``.
    CLEAR = 1


#: Answer to ``INFO`` (after the header's VERSION): name and byte count of each field.
INFO_LAYOUT = (
    ("max_payload", 2),
    ("y_depth", 2),
    ("state_depth", 2),
    ("x_bytes", 1),
    ("y_bytes", 1),
    ("state_bytes", 1),
    ("init_bytes", 1),
    ("w_bytes", 1),
)

#: Width of the status answer's count of dropped bytes (saturating): bytes that arrived while
#: the device executed or answered a frame, and characters with a bad stop bit.
DROPPED_WIDTH = 16
#: Bits of the status answer's flag byte, from bit 0.
STATUS_FLAG_NAMES = ("busy", "started", "done", "overflow")


def status_layout(cycles_bits: int, counter_bits: int, kinds) -> tuple[tuple[str, int], ...]:
    """Answer to ``READ_STATUS``: field names and byte counts. ``cycles`` (the core's cycle
    counter), the flag byte (:data:`STATUS_FLAG_NAMES`), the ``y`` and ``state`` queue levels
    (u16), one saturation counter per kind (``sat_<kind>``), then ``dropped``
    (:data:`DROPPED_WIDTH`)."""
    return (
        ("cycles", beat_bytes(cycles_bits)),
        ("flags", 1),
        ("y_level", 2),
        ("state_level", 2),
        *((f"sat_{kind}", beat_bytes(counter_bits)) for kind in kinds),
        ("dropped", beat_bytes(DROPPED_WIDTH)),
    )


def info_values(payload: bytes) -> dict[str, int]:
    """The fields of an ``INFO`` answer."""
    values, offset = {}, 0
    for name, size in INFO_LAYOUT:
        values[name] = from_le(payload[offset : offset + size])
        offset += size
    if offset != len(payload):
        raise FrameError(f"INFO answer has {len(payload)} bytes, expected {offset}")
    return values


def beat_bytes(bits: int) -> int:
    """Bytes of a ``bits``-bit beat on the link."""
    if bits <= 0:
        raise ValueError(f"a beat has at least one bit, not {bits}")
    return (bits + 7) // 8


def to_le(value: int, size: int) -> bytes:
    """``value`` (its low ``8 * size`` bits) as ``size`` little-endian bytes."""
    return (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def from_le(data: bytes) -> int:
    return int.from_bytes(bytes(data), "little")


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


class FrameError(ValueError):
    """Bytes that are not a well-formed frame."""


@dataclass(frozen=True)
class Frame:
    """One frame: ``type`` (an int: requests, responses and bad types alike), ``seq``,
    ``payload``; ``version`` defaults to :data:`VERSION`."""

    type: int
    seq: int
    payload: bytes = b""
    version: int = VERSION

    def __post_init__(self):
        for name, value, limit in (
            ("type", self.type, 256),
            ("seq", self.seq, SEQ_MODULUS),
            ("version", self.version, 256),
        ):
            if not 0 <= value < limit:
                raise ValueError(f"frame {name} {value} is outside 0..{limit - 1}")
        if len(self.payload) > MAX_LENGTH:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_LENGTH}")

    @property
    def error(self) -> tuple[ErrorCode | int, int] | None:
        """``(code, detail)`` of an ``ERROR`` frame, else ``None``."""
        if self.type != FrameType.ERROR or len(self.payload) != ERROR_BYTES:
            return None
        code, detail = self.payload
        try:
            return ErrorCode(code), detail
        except ValueError:
            return code, detail


def encode_frame(frame: Frame) -> bytes:
    """The bytes of ``frame``."""
    body = (
        bytes([frame.version, frame.type, frame.seq])
        + to_le(len(frame.payload), LENGTH_BYTES)
        + bytes(frame.payload)
    )
    return bytes([SYNC]) + body + to_le(crc16(body), CRC_BYTES)


def decode_frame(data: bytes) -> Frame:
    """The frame that is exactly ``data``; :class:`FrameError` says what is wrong."""
    data = bytes(data)
    if len(data) < OVERHEAD_BYTES:
        raise FrameError(f"{len(data)} bytes are shorter than a frame ({OVERHEAD_BYTES})")
    if data[0] != SYNC:
        raise FrameError(f"first byte {data[0]:#04x} is not SYNC {SYNC:#04x}")
    version, type_, seq = struct.unpack_from("<BBB", data, 1)
    length = from_le(data[4:HEADER_BYTES])
    if len(data) != OVERHEAD_BYTES + length:
        raise FrameError(f"LENGTH {length} needs {OVERHEAD_BYTES + length} bytes, not {len(data)}")
    crc = from_le(data[-CRC_BYTES:])
    if crc16(data[1:-CRC_BYTES]) != crc:
        raise FrameError(f"CRC {crc:#06x} does not match {crc16(data[1:-CRC_BYTES]):#06x}")
    return Frame(type_, seq, data[HEADER_BYTES:-CRC_BYTES], version)


def read_frame(read) -> Frame:
    """Read one frame with ``read(n)`` (returns up to ``n`` bytes; fewer on a timeout):
    bytes before SYNC are skipped. :class:`TimeoutError` when ``read`` runs dry,
    :class:`FrameError` when the frame is malformed."""

    def exactly(n: int) -> bytes:
        data = read(n)
        if len(data) != n:
            raise TimeoutError(f"timed out waiting for {n - len(data)} more bytes of a frame")
        return data

    while True:
        byte = read(1)
        if not byte:
            raise TimeoutError("timed out waiting for a frame")
        if byte[0] == SYNC:
            break
    header = byte + exactly(HEADER_BYTES - 1)
    length = from_le(header[4:HEADER_BYTES])
    return decode_frame(header + exactly(length + CRC_BYTES))
