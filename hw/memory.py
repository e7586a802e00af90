"""Weight memory controller: one weight bank and one bias bank per MAC lane.

See :mod:`lstm_fpga.hw.layout` for what is stored where. All lanes read the same address of
their own bank in the same cycle (no conflicts by construction); a write port reloads single
words at run time.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .config import index_shape
from .layout import BankImages

__all__ = ["BLOCK_RAM_MIN_BITS", "WeightMemory", "WeightTarget", "write_layout"]

#: Weight banks of at least this many bits are marked for block RAM (``ram_style`` and
#: ``rom_style`` = ``"block"``); smaller ones are left to the tool (usually LUT RAM). Without
#: the mark, yosys maps a bank whose write port is unused (a ROM) into LUTs on Xilinx.
BLOCK_RAM_MIN_BITS = 4096


class WeightTarget:
    """Values of the write port's ``target`` field."""

    WEIGHT = 0
    BIAS = 1


def write_layout(images: BankImages) -> data.StructLayout:
    """Payload of the write port: ``target`` (0 weight, 1 bias), ``lane``, ``address``, ``data``.

    ``data`` is the two's complement word (its low ``bias_width`` bits for a bias).
    """
    g = images.geometry
    return data.StructLayout(
        {
            "target": unsigned(1),
            "lane": index_shape(g.lanes),
            "address": index_shape(g.bank_depth),
            "data": unsigned(max(images.weight_width, images.bias_width)),
        }
    )


class WeightMemory(wiring.Component):
    """Per-lane weight and bias banks with a shared read address and a write port.

    Ports
    -----
    weight_address : In, ``range(passes * (I + H))``
        Word read from every weight bank; ``weights[p]`` holds it one cycle later.
    bias_address : In, ``range(passes)``
        Word read from every bias bank; ``biases[p]`` holds it one cycle later.
    weights, biases : Out, arrays of ``lanes`` signed words
        Read data (latency 1 cycle, a new address every cycle).
    write : In, stream (always ready) of :func:`write_layout`
        One word per valid cycle into bank ``lane`` at ``address`` of ``target``. A read of the
        same word in the same cycle returns the old value.
    """

    def __init__(self, images: BankImages):
        self._images = images
        g = images.geometry
        self._weight_shape = Shape(images.weight_width, signed=True)
        self._bias_shape = Shape(images.bias_width, signed=True)
        super().__init__(
            {
                "weight_address": In(index_shape(g.bank_depth)),
                "bias_address": In(index_shape(g.passes)),
                "weights": Out(data.ArrayLayout(self._weight_shape, g.lanes)),
                "biases": Out(data.ArrayLayout(self._bias_shape, g.lanes)),
                "write": In(stream.Signature(write_layout(images), always_ready=True)),
            }
        )

    @property
    def images(self) -> BankImages:
        return self._images

    def elaborate(self, platform):
        m = Module()
        images = self._images
        g = images.geometry
        write = self.write.payload
        for lane in range(g.lanes):
            banks = (
                ("weights", self._weight_shape, images.weights[lane], self.weight_address),
                ("bias", self._bias_shape, images.biases[lane], self.bias_address),
            )
            outputs = (self.weights[lane], self.biases[lane])
            for target, ((kind, shape, init, address), output) in enumerate(
                zip(banks, outputs, strict=True)
            ):
                attrs = {}
                if len(init) * shape.width >= BLOCK_RAM_MIN_BITS:
                    attrs = {"ram_style": "block", "rom_style": "block"}
                # At least 2 words, so that no address port is zero bits wide.
                words = [int(v) for v in init] + [0] * max(0, 2 - len(init))
                memory = Memory(shape=shape, depth=len(words), init=words, attrs=attrs)
                m.submodules[f"{kind}_bank{lane}"] = memory
                read = memory.read_port()
                m.d.comb += [read.addr.eq(address), output.eq(read.data)]
                port = memory.write_port()
                m.d.comb += [
                    port.addr.eq(write.address),
                    port.data.eq(write.data[: shape.width]),
                    port.en.eq(self.write.valid & (write.lane == lane) & (write.target == target)),
                ]
        return m
