"""End to end through the virtual device (Verilator: the whole board top -- reset, LEDs,
HostLink, lstm_top -- behind a TCP socket) with lstm_fpga.host.Device: bit-exact runs, loads,
status, every error frame, and the LEDs."""

import os
from pathlib import Path

import numpy as np
import pytest

from lstm_fpga.host import Device, DeviceError, virtual_device
from lstm_fpga.host import protocol as P
from lstm_fpga.hw.board import LEDS, RESET_CYCLES
from lstm_fpga.project import write_project
from lstm_fpga.sim.virtual_device import read_led_log
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import random_input, random_model, random_state

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


#: Narrow formats (saturations happen) and a Linear head.
MODEL = dict(head=2, scale=2.0, formats="tight", head_formats="tight")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A 3 -> 5 LSTM with a 2-output head on 3 lanes (odd sizes, :data:`MODEL`), its virtual
    device, a driver connected to it and the device's LED log."""
    root = tmp_path_factory.mktemp("virtual")
    model = random_model(3, 5, seed=4, **MODEL)
    model.save(root / "ir" / "model")
    write_project(root / "ir" / "model.json", root / "build", lanes=3)
    cache = Path(os.environ.get("LSTM_FPGA_SIM_CACHE", REPO / "build" / "sim-cache"))
    leds = root / "leds.log"
    with (
        virtual_device(root / "build", cache=cache / "virtual_device", leds=leds) as url,
        Device(url, root / "build", timeout=20) as dev,
    ):
        yield dev, leds


@pytest.fixture
def device(board):
    return board[0]


def _reference(model, x, h0=None, c0=None):
    """Integer reference of one sequence: head output every step, h_n, c_n (``(L*D, H)``)."""
    h0 = None if h0 is None else h0[:, None, :]
    c0 = None if c0 is None else c0[:, None, :]
    r = run_reference(model, x[:, None, :], h0, c0, head_on="all")
    return r.head[:, 0, :], r.h_n[:, 0, :], r.c_n[:, 0, :], r.saturations


@pytest.mark.parametrize("steps", [1, 4, 9])
def test_runs_are_bit_exact(device, steps):
    x = random_input(device.model, steps, rng=steps)
    y, (h, c) = device.run(x, read_state=True)
    head, h_n, c_n, _ = _reference(device.model, x)
    np.testing.assert_array_equal(y, head)
    np.testing.assert_array_equal(h, h_n)
    np.testing.assert_array_equal(c, c_n)


def test_predict_decodes_floats(device):
    model = device.model
    rng = np.random.default_rng(11)
    x = rng.uniform(-1, 1, (5, 2, 3))  # (T, B, I): the build is not batch_first
    y = device.predict(x)
    assert y.shape == (5, 2, 2)
    for b in range(2):
        ints = np.asarray(np.round(x[:, b] * 2.0**model.input_format.frac), dtype=np.int64)
        head, *_ = _reference(model, ints)
        np.testing.assert_array_equal(y[:, b], head * 2.0**-device.interface.y_format.frac)


def test_carry_state_and_load_state(device):
    model = device.model
    rng = np.random.default_rng(5)
    h0, c0 = random_state(model, rng)
    device.load_state(h0, c0)
    x1, x2 = random_input(model, 3, rng=6), random_input(model, 2, rng=7)
    try:
        y1, _ = device.run(x1)
        y2, (h, c) = device.run(x2, carry_state=True, read_state=True)
    finally:  # the next tests start from zeros
        device.load_state(np.zeros_like(h0), np.zeros_like(c0))
    head1, h1, c1, _ = _reference(model, x1, h0, c0)
    head2, h2, c2, _ = _reference(model, x2, h1, c1)
    np.testing.assert_array_equal(y1, head1)
    np.testing.assert_array_equal(y2, head2)
    np.testing.assert_array_equal(h, h2)
    np.testing.assert_array_equal(c, c2)


def test_load_weights_then_status(device):
    first = device.model
    second = random_model(3, 5, seed=8, **MODEL)
    fmt = first.input_format
    x = np.clip(random_input(first, 6, rng=9) * 4, fmt.min_int, fmt.max_int)  # saturations
    device.status(clear=True)
    try:
        device.load_weights(second)
        y, _ = device.run(x)
        head, _, _, counts = _reference(second, x)
        np.testing.assert_array_equal(y, head)
        status = device.status()
        assert counts.total > 0
        assert status.saturations == {
            "preact": counts.preact,
            "cell": counts.cell,
            "hidden": counts.hidden,
            "head": counts.head,
            "attention": 0,  # (no attention pooling: the counter reads 0)
        }
        assert not status.busy and not status.overflow
        assert status.y_level == status.state_level == status.dropped == 0
        assert status.cycles > 0
        assert device.status(clear=True).saturations == status.saturations
        assert set(device.status().saturations.values()) == {0}
    finally:
        device.load_weights(first)


def _frame(device, type_, payload=b"", **fields):
    seq = fields.pop("seq", device._seq)
    return P.encode_frame(P.Frame(int(type_), seq, payload, **fields))


