"""A UART (8 data bits, no parity, 1 stop bit, LSB first, line idle high) for the host link.

``clocks_per_bit`` (:func:`clocks_per_bit`) comes from the clock frequency and the baud rate.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import index_shape

__all__ = [
    "BAUD_TOLERANCE",
    "CHARACTER_BITS",
    "DATA_BITS",
    "MIN_CLOCKS_PER_BIT",
    "UartRx",
    "UartTx",
    "clocks_per_bit",
]

#: Data bits per character.
DATA_BITS = 8
#: Bits on the line per character: start, data, stop.
CHARACTER_BITS = DATA_BITS + 2
#: Fewest clock cycles per bit (the receiver samples mid-bit and needs a synchronizer).
MIN_CLOCKS_PER_BIT = 4
#: Largest relative error of the generated baud rate that :func:`clocks_per_bit` accepts (a
#: character of 10 bits then drifts at most a fifth of a bit).
BAUD_TOLERANCE = 0.02


def clocks_per_bit(clk_freq: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz, rounded; :class:`ValueError` when
    there are fewer than :data:`MIN_CLOCKS_PER_BIT` or the baud rate misses by more than
    :data:`BAUD_TOLERANCE`."""
    if clk_freq <= 0 or baud <= 0:
        raise ValueError(f"clock frequency {clk_freq} Hz and baud rate {baud} must be positive")
    cycles = round(clk_freq / baud)
    if cycles < MIN_CLOCKS_PER_BIT:
        raise ValueError(
            f"baud rate {baud} is too fast for a {clk_freq:g} Hz clock: {clk_freq / baud:.2f} "
            f"clock cycles per bit, the UART needs at least {MIN_CLOCKS_PER_BIT}"
        )
    error = abs(clk_freq / cycles - baud) / baud
    if error > BAUD_TOLERANCE:
        raise ValueError(
            f"baud rate {baud} at {clk_freq:g} Hz is off by {100 * error:.1f}% ({cycles} clock "
            f"cycles per bit); choose a baud rate within {100 * BAUD_TOLERANCE:g}%"
        )
    return cycles


class UartRx(wiring.Component):
    """UART receiver.

    Ports
    -----
    rx : In(1)
        The line (asynchronous: two synchronizer flip-flops).
    data : Out(stream of 8 bits)
        One beat per received character, ``valid`` for one cycle (a UART cannot wait:
        ``ready`` is not looked at).
    framing_error : Out(1)
        One-cycle pulse instead of a beat when the stop bit is low (the character is dropped).

    Latency: a character's beat comes 3 cycles after the middle of its stop bit; throughput one
    character per ``10 * clocks_per_bit`` cycles.
    """

    def __init__(self, clocks_per_bit: int):
        if clocks_per_bit < MIN_CLOCKS_PER_BIT:
            raise ValueError(f"clocks_per_bit must be at least {MIN_CLOCKS_PER_BIT}")
        self.clocks_per_bit = clocks_per_bit
        super().__init__(
            {
                "rx": In(1, init=1),
                "data": Out(stream.Signature(8, always_ready=True)),
                "framing_error": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cpb = self.clocks_per_bit
        sync = Signal(2, init=0b11)
        m.d.sync += sync.eq(Cat(self.rx, sync[0]))
        line = sync[1]
        timer = Signal(index_shape(cpb))
        bit = Signal(index_shape(DATA_BITS))
        shift = Signal(DATA_BITS)
        m.d.sync += [self.data.valid.eq(0), self.framing_error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(cpb // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(cpb - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(cpb - 1)]
                    with m.If(bit == DATA_BITS - 1):
                        m.next = "STOP"
                    with m.Else():
                        m.d.sync += bit.eq(bit + 1)
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(line):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):  # wait for the line to go idle again
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """UART transmitter.

    Ports
    -----
    data : In(stream of 8 bits)
        Characters to send; ``ready`` while the transmitter is idle.
    tx : Out(1)
        The line (registered, idle high).

    Latency: the start bit begins the cycle after the handshake; throughput one character per
    ``10 * clocks_per_bit`` cycles.
    """

    def __init__(self, clocks_per_bit: int):
        if clocks_per_bit < MIN_CLOCKS_PER_BIT:
            raise ValueError(f"clocks_per_bit must be at least {MIN_CLOCKS_PER_BIT}")
        self.clocks_per_bit = clocks_per_bit
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        cpb = self.clocks_per_bit
        frame_bits = CHARACTER_BITS
        # Start bit (0), data LSB first, stop bit (1); shifted out from bit 0.
        shift = Signal(frame_bits, init=(1 << frame_bits) - 1)
        left = Signal(index_shape(frame_bits + 1))
        timer = Signal(index_shape(cpb))
        m.d.comb += [self.tx.eq(shift[0]), self.data.ready.eq(left == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                shift.eq(Cat(0, self.data.payload, 1)),
                left.eq(frame_bits),
                timer.eq(cpb - 1),
            ]
        with m.Elif(left != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [shift.eq(Cat(shift[1:], 1)), left.eq(left - 1), timer.eq(cpb - 1)]
        return m
