"""Weight memory controller: one weight bank and one bias bank per MAC lane.

See :mod:`lstm_fpga.hw.banks` for what is stored where. All lanes read the same address of
their own bank in the same cycle (no conflicts by construction); a write port reloads single
words at run time.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .banks import BankImages
from .config import index_shape
from .pipeline import broadcast, delay, fanout_levels

__all__ = [
    "BLOCK_RAM_MIN_BITS",
    "MEMORY_INIT_STYLES",
    "WeightMemory",
    "WeightTarget",
    "weight_bank_module",
    "weight_bank_verilog",
    "write_layout",
]

#: How generated Verilog initialises the weight banks: ``initial`` assignments inside the
#: Verilog, or ``$readmemh`` of the per-lane ``.hex`` files (path relative to the simulator's
#: or synthesis tool's working directory).
MEMORY_INIT_STYLES = ("inline", "readmemh")

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
    return data.StructLayout(
        {
            "target": unsigned(1),
            "lane": index_shape(images.lanes),
            "address": index_shape(max(images.depth, images.bias_depth)),
            "data": unsigned(max(images.weight_width, images.bias_width)),
        }
    )


class WeightMemory(wiring.Component):
    """Per-lane weight and bias banks with a shared read address and a write port.

    Ports
    -----
    weight_address : In, ``range(passes * (I + H))``
        Word read from every weight bank; ``weights[p]`` holds it :attr:`weight_latency`
        cycles later.
    bias_address : In, ``range(passes)``
        Word read from every bias bank; ``biases[p]`` holds it :attr:`bias_latency` cycles
        later.
    weights, biases : Out, arrays of ``lanes`` signed words
        Read data (a new address every cycle).
    write : In, stream (always ready) of :func:`write_layout`
        One word per valid cycle into bank ``lane`` at ``address`` of ``target``; it is written
        :attr:`write_latency` cycles later (a read of that word in that cycle returns the old
        value).
    write_pending : Out
        A write is in flight: reads that must see it wait until this is 0.

    Pipeline: ``address_delay`` (``bias_delay``) address registers, replicated into a
    broadcast tree so that none drives more than
    :data:`~lstm_fpga.hw.pipeline.FANOUT` banks; the block-RAM read; the output register
    (:data:`READ_LATENCY` cycles for read and output register). Throughput one read per
    cycle. Writes: the request is registered, its address and data are replicated the same
    way and each bank's write enable is decoded into its own register, so neither the
    (combinational) write handshake nor one enable fans out to every bank.
    """

    #: Cycles from a bank's address to its registered read data: the synchronous read, then
    #: the output register.
    READ_LATENCY = 2

    def __init__(
        self,
        images: BankImages,
        *,
        verilog_banks: str | None = None,
        address_delay: int = 0,
        bias_delay: int = 0,
    ):
        if address_delay < 0 or bias_delay < 0:
            raise ValueError("address delays cannot be negative")
        self._address_delay = address_delay
        self._bias_delay = bias_delay
        if verilog_banks is not None and verilog_banks not in MEMORY_INIT_STYLES:
            raise ValueError(
                f"verilog_banks must be None or one of {MEMORY_INIT_STYLES}, not {verilog_banks!r}"
            )
        self._images = images
        self._verilog_banks = verilog_banks
        self._weight_shape = Shape(images.weight_width, signed=True)
        self._bias_shape = Shape(images.bias_width, signed=True)
        super().__init__(
            {
                "weight_address": In(index_shape(images.depth)),
                "bias_address": In(index_shape(images.bias_depth)),
                "weights": Out(data.ArrayLayout(self._weight_shape, images.lanes)),
                "biases": Out(data.ArrayLayout(self._bias_shape, images.lanes)),
                "write": In(stream.Signature(write_layout(images), always_ready=True)),
                "write_pending": Out(1),
            }
        )

    @property
    def images(self) -> BankImages:
        return self._images

    @property
    def weight_latency(self) -> int:
        """Cycles from ``weight_address`` to ``weights``."""
        return self._address_delay + self.READ_LATENCY

    @property
    def bias_latency(self) -> int:
        """Cycles from ``bias_address`` to ``biases``."""
        return self._bias_delay + self.READ_LATENCY

    @property
    def write_latency(self) -> int:
        """Cycles from a ``write`` beat to the bank write: the request register, then the
        replicated address/data tree whose last level is the enables' decode."""
        return 1 + fanout_levels(self._images.lanes)

    def _write_requests(self, m: Module, platform) -> list:
        """Per lane: ``(enables, address, data)`` of the registered, replicated write."""
        lanes = self._images.lanes
        tree = fanout_levels(lanes)
        request = Signal(self.write.payload.shape(), name="write_request", reset_less=True)
        valid = Signal(name="write_valid")
        m.d.sync += [request.eq(self.write.payload), valid.eq(self.write.valid)]
        words = broadcast(m, platform, Cat(request.address, request.data), lanes, tree, "write")
        # The lane and target fields reach the decoders one level before the enables.
        selects = broadcast(
            m, platform, Cat(request.lane, request.target), lanes, tree - 1, "write_select"
        )
        # The valid bit (control state, with reset) goes along its own chain: stage ``tree - 1``
        # meets the replicated fields at the decoders, stage ``tree`` is the enables' cycle.
        stages = [valid]
        for k in range(tree):
            stage = Signal(name=f"write_valid_d{k + 1}")
            m.d.sync += stage.eq(stages[-1])
            stages.append(stage)
        m.d.comb += self.write_pending.eq(Cat(*stages).any())
        requests = []
        address_bits = len(request.address)
        for lane in range(lanes):
            lane_field = selects[lane][: len(request.lane)]
            target_field = selects[lane][len(request.lane) :]
            hit = stages[tree - 1] & (lane_field == lane)
            # Bit k enables target k (``enables[WeightTarget.BIAS]``): one bit per target.
            targets = (WeightTarget.WEIGHT, WeightTarget.BIAS)
            enables = Signal(len(targets), name=f"write_enable{lane}")
            m.d.sync += enables.eq(Cat(*(hit & (target_field == t) for t in targets)))
            word = words[lane]
            requests.append((enables, word[:address_bits], word[address_bits:]))
        return requests

    def elaborate(self, platform):
        m = Module()
        images = self._images
        lanes = images.lanes
        write_requests = self._write_requests(m, platform)
        weight_addresses = broadcast(
            m, platform, self.weight_address, lanes, self._address_delay, "weight_address"
        )
        bias_addresses = broadcast(
            m, platform, self.bias_address, lanes, self._bias_delay, "bias_address"
        )
        for lane in range(lanes):
            enables, write_address, write_data = write_requests[lane]
            weight_data = Signal(self._weight_shape, name=f"weights_rdata{lane}")
            if self._verilog_banks is not None:
                m.submodules[f"weights_bank{lane}"] = Instance(
                    weight_bank_module(lane),
                    i_clk=ClockSignal(),
                    i_raddr=weight_addresses[lane],
                    o_rdata=weight_data,
                    i_we=enables[WeightTarget.WEIGHT],
                    i_waddr=write_address[: len(self.weight_address)],
                    i_wdata=write_data[: self._weight_shape.width],
                )
            bias_data = Signal(self._bias_shape, name=f"bias_rdata{lane}")
            banks = (
                ("weights", self._weight_shape, images.weights[lane], weight_addresses[lane]),
                ("bias", self._bias_shape, images.biases[lane], bias_addresses[lane]),
            )
            outputs = (weight_data, bias_data)
            for target, ((kind, shape, init, address), output) in enumerate(
                zip(banks, outputs, strict=True)
            ):
                if kind == "weights" and self._verilog_banks is not None:
                    continue
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
                    port.addr.eq(write_address),
                    port.data.eq(write_data[: shape.width]),
                    port.en.eq(enables[target]),
                ]
            # The block RAM's output register (no reset: data).
            m.d.comb += [
                self.weights[lane].eq(delay(m, weight_data, 1, f"weights_q{lane}")),
                self.biases[lane].eq(delay(m, bias_data, 1, f"bias_q{lane}")),
            ]
        return m