def _bad_crc(device):
    data = bytearray(_frame(device, P.FrameType.READ_STATUS, b"\0"))
    data[-2] ^= 0x01
    return bytes(data)


def _over_long(device):
    length = device.info["max_payload"] + 1
    header = bytes([P.SYNC, P.VERSION, P.FrameType.INPUT, device._seq]) + P.to_le(length, 2)
    return header + bytes(length + P.CRC_BYTES)


MALFORMED = {
    "bad_crc": (_bad_crc, P.ErrorCode.BAD_CRC, lambda d: 0),
    "truncated": (
        lambda d: _frame(d, P.FrameType.READ_STATUS, b"\0")[:5],
        P.ErrorCode.TRUNCATED,
        lambda d: 0,
    ),
    "out_of_order": (
        lambda d: _frame(d, P.FrameType.READ_STATUS, b"\0", seq=(d._seq + 3) % 256),
        P.ErrorCode.OUT_OF_ORDER,
        lambda d: d._seq,
    ),
    "unknown_type": (
        lambda d: _frame(d, 0x33, b"\0"),
        P.ErrorCode.UNKNOWN_TYPE,
        lambda d: 0x33,
    ),
    "wrong_version": (
        lambda d: _frame(d, P.FrameType.READ_STATUS, b"\0", version=P.VERSION + 1),
        P.ErrorCode.BAD_VERSION,
        lambda d: P.VERSION,
    ),
    "bad_length_for_type": (
        lambda d: _frame(d, P.FrameType.READ_STATUS, b"\0\0"),
        P.ErrorCode.BAD_LENGTH,
        lambda d: P.FrameType.READ_STATUS,
    ),
    "partial_beat": (
        lambda d: _frame(d, P.FrameType.INPUT, bytes(2 + d.info["x_bytes"])),
        P.ErrorCode.BAD_LENGTH,
        lambda d: P.FrameType.INPUT,
    ),
    "over_long": (_over_long, P.ErrorCode.BAD_LENGTH, lambda d: P.FrameType.INPUT),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frames_get_their_error_and_the_device_keeps_working(device, case):
    make, code, detail = MALFORMED[case]
    expected_detail = detail(device)
    answer = device.send_raw(make(device))
    assert answer.type == P.FrameType.ERROR
    assert answer.error == (code, expected_detail)
    # Nothing happened: the next request in sequence works, and so does a run.
    x = random_input(device.model, 2, rng=1)
    y, _ = device.run(x)
    np.testing.assert_array_equal(y, _reference(device.model, x)[0])


def test_error_answer_raises_device_error(device):
    seq = device._seq
    device._seq = (seq + 7) % 256
    with pytest.raises(DeviceError, match="OUT_OF_ORDER") as info:
        device.status()
    assert info.value.code is P.ErrorCode.OUT_OF_ORDER and info.value.detail == seq
    device._seq = seq
    device.status()


def test_resync_after_an_abandoned_run(device):
    """Inputs sent without reading their outputs, then bytes of half a frame: resync empties
    the queue and the line, and the next run is bit-exact."""
    x = random_input(device.model, 3, rng=12)
    beats = b"".join(P.to_le(int(v), device.info["x_bytes"]) for v in device.interface.pack_x(x))
    device.request(P.FrameType.INPUT, bytes([P.InputFlags.LAST]) + beats)
    device._serial.write(_frame(device, P.FrameType.READ_STATUS, b"\0")[:4])
    device.resync()
    assert device.status().y_level == 0
    y, _ = device.run(x)
    np.testing.assert_array_equal(y, _reference(device.model, x)[0])


LED = {text.split(" ")[0]: i for i, text in enumerate(LEDS)}


def test_leds_show_reset_then_busy_and_done(board):
    """The board top's LEDs as the harness sees them: reset lit from the start for the
    power-on count, then dark for good; a run lights busy and leaves it dark, and lights done
    (stretched 0.1 s of clock: still lit a status request later)."""
    device, path = board
    device.status()
    before = len(read_led_log(path))
    x = random_input(device.model, 3, rng=13)
    y, _ = device.run(x)
    np.testing.assert_array_equal(y, _reference(device.model, x)[0])
    device.status()  # the run's last frame has ended: its LED changes are logged
    log = read_led_log(path)

    def lit(bits, name):
        return (bits >> LED[name]) & 1

    first_cycle, first = log[0]
    assert first_cycle == 0 and lit(first, "reset")
    released = next(cycle for cycle, bits in log if not lit(bits, "reset"))
    assert released <= 2 + 2 + RESET_CYCLES + 2  # PLL lock, synchroniser, count, register
    assert not any(lit(bits, "reset") for cycle, bits in log if cycle >= released)
    run = log[before - 1 :]
    busy = [lit(bits, "busy") for _, bits in run]
    assert busy[0] == 0 and 1 in busy and busy[-1] == 0
    assert lit(run[-1][1], "done")
    assert not any(lit(bits, "error") for _, bits in log)
