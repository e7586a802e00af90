"""Which models generated hardware runs: one home for every compatibility check.

* :func:`check_supported`: can the engine be generated for ``model`` on ``config`` at all
  (every ``nn.LSTM`` and ``nn.GRU``; an ``nn.LSTM`` with ``proj_size`` with on-chip weights;
  bidirectional ones need ``max_seq_len``)?
* :func:`check_cell` (part of :func:`check_supported`): has the hardware a datapath for the
  model's cell on ``config`` (an ``nn.LSTM`` with ``proj_size``: not with external weights;
  attention pooling: not yet; also of a float model, before calibration)?
* :func:`check_interleave` (part of :func:`check_supported`): can ``config.interleave``
  sequences share the lanes for a model of this shape and cell type (also of a float model,
  before calibration)?
* :func:`check_same_shape`: does ``model`` have the generated sizes, layers, directions and
  head (a reference to compare the hardware with may differ in formats)?
* :func:`check_compatible`: can ``model``'s weights be loaded into the generated hardware
  (same shape, rounding, overflow and every format; only integer weights reload)?

:class:`~lstm_fpga.hw.interface.TopInterface` and :class:`~lstm_fpga.hw.plan.EnginePlan`
expose them for their model.
"""

from __future__ import annotations

from ..sw.ir import LstmModel
from ..sw.shape import CellType, LstmShape
from .config import HardwareConfig, HardwareConfigError

__all__ = [
    "INTERLEAVE_BIDIRECTIONAL",
    "INTERLEAVE_GRU",
    "AttentionNotSupportedError",
    "ProjectionNotSupportedError",
    "attention_refusal",
    "check_cell",
    "check_compatible",
    "check_control",
    "check_interleave",
    "check_same_shape",
    "check_supported",
    "projection_refusal",
]

#: Why ``--interleave`` refuses a bidirectional model.
INTERLEAVE_BIDIRECTIONAL = (
    "--interleave B > 1 runs unidirectional models only (a bidirectional model buffers whole "
    "sequences): drop --interleave or use a unidirectional model"
)
#: Why ``--interleave`` refuses an ``nn.GRU`` (its cell pipeline keeps one sequence's ``h``).
INTERLEAVE_GRU = (
    "--interleave B > 1 runs nn.LSTM models only (the GRU cell pipeline keeps one sequence's "
    "state, not B): drop --interleave for an nn.GRU"
)


class ProjectionNotSupportedError(HardwareConfigError):
    """The model is an ``nn.LSTM`` with ``proj_size > 0`` (LSTMP) in a configuration the
    generated hardware does not run yet (the integer reference does); ``proj_size`` is the
    model's, ``what`` names the unsupported part."""

    def __init__(self, proj_size: int, what: str):
        super().__init__(
            f"the model is an nn.LSTM with proj_size={proj_size} and {what}: the generated "
            f"hardware runs LSTMs with projections with on-chip weights and --control stream "
            f"(unidirectional or bidirectional, any layers, lanes and Linear head; "
            f"--interleave for unidirectional ones). Drop --weights external and --control "
            f"axi-lite, or run it with the integer reference "
            f"(lstm_fpga.sw.reference.run_reference; docs/lstmp.md)"
        )
        self.proj_size = proj_size
        self.what = what


class AttentionNotSupportedError(HardwareConfigError):
    """The model has attention pooling (``lstm``, ``attention``, ``fc``) in a configuration the
    generated hardware does not run (``what``, in CLI terms; :func:`attention_refusal`)."""

    def __init__(self, what: str):
        super().__init__(
            f"the model has attention pooling (lstm, attention, fc) and {what}: the generated "
            f"hardware runs attention pooling with on-chip weights, --control stream, --output "
            f"last, no --interleave and --max-seq-len N (the longest sequence its attention "
            f"unit keeps, at most {ATTENTION_MAX_STEPS_NOTE}); docs/attention.md"
        )
        self.what = what


#: Where the bound on ``--max-seq-len`` of an attention model comes from.
ATTENTION_MAX_STEPS_NOTE = "AttentionDatapath.max_steps of its formats"


def attention_refusal(model: LstmShape, config: HardwareConfig | None = None) -> str | None:
    """What of ``model`` (with attention pooling) on ``config`` the hardware does not run, in
    CLI terms, or ``None`` (also for a model without attention pooling)."""
    if getattr(model, "attention", None) is None or config is None:
        return None
    if config.weights == "external":
        return "--weights external"
    if config.interleave > 1:
        return f"--interleave {config.interleave}"
    if config.output != "last":
        return f"--output {config.output}"
    if config.max_seq_len is None:
        return "no --max-seq-len"
    datapath = getattr(model, "attention_datapath", None)
    if datapath is not None and config.max_seq_len > datapath().max_steps:
        return f"--max-seq-len {config.max_seq_len} (above {datapath().max_steps})"
    return None


def projection_refusal(model: LstmShape, config: HardwareConfig | None = None) -> str | None:
    """What of ``model`` (an LSTMP) on ``config`` the hardware does not run yet, or ``None``
    (also for a model without projection)."""
    if not model.proj_size:
        return None
    if config is not None and config.weights == "external":
        return "--weights external"
    return None


