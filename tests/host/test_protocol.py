"""The host link protocol's frame coding (lstm_fpga.host.protocol): round trips, CRC, errors."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_fpga.host import protocol as P

frames = st.builds(
    P.Frame,
    type=st.integers(0, 255),
    seq=st.integers(0, P.SEQ_MODULUS - 1),
    payload=st.binary(max_size=300),
    version=st.integers(0, 255),
)


def test_crc_is_ccitt_false():
    assert P.crc16(b"123456789") == 0x29B1
    assert P.crc16(b"") == P.CRC_INIT


def test_overhead_and_layout():
    data = P.encode_frame(P.Frame(P.FrameType.READ_STATUS, 9, b"\x01"))
    assert len(data) == P.OVERHEAD_BYTES + 1 == 9
    assert data[:6] == bytes([P.SYNC, P.VERSION, 0x07, 9, 1, 0])
    assert P.from_le(data[-2:]) == P.crc16(data[1:-2])


@settings(max_examples=200, deadline=None)
@given(frames)
def test_round_trip(frame):
    data = P.encode_frame(frame)
    assert len(data) == P.OVERHEAD_BYTES + len(frame.payload)
    assert P.decode_frame(data) == frame
    assert P.read_frame(io.BytesIO(data).read) == frame


@settings(max_examples=200, deadline=None)
@given(frames, st.data())
def test_every_single_bit_error_is_caught(frame, data):
    encoded = bytearray(P.encode_frame(frame))
    bit = data.draw(st.integers(8, 8 * len(encoded) - 1))  # past SYNC
    encoded[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(P.FrameError):
        P.decode_frame(bytes(encoded))


@settings(max_examples=100, deadline=None)
@given(frames, st.binary(max_size=20).filter(lambda b: P.SYNC not in b))
def test_read_frame_skips_bytes_before_sync(frame, garbage):
    stream = io.BytesIO(garbage + P.encode_frame(frame))
    assert P.read_frame(stream.read) == frame


@settings(max_examples=100, deadline=None)
@given(frames, st.data())
def test_truncated_frame_times_out(frame, data):
    encoded = P.encode_frame(frame)
    cut = data.draw(st.integers(1, len(encoded) - 1))
    with pytest.raises(TimeoutError):
        P.read_frame(io.BytesIO(encoded[:cut]).read)


@pytest.mark.parametrize(
    ("field", "value"), [("type", 256), ("seq", -1), ("seq", P.SEQ_MODULUS), ("version", 300)]
)
def test_frame_fields_are_checked(field, value):
    args = {"type": 1, "seq": 0, field: value}
    with pytest.raises(ValueError, match=field):
        P.Frame(**args)


def test_error_frames_decode_their_code():
    frame = P.Frame(P.FrameType.ERROR, 3, bytes([P.ErrorCode.OUT_OF_ORDER, 7]))
    assert frame.error == (P.ErrorCode.OUT_OF_ORDER, 7)
    assert P.Frame(P.FrameType.INFO | P.RESPONSE_BIT, 3).error is None


@pytest.mark.parametrize("bits", [1, 7, 8, 9, 17, 33])
def test_beat_bytes(bits):
    assert P.beat_bytes(bits) == -(-bits // 8)
    value = (1 << bits) - 1
    assert P.from_le(P.to_le(value, P.beat_bytes(bits))) == value


def test_status_layout_sizes():
    layout = dict(P.status_layout(20, 32, ("a", "b")))
    assert layout == {
        "cycles": 3,
        "flags": 1,
        "y_level": 2,
        "state_level": 2,
        "sat_a": 4,
        "sat_b": 4,
        "dropped": 2,
    }