def weight_bank_module(lane: int) -> str:
    """Verilog module name of lane ``lane``'s weight bank in generated Verilog."""
    return f"lstm_top_weights_bank{lane}"


def weight_bank_verilog(images: BankImages, lane: int, init: str, hex_name: str) -> str:
    """Verilog of one weight bank: the block RAM template yosys and vendor tools infer.

    Synchronous read with the old word on a same-cycle write (like the simulated
    ``lib.memory.Memory`` read port, which is not transparent), one write port. ``init`` is
    ``"inline"`` (``initial`` assignments) or ``"readmemh"`` (``$readmemh(hex_name)``).
    Amaranth and yosys would need minutes for the init of a large bank; this text takes
    milliseconds, which is why generated Verilog uses it.
    """
    if init not in MEMORY_INIT_STYLES:
        raise ValueError(f"init must be one of {MEMORY_INIT_STYLES}, not {init!r}")
    # At least 2 words, so that the address is never out of range of a 1-bit port.
    words = list(images.weights[lane]) + [0] * max(0, 2 - len(images.weights[lane]))
    width = images.weight_width
    depth = len(words)
    address_bits = index_shape(depth).width
    style = ""
    if depth * width >= BLOCK_RAM_MIN_BITS:
        style = '  (* ram_style = "block", rom_style = "block" *)\n'
    if init == "inline":
        mask = (1 << width) - 1
        digits = (width + 3) // 4
        body = "".join(
            f"    mem[{k}] = {width}'h{int(v) & mask:0{digits}x};\n" for k, v in enumerate(words)
        )
        initial = f"  initial begin\n{body}  end\n"
    else:
        initial = f'  initial $readmemh("{hex_name}", mem);\n'
    return (
        f"module {weight_bank_module(lane)}(clk, raddr, rdata, we, waddr, wdata);\n"
        f"  input clk;\n"
        f"  input [{address_bits - 1}:0] raddr;\n"
        f"  output reg [{width - 1}:0] rdata;\n"
        f"  input we;\n"
        f"  input [{address_bits - 1}:0] waddr;\n"
        f"  input [{width - 1}:0] wdata;\n"
        f"{style}"
        f"  reg [{width - 1}:0] mem [0:{depth - 1}];\n"
        f"{initial}"
        f"  always @(posedge clk) begin\n"
        f"    if (we) mem[waddr] <= wdata;\n"
        f"    rdata <= mem[raddr];\n"
        f"  end\n"
        f"endmodule\n"
    )
