"""Hardware generation parameters and the geometry they give one layer direction.

:class:`HardwareConfig` holds every choice that is *not* part of the model (the IR stays free
of them). :class:`PassGeometry` is the schedule of one layer direction on the matrix-vector
unit: how the ``4H x (I+H)`` gate matrix is cut into passes of ``lanes`` rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Shape, unsigned

from ..sw.ir import LstmModel

__all__ = [
    "GATES_PER_UNIT",
    "OUTPUT_MODES",
    "HardwareConfig",
    "HardwareConfigError",
    "PassGeometry",
    "cycle_bound",
    "index_shape",
]

#: Values of :attr:`HardwareConfig.output`.
OUTPUT_MODES = ("all", "last")
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
    each). Any ``P >= 1`` works. With ``P <= 4H`` each lane owns rows; with ``P >= 8H`` the
    lanes form ``P // 4H`` column groups (see :class:`PassGeometry`); lanes that fit neither
    pattern (the remainder of ``P`` modulo ``4H`` when ``P > 4H``) are not built.
    """

    lanes: int = 16
    #: Elements of ``x_t`` per input beat (a power of two). 1 is the standard interface; more
    #: lets shapes that need over one input element per cycle (``I / bound > 1``) reach the
    #: bound. ``x__tdata`` then carries element ``e`` of the beat in bits ``[e*w, (e+1)*w)``.
    input_elements: int = 1
    #: What ``y`` carries: ``"all"`` -- an output vector for every time step (``nn.LSTM``'s
    #: ``output``, or the head on every step); ``"last"`` -- only the final step's (the
    #: classifier/forecaster pattern: ``output[T-1]`` or the head on it).
    output: str = "all"
    #: Longest sequence a bidirectional model buffers (its reverse direction needs the whole
    #: sequence). Required for bidirectional models; unidirectional ones stream sequences of
    #: any length and ignore it.
    max_seq_len: int | None = None

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
        n = self.max_seq_len
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise HardwareConfigError(
                f"max_seq_len must be None or a positive int (the longest buffered sequence), "
                f"not {n!r}"
            )

    def geometry(self, input_size: int, hidden_size: int) -> PassGeometry:
        return PassGeometry(input_size, hidden_size, self.lanes)


@dataclass(frozen=True)
class PassGeometry:
    """Schedule of one layer direction (``I`` inputs, ``H`` hidden units) on ``P`` lanes.

    Rows of the gate matrix are interleaved *unit-major*: row ``r`` is gate ``r % 4`` (i, f, g,
    o) of hidden unit ``r // 4``, i.e. PyTorch row ``(r % 4) * H + r // 4``.

    The lanes form :attr:`groups` groups of :attr:`row_lanes` lanes. Lane ``p`` is lane
    ``q = p % row_lanes`` of group ``g = p // row_lanes``. Pass ``k`` computes rows
    ``k*row_lanes + q``; in cycle ``j`` of a pass, group ``g`` multiplies column
    ``j*groups + g`` of ``[x_t ; h_{t-1}]``, and the groups' partial sums of a row are added
    when the pass ends. With ``P <= 4H`` there is one group (plain row-parallel, one column per
    cycle); only ``P >= 8H`` gives several groups, because a lane's row is its unit of work.
    A step takes ``passes * span`` MAC cycles.
    """

    input_size: int
    hidden_size: int
    requested_lanes: int

    def __post_init__(self):
        for name in ("input_size", "hidden_size", "requested_lanes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HardwareConfigError(f"{name} must be a positive int, not {value!r}")

    @property
    def rows(self) -> int:
        return GATES_PER_UNIT * self.hidden_size

    @property
    def columns(self) -> int:
        return self.input_size + self.hidden_size

    @property
    def groups(self) -> int:
        """Column groups: ``min(P // 4H, I + H)`` when ``P >= 8H``, else 1."""
        return max(1, min(self.requested_lanes // self.rows, self.columns))

    @property
    def row_lanes(self) -> int:
        """Lanes per group (rows computed in parallel): ``min(P, 4H)``."""
        return min(self.requested_lanes, self.rows)

    @property
    def lanes(self) -> int:
        """Physical lanes (DSP multipliers): ``groups * row_lanes <= P``."""
        return self.groups * self.row_lanes

    @property
    def span(self) -> int:
        """Cycles of a pass: ``ceil((I + H) / groups)``."""
        return math.ceil(self.columns / self.groups)

    @property
    def passes(self) -> int:
        return math.ceil(self.rows / self.row_lanes)

    @property
    def bank_depth(self) -> int:
        """Words per weight bank: one per (pass, cycle of the pass)."""
        return self.passes * self.span

    @property
    def last_pass_rows(self) -> int:
        """Rows of the final pass that exist (the rest of its lanes compute zeros)."""
        return self.rows - (self.passes - 1) * self.row_lanes

    @property
    def mac_cycles_per_step(self) -> int:
        return self.passes * self.span

    @property
    def bound(self) -> int:
        """The speed limit of ``P`` multipliers: ``ceil(4H (I+H) / P)`` cycles per step."""
        return math.ceil(self.rows * self.columns / self.requested_lanes)

    def torch_row(self, row: int) -> int:
        """PyTorch row (gate-major, ``gate * H + unit``) of unit-major row ``row``."""
        return (row % GATES_PER_UNIT) * self.hidden_size + row // GATES_PER_UNIT


def cycle_bound(model_or_input_size, hidden_size: int | None = None, *, lanes: int) -> int:
    """The fewest cycles per time step ``P`` multipliers can need.

    ``cycle_bound(model, lanes=P)``: the sum over the model's layer directions of
    ``ceil(4H (I_k + H) / P)`` (``I_k``: the layer's input size; ``ceil(4H(I+H)/P)`` for one
    layer). ``cycle_bound(I, H, lanes=P)``: one layer direction.
    """
    if isinstance(model_or_input_size, LstmModel):
        if hidden_size is not None:
            raise TypeError("pass either a model or (input_size, hidden_size), not both")
        model = model_or_input_size
        return sum(PassGeometry(d.input_size, d.hidden_size, lanes).bound for d in model.directions)
    if hidden_size is None:
        raise TypeError("cycle_bound(I, H, lanes=P) needs the hidden size")
    return PassGeometry(model_or_input_size, hidden_size, lanes).bound
