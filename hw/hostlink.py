"""The host link: the protocol of :mod:`lstm_fpga.host.protocol` over a UART, bridged to the
ports of ``lstm_top`` (:class:`~lstm_fpga.hw.engine.LstmTop`).

A board top does::

    m.submodules.core = core = LstmTop(plan)
    m.submodules.link = link = HostLink(core.interface, clk_freq=48e6, baud=115_200)
    wiring.connect(m, link.core, core)
    # then link.rx / link.tx to the UART pins (link.busy to an LED if you like)
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value
from amaranth.lib import fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from ..host.protocol import (
    ARG_BYTES,
    CRC_BYTES,
    CRC_INIT,
    CRC_POLY,
    CRC_WIDTH,
    DROPPED_WIDTH,
    ERROR_BYTES,
    HEADER_BYTES,
    INFO_LAYOUT,
    LENGTH_BYTES,
    MAX_LENGTH,
    RESPONSE_BIT,
    SEQ_MODULUS,
    STATUS_FLAG_NAMES,
    SYNC,
    VERSION,
    ErrorCode,
    FrameType,
    InputFlags,
    LoadFlags,
    StatusFlags,
    beat_bytes,
    status_layout,
)
from .engine import axi_stream_signature
from .interface import (
    AXI_MEMBERS,
    SATURATION_COUNTER_WIDTH,
    SATURATION_KINDS,
    Control,
    Direction,
    SaturationKind,
    Status,
    TopInterface,
)
from .uart import CHARACTER_BITS, UartRx, UartTx, clocks_per_bit
from .uart import DATA_BITS as BYTE

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_Y_DEPTH",
    "HostLink",
    "LinkGeometry",
    "core_signature",
    "crc16_next",
]

#: Default largest request payload (bytes of the receive buffer).
DEFAULT_MAX_PAYLOAD = 512
#: Default depth (beats) of the queue that collects ``y``.
DEFAULT_Y_DEPTH = 256
#: Default inter-byte timeout.
DEFAULT_TIMEOUT_SECONDS = 0.05


def _flow(direction: Direction):
    return In if direction is Direction.IN else Out


def core_signature(interface: TopInterface) -> wiring.Signature:
    """The signature of ``lstm_top`` (:class:`~lstm_fpga.hw.engine.LstmTop`) for
    ``interface``, built from its port table; a link's ``core`` member is its flip."""
    members = {}
    for s in interface.streams:
        members[s.name] = _flow(s.direction)(axi_stream_signature(Shape(s.width, s.signed)))
    for port in interface.signals:
        members[port.name] = _flow(port.direction)(port.width)
    return wiring.Signature(members)


def crc16_next(crc, byte):
    """CRC-16/CCITT-FALSE register after one more byte (an Amaranth expression)."""
    for i in range(BYTE):
        feedback = crc[CRC_WIDTH - 1] ^ byte[BYTE - 1 - i]
        crc = (crc << 1)[:CRC_WIDTH] ^ Mux(feedback, CRC_POLY, 0)
    return crc


class LinkGeometry:
    """Byte counts of one link: beats per stream (``x``, ``y`` and ``state`` carry ``tlast``
    above the data on the way out), queue depths, the ``INFO`` and status answers."""

    def __init__(self, interface: TopInterface, *, max_payload: int, y_depth: int):
        self.interface = interface
        self.x_bytes = beat_bytes(interface.x.width)
        self.y_bytes = beat_bytes(interface.y.width + 1)
        self.state_bytes = beat_bytes(interface.state.width + 1)
        self.init_bytes = beat_bytes(interface.init.width)
        self.w_bytes = beat_bytes(interface.w.width)
        self.max_payload = max_payload
        self.y_depth = y_depth
        self.state_depth = interface.state_beats
        cycles = interface.port(Status.CYCLES.value).width
        self.status = status_layout(cycles, SATURATION_COUNTER_WIDTH, SATURATION_KINDS)
        smallest = 1 + max(self.x_bytes, self.init_bytes, self.w_bytes)
        if not smallest <= max_payload <= MAX_LENGTH:
            raise ValueError(
                f"max_payload must be between {smallest} (a flag byte and one beat) and "
                f"{MAX_LENGTH}, not {max_payload}"
            )
        for name, depth, size in (
            ("y_depth", y_depth, self.y_bytes),
            ("state depth", self.state_depth, self.state_bytes),
        ):
            if not 1 <= depth * size <= MAX_LENGTH:
                raise ValueError(f"{name} {depth} beats of {size} bytes exceed a frame")

    @property
    def info(self) -> dict[str, int]:
        """The ``INFO`` answer's values."""
        return {name: getattr(self, name) for name, _ in INFO_LAYOUT}

    @property
    def status_bytes(self) -> int:
        return sum(size for _, size in self.status)

    @property
    def info_bytes(self) -> int:
        return sum(size for _, size in INFO_LAYOUT)


