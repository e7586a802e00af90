"""HostLink and the UART in the Amaranth simulator (the Verilator virtual device is in
test_virtual_device.py)."""

import io

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from lstm_fpga.host import protocol as P
from lstm_fpga.hw import EnginePlan, HardwareConfig, LstmTop, TopInterface
from lstm_fpga.hw.hostlink import HostLink, core_signature
from lstm_fpga.hw.uart import UartRx, UartTx, clocks_per_bit
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import random_input, random_model
from tests.host.uart_model import UartReceiver, send_bytes


@pytest.mark.parametrize(("clk", "baud", "cycles"), [(48e6, 115_200, 417), (25e6, 3_125_000, 8)])
def test_clocks_per_bit(clk, baud, cycles):
    assert clocks_per_bit(clk, baud) == cycles


@pytest.mark.parametrize(
    ("clk", "baud", "message"),
    [(1e6, 500_000, "at least 4"), (10e6, 1_900_000, "off by"), (0, 9600, "positive")],
)
def test_clocks_per_bit_refuses(clk, baud, message):
    with pytest.raises(ValueError, match=message):
        clocks_per_bit(clk, baud)


@pytest.mark.parametrize("cpb", [4, 5, 7])
def test_uart_loopback(cpb):
    """Bytes through UartTx -> UartRx arrive intact, back to back."""
    data = bytes(np.random.default_rng(cpb).integers(0, 256, 12, dtype=np.uint8))

    class Loop(wiring.Component):
        def __init__(self):
            self.tx, self.rx = UartTx(cpb), UartRx(cpb)
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    dut = Loop()
    got = []

    async def send(ctx):
        for byte in data:
            ctx.set(dut.tx.data.payload, byte)
            ctx.set(dut.tx.data.valid, 1)
            await ctx.tick().until(dut.tx.data.ready)
        ctx.set(dut.tx.data.valid, 0)
        await ctx.tick().repeat(20 * cpb)

    async def receive(ctx):
        async for _, _, valid, value, error in ctx.tick().sample(
            dut.rx.data.valid, dut.rx.data.payload, dut.rx.framing_error
        ):
            assert not error
            if valid:
                got.append(value)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    assert bytes(got) == data


def _plan(**shape):
    return EnginePlan(random_model(3, 4, seed=1, **shape), HardwareConfig(lanes=3))


def _unused(*elaboratables):
    """Not elaborated on purpose (only their signatures are checked)."""
    for e in elaboratables:
        e._MustUse__silence = True


def test_link_core_member_is_the_flipped_top_signature():
    plan = _plan(head=2)
    core = LstmTop(plan)
    link = HostLink(core.interface, clk_freq=48e6, baud=115_200)
    _unused(core, core.engine, link)
    assert core_signature(core.interface) == core.signature
    assert link.signature.members["core"].signature == core.signature.flip()
    assert link.clocks_per_bit == 417
    assert link.timeout_cycles == round(48e6 * 0.05)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_payload": 2}, "max_payload"),
        ({"y_depth": 30_000}, "y_depth"),
        ({"timeout_cycles": 10}, "timeout_cycles"),
        ({"baud": 20_000_000}, "too fast"),
    ],
)
def test_link_parameters_are_checked(options, message):
    args = {"clk_freq": 48e6, "baud": 115_200, **options}
    with pytest.raises(ValueError, match=message):
        HostLink(TopInterface(_plan()), **args)


CPB = 4


def _simulate_link(model, frames_bytes, *, quiet_after=400):
    """Send each byte string to a link + core on its rx pin (waiting ``quiet_after`` cycles
    after each), return every frame it answered."""
    plan = EnginePlan(model, HardwareConfig(lanes=3))

    class Top(wiring.Component):
        def __init__(self):
            self.core = LstmTop(plan)
            self.link = HostLink(
                self.core.interface, clk_freq=4e6, baud=1_000_000, timeout_cycles=200
            )
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.core, m.submodules.link = self.core, self.link
            wiring.connect(m, self.link.core, self.core)
            return m

    top = Top()
    link = top.link
    uart = UartReceiver(CPB)

    async def send(ctx):
        ctx.set(link.rx, 1)
        await ctx.tick().repeat(5)
        for data in frames_bytes:
            await send_bytes(ctx, link.rx, data, CPB)
            await ctx.tick().until(~link.busy)
            await ctx.tick().repeat(quiet_after)

    async def receive(ctx):
        async for _, _, tx in ctx.tick().sample(link.tx):
            uart.sample(tx)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    received = uart.received
    stream = io.BytesIO(bytes(received))
    answers = []
    while stream.tell() < len(received):
        answers.append(P.read_frame(stream.read))
    return top.core.interface, answers


def test_link_errors_then_input_in_the_amaranth_simulator():
    """A bad CRC, a truncated frame and a wrong SEQ are answered with their error frames and
    change nothing; then an INPUT frame's outputs equal the reference."""
    model = random_model(3, 4, seed=2)
    x = random_input(model, 2, rng=3)
    iface = TopInterface(EnginePlan(model, HardwareConfig(lanes=3)))
    size = P.beat_bytes(iface.x.width)
    beats = b"".join(P.to_le(int(v), size) for v in iface.pack_x(x))
    good = P.encode_frame(P.Frame(P.FrameType.INPUT, 1, bytes([P.InputFlags.LAST]) + beats))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x40
    _, answers = _simulate_link(
        model,
        [
            P.encode_frame(P.Frame(P.FrameType.INFO, 0)),
            bytes(bad_crc),
            good[:7],
            P.encode_frame(P.Frame(P.FrameType.INPUT, 5, bytes([P.InputFlags.LAST]) + beats)),
            good,
            P.encode_frame(P.Frame(P.FrameType.READ_OUTPUTS, 2, P.to_le(100, 2))),
        ],
    )
    assert [a.error for a in answers[1:4]] == [
        (P.ErrorCode.BAD_CRC, 0),
        (P.ErrorCode.TRUNCATED, 0),
        (P.ErrorCode.OUT_OF_ORDER, 1),
    ]
    assert answers[4] == P.Frame(P.FrameType.INPUT | P.RESPONSE_BIT, 1)
    payload = answers[5].payload
    y_bytes = P.beat_bytes(iface.y.width + 1)
    words = [P.from_le(payload[k : k + y_bytes]) for k in range(0, len(payload), y_bytes)]
    y = iface.unpack_y([w & ((1 << iface.y.width) - 1) for w in words])
    expected = run_reference(model, x[:, None, :]).output[:, 0, :].reshape(-1)
    np.testing.assert_array_equal(y, expected)
    assert [w >> iface.y.width for w in words] == [0] * (len(words) - 1) + [1]