def check_control(model: LstmShape, control: str) -> None:
    """Raise :class:`ProjectionNotSupportedError` for an LSTMP with ``control`` other than
    ``"stream"`` (the AXI4-Lite top is not checked with an LSTMP), and
    :class:`AttentionNotSupportedError` for attention pooling with it."""
    if getattr(model, "attention", None) is not None and control != "stream":
        raise AttentionNotSupportedError(f"--control {control}")
    if model.proj_size and control != "stream":
        raise ProjectionNotSupportedError(model.proj_size, f"--control {control}")


def check_cell(model: LstmShape, config: HardwareConfig | None = None) -> None:
    """Raise :class:`ProjectionNotSupportedError` for an ``nn.LSTM`` with ``proj_size`` in a
    configuration the hardware does not run (:func:`projection_refusal`: external weights):
    the shape and the configuration decide, so a float model is checked before calibration
    too. A model with attention pooling raises :class:`AttentionNotSupportedError` where
    :func:`attention_refusal` names what is not run."""
    what = attention_refusal(model, config)
    if what is not None:
        raise AttentionNotSupportedError(what)
    what = projection_refusal(model, config)
    if what is not None:
        raise ProjectionNotSupportedError(model.proj_size, what)


def check_supported(model: LstmModel, config: HardwareConfig) -> None:
    """Raise :class:`HardwareConfigError` unless the engine can run ``model`` on ``config``
    (every ``nn.LSTM`` and ``nn.GRU`` can, an ``nn.LSTM`` with ``proj_size`` with on-chip
    weights, :func:`check_cell`; bidirectional ones need ``max_seq_len``)."""
    if not isinstance(model, LstmModel):
        raise HardwareConfigError(f"expected an LstmModel (the IR), not {type(model).__name__}")
    if not isinstance(config, HardwareConfig):
        raise HardwareConfigError(f"config must be a HardwareConfig, not {type(config).__name__}")
    check_cell(model, config)
    if model.bidirectional and config.max_seq_len is None:
        raise HardwareConfigError(
            "a bidirectional model needs the whole sequence before its reverse direction can "
            "start: set HardwareConfig(max_seq_len=...) to the longest sequence to buffer"
        )
    check_interleave(model, config)


def check_interleave(model: LstmShape, config: HardwareConfig) -> None:
    """Raise :class:`HardwareConfigError` unless ``config.interleave`` sequences can share the
    lanes for ``model``: its shape and cell type decide, so a float model
    (:class:`~lstm_fpga.sw.float_model.FloatLstm`) is checked before calibration too."""
    if config.interleave > 1:
        if model.bidirectional:
            raise HardwareConfigError(INTERLEAVE_BIDIRECTIONAL)
        if model.cell_type is CellType.GRU:
            raise HardwareConfigError(INTERLEAVE_GRU)


def _shape(model: LstmModel) -> tuple:
    head = None if model.head is None else model.head.out_features
    shape = (model.input_size, model.hidden_size, model.num_layers, model.bidirectional, head)
    if model.attention is not None:  # (only then: other tuples unchanged)
        shape = (*shape, f"attention {model.attention.attention_size}")
    # A GRU and an LSTM of one shape differ; an LSTM's tuple is unchanged.
    return shape if model.cell_type is CellType.LSTM else (*shape, model.cell_type.value)


def check_same_shape(model: LstmModel, generated: LstmModel) -> None:
    """Raise :class:`HardwareConfigError` unless ``model`` has ``generated``'s sizes, layers,
    directions and head outputs (formats may differ)."""
    if not isinstance(model, LstmModel):
        raise HardwareConfigError(f"expected an LstmModel, not {type(model).__name__}")
    if _shape(model) != _shape(generated):
        raise HardwareConfigError(
            "the model's shape (input_size, hidden_size, num_layers, bidirectional, head "
            f"outputs) {_shape(model)} differs from the generated hardware's "
            f"{_shape(generated)}; regenerate the hardware for a different shape"
        )


def check_compatible(model: LstmModel, mine: LstmModel) -> None:
    """Raise :class:`HardwareConfigError` unless ``model``'s weights load into hardware
    generated for ``mine``: the same shape, rounding, overflow and formats."""
    if model is mine:
        return
    check_same_shape(model, mine)
    if (model.rounding, model.overflow) != (mine.rounding, mine.overflow):
        raise HardwareConfigError(
            "the model's rounding and overflow modes differ from the generated ones; "
            "regenerate the hardware"
        )
    for a, b in zip(model.directions, mine.directions, strict=True):
        if a.formats != b.formats:
            raise HardwareConfigError(
                f"{a.name}: the reloaded model's formats differ from the generated ones; "
                f"quantise it with the same formats (calibrate with fixed formats) or "
                f"regenerate the hardware"
            )
    if model.attention is not None and (
        model.attention != mine.attention or model.head != mine.head
    ):
        raise HardwareConfigError(
            "attention pooling and its head are not reloadable (W and b on the lanes, v and "
            "the head in the attention unit's ROMs): the model's attention or head weights or "
            "formats differ from the generated ones; regenerate the hardware"
        )
    if model.head is not None and model.head.formats != mine.head.formats:
        raise HardwareConfigError(
            "head: the reloaded model's formats differ from the generated ones; quantise "
            "it with the same formats or regenerate the hardware"
        )