class HostLink(wiring.Component):
    """Bridges the host link protocol (:mod:`lstm_fpga.host.protocol`, ``docs/host.md``) on a
    UART to the ports of ``lstm_top``.

    Parameters: ``interface`` (the core's :class:`TopInterface`), ``clk_freq`` (Hz) and
    ``baud`` (:func:`~lstm_fpga.hw.uart.clocks_per_bit`), ``max_payload`` (receive buffer,
    bytes), ``y_depth`` (output queue, beats), ``timeout_cycles`` (inter-byte timeout; default
    :data:`DEFAULT_TIMEOUT_SECONDS` of clock).

    Ports
    -----
    rx : In(1)
        UART from the host (8N1, idle high; synchronized inside).
    tx : Out(1)
        UART to the host.
    busy : Out(1)
        A frame is being received, executed or answered (the link ignores and counts bytes
        that arrive while it executes or answers).
    core : Out(flipped ``lstm_top`` signature, :func:`core_signature`)
        ``wiring.connect(m, link.core, core)``: drives ``x``, ``init``, ``w``, the control
        inputs; takes ``y``, ``state``, the status outputs and saturation counters.

    Protocol: stop and wait. A request is received whole into the buffer and its CRC, VERSION,
    TYPE, SEQ and LENGTH are checked before anything reaches the core; only then are its beats
    offered (``LOAD_WEIGHTS`` on ``w``, ``LOAD_STATE`` on ``init``, ``INPUT`` on ``x``), and
    the answer is sent once the core took them all. ``y`` and ``state`` flow into queues at any
    time (``y_depth`` beats; ``L*D*H`` beats) and ``READ_OUTPUTS``/``READ_STATE`` answer with
    what the queues hold. A LENGTH above ``max_payload`` is answered (``BAD_LENGTH``) after the
    line has been quiet for the timeout; a frame that stops for the timeout is answered with
    ``TRUNCATED``.

    Latency: an answer's first byte is offered to the UART 2 cycles after a load's or an
    input's last beat was taken, at most 9 cycles after the last byte of other requests; each
    byte takes ``10 * clocks_per_bit`` cycles on the line. Throughput: the line's; beats reach
    the core at one byte of beat per 3 cycles. Resources (demo shape, defaults, yosys
    ``synth_ecp5``): 1,312 LUT4, 775 flip-flops, 108 carry cells, 2 DP16KD block RAMs (the
    buffer and the ``y`` queue), 9 distributed RAMs; alone out of context on an ECP5-85F
    speed 6 (nextpnr seed 1) 113.6 MHz; ``docs/host.md``.
    """

    def __init__(
        self,
        interface: TopInterface,
        *,
        clk_freq: float,
        baud: int,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        y_depth: int = DEFAULT_Y_DEPTH,
        timeout_cycles: int | None = None,
    ):
        try:
            self._check(interface, clk_freq, baud, max_payload, y_depth, timeout_cycles)
        except (TypeError, ValueError):
            self._MustUse__silence = True  # never built: no "created but never used" warning
            raise
        super().__init__(
            {
                "rx": In(1, init=1),
                "tx": Out(1, init=1),
                "busy": Out(1),
                "core": Out(core_signature(interface).flip()),
            }
        )

    def _check(self, interface, clk_freq, baud, max_payload, y_depth, timeout_cycles):
        if not isinstance(interface, TopInterface):
            raise TypeError(f"HostLink needs a TopInterface, not {type(interface).__name__}")
        self.interface = interface
        self.clocks_per_bit = clocks_per_bit(clk_freq, baud)
        self.geometry = LinkGeometry(interface, max_payload=max_payload, y_depth=y_depth)
        if timeout_cycles is None:
            timeout_cycles = round(clk_freq * DEFAULT_TIMEOUT_SECONDS)
        character = CHARACTER_BITS * self.clocks_per_bit
        if timeout_cycles < 2 * character:
            raise ValueError(
                f"timeout_cycles {timeout_cycles} is shorter than two characters "
                f"({2 * character} cycles at {self.clocks_per_bit} cycles per bit)"
            )
        self.timeout_cycles = timeout_cycles

    def _stream(self, name):
        return getattr(self.core, name)

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        iface = self.interface
        names = AXI_MEMBERS
        m.submodules.uart_rx = urx = UartRx(self.clocks_per_bit)
        m.submodules.uart_tx = utx = UartTx(self.clocks_per_bit)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        # Output queues: y and state with tlast above the data.
        m.submodules.y_queue = yq = fifo.SyncFIFOBuffered(width=iface.y.width + 1, depth=g.y_depth)
        m.submodules.state_queue = sq = fifo.SyncFIFOBuffered(
            width=iface.state.width + 1, depth=g.state_depth
        )
        for queue, s in ((yq, iface.y), (sq, iface.state)):
            port = self._stream(s.name)
            m.d.comb += [
                queue.w_data.eq(
                    getattr(port, names.data).as_unsigned() | (getattr(port, names.last) << s.width)
                ),
                queue.w_en.eq(getattr(port, names.valid)),
                getattr(port, names.ready).eq(queue.w_rdy),
            ]

        # Receive buffer.
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=g.max_payload, init=[])
        wport = buf.write_port()
        rport = buf.read_port()
        # The block RAM's output registered: its clock-to-output delay stays off the logic.
        rdata = Signal(BYTE)
        m.d.sync += rdata.eq(rport.data)

        byte = urx.data.payload
        got = urx.data.valid
        crc = Signal(CRC_WIDTH, init=CRC_INIT)
        version = Signal(BYTE)
        ftype = Signal(BYTE)
        seq = Signal(BYTE)
        length = Signal(BYTE * LENGTH_BYTES)
        rx_crc = Signal(CRC_WIDTH)
        count = Signal(range(g.max_payload + 1))
        beat_size = Signal(range(max(g.x_bytes, g.init_bytes, g.w_bytes) + 1))
        phase = Signal.like(beat_size)  # bytes of the current beat received so far
        beats = Signal(range(g.max_payload + 1))  # whole beats received (after the flag byte)
        expected = Signal(BYTE)
        idle_timer = Signal(range(self.timeout_cycles + 1))
        dropped = Signal(DROPPED_WIDTH)

        # Answer to send.
        err_code = Signal(BYTE)
        err_detail = Signal(BYTE)
        r_type = Signal(BYTE)
        r_seq = Signal(BYTE)
        r_len = Signal(BYTE * LENGTH_BYTES)
        payload_bytes = max(g.status_bytes, g.info_bytes, ERROR_BYTES, g.y_bytes, g.state_bytes)
        shift = Signal(BYTE * payload_bytes)
        shift_left = Signal(range(payload_bytes + 1))
        beats_left = Signal(BYTE * ARG_BYTES)
        source = Signal(range(3))  # 0: shift only, 1: y queue, 2: state queue
        tx_crc = Signal(CRC_WIDTH)
        popped = Signal()
        popped_y = Signal.like(yq.r_data)
        popped_state = Signal.like(sq.r_data)
        hdr_index = Signal(range(HEADER_BYTES + CRC_BYTES))

        # Executing a load/input: beat assembly.
        flags = Signal(BYTE)
        rd_addr = Signal(range(g.max_payload + 1))
        beat = Signal(BYTE * max(g.x_bytes, g.init_bytes, g.w_bytes))
        beat_phase = Signal.like(beat_size)
        beats_to_go = Signal(range(g.max_payload + 1))  # beats not yet taken by the core
        carry = Signal()
        read_state = Signal()
        clear = Signal()
        m.d.comb += [
            self._core_control(Control.CARRY_STATE).eq(carry),
            self._core_control(Control.READ_STATE).eq(read_state),
            self._core_control(Control.CLEAR_STATUS).eq(clear),
            rport.addr.eq(rd_addr),
        ]
        m.d.sync += clear.eq(0)

        known = [t.value for t in FrameType if t is not FrameType.ERROR]
        # The TYPE decoded as it arrives (registered: off the paths of later decisions).
        is_type = {t: Signal(name=f"is_{FrameType(t).name.lower()}") for t in known}
        load_types = {
            FrameType.LOAD_WEIGHTS.value: (g.w_bytes, iface.w.name),
            FrameType.LOAD_STATE.value: (g.init_bytes, iface.init.name),
            FrameType.INPUT.value: (g.x_bytes, iface.x.name),
        }
        fixed_lengths = {
            FrameType.INFO.value: 0,
            FrameType.READ_OUTPUTS.value: ARG_BYTES,
            FrameType.READ_STATE.value: ARG_BYTES,
            FrameType.READ_STATUS.value: 1,
        }

        def start_error(code, detail):
            m.d.sync += [err_code.eq(code), err_detail.eq(detail)]
            m.next = "ERROR"

        receiving = Signal()
        with m.If(got & ~receiving):
            m.d.sync += dropped.eq(Mux(dropped == (1 << DROPPED_WIDTH) - 1, dropped, dropped + 1))
        with m.If(urx.framing_error & (dropped != (1 << DROPPED_WIDTH) - 1)):
            m.d.sync += dropped.eq(dropped + 1)

        def timeout():
            with m.If(got):
                m.d.sync += idle_timer.eq(0)
            with m.Elif(idle_timer == self.timeout_cycles):
                m.d.sync += [err_code.eq(ErrorCode.TRUNCATED), err_detail.eq(0)]
                m.next = "ERROR"
            with m.Else():
                m.d.sync += idle_timer.eq(idle_timer + 1)

        with m.FSM() as fsm:
            with m.State("HUNT"):
                m.d.comb += receiving.eq(1)
                with m.If(got & (byte == SYNC)):
                    m.d.sync += [crc.eq(CRC_INIT), count.eq(0), idle_timer.eq(0), seq.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += receiving.eq(1)
                timeout()
                with m.If(got):
                    m.d.sync += [crc.eq(crc16_next(crc, byte)), count.eq(count + 1)]
                    with m.Switch(count):
                        with m.Case(0):
                            m.d.sync += version.eq(byte)
                        with m.Case(1):
                            m.d.sync += ftype.eq(byte)
                            for t, flag in is_type.items():
                                m.d.sync += flag.eq(byte == t)
                            size = 1
                            for t, (bsize, _) in load_types.items():
                                size = Mux(byte == t, bsize, size)
                            m.d.sync += beat_size.eq(size)
                        with m.Case(2):
                            m.d.sync += seq.eq(byte)
                        with m.Case(3):
                            m.d.sync += length[:BYTE].eq(byte)
                        with m.Case(4):
                            new_length = (byte << BYTE) | length[:BYTE]
                            m.d.sync += [
                                length.eq(new_length),
                                count.eq(0),
                                phase.eq(0),
                                beats.eq(0),
                            ]
                            with m.If(new_length > g.max_payload):
                                m.d.sync += [
                                    err_code.eq(ErrorCode.BAD_LENGTH),
                                    err_detail.eq(ftype),
                                ]
                                m.next = "DISCARD"
                            with m.Elif(new_length == 0):
                                m.next = "CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += receiving.eq(1)
                timeout()
                m.d.comb += [
                    wport.addr.eq(count),
                    wport.data.eq(byte),
                    wport.en.eq(got),
                ]
                with m.If(got):
                    m.d.sync += [crc.eq(crc16_next(crc, byte)), count.eq(count + 1)]
                    with m.If(count != 0):  # byte 0 is a load's flag byte
                        with m.If(phase == beat_size - 1):
                            m.d.sync += [phase.eq(0), beats.eq(beats + 1)]
                        with m.Else():
                            m.d.sync += phase.eq(phase + 1)
                    with m.If(count == length - 1):
                        m.d.sync += count.eq(0)
                        m.next = "CRC"
            with m.State("CRC"):
                m.d.comb += receiving.eq(1)
                timeout()
                with m.If(got):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == 0):
                        m.d.sync += rx_crc[:BYTE].eq(byte)
                    with m.Else():
                        m.d.sync += rx_crc[BYTE:].eq(byte)
                        m.next = "CHECK"
            with m.State("DISCARD"):  # skip the rest of an over-long frame
                m.d.comb += receiving.eq(1)
                with m.If(got):
                    m.d.sync += idle_timer.eq(0)
                with m.Elif(idle_timer == self.timeout_cycles):
                    m.next = "ERROR"
                with m.Else():
                    m.d.sync += idle_timer.eq(idle_timer + 1)
            with m.State("CHECK"):
                m.d.sync += [r_seq.eq(seq), r_type.eq(ftype | RESPONSE_BIT)]
                is_load = Signal()
                length_ok = Signal()
                for t, _ in load_types.items():
                    with m.If(is_type[t]):
                        m.d.comb += [
                            is_load.eq(1),
                            length_ok.eq((length > 1) & (phase == 0)),
                        ]
                for t, size in fixed_lengths.items():
                    with m.If(is_type[t]):
                        m.d.comb += length_ok.eq(length == size)
                is_known = Signal()
                m.d.comb += is_known.eq(Cat(*is_type.values()).any())
                with m.If(rx_crc != crc):
                    start_error(ErrorCode.BAD_CRC, 0)
                with m.Elif(version != VERSION):
                    start_error(ErrorCode.BAD_VERSION, VERSION)
                with m.Elif(~is_known):
                    start_error(ErrorCode.UNKNOWN_TYPE, ftype)
                with m.Elif(~is_type[FrameType.INFO] & (seq != expected)):
                    start_error(ErrorCode.OUT_OF_ORDER, expected)
                with m.Elif(~length_ok):
                    start_error(ErrorCode.BAD_LENGTH, ftype)
                with m.Else():
                    m.d.sync += expected.eq((seq + 1) % SEQ_MODULUS)
                    with m.If(is_load):
                        m.d.sync += [rd_addr.eq(0), beats_to_go.eq(beats)]
                        m.next = "FLAGS"
                    with m.Else():
                        m.d.sync += rd_addr.eq(0)
                        m.next = "READ_ARGS"
            with m.State("FLAGS"):  # rport.addr = 0
                m.d.sync += rd_addr.eq(1)
                m.next = "FLAGS_WAIT"
            with m.State("FLAGS_WAIT"):  # the read's data is registered (rdata)
                m.next = "FLAGS_DATA"
            with m.State("FLAGS_DATA"):
                m.d.sync += [flags.eq(rdata), beat_phase.eq(0), beat.eq(0)]
                with m.If(is_type[FrameType.INPUT]):
                    m.d.sync += [
                        carry.eq((rdata & InputFlags.CARRY_STATE) != 0),
                        read_state.eq((rdata & InputFlags.READ_STATE) != 0),
                    ]
                m.next = "BEAT_READ"
            with m.State("BEAT_READ"):  # rport.addr = rd_addr
                m.next = "BEAT_WAIT"
            with m.State("BEAT_WAIT"):
                m.next = "BEAT_DATA"
            with m.State("BEAT_DATA"):
                with m.Switch(beat_phase):
                    for k in range(len(beat) // BYTE):
                        with m.Case(k):
                            m.d.sync += beat[BYTE * k : BYTE * (k + 1)].eq(rdata)
                m.d.sync += rd_addr.eq(rd_addr + 1)
                with m.If(beat_phase == beat_size - 1):
                    m.next = "OFFER"
                with m.Else():
                    m.d.sync += beat_phase.eq(beat_phase + 1)
                    m.next = "BEAT_READ"
            with m.State("OFFER"):
                final = beats_to_go == 1
                last = final & ((flags & LoadFlags.LAST) != 0)
                for t, (_, name) in load_types.items():
                    port = self._stream(name)
                    width = len(getattr(port, names.data))
                    with m.If(is_type[t]):
                        m.d.comb += [
                            getattr(port, names.data).eq(beat[:width]),
                            getattr(port, names.valid).eq(1),
                            getattr(port, names.last).eq(last),
                        ]
                        with m.If(getattr(port, names.ready)):
                            m.d.sync += [
                                beats_to_go.eq(beats_to_go - 1),
                                beat_phase.eq(0),
                                beat.eq(0),
                            ]
                            with m.If(final):
                                m.d.sync += [r_len.eq(0), shift_left.eq(0), beats_left.eq(0)]
                                m.next = "ANSWER"
                            with m.Else():
                                m.next = "BEAT_READ"
            with m.State("READ_ARGS"):  # rport.addr = 0
                m.d.sync += rd_addr.eq(1)
                m.next = "ARG_WAIT"
            with m.State("ARG_WAIT"):
                m.next = "ARG0"
            with m.State("ARG0"):
                m.d.sync += beats_left[:BYTE].eq(rdata)
                m.next = "ARG1"
            with m.State("ARG1"):
                m.d.sync += beats_left[BYTE:].eq(rdata)
                m.next = "PREPARE"
            with m.State("PREPARE"):
                m.d.sync += source.eq(0)
                m.next = "ANSWER"
                with m.If(is_type[FrameType.INFO]):
                    info = self._pack([(g.info[name], size) for name, size in INFO_LAYOUT])
                    m.d.sync += [
                        shift.eq(info),
                        shift_left.eq(g.info_bytes),
                        beats_left.eq(0),
                        r_len.eq(g.info_bytes),
                    ]
                with m.Elif(is_type[FrameType.READ_OUTPUTS] | is_type[FrameType.READ_STATE]):
                    is_y = is_type[FrameType.READ_OUTPUTS]
                    level = Mux(is_y, yq.level, sq.level)
                    m.d.sync += [
                        source.eq(Mux(is_y, 1, 2)),
                        shift_left.eq(0),
                        beats_left.eq(Mux(beats_left < level, beats_left, level)),
                    ]
                    m.next = "LENGTH"
                with m.Elif(is_type[FrameType.READ_STATUS]):
                    clear_now = (beats_left[:BYTE] & StatusFlags.CLEAR) != 0
                    m.d.sync += [
                        shift.eq(self._status_word(yq.level, sq.level, dropped)),
                        shift_left.eq(g.status_bytes),
                        beats_left.eq(0),
                        r_len.eq(g.status_bytes),
                        clear.eq(clear_now),
                    ]
                    with m.If(clear_now):
                        m.d.sync += dropped.eq(0)
            with m.State("LENGTH"):  # beats_left: the beats this answer carries
                m.d.sync += r_len.eq(
                    Mux(source == 1, beats_left * g.y_bytes, beats_left * g.state_bytes)
                )
                m.next = "ANSWER"
            with m.State("ERROR"):
                m.d.sync += [
                    r_seq.eq(seq),
                    r_type.eq(FrameType.ERROR),
                    r_len.eq(ERROR_BYTES),
                    shift.eq(err_code | (err_detail << BYTE)),
                    shift_left.eq(ERROR_BYTES),
                    beats_left.eq(0),
                    source.eq(0),
                ]
                m.next = "ANSWER"
            with m.State("ANSWER"):
                m.d.sync += [hdr_index.eq(0), tx_crc.eq(CRC_INIT)]
                m.next = "SEND_HEADER"
            with m.State("SEND_HEADER"):
                header = [SYNC, VERSION, r_type, r_seq, r_len[:BYTE], r_len[BYTE:]]
                out = Signal(BYTE)
                with m.Switch(hdr_index):
                    for k, value in enumerate(header):
                        with m.Case(k):
                            m.d.comb += out.eq(value)
                m.d.comb += [utx.data.payload.eq(out), utx.data.valid.eq(1)]
                with m.If(utx.data.ready):
                    with m.If(hdr_index != 0):
                        m.d.sync += tx_crc.eq(crc16_next(tx_crc, out))
                    m.d.sync += hdr_index.eq(hdr_index + 1)
                    with m.If(hdr_index == HEADER_BYTES - 1):
                        m.next = "SEND_PAYLOAD"
            with m.State("SEND_PAYLOAD"):
                with m.If(shift_left != 0):
                    m.d.comb += [utx.data.payload.eq(shift[:BYTE]), utx.data.valid.eq(1)]
                    with m.If(utx.data.ready):
                        m.d.sync += [
                            tx_crc.eq(crc16_next(tx_crc, shift[:BYTE])),
                            shift.eq(shift >> BYTE),
                            shift_left.eq(shift_left - 1),
                        ]
                with m.Elif(popped):  # the beat popped in the cycle before
                    with m.If(source == 1):
                        m.d.sync += [shift.eq(popped_y), shift_left.eq(g.y_bytes)]
                    with m.Else():
                        m.d.sync += [shift.eq(popped_state), shift_left.eq(g.state_bytes)]
                    m.d.sync += popped.eq(0)
                with m.Elif((beats_left != 0) & (source != 0)):
                    # Pop a queued beat into a register (the queue's RAM output goes no
                    # further), then into the shift register.
                    with m.If(source == 1):
                        m.d.comb += yq.r_en.eq(1)
                        m.d.sync += popped_y.eq(yq.r_data)
                    with m.Else():
                        m.d.comb += sq.r_en.eq(1)
                        m.d.sync += popped_state.eq(sq.r_data)
                    m.d.sync += [beats_left.eq(beats_left - 1), popped.eq(1)]
                with m.Else():
                    m.d.sync += hdr_index.eq(0)
                    m.next = "SEND_CRC"
            with m.State("SEND_CRC"):
                m.d.comb += [
                    utx.data.payload.eq(Mux(hdr_index == 0, tx_crc[:BYTE], tx_crc[BYTE:])),
                    utx.data.valid.eq(1),
                ]
                with m.If(utx.data.ready):
                    m.d.sync += hdr_index.eq(hdr_index + 1)
                    with m.If(hdr_index == CRC_BYTES - 1):
                        m.next = "DRAIN"
            with m.State("DRAIN"):  # let the final character leave before taking a new frame
                with m.If(utx.data.ready):
                    m.next = "HUNT"
        m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
        return m

    def _core_control(self, control: Control):
        return getattr(self.core, control.value)

    @staticmethod
    def _pack(fields) -> int:
        """Little-endian bytes of ``(value, size)`` fields, as one integer."""
        value, offset = 0, 0
        for field, size in fields:
            value |= (int(field) & ((1 << (BYTE * size)) - 1)) << (BYTE * offset)
            offset += size
        return value

    def _status_word(self, y_level, state_level, dropped):
        """The status answer, little-endian bytes in one value (``geometry.status``)."""
        core = self.core
        values = {
            "cycles": getattr(core, Status.CYCLES.value),
            "flags": Cat(*(getattr(core, name) for name in STATUS_FLAG_NAMES)),
            "y_level": y_level,
            "state_level": state_level,
            "dropped": dropped,
            **{f"sat_{k.value}": getattr(core, k.port) for k in SaturationKind},
        }
        parts = []
        for name, size in self.geometry.status:
            value = Value.cast(values[name]).as_unsigned()
            parts.append(Cat(value, Const(0, BYTE * size - len(value))))
        return Cat(*parts)
