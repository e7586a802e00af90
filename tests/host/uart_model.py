"""The host side of an 8N1 UART in the Amaranth simulator: bytes framed onto an ``rx`` pin, and
``tx`` sampled once per clock cycle decoded back into bytes (shared by the link and board
tests)."""

from __future__ import annotations

from lstm_fpga.hw.uart import DATA_BITS as _DATA_BITS

__all__ = ["UartReceiver", "send_bytes"]


async def send_bytes(ctx, pin, data: bytes, clocks_per_bit: int) -> None:
    """Drive ``data`` onto ``pin``: a start bit, eight data bits LSB first, a stop bit."""
    for byte in data:
        for bit in [0, *((byte >> k) & 1 for k in range(_DATA_BITS)), 1]:
            ctx.set(pin, bit)
            await ctx.tick().repeat(clocks_per_bit)


class UartReceiver:
    """Decodes ``tx`` samples, one per clock cycle, into :attr:`received`; each bit is read
    in its middle, and a missing stop bit fails the test."""

    def __init__(self, clocks_per_bit: int):
        self.clocks_per_bit = clocks_per_bit
        self.received = bytearray()
        self._state, self._count, self._value, self._bit = None, 0, 0, 0

    def sample(self, tx: int) -> None:
        if self._state is None:
            if tx == 0:
                self._state, self._count = "start", self.clocks_per_bit // 2
                self._value, self._bit = 0, 0
            return
        self._count -= 1
        if self._count:
            return
        self._count = self.clocks_per_bit
        if self._state == "start":
            self._state = "data"
        elif self._state == "data":
            self._value |= tx << self._bit
            self._bit += 1
            self._state = "stop" if self._bit == _DATA_BITS else "data"
        else:
            assert tx == 1, "framing error on tx"
            self.received.append(self._value)
            self._state = None
