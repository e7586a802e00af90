"""The one-layer engine and the AXI4-Stream-named top module ``lstm_top``."""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..sw.ir import LstmModel
from ..sw.numerics import LstmDatapath
from .cell import GateCellPipeline, hidden_layout
from .config import HardwareConfig, HardwareConfigError, PassGeometry
from .fixed import format_shape
from .layout import BankImages, bank_images
from .memory import WeightMemory, write_layout
from .mvu import MatrixVectorUnit
from .sequencer import CYCLE_COUNTER_WIDTH, Sequencer, input_layout

__all__ = ["LstmEngine", "LstmTop", "axi_stream_signature", "check_supported"]


def check_supported(model: LstmModel) -> None:
    """Raise :class:`HardwareConfigError` unless the engine can run ``model``."""
    if not isinstance(model, LstmModel):
        raise HardwareConfigError(f"expected an LstmModel (the IR), not {type(model).__name__}")
    unsupported = []
    if model.num_layers != 1:
        unsupported.append(f"num_layers={model.num_layers}")
    if model.bidirectional:
        unsupported.append("bidirectional=True")
    if model.head is not None:
        unsupported.append("a Linear head")
    if unsupported:
        raise HardwareConfigError(
            f"the one-layer engine runs a single unidirectional LSTM layer without a head; "
            f"this model has {', '.join(unsupported)}"
        )


class LstmEngine(wiring.Component):
    """One LSTM layer direction with streaming input and output (Amaranth streams).

    ``verilog_banks`` (``None``, ``"inline"`` or ``"readmemh"``) makes the weight banks
    instances of the Verilog modules of :func:`~lstm_fpga.hw.memory.weight_bank_verilog`
    (for Verilog output; the Amaranth simulator needs the default ``None``).

    Ports
    -----
    x : In, stream of ``{data: x format, last: 1}``
        ``x_t`` elements ``0 .. I-1`` per step, steps in order; ``last`` on element ``I-1``
        of a sequence's final step ends it (state resets for the next one). ``last`` on any
        other element is ignored. With ``config.input_elements = k > 1``, ``data`` is an
        array of ``k`` elements: a step is ``ceil(I/k)`` beats, beat ``b`` holding elements
        ``b*k .. b*k+k-1`` (those past ``I-1`` are ignored), ``last`` on the step's final beat.
    y : Out, stream of ``{data: hidden format, last: 1}``
        ``h_t`` elements ``0 .. H-1`` per step; ``last`` on the sequence's final element.
    weight_write : In, stream (always ready) of :func:`~lstm_fpga.hw.memory.write_layout`
        Run-time weight reload (address map in :mod:`lstm_fpga.hw.layout`).
    cycles : Out, 32 bits
        Cycles from the latest finished sequence's first ``x`` handshake to its last ``y``
        handshake.
    busy : Out, 1 bit
        A sequence has started and its last output beat has not been taken yet.
    """

    def __init__(
        self, model: LstmModel, config: HardwareConfig, *, verilog_banks: str | None = None
    ):
        try:
            check_supported(model)
            if not isinstance(config, HardwareConfig):
                raise HardwareConfigError(
                    f"config must be a HardwareConfig, not {type(config).__name__}"
                )
        except HardwareConfigError:
            self._MustUse__silence = True  # a refused design is not an unused one
            raise
        self._model = model
        self._config = config
        self._verilog_banks = verilog_banks
        self._dp = model.datapath(0)
        self._geometry = config.geometry(model.input_size, model.hidden_size)
        self._images = bank_images(self._geometry, model.direction(0, False))
        super().__init__(
            {
                "x": In(stream.Signature(input_layout(self._dp, config.input_elements))),
                "y": Out(stream.Signature(hidden_layout(self._dp))),
                "weight_write": In(stream.Signature(write_layout(self._images), always_ready=True)),
                "cycles": Out(CYCLE_COUNTER_WIDTH),
                "busy": Out(1),
            }
        )

    @property
    def datapath(self) -> LstmDatapath:
        return self._dp

    @property
    def geometry(self) -> PassGeometry:
        return self._geometry

    @property
    def images(self) -> BankImages:
        return self._images

    def elaborate(self, platform):
        m = Module()
        dp, g = self._dp, self._geometry
        m.submodules.sequencer = seq = Sequencer(dp, g, self._config.input_elements)
        m.submodules.weights = mem = WeightMemory(self._images, verilog_banks=self._verilog_banks)
        m.submodules.mvu = mvu = MatrixVectorUnit(dp, g)
        m.submodules.cell = cell = GateCellPipeline(dp)

        wiring.connect(m, wiring.flipped(self.x), seq.x)
        wiring.connect(m, seq.column, mvu.column)
        wiring.connect(m, mvu.units, cell.units)
        wiring.connect(m, cell.hidden_write, seq.hidden_write)
        wiring.connect(m, cell.hidden, wiring.flipped(self.y))
        wiring.connect(m, wiring.flipped(self.weight_write), mem.write)
        m.d.comb += [
            mem.weight_address.eq(seq.weight_address),
            mem.bias_address.eq(seq.bias_address),
            mvu.weights.eq(mem.weights),
            mvu.biases.eq(mem.biases),
            seq.drain_free.eq(mvu.drain_free),
            seq.loaded.eq(mvu.loaded),
            seq.sequence_done.eq(self.y.valid & self.y.ready & self.y.payload.last),
            self.cycles.eq(seq.cycles),
            self.busy.eq(seq.busy),
        ]
        return m


