"""Hardware generation parameters: :class:`HardwareConfig`.

It holds every choice that is *not* part of the model (the IR stays free of them); what they
give a model (matrices, passes, banks, bounds) is the :class:`~lstm_fpga.hw.plan.EnginePlan`.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Shape, unsigned

from ..sw.numerics import PACKING_FACTORS

__all__ = [
    "GATES_PER_UNIT",
    "OUTPUT_MODES",
    "WEIGHT_SOURCES",
    "HardwareConfig",
    "HardwareConfigError",
    "index_shape",
]

#: Values of :attr:`HardwareConfig.output`.
OUTPUT_MODES = ("all", "last")
#: Values of :attr:`HardwareConfig.weights`.
WEIGHT_SOURCES = ("on-chip", "external")
#: Rows of the gate matrix per hidden unit: gates i, f, g, o.
GATES_PER_UNIT = 4


def index_shape(count: int) -> Shape:
    """Unsigned shape for indices ``0 .. count-1``, at least 1 bit (no zero-width vectors in
    the Verilog, which Verilator flags as ``[-1:0]`` ranges)."""
    return unsigned(max(1, (count - 1).bit_length()))


class HardwareConfigError(ValueError):
    """A hardware parameter is invalid or the model is not supported; the message says why."""


@dataclass(frozen=True)
class HardwareConfig:
    """Generation parameters of the accelerator (everything the IR deliberately leaves out).

    ``lanes`` is ``P``, the number of parallel multiply-accumulate lanes (one DSP multiplier
    each, or one per two lanes with :attr:`dsp_packing` 2: ``ceil(P / 2)``). Any ``P >= 1``
    works. With ``P <= 4H`` each lane owns rows; with ``P >= 8H`` the lanes form ``P // 4H``
    column groups (see :class:`~lstm_fpga.hw.plan.EnginePlan`); lanes that fit neither
    pattern (the remainder of ``P`` modulo ``4H`` when ``P > 4H``) are not built.
    """

    lanes: int = 16
    #: Elements of ``x_t`` per input beat (a power of two). 1 is the standard interface; more
    #: lets shapes that need over one input element per cycle (``I / bound > 1``) reach the
    #: bound. The ``x`` data then carries element ``e`` of the beat in bits ``[e*w, (e+1)*w)``.
    input_elements: int = 1
    #: What ``y`` carries: ``"all"`` -- an output vector for every time step (``nn.LSTM``'s
    #: ``output``, or the head on every step); ``"last"`` -- only the final step's (the
    #: classifier/forecaster pattern: ``output[T-1]`` or the head on it).
    output: str = "all"
    #: Longest sequence a bidirectional model buffers (its reverse direction needs the whole
    #: sequence). Required for bidirectional models; unidirectional ones stream sequences of
    #: any length and ignore it.
    max_seq_len: int | None = None
    #: Products per DSP multiplier in the matrix-vector unit: 1, or 2 (lanes ``2k`` and
    #: ``2k + 1`` share one multiplier, :class:`~lstm_fpga.hw.pipeline.PackedMultiplier`: the
    #: ``P`` lanes then take ``ceil(P / 2)`` DSPs). 2 needs weights and elements narrow enough
    #: for :attr:`dsp` (:func:`lstm_fpga.sw.numerics.dsp_packing`; checked by the plan).
    dsp_packing: int = 1
    #: The DSP the packed products must fit (a key of
    #: :data:`lstm_fpga.sw.numerics.DSP_PORTS`); the narrower Xilinx one by default.
    dsp: str = "DSP48E1"
    #: Where the lanes' weights come from: ``"on-chip"`` weight banks (block RAM / LUT RAM),
    #: or ``"external"`` memory through an AXI4 read master
    #: (:class:`~lstm_fpga.hw.external.WeightFetcher`, parameters :attr:`axi`).
    weights: str = "on-chip"
    #: The AXI4 read master's parameters with ``weights="external"``: an
    #: :class:`~lstm_fpga.hw.external.AxiReadParams` (``None``: its defaults).
    axi: object = None
    #: Sequences interleaved on the lanes (``B``, ``--interleave B``): ``B`` independent
    #: sequences of equal length stream as a group, time-multiplexed step by step (step ``t``
    #: of sequence 0, 1, .., B-1, then step ``t + 1``); each keeps its own ``h``/``c``, so a
    #: step's recurrence waits for the same sequence's previous step only, ``B`` jobs back
    #: (``docs/interleave.md``). 1 is the plain engine.
    interleave: int = 1

    def __post_init__(self):
        if not isinstance(self.lanes, int) or isinstance(self.lanes, bool) or self.lanes < 1:
            raise HardwareConfigError(
                f"lanes must be a positive int (the number of MAC lanes, P), not {self.lanes!r}"
            )
        k = self.input_elements
        if not isinstance(k, int) or isinstance(k, bool) or k < 1 or k & (k - 1):
            raise HardwareConfigError(
                f"input_elements must be a power of two (elements of x_t per input beat), not {k!r}"
            )
        if self.output not in OUTPUT_MODES:
            raise HardwareConfigError(
                f"output must be one of {', '.join(map(repr, OUTPUT_MODES))} (every step or only "
                f"the last), not {self.output!r}"
            )
        if self.dsp_packing not in PACKING_FACTORS or isinstance(self.dsp_packing, bool):
            raise HardwareConfigError(
                f"dsp_packing must be one of {', '.join(map(str, PACKING_FACTORS))} (products "
                f"per DSP multiplier), not {self.dsp_packing!r}"
            )
        if self.weights not in WEIGHT_SOURCES:
            raise HardwareConfigError(
                f"weights must be one of {', '.join(map(repr, WEIGHT_SOURCES))}, "
                f"not {self.weights!r}"
            )
        b = self.interleave
        if not isinstance(b, int) or isinstance(b, bool) or b < 1:
            raise HardwareConfigError(
                f"interleave must be a positive int (sequences sharing the lanes), not {b!r}"
            )
        n = self.max_seq_len
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise HardwareConfigError(
                f"max_seq_len must be None or a positive int (the longest buffered sequence), "
                f"not {n!r}"
            )
