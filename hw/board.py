"""A board around ``lstm_top``: clock (oscillator -> PLL), reset, status LEDs, the host link.

Three layers, each usable alone:

* :class:`CoreInstance` -- the generated Verilog ``lstm_top`` as an Amaranth component with
  the same signature as :class:`~lstm_fpga.hw.engine.LstmTop` (an ``Instance``), so a board
  runs exactly the Verilog that ``lstm-fpga simulate`` verified;
* :class:`BoardTop` -- the board-independent logic in the ``sync`` domain: power-on and
  button reset, the core (:class:`CoreInstance`, or any component of that signature, e.g.
  ``LstmTop`` itself in the Amaranth simulator), the host link between the UART pins and
  the core's streams, and the status LEDs. Its ports are pins (``rx``, ``tx``, ``button``,
  ``leds``), so it simulates without a platform;
* :class:`BoardPlatformTop` -- the top a board's Amaranth platform builds: the oscillator
  into an ECP5 ``EHXPLLL`` (:class:`Ecp5Pll`, dividers from :func:`ecp5_pll`), the ``sync``
  domain held in reset until the PLL locks, and the pins of :data:`BOARDS`.

LEDs (:data:`LEDS`, from LED 0): heartbeat, busy, done, error, saturated, link activity,
reset. ``docs/board.md`` has the board table and the flow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Shape,
    Signal,
)
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth.lib.wiring import In, Out

from .interface import (
    CLOCK,
    RESET,
    SEPARATOR,
    TOP_NAME,
    Direction,
    SaturationKind,
    TopInterface,
)
from .pll import Ecp5Pll, PllError, PllParameters, ecp5_pll

__all__ = [
    "BOARDS",
    "LEDS",
    "Board",
    "BoardError",
    "BoardPlatformTop",
    "BoardTop",
    "CoreInstance",
    "Ecp5Pll",
    "PllParameters",
    "board",
    "ecp5_pll",
]


class BoardError(PllError):
    """A board, clock or PLL request that cannot be met (one line, names the fix)."""


# -- boards -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Board:
    """A board :func:`~lstm_fpga.hw.bitstream.write_bitstream` builds for: its Amaranth
    platform (``module:Class`` in ``amaranth-boards``), the part (``part``; its capacity:
    ``device``, a key of :data:`lstm_fpga.hw.devices.DEVICES`), nextpnr's device and package
    options, and the platform resources used: oscillator, reset button (``None``: power-on
    reset only), the status LEDs (``(resource, number, subsignal or None)`` in the order of
    :data:`LEDS`), UART."""

    name: str
    title: str
    platform: str
    part: str
    device: str
    nextpnr: str
    package: str
    speed: int
    clock: str
    clock_mhz: float
    button: tuple[str, int] | None
    leds: tuple[tuple[str, int, str | None], ...]
    uart: str = "uart"

    def platform_class(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)


def _ulx3s(size: int) -> Board:
    return Board(
        name=f"ulx3s-{size}f",
        title=f"ULX3S (ECP5 LFE5U-{size}F)",
        platform=f"amaranth_boards.ulx3s:ULX3S_{size}F_Platform",
        part=f"LFE5U-{size}F",
        device=f"ecp5-{size}",
        nextpnr=f"{size}k",
        package="CABGA381",
        speed=6,
        clock="clk25",
        clock_mhz=25.0,
        button=("button_fire", 0),
        leds=tuple(("led", i, None) for i in range(8)),
    )


#: ECPIX-5's four RGB LEDs carry the status: green heartbeat, blue busy, green done, red
#: error, red saturated, blue link activity, red reset (:data:`LEDS` order).
_ECPIX5_LEDS = (
    ("rgb_led", 0, "g"),
    ("rgb_led", 1, "b"),
    ("rgb_led", 1, "g"),
    ("rgb_led", 0, "r"),
    ("rgb_led", 2, "r"),
    ("rgb_led", 2, "b"),
    ("rgb_led", 3, "r"),
)

#: Boards by ``--board`` name: every one has a USB-UART for the host link.
BOARDS = {
    b.name: b
    for b in (
        _ulx3s(85),
        _ulx3s(45),
        _ulx3s(25),
        _ulx3s(12),
        Board(
            name="ecpix5-85f",
            title="LambdaConcept ECPIX-5 (ECP5-5G LFE5UM5G-85F)",
            platform="amaranth_boards.ecpix5:ECPIX585Platform",
            part="LFE5UM5G-85F",
            device="ecp5-85",
            nextpnr="um5g-85k",
            package="CABGA554",
            speed=8,
            clock="clk100",
            clock_mhz=100.0,
            button=("rst", 0),
            leds=_ECPIX5_LEDS,
        ),
    )
}


def board(name: str) -> Board:
    """The board called ``name`` (case-insensitive); the error lists the known ones."""
    found = BOARDS.get(name.lower())
    if found is None:
        raise BoardError(f"unknown board {name!r}; --board is one of {'|'.join(BOARDS)}")
    return found


# -- the core -----------------------------------------------------------------------------------
def core_signature(interface: TopInterface) -> wiring.Signature:
    """The signature of ``lstm_top`` (that of :class:`~lstm_fpga.hw.engine.LstmTop`)."""
    from .engine import axi_stream_signature

    def flow(direction: Direction):
        return In if direction is Direction.IN else Out

    members = {}
    for s in interface.streams:
        shape = Shape(s.width, signed=s.signed)
        members[s.name] = flow(s.direction)(axi_stream_signature(shape))
    for port in interface.signals:
        members[port.name] = flow(port.direction)(port.width)
    return wiring.Signature(members)


def _member(component, port_name: str):
    """The signal of ``component`` behind the ``lstm_top`` port ``port_name``."""
    if SEPARATOR in port_name:
        stream, member = port_name.split(SEPARATOR, 1)
        return getattr(getattr(component, stream), member)
    return getattr(component, port_name)


class CoreInstance(wiring.Component):
    """The generated Verilog module ``lstm_top`` as an ``Instance``, with the signature of
    :class:`~lstm_fpga.hw.engine.LstmTop` (streams ``x``, ``y``, ``state``, ``init``, ``w``,
    control, status, saturation counters; :class:`~lstm_fpga.hw.interface.TopInterface`
    is the contract: formats, latency, throughput, protocol). ``clk`` and ``rst`` are the
    ``sync`` domain's. The Verilog (``lstm_top.v`` or ``lstm_top_inline.v`` of a build)
    must be added to the platform (``platform.add_file``)."""

    def __init__(self, interface: TopInterface):
        self.interface = interface
        super().__init__(core_signature(interface))

    def elaborate(self, platform):
        m = Module()
        ports = {f"i_{CLOCK}": ClockSignal(), f"i_{RESET}": ResetSignal()}
        for port in self.interface.ports:
            if port.name in (CLOCK, RESET):
                continue
            prefix = "i_" if port.direction is Direction.IN else "o_"
            ports[prefix + port.name] = _member(self, port.name)
        m.submodules.core = Instance(TOP_NAME, **ports)
        return m


# -- the board-independent top ------------------------------------------------------------------
#: LED index -> meaning (boards with fewer LEDs show the first ones).
LEDS = (
    "heartbeat (blinks about once a second while the clock runs)",
    "busy (the host link handles a frame, or the core holds a sequence)",
    "done (lit about 0.1 s after every sequence's last output)",
    "error (sticky: the core dropped a sequence, its overflow flag)",
    "saturated (sticky: a saturation counter is non-zero)",
    "link activity (UART traffic, stretched to about 0.1 s)",
    "reset (the core is held in reset: power-on or the reset button)",
)
#: Cycles the core is held in reset after the clock starts (and after a button press).
RESET_CYCLES = 16


def _stretch(m: Module, pulse, cycles: int, name: str):
    """``pulse`` held high for ``cycles`` cycles after it falls (a visible LED)."""
    count = Signal(range(cycles + 1), name=f"{name}_count")
    with m.If(pulse):
        m.d.sync += count.eq(cycles)
    with m.Elif(count != 0):
        m.d.sync += count.eq(count - 1)
    return count != 0


class BoardTop(wiring.Component):
    """Everything of a board top but the clock: reset, ``lstm_top``, host link, LEDs.

    Clock: the ``sync`` domain at ``clk_freq`` Hz (its reset: the PLL not yet locked).
    Reset: the core (and link) stay in reset for :data:`RESET_CYCLES` cycles after ``sync``
    leaves reset and while ``button`` (asynchronous, synchronised here by two flip-flops) is
    pressed; the core's reset is registered (one cycle after either). Pins: ``rx`` (UART
    from the host, idle high), ``tx`` (to the host), ``leds`` (:data:`LEDS`, active high,
    registered: one cycle after what they show; the reset LED lit from power-on).
    The busy LED is the link's ``busy`` or the core's: while it and the reset LED are dark
    and ``rx`` and ``tx`` have idled for a character's time, nothing in the top changes but
    the heartbeat and the LED stretchers (the virtual device,
    :mod:`lstm_fpga.sim.virtual_device`, stops its clock then).

    ``core`` is any component with the ``lstm_top`` signature (default
    :class:`CoreInstance`); ``link`` a component with ``rx``/``tx``/``busy`` and, flipped, the
    core's signature under ``core`` (the host link), or ``None``: then the core's inputs
    stay idle (:attr:`TopInterface.idle_inputs`) and ``tx`` idle high -- a top for tests of
    the clock, reset and LEDs only.
    """

    def __init__(
        self,
        interface: TopInterface,
        *,
        clk_freq: float,
        leds: int = len(LEDS),
        core: wiring.Component | None = None,
        link: wiring.Component | None = None,
        reset_cycles: int = RESET_CYCLES,
    ):
        if not 1 <= leds:
            raise BoardError(f"a board top needs at least one LED, not {leds}")
        self.interface = interface
        self.clk_freq = clk_freq
        self.core = core if core is not None else CoreInstance(interface)
        self.link = link
        self.reset_cycles = reset_cycles
        super().__init__(
            {"rx": In(1, init=1), "tx": Out(1, init=1), "button": In(1), "leds": Out(leds)}
        )

    def elaborate(self, platform):
        m = Module()
        # Reset: power-on count, then the synchronised button; registered.
        button = Signal()
        m.submodules.button_sync = FFSynchronizer(self.button, button)
        settle = Signal(range(self.reset_cycles + 1))
        with m.If(button):
            m.d.sync += settle.eq(0)
        with m.Elif(settle != self.reset_cycles):
            m.d.sync += settle.eq(settle + 1)
        core_rst = Signal(init=1)
        m.d.sync += core_rst.eq(settle != self.reset_cycles)
        m.domains.core = ClockDomain("core", local=True)
        m.d.comb += [
            ClockSignal("core").eq(ClockSignal("sync")),
            ResetSignal("core").eq(core_rst),
        ]
        m.submodules.core = DomainRenamer("core")(self.core)
        core = self.core
        activity = Const(0)
        busy = core.busy
        if self.link is None:
            for name, value in self.interface.idle_inputs:
                m.d.comb += _member(core, name).eq(value)
            m.d.comb += self.tx.eq(1)
        else:
            m.submodules.link = DomainRenamer("core")(self.link)
            wiring.connect(m, self.link.core, core)
            m.d.comb += [self.link.rx.eq(self.rx), self.tx.eq(self.link.tx)]
            activity = ~self.rx | ~self.tx
            busy = core.busy | self.link.busy
        # LEDs.
        tenth = max(1, int(self.clk_freq // 10))
        half = max(1, int(self.clk_freq // 2)).bit_length() - 1
        beat = Signal(half + 1)
        m.d.sync += beat.eq(beat + 1)
        error = Signal()
        saturated = Signal()
        counters = [getattr(core, kind.port) for kind in SaturationKind]
        with m.If(core_rst):
            m.d.sync += [error.eq(0), saturated.eq(0)]
        with m.Else():
            with m.If(core.overflow):
                m.d.sync += error.eq(1)
            with m.If(Cat(*(c.any() for c in counters)).any()):
                m.d.sync += saturated.eq(1)
        states = (
            beat[-1],
            busy,
            _stretch(m, core.done, tenth, "done"),
            error,
            saturated,
            _stretch(m, activity, tenth, "activity"),
            core_rst,
        )
        # Registered: the pins are driven by flip-flops (no logic path leaves the chip); lit
        # from power-on (and while the PLL is unlocked) as the states are then: reset only.
        shown = states[: len(self.leds)]
        power_on = sum(1 << i for i, state in enumerate(shown) if state is core_rst)
        leds = Signal(len(self.leds), init=power_on)
        m.d.sync += leds.eq(Cat(*shown))
        m.d.comb += self.leds.eq(leds)
        return m


# -- the platform top ---------------------------------------------------------------------------
class BoardPlatformTop(Elaboratable):
    """The top an Amaranth platform builds for :class:`Board` ``spec``: oscillator ->
    :class:`Ecp5Pll` (``pll``) -> ``sync`` (reset until the PLL locks, synchronised) ->
    :class:`BoardTop` on the board's UART, button and LEDs. ``top_kwargs`` go to
    :class:`BoardTop` (``link``, ``core``)."""

    def __init__(self, spec: Board, interface: TopInterface, pll: PllParameters, **top_kwargs):
        self.spec = spec
        self.pll = pll
        self.top = BoardTop(
            interface, clk_freq=float(pll.output_mhz) * 1e6, leds=len(spec.leds), **top_kwargs
        )

    def elaborate(self, platform):
        m = Module()
        spec = self.spec
        m.submodules.clk_buffer = clk_in = io.Buffer("i", platform.request(spec.clock, 0, dir="-"))
        m.submodules.pll = pll = Ecp5Pll(self.pll)
        m.d.comb += pll.clk_in.eq(clk_in.i)
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(pll.clk_out)
        m.submodules.reset_sync = ResetSynchronizer(~pll.locked, domain="sync")
        platform.add_clock_constraint(pll.clk_out, float(self.pll.output_mhz) * 1e6)
        m.submodules.top = top = self.top
        subsignals = {io_.name: "-" for io_ in platform.lookup(spec.uart, 0).ios}
        uart = platform.request(spec.uart, 0, dir=subsignals)
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx)]
        if spec.button is not None:
            button = io.Buffer("i", platform.request(*spec.button, dir="-"))
            m.submodules.button_buffer = button
            m.d.comb += top.button.eq(button.i)
        requested = {}
        for index, (resource, number, subsignal) in enumerate(spec.leds):
            if (resource, number) not in requested:
                ios = platform.lookup(resource, number).ios
                dirs = "-" if subsignal is None else {io_.name: "-" for io_ in ios}
                requested[resource, number] = platform.request(resource, number, dir=dirs)
            port = requested[resource, number]
            led = io.Buffer("o", port if subsignal is None else getattr(port, subsignal))
            m.submodules[f"led{index}_buffer"] = led
            m.d.comb += led.o.eq(top.leds[index])
        return m
