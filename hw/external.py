"""Weights from external memory: the weight image and the AXI4 read master that streams it.

**The weight image.** Every lane reads the same address of its weight bank in the same cycle
(:mod:`~lstm_fpga.hw.banks`), so one bank address is one *word* of ``P * W`` bits (``P``
built lanes, ``W`` the banks' weight width): lane ``p``'s two's complement weight in bits
``[p W, (p + 1) W)``. A streaming plan's walker reads the words ``0 .. bank_depth - 1`` in
order once per time step (layers ``l0 .. l(L-1)``, then the head when it runs every step:
:class:`~lstm_fpga.hw.streaming.StreamingSchedule`), so the image is those words back to
back as one little-endian bit string -- word ``a`` at bits ``[a P W, (a + 1) P W)``, bit
``i`` in byte ``i // 8`` at bit ``i % 8`` -- zero-padded to whole AXI beats of
``data_width`` bits. :func:`weight_image` writes it (``lstm-fpga build --weights external``
and the Python API use the same function); :func:`image_bit` locates a weight in it.

**The read master.** :class:`WeightFetcher` reads the image from ``base`` with AXI4 INCR
bursts, over and over (one sweep per time step), into a prefetch FIFO, and hands the lanes
one word per ``word`` handshake. The parameters (:class:`AxiReadParams`) are the data width,
the burst length and the read latency to hide; the outstanding reads and the FIFO depth
are derived from them so that a memory of that latency can deliver one beat per cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .banks import Location
from .config import HardwareConfigError
from .plan import STREAMING, EnginePlan

__all__ = [
    "AXI_BURST_INCR",
    "AXI_DATA_WIDTHS",
    "AXI_MAX_BURST",
    "FIFO_WRITE_TO_READ_CYCLES",
    "MASTER_LOOP_CYCLES",
    "AxiReadParams",
    "WeightFetcher",
    "WeightImage",
    "axi_params",
    "check_external",
    "external_ports",
    "image_bit",
    "weight_image",
]

#: AXI4 data widths the master supports (bits): the AXI4 bus widths of 32 bits and more.
AXI_DATA_WIDTHS = (32, 64, 128, 256, 512, 1024)
#: AXI4 INCR bursts are at most 256 beats and never cross a 4 KiB boundary.
AXI_MAX_BURST = 256
AXI_BOUNDARY = 4096
#: ``ARBURST`` of an incrementing burst.
AXI_BURST_INCR = 1
#: :class:`WeightFetcher`'s own stages on a burst's round trip: ``ARVALID``/``ARADDR`` are
#: registered, the prefetch FIFO (``SyncFIFOBuffered``) shows a written beat on its read port
#: two cycles later, and the word assembler returns the beat's credit as it takes it.
_ADDRESS_REGISTER_CYCLES = 1
FIFO_WRITE_TO_READ_CYCLES = 2
_ASSEMBLER_TAKE_CYCLES = 1
#: Cycles :class:`WeightFetcher` adds to a burst's round trip besides the memory's latency.
MASTER_LOOP_CYCLES = _ADDRESS_REGISTER_CYCLES + FIFO_WRITE_TO_READ_CYCLES + _ASSEMBLER_TAKE_CYCLES


@dataclass(frozen=True)
class AxiReadParams:
    """Parameters of the weight read master.

    ``data_width`` bits per beat (:data:`AXI_DATA_WIDTHS`); ``burst`` beats per burst (a
    power of two, at most 256 and at most one 4 KiB page: no burst crosses one); ``latency``
    the cycles from an accepted read address to its first data beat that the master must
    hide; ``base`` the image's byte address (4 KiB aligned); ``address_width`` of
    ``ARADDR``.

    Derived: :attr:`outstanding` reads in flight, ``ceil((latency + MASTER_LOOP_CYCLES) /
    burst) + 1``, enough to keep one beat per cycle coming from a memory of that latency
    (``outstanding * burst >= latency + MASTER_LOOP_CYCLES + burst``: a burst's credit comes
    back only after the master's own registers); :attr:`fifo_beats`, ``outstanding *
    burst``: the master only issues a burst when the FIFO has room for every beat in flight,
    so ``RREADY`` never falls.
    """

    data_width: int = 64
    burst: int = 16
    latency: int = 64
    base: int = 0
    address_width: int = 32

    def __post_init__(self):
        if self.data_width not in AXI_DATA_WIDTHS:
            raise HardwareConfigError(
                f"AXI data width must be one of {', '.join(map(str, AXI_DATA_WIDTHS))} bits, "
                f"not {self.data_width!r}"
            )
        page = AXI_BOUNDARY // self.bytes_per_beat
        b = self.burst
        if not isinstance(b, int) or b < 1 or b & (b - 1) or b > min(AXI_MAX_BURST, page):
            raise HardwareConfigError(
                f"AXI burst must be a power of two of at most {min(AXI_MAX_BURST, page)} beats "
                f"at {self.data_width} bits, not {b!r}"
            )
        if not isinstance(self.latency, int) or self.latency < 0:
            raise HardwareConfigError(
                f"AXI latency must be a non-negative number of cycles, not {self.latency!r}"
            )
        if not isinstance(self.address_width, int) or not 12 < self.address_width <= 64:
            raise HardwareConfigError(
                f"AXI address width must be 13 .. 64 bits, not {self.address_width!r}"
            )
        if (
            not isinstance(self.base, int)
            or self.base < 0
            or self.base % AXI_BOUNDARY
            or self.base >= 1 << self.address_width
        ):
            raise HardwareConfigError(
                f"weight image base must be a 4 KiB-aligned byte address below "
                f"2**{self.address_width}, not {self.base!r}"
            )

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    @property
    def outstanding(self) -> int:
        """Bursts in flight at most: ``ceil((latency + MASTER_LOOP_CYCLES) / burst) + 1``."""
        return math.ceil((self.latency + MASTER_LOOP_CYCLES) / self.burst) + 1

    @property
    def fifo_beats(self) -> int:
        """Prefetch FIFO depth in beats: every beat of :attr:`outstanding` bursts."""
        return self.outstanding * self.burst

    def to_json_dict(self) -> dict:
        return {
            "data_width": self.data_width,
            "burst": self.burst,
            "latency": self.latency,
            "base": self.base,
            "address_width": self.address_width,
            "outstanding": self.outstanding,
            "fifo_beats": self.fifo_beats,
        }


def check_external(plan: EnginePlan) -> None:
    """Raise :class:`~lstm_fpga.hw.config.HardwareConfigError` unless every time step of
    ``plan`` walks the same weight words in the same order (what the image's one sweep per
    step needs): a unidirectional model, with its head (if any) on every step."""
    if plan.schedule != STREAMING:
        raise HardwareConfigError(
            "--weights external supports unidirectional models only (a bidirectional model's "
            "steps walk the directions in a data-dependent order): use --weights on-chip"
        )
    if plan.head is not None and plan.output_mode != "all":
        raise HardwareConfigError(
            "--weights external needs the head on every step: use --output all (or "
            "--weights on-chip)"
        )


@dataclass(frozen=True, eq=False)
class WeightImage:
    """The weight image of a plan (see the module docstring): ``data`` (bytes), ``words``
    words of ``word_bits`` bits, padded to whole beats of ``data_width`` bits."""

    lanes: int
    weight_width: int
    words: int
    data_width: int
    data: bytes

    @property
    def word_bits(self) -> int:
        return self.lanes * self.weight_width

    @property
    def bits(self) -> int:
        """Bits of the words (without the padding)."""
        return self.words * self.word_bits

    @property
    def beats(self) -> int:
        return math.ceil(self.bits / self.data_width)

    @property
    def last_beat_bits(self) -> int:
        """Bits of the last beat that belong to the image (the rest is padding)."""
        return self.bits - (self.beats - 1) * self.data_width

    @property
    def bytes(self) -> int:
        """Bytes one sweep (one time step) reads: whole beats."""
        return self.beats * self.data_width // 8

    def word_values(self) -> list[int]:
        """The words as unsigned integers, in address order."""
        return self.word_values_at(range(self.words))

    def word_values_at(self, addresses) -> list[int]:
        """The words at bank ``addresses`` (unsigned integers)."""
        mask = (1 << self.word_bits) - 1
        out = []
        for a in addresses:
            start = a * self.word_bits
            chunk = self.data[start // 8 : (start + self.word_bits) // 8 + 1]
            out.append((int.from_bytes(chunk, "little") >> (start % 8)) & mask)
        return out

    def to_json_dict(self, base: int = 0, file: str | None = None) -> dict:
        doc = {
            "base": base,
            "bytes": self.bytes,
            "data_width": self.data_width,
            "beats": self.beats,
            "words": self.words,
            "word_bits": self.word_bits,
            "lanes": self.lanes,
            "weight_width": self.weight_width,
            "layout": (
                "little-endian bit string: lane p's weight at bank address a in bits "
                "[a*word_bits + p*weight_width, ... + weight_width), two's complement; zero "
                "padding to whole beats"
            ),
        }
        if file is not None:
            doc["file"] = file
        return doc


def weight_image(plan: EnginePlan, model=None, data_width: int = 64) -> WeightImage:
    """The weight image of ``plan`` for ``model`` (default the plan's own; another must have
    its shape and formats): the banks' words of
    :meth:`EnginePlan.images <lstm_fpga.hw.plan.EnginePlan.images>` back to back."""
    from .banks import bank_images

    if data_width not in AXI_DATA_WIDTHS:
        raise HardwareConfigError(
            f"AXI data width must be one of {', '.join(map(str, AXI_DATA_WIDTHS))} bits, "
            f"not {data_width!r}"
        )
    images = plan.images if model is None else bank_images(plan, model)
    W, lanes = images.weight_width, images.lanes
    words = plan.bank_depth
    values = np.asarray(images.weights[:, :words], dtype=np.int64) & ((1 << W) - 1)
    image = WeightImage(lanes, W, words, data_width, b"")
    if W in (8, 16, 32):  # whole bytes: the words are the lanes' little-endian values
        packed = values.T.astype(f"<u{W // 8}").tobytes()
        data = packed + bytes(image.bytes - len(packed))
    else:
        data = _bit_string(values, W, image.bytes)
    return WeightImage(lanes, W, words, data_width, data)


def _bit_string(values: np.ndarray, width: int, size: int) -> bytes:
    """``values`` (lanes x words, unsigned ``width``-bit) in image order: word by word, lane
    by lane, each value's bits LSB first, zero-padded to ``size`` bytes."""
    bits = ((values.T[:, :, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.uint8)
    padded = np.zeros(size * 8, dtype=np.uint8)
    padded[: bits.size] = bits.reshape(-1)
    return np.packbits(padded, bitorder="little").tobytes()


def image_bit(plan: EnginePlan, location: Location) -> int:
    """The image bit where the weight at ``location`` (a
    :func:`~lstm_fpga.hw.banks.weight_location`) starts: ``address * P * W + lane * W``."""
    W = plan.weight_shape.width
    return location.address * plan.lanes * W + location.lane * W


def axi_params(plan: EnginePlan) -> AxiReadParams:
    """The read master's parameters of ``plan`` (``HardwareConfig.axi``, else the defaults)."""
    axi = plan.config.axi
    return AxiReadParams() if axi is None else axi


def external_ports(plan: EnginePlan) -> tuple[tuple[str, bool, int], ...]:
    """The ports external weights add to ``lstm_top``: ``(name, is_output, width)`` in
    declaration order (none with on-chip weights): the AXI4 read channels ``m_axi_ar*`` and
    ``m_axi_r*`` and the sticky ``weights_read_error``."""
    if plan.config.weights != "external":
        return ()
    params = axi_params(plan)
    return (
        ("m_axi_arid", True, 1),
        ("m_axi_araddr", True, params.address_width),
        ("m_axi_arlen", True, 8),
        ("m_axi_arsize", True, 3),
        ("m_axi_arburst", True, 2),
        ("m_axi_arvalid", True, 1),
        ("m_axi_arready", False, 1),
        ("m_axi_rid", False, 1),
        ("m_axi_rdata", False, params.data_width),
        ("m_axi_rresp", False, 2),
        ("m_axi_rlast", False, 1),
        ("m_axi_rvalid", False, 1),
        ("m_axi_rready", True, 1),
        ("weights_read_error", True, 1),
    )


class WeightFetcher(wiring.Component):
    """AXI4 read master and prefetch FIFO streaming the weight image (:class:`WeightImage`)
    word by word, sweep after sweep.

    Ports
    -----
    m_axi_ar* : AXI4 read address channel (master): ``arid`` 0, ``araddr`` = ``base`` + the
        burst's byte offset in the image, ``arlen`` beats - 1, ``arsize`` log2 of the beat's
        bytes, ``arburst`` INCR. Bursts of ``burst`` beats (the last of a sweep shorter),
        never across a 4 KiB boundary; ``arvalid`` and the address hold until ``arready``.
    m_axi_r* : AXI4 read data channel (master side): ``rready`` is high whenever a beat can
        be stored (always, by the credit rule below); ``rid`` is ignored (one ID: in order).
    word : Out, stream of ``P * W`` bits
        The image's words in order, sweep after sweep. ``valid`` is a compare of a register
        (``word.ready`` may depend on it); a word is taken when ``valid & ready``.
    read_error : Out(1)
        Sticky: a beat came back with ``rresp`` other than OKAY (its data is used as read).
    sweeps : Out(32)
        Sweeps whose last read address was accepted (one sweep = one step's weights).

    Protocol and timing: at most :attr:`AxiReadParams.outstanding` bursts are in flight, and
    a burst is only requested when the FIFO (:attr:`AxiReadParams.fifo_beats` beats) has room
    for all beats requested and not yet taken by the word assembler. The assembler shifts
    beats into a register of ``P W + data_width`` bits and emits a word once it holds
    ``P W`` bits: one word per cycle while ``P W <= data_width``, one per ``P W /
    data_width`` cycles otherwise (the memory's rate). The padding of a sweep's last beat is
    dropped, so every sweep starts word-aligned. First word: a few cycles plus the memory's
    latency after reset.
    """

    def __init__(self, image: WeightImage, params: AxiReadParams):
        if image.data_width != params.data_width:
            raise ValueError(
                f"the image has {image.data_width}-bit beats, the master {params.data_width}"
            )
        if params.base + image.bytes > 1 << params.address_width:
            raise HardwareConfigError(
                f"the weight image ({image.bytes} bytes at {params.base:#x}) does not fit a "
                f"{params.address_width}-bit address space"
            )
        self._image = image
        self._params = params
        D = params.data_width
        super().__init__(
            {
                "m_axi_arid": Out(1),
                "m_axi_araddr": Out(params.address_width),
                "m_axi_arlen": Out(8),
                "m_axi_arsize": Out(3),
                "m_axi_arburst": Out(2),
                "m_axi_arvalid": Out(1),
                "m_axi_arready": In(1),
                "m_axi_rid": In(1),
                "m_axi_rdata": In(D),
                "m_axi_rresp": In(2),
                "m_axi_rlast": In(1),
                "m_axi_rvalid": In(1),
                "m_axi_rready": Out(1),
                "word": Out(stream.Signature(unsigned(image.word_bits))),
                "read_error": Out(1),
                "sweeps": Out(32),
            }
        )

    @property
    def image(self) -> WeightImage:
        return self._image

    @property
    def params(self) -> AxiReadParams:
        return self._params

    def elaborate(self, platform):
        m = Module()
        image, params = self._image, self._params
        D, B, N = params.data_width, params.burst, params.outstanding
        depth = params.fifo_beats
        beats = image.beats

        # -- read addresses ---------------------------------------------------------------------
        # Timing: the request verdict is one compare of two registers (the next burst's
        # length against the FIFO's free beats), so that nothing but a select and one add sit
        # between it and the registers it updates; the next burst's length is registered a
        # burst ahead. Cycle for cycle the same requests as comparing ``reserved + length``
        # with the depth.
        offset = Signal(range(beats))  # beat index of the next burst in the sweep
        left = Signal(range(beats + 1), init=beats)  # beats of the sweep not yet requested
        length = Signal(range(B + 1), init=min(B, beats))  # the next burst's beats
        room = Signal(range(depth + 1), init=depth)  # FIFO beats neither requested nor free
        in_flight = Signal(range(N + 1))  # bursts requested, last beat not yet received
        taken_beat = Signal()
        last_received = Signal()
        request = Signal()
        last_burst = Signal()  # the next burst ends the sweep
        left_after = Signal(range(beats + 1))  # beats left after the next burst
        m.d.comb += [
            self.m_axi_arid.eq(0),
            self.m_axi_arsize.eq(exact_log2(params.bytes_per_beat)),
            self.m_axi_arburst.eq(AXI_BURST_INCR),
            last_burst.eq(left <= B),
            left_after.eq(Mux(last_burst, beats, left - B)),
            request.eq(~self.m_axi_arvalid & (length <= room) & (in_flight < N)),
        ]
        with m.If(request):
            m.d.sync += [
                self.m_axi_arvalid.eq(1),
                self.m_axi_araddr.eq(params.base + offset * params.bytes_per_beat),
                self.m_axi_arlen.eq(length - 1),
                offset.eq(Mux(last_burst, 0, offset + B)),
                left.eq(left_after),
                length.eq(Mux(left_after >= B, B, left_after)),
            ]
            with m.If(last_burst):
                m.d.sync += self.sweeps.eq(self.sweeps + 1)
        with m.Elif(self.m_axi_arready):
            m.d.sync += self.m_axi_arvalid.eq(0)
        m.d.sync += [
            room.eq(room - Mux(request, length, 0) + taken_beat),
            in_flight.eq(in_flight + request - last_received),
        ]

        # -- read data into the FIFO, tagged with the sweep's last beat -------------------------
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=D + 1, depth=depth)
        received = Signal(range(beats))
        got = Signal()
        m.d.comb += [
            self.m_axi_rready.eq(fifo.w_rdy),
            got.eq(self.m_axi_rvalid & fifo.w_rdy),
            last_received.eq(got & self.m_axi_rlast),
            fifo.w_en.eq(got),
            fifo.w_data.eq(Cat(self.m_axi_rdata, received == beats - 1)),
        ]
        with m.If(got):
            m.d.sync += received.eq(Mux(received == beats - 1, 0, received + 1))
            with m.If(self.m_axi_rresp != 0):
                m.d.sync += self.read_error.eq(1)

        # -- word assembly ----------------------------------------------------------------------
        wb = image.word_bits
        capacity = wb + D
        held = Signal(capacity)
        count = Signal(range(capacity + 1))
        pop = Signal()
        beat = fifo.r_data[:D]
        sweep_end = fifo.r_data[D]
        tail = image.last_beat_bits
        m.d.comb += [
            self.word.valid.eq(count >= wb),
            self.word.payload.eq(held[:wb]),
            pop.eq(self.word.valid & self.word.ready),
            taken_beat.eq(fifo.r_rdy & (count <= wb)),
            fifo.r_en.eq(taken_beat),
        ]
        # Timing: both placements of the beat (after a word leaves or not) shift by a register
        # (``count``, ``count - wb``), so ``word.ready`` only selects between them at the end.
        # The padding of the sweep's last beat is masked off and not counted.
        bits = Mux(sweep_end, beat & ((1 << tail) - 1), beat)
        count_less_word = Signal.like(count)
        m.d.comb += count_less_word.eq(count - wb)
        incoming = Mux(taken_beat, bits, 0)
        width_in = Mux(taken_beat, Mux(sweep_end, tail, D), 0)
        kept = (held | (incoming << count))[:capacity]
        shifted = ((held >> wb) | (incoming << count_less_word))[:capacity]
        m.d.sync += [
            held.eq(Mux(pop, shifted, kept)),
            count.eq(Mux(pop, count_less_word, count) + width_in),
        ]
        return m


def exact_log2(n: int) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{n} is not a power of two")
    return n.bit_length() - 1
