"""Fixed-point numerics: the single source of truth for every number lstm-fpga computes.

Everything the hardware does to a number is defined here once and used by the integer
reference (:mod:`lstm_fpga.sw.reference`), the Amaranth generator (:mod:`lstm_fpga.hw`) and
the simulator checks (:mod:`lstm_fpga.sim`):

* :class:`FixedFormat` -- a two's complement (or unsigned) format ``width``/``frac``.
* :func:`quantize` / :func:`dequantize` -- float <-> integer conversion.
* :func:`shift_round`, :func:`clamp`, :func:`rescale` -- the hardware's requantisation step:
  an arithmetic shift with a rounding rule, then saturation or wrap-around.
* :class:`AccumulatorPlan` / :func:`plan_accumulator` -- how products of differently scaled
  operands are aligned into one accumulator, and how wide that accumulator must be so that it
  can never overflow.
* :class:`ActivationTable` -- sigmoid and tanh as integer functions (a table with linear
  interpolation) generated from the input and output formats.
* :class:`LstmFormats` / :class:`LstmDatapath` -- the formats of one LSTM layer direction and
  everything derived from them (accumulator plans and activation tables).
* :class:`GruFormats` / :class:`GruDatapath` -- the same for one ``nn.GRU`` layer direction.
* :class:`AttentionFormats` / :class:`AttentionDatapath` -- attention pooling over time: the
  score matrix, tanh, the softmax (exp table, one reciprocal per sequence) and the context.

* :class:`IntermediateWidth` / :func:`check_exact` -- every intermediate width the formats
  derive, checked against :data:`MAX_EXACT_WIDTH` (what the int64 reference holds exactly).
* :func:`check_format_chain` -- how the formats of a model's layers and head chain.
* :class:`PackedProduct` / :func:`dsp_packing` -- two multiplies per DSP: the packed operand,
  the split with its borrow correction, and which widths fit which DSP (:data:`DSP_PORTS`).

The modules: ``fixed`` (formats, quantise, shift, clamp), ``accumulator``, ``activation``,
``datapath`` (a layer direction's and the head's formats and derived arithmetic),
``attention`` (attention pooling's formats and arithmetic).

The numeric contract these pieces implement is written down in ``docs/numerics.md``.
"""

from .accumulator import AccumulatorPlan, MacSegment, plan_accumulator
from .activation import (
    ACTIVATION_DOMAIN,
    ACTIVATION_SEGMENTS_PER_UNIT,
    EXP_SEGMENTS_PER_UNIT,
    Activation,
    ActivationTable,
    activation_table,
    exp_domain,
    exp_table,
)
from .attention import RECIP_GUARD_BITS, AttentionDatapath, AttentionFormats, AttentionSoftmax
from .datapath import (
    FormatWidthError,
    GruDatapath,
    GruFormats,
    HeadDatapath,
    HeadFormats,
    IntermediateWidth,
    LstmDatapath,
    LstmFormats,
    LstmpDatapath,
    LstmpFormats,
    cell_formats,
    check_exact,
    check_format_chain,
)
from .fixed import (
    DEFAULT_WIDTH,
    MAX_EXACT_WIDTH,
    FixedFormat,
    Overflow,
    Rounding,
    clamp,
    dequantize,
    overflow_count,
    quantize,
    rescale,
    scaled_integers,
    shift_round,
)
from .packing import (
    DSP_PORTS,
    FAMILY_DSP,
    PACKING_FACTORS,
    UNPACKABLE_DSPS,
    DspPackingError,
    PackedProduct,
    dsp_packing,
)

__all__ = [
    "ACTIVATION_DOMAIN",
    "ACTIVATION_SEGMENTS_PER_UNIT",
    "DEFAULT_WIDTH",
    "DSP_PORTS",
    "EXP_SEGMENTS_PER_UNIT",
    "FAMILY_DSP",
    "MAX_EXACT_WIDTH",
    "PACKING_FACTORS",
    "RECIP_GUARD_BITS",
    "UNPACKABLE_DSPS",
    "AccumulatorPlan",
    "Activation",
    "ActivationTable",
    "AttentionDatapath",
    "AttentionFormats",
    "AttentionSoftmax",
    "DspPackingError",
    "FixedFormat",
    "FormatWidthError",
    "GruDatapath",
    "GruFormats",
    "HeadDatapath",
    "HeadFormats",
    "IntermediateWidth",
    "LstmDatapath",
    "LstmFormats",
    "LstmpDatapath",
    "LstmpFormats",
    "MacSegment",
    "Overflow",
    "PackedProduct",
    "Rounding",
    "activation_table",
    "cell_formats",
    "check_exact",
    "check_format_chain",
    "clamp",
    "dequantize",
    "dsp_packing",
    "exp_domain",
    "exp_table",
    "overflow_count",
    "plan_accumulator",
    "quantize",
    "rescale",
    "scaled_integers",
    "shift_round",
]
