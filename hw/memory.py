"""Weight memory controller: packed weight banks and one bias bank per MAC lane.

See :mod:`lstm_fpga.hw.banks` for what is stored where. All lanes read the same address of
their own bank in the same cycle (no conflicts by construction), so the weight banks of a
group of lanes are one wide memory (:func:`~lstm_fpga.hw.banks.bank_packing`); a write port
reloads single words at run time, into one lane's slot of a shared word through that lane's
write enable (the memory's write granularity is one weight: no read-modify-write).
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Instance, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .banks import BankImages, BankPacking
from .config import index_shape
from .pipeline import broadcast, delay, fanout_levels

__all__ = [
    "BLOCK_RAM_MIN_BITS",
    "MEMORY_INIT_STYLES",
    "WeightMemory",
    "WeightTarget",
    "weight_bank_module",
    "weight_bank_verilog",
    "weight_memories_verilog",
    "write_layout",
]

#: How generated Verilog initialises the weight banks: ``initial`` assignments inside the
#: Verilog, or ``$readmemh`` of the per-lane ``.hex`` files (path relative to the simulator's
#: or synthesis tool's working directory).
MEMORY_INIT_STYLES = ("inline", "readmemh")

#: Weight memories of at least this many bits that the packing puts in block RAM are marked
#: for it (``ram_style`` and ``rom_style`` = ``"block"``); smaller ones are left to the tool.
#: Without the mark, yosys maps a bank whose write port is unused (a ROM) into LUTs on
#: Xilinx. Memories the packing puts in LUT RAM are marked ``"distributed"``.
BLOCK_RAM_MIN_BITS = 4096


def _memory_style(packing: BankPacking, group: int, width: int) -> dict[str, str]:
    g = packing.groups[group]
    if not g.block:
        return {"ram_style": "distributed", "rom_style": "distributed"}
    if max(g.depth, 2) * g.lanes * width >= BLOCK_RAM_MIN_BITS:
        return {"ram_style": "block", "rom_style": "block"}
    return {}


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
    """Packed weight banks and per-lane bias banks with a shared read address and a write
    port.

    ``packing`` (:class:`~lstm_fpga.hw.banks.BankPacking`, default one lane per memory)
    groups the lanes' weight banks: group ``k`` is one memory of ``lanes * W`` bits x
    ``depth`` words, lane ``first + s`` in bits ``[s W, (s + 1) W)``, block RAM or LUT RAM as
    the packing says. Its read word is registered once and fans out to its lanes as wires; a
    lane whose address is at or past its group's ``depth`` (a structural zero) reads 0 (the
    registered compare masks it after the output register); writes there are dropped.

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
        value in simulation and is undefined in the synthesized weight memories). A weight
        write enables only ``lane``'s slot of its group's word.
    write_pending : Out
        A write is in flight: reads that must see it wait until this is 0.
    write_pending_next : Out
        ``write_pending`` of the next cycle (a ``write`` beat now, or one in flight short of
        its enables' cycle), for a register that follows ``write_pending`` without lag.

    ``weight_banks=False`` (external weights) builds the bias banks only: ``weights`` is
    then 0 and weight writes are dropped.

    A GRU's bias banks (:attr:`BankImages.split_biases
    <lstm_fpga.hw.banks.BankImages.split_biases>`) are two memories per lane, words ``[0,
    D)`` and ``[D, 2D)`` of its bias address space (``D``: ``bias_read_depth``), read at the
    same ``bias_address``: ``biases`` from the first, ``biases_hn`` (the ``n`` rows' ``b_hn``)
    from the second, with the same latency.

    Pipeline: ``address_delay`` (``bias_delay``) address registers, replicated into a
    broadcast tree so that none drives more than
    :data:`~lstm_fpga.hw.pipeline.FANOUT` memories; the memory read; the output register
    (:data:`READ_LATENCY` cycles for read and output register); then ``data_delay`` more
    registers on the weight words only (:attr:`weight_latency` = ``address_delay +
    READ_LATENCY + data_delay``). A caller with an address tree of two or more levels moves
    one behind the read (``data_delay=1``, same latency): the route from the block RAMs to
    lanes spread over the die gets a cycle of its own (a packed word wider than 18 bits is
    read in the block RAM's 36-bit mode; since ``be427f8`` the ECP5 flow makes the output
    register that mode's too, :mod:`lstm_fpga.eda.bram`). Throughput one
    read per cycle. Writes: the request is registered, its address and data are replicated the same
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
        packing: BankPacking | None = None,
        verilog_banks: str | None = None,
        address_delay: int = 0,
        bias_delay: int = 0,
        data_delay: int = 0,
        weight_banks: bool = True,
    ):
        if address_delay < 0 or bias_delay < 0 or data_delay < 0:
            raise ValueError("address and data delays cannot be negative")
        self._weight_banks = weight_banks
        self._address_delay = address_delay
        self._data_delay = data_delay
        self._bias_delay = bias_delay
        if verilog_banks is not None and verilog_banks not in MEMORY_INIT_STYLES:
            raise ValueError(
                f"verilog_banks must be None or one of {MEMORY_INIT_STYLES}, not {verilog_banks!r}"
            )
        self._images = images
        self._packing = BankPacking.unpacked(images) if packing is None else packing
        if self._packing.lanes != images.lanes:
            raise ValueError(
                f"the packing has {self._packing.lanes} lanes, the images {images.lanes}"
            )
        self._verilog_banks = verilog_banks
        self._weight_shape = Shape(images.weight_width, signed=True)
        self._bias_shape = Shape(images.bias_width, signed=True)
        super().__init__(
            {
                "weight_address": In(index_shape(images.depth)),
                "bias_address": In(index_shape(images.bias_read_depth)),
                "weights": Out(data.ArrayLayout(self._weight_shape, images.lanes)),
                "biases": Out(data.ArrayLayout(self._bias_shape, images.lanes)),
                **(
                    {"biases_hn": Out(data.ArrayLayout(self._bias_shape, images.lanes))}
                    if images.split_biases
                    else {}
                ),
                "write": In(stream.Signature(write_layout(images), always_ready=True)),
                "write_pending": Out(1),
                "write_pending_next": Out(1),
            }
        )

    @property
    def images(self) -> BankImages:
        return self._images

    @property
    def packing(self) -> BankPacking:
        return self._packing

    @property
    def weight_latency(self) -> int:
        """Cycles from ``weight_address`` to ``weights``."""
        return self._address_delay + self.READ_LATENCY + self._data_delay

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
        m.d.comb += [
            self.write_pending.eq(Cat(*stages).any()),
            self.write_pending_next.eq(self.write.valid | Cat(*stages[:-1]).any()),
        ]
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
        images, packing = self._images, self._packing
        lanes, width = images.lanes, self._weight_shape.width
        write_requests = self._write_requests(m, platform)
        groups = packing.groups
        weight_addresses = broadcast(
            m, platform, self.weight_address, len(groups), self._address_delay, "weight_address"
        )
        bias_addresses = broadcast(
            m, platform, self.bias_address, lanes, self._bias_delay, "bias_address"
        )
        for group in groups if self._weight_banks else ():
            k = group.index
            members = range(group.first, group.first + group.lanes)
            enables = Cat(*(write_requests[p][0][WeightTarget.WEIGHT] for p in members))
            _, write_address, write_data = write_requests[group.first]
            # Every lane slot sees the word; only the enabled lane's slot is written.
            slot_data = Cat(*([write_data[:width]] * group.lanes))
            read_data = Signal(group.lanes * width, name=f"weights_rdata{k}")
            address = weight_addresses[k]
            if self._verilog_banks is not None:
                m.submodules[f"weights_group{k}"] = Instance(
                    weight_bank_module(k),
                    i_clk=ClockSignal(),
                    i_raddr=address,
                    o_rdata=read_data,
                    i_we=enables,
                    i_waddr=write_address[: len(self.weight_address)],
                    i_wdata=slot_data,
                )
            else:
                words = images.group_words(packing, k) + [0] * max(0, 2 - group.depth)
                memory = Memory(
                    shape=unsigned(group.lanes * width),
                    depth=len(words),
                    init=words,
                    attrs=_memory_style(packing, k, width),
                )
                m.submodules[f"weights_group{k}"] = memory
                read = memory.read_port()
                m.d.comb += [read.addr.eq(address), read_data.eq(read.data)]
                granularity = {"granularity": width} if group.lanes > 1 else {}
                port = memory.write_port(**granularity)
                # Writes past the stored words (structural zeros) are dropped.
                inside = write_address < len(words)
                m.d.comb += [
                    port.addr.eq(write_address),
                    port.data.eq(slot_data),
                    port.en.eq(Mux(inside, enables, 0) if group.lanes > 1 else enables & inside),
                ]
            # The block RAM's output register (no reset: data), ``data_delay`` registers
            # more, then wires to the lanes.
            word = delay(m, read_data, 1, f"weights_q{k}")
            if self._data_delay:
                word = delay(m, word, self._data_delay, f"weights_q{k}_d")
            stored = None
            if group.depth < images.depth:
                live = Signal(name=f"weights_stored{k}")
                m.d.comb += live.eq(address < group.depth)
                stored = delay(m, live, self.READ_LATENCY + self._data_delay, f"weights_stored{k}")
            for s, p in enumerate(members):
                value = word[s * width : (s + 1) * width]
                if stored is not None:
                    value = Mux(stored, value, 0)
                m.d.comb += self.weights[p].eq(value)
        for lane in range(lanes):
            enables, write_address, write_data = write_requests[lane]
            if not images.split_biases:
                bias = self._bias_bank(
                    m, lane, "", images.biases[lane], bias_addresses[lane], write_address,
                    write_data, enables[WeightTarget.BIAS],
                )  # fmt: skip
                m.d.comb += self.biases[lane].eq(bias)
                continue
            # A GRU's two halves: the write address's half selects the memory.
            half = images.bias_read_depth
            upper = write_address >= half
            for suffix, init, port, address, enable in (
                ("", images.biases[lane][:half], self.biases, write_address, ~upper),
                ("_hn", images.biases[lane][half:], self.biases_hn, write_address - half, upper),
            ):
                bias = self._bias_bank(
                    m, lane, suffix, init, bias_addresses[lane], address, write_data,
                    enables[WeightTarget.BIAS] & enable,
                )  # fmt: skip
                m.d.comb += port[lane].eq(bias)
        return m

    def _bias_bank(self, m, lane, suffix, init, read_address, write_address, write_data, enable):
        """Bias memory ``bias{suffix}_bank{lane}`` with ``init``; returns its registered read
        data (:data:`READ_LATENCY` cycles after ``read_address``)."""
        bias_data = Signal(self._bias_shape, name=f"bias{suffix}_rdata{lane}")
        # ``no_rw_check`` as in :func:`weight_bank_verilog`: no read meets a pending write.
        attrs = {"no_rw_check": 1}
        if len(init) * self._bias_shape.width >= BLOCK_RAM_MIN_BITS:
            attrs |= {"ram_style": "block", "rom_style": "block"}
        # At least 2 words, so that no address port is zero bits wide.
        words = [int(v) for v in init] + [0] * max(0, 2 - len(init))
        memory = Memory(shape=self._bias_shape, depth=len(words), init=words, attrs=attrs)
        m.submodules[f"bias{suffix}_bank{lane}"] = memory
        read = memory.read_port()
        m.d.comb += [read.addr.eq(read_address), bias_data.eq(read.data)]
        port = memory.write_port()
        m.d.comb += [
            port.addr.eq(write_address),
            port.data.eq(write_data[: self._bias_shape.width]),
            port.en.eq(enable),
        ]
        return delay(m, bias_data, 1, f"bias{suffix}_q{lane}")


def _attribute(name: str, value) -> str:
    return f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value}"


def weight_bank_module(group: int) -> str:
    """Verilog module name of packed weight memory ``group`` in generated Verilog."""
    return f"lstm_top_weights_group{group}"


def weight_bank_verilog(
    images: BankImages, packing: BankPacking, group: int, init: str, hex_name: str
) -> str:
    """Verilog of packed weight memory ``group``: the RAM template yosys and vendor tools
    infer, one write enable per lane slot (``we[s]`` writes bits ``[s W, (s + 1) W)``).

    Synchronous read; a read of the word written in the same cycle returns the old word in
    simulation (like the simulated ``lib.memory.Memory`` read port, which is not
    transparent) and is left undefined for synthesis (``no_rw_check``: the engine never reads
    a word while its write is pending). One write port. ``init`` is
    ``"inline"`` (``initial`` assignments) or ``"readmemh"`` (``$readmemh(hex_name)``, the
    file of :meth:`BankImages.group_hex <lstm_fpga.hw.banks.BankImages.group_hex>`).
    Amaranth and yosys would need minutes for the init of a large bank; this text takes
    milliseconds, which is why generated Verilog uses it.
    """
    if init not in MEMORY_INIT_STYLES:
        raise ValueError(f"init must be one of {MEMORY_INIT_STYLES}, not {init!r}")
    g = packing.groups[group]
    # At least 2 words, so that the address is never out of range of a 1-bit port.
    words = images.group_words(packing, group) + [0] * max(0, 2 - g.depth)
    lane_width = images.weight_width
    width = g.lanes * lane_width
    depth = len(words)
    address_bits = index_shape(depth).width
    read_bits = index_shape(images.depth).width
    # ``no_rw_check``: Yosys need not build the bypass that returns the old word when a read
    # meets a write of the same word (52 LUTs and 77 flip-flops per 512 x 36 memory): the
    # engine writes only while idle and reads again after ``write_pending``.
    attrs = {**_memory_style(packing, group, lane_width), "no_rw_check": 1}
    style = "  (* " + ", ".join(_attribute(k, v) for k, v in attrs.items()) + " *)\n"
    if init == "inline":
        digits = (width + 3) // 4
        body = "".join(f"    mem[{k}] = {width}'h{w:0{digits}x};\n" for k, w in enumerate(words))
        initial = f"  initial begin\n{body}  end\n"
    else:
        initial = f'  initial $readmemh("{hex_name}", mem);\n'
    writes = "".join(
        f"      if (we[{s}]) mem[waddr[{address_bits - 1}:0]][{s * lane_width} +: {lane_width}]"
        f" <= wdata[{s * lane_width} +: {lane_width}];\n"
        for s in range(g.lanes)
    )
    # Addresses at or past ``depth`` are structural zeros: WeightMemory masks their reads
    # and drops their writes.
    guard = f"waddr < {depth}" if depth < 1 << read_bits else "1'b1"
    return (
        f"module {weight_bank_module(group)}(clk, raddr, rdata, we, waddr, wdata);\n"
        f"  input clk;\n"
        f"  input [{read_bits - 1}:0] raddr;\n"
        f"  output reg [{width - 1}:0] rdata;\n"
        f"  input [{g.lanes - 1}:0] we;\n"
        f"  input [{read_bits - 1}:0] waddr;\n"
        f"  input [{width - 1}:0] wdata;\n"
        f"{style}"
        f"  reg [{width - 1}:0] mem [0:{depth - 1}];\n"
        f"{initial}"
        f"  always @(posedge clk) begin\n"
        f"    if ({guard}) begin\n{writes}    end\n"
        f"    rdata <= mem[raddr[{address_bits - 1}:0]];\n"
        f"  end\n"
        f"endmodule\n"
    )


def weight_memories_verilog(images: BankImages, packing: BankPacking, init: str) -> str:
    """Verilog of every packed weight memory (:func:`weight_bank_verilog`), ``$readmemh``
    paths ``weights_groupNN.hex`` (:func:`~lstm_fpga.hw.banks.hex_file_name`)."""
    from .banks import hex_file_name

    groups = len(packing.groups)
    return "".join(
        weight_bank_verilog(images, packing, g, init, hex_file_name("weights", g, groups))
        for g in range(groups)
    )