def axi_stream_signature(shape) -> wiring.Signature:
    """AXI4-Stream-style source: ``tdata``, ``tvalid``, ``tlast`` out, ``tready`` in."""
    return wiring.Signature(
        {"tdata": Out(shape), "tvalid": Out(1), "tready": In(1), "tlast": Out(1)}
    )


class LstmTop(wiring.Component):
    """The generated top module ``lstm_top``: :class:`LstmEngine` with AXI4-Stream names.

    Ports (Verilog names): ``clk``, ``rst`` (synchronous, active high); ``x__tdata`` (signed,
    input format; ``input_elements`` packed elements, element ``e`` in bits ``[e*w, (e+1)*w)``,
    when ``config.input_elements > 1``), ``x__tvalid``, ``x__tready``, ``x__tlast``;
    ``y__tdata`` (signed, output format), ``y__tvalid``, ``y__tready``, ``y__tlast``;
    ``cycles`` (32 bits); ``busy``. See ``docs/hardware.md`` for element order and timing
    diagrams.
    """

    def __init__(
        self, model: LstmModel, config: HardwareConfig, *, verilog_banks: str | None = None
    ):
        try:
            self._engine = LstmEngine(model, config, verilog_banks=verilog_banks)
        except HardwareConfigError:
            self._MustUse__silence = True  # a refused design is not an unused one
            raise
        dp = self._engine.datapath
        x_shape = format_shape(dp.formats.x)
        if config.input_elements > 1:
            x_shape = unsigned(config.input_elements * x_shape.width)
        super().__init__(
            {
                "x": In(axi_stream_signature(x_shape)),
                "y": Out(axi_stream_signature(format_shape(dp.formats.hidden))),
                "cycles": Out(CYCLE_COUNTER_WIDTH),
                "busy": Out(1),
            }
        )

    @property
    def engine(self) -> LstmEngine:
        return self._engine

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self._engine
        m.d.comb += [
            engine.x.payload.data.eq(self.x.tdata),
            engine.x.payload.last.eq(self.x.tlast),
            engine.x.valid.eq(self.x.tvalid),
            self.x.tready.eq(engine.x.ready),
            self.y.tdata.eq(engine.y.payload.data),
            self.y.tlast.eq(engine.y.payload.last),
            self.y.tvalid.eq(engine.y.valid),
            engine.y.ready.eq(self.y.tready),
            # Run-time reload reaches the top in the full-LSTM engine; tied off here.
            engine.weight_write.valid.eq(0),
            self.cycles.eq(engine.cycles),
            self.busy.eq(engine.busy),
        ]
        return m
