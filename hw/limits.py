"""What limits a design: the lanes, the recurrence, or the memory its weights would come from.

Pure Python, no HDL, computed from the contract (:class:`~lstm_fpga.hw.interface.TopInterface`
and its :class:`~lstm_fpga.hw.plan.EnginePlan`), never simulated. For one build,
:func:`design_limits` gives per time step:

* **cycles**: the contract's recurrence step bound
  (:attr:`TopInterface.recurrence_step_bound`), at least the lane bound
  :meth:`EnginePlan.step_bound` (the sum over layer directions of ``ceil(4H(I_k + H) / P)``;
  ``ceil(3H(I_k + H) / P)`` for a GRU, three lane rows per unit, :mod:`lstm_fpga.hw.plan`),
  plus the head's ``ceil(O * D*H / P)`` when it runs every step (output ``"all"``);
* **weight bytes read**: every weight is read once per step. The lanes read one word of
  ``W`` bits (the banks' width, :attr:`EnginePlan.weight_shape`) per built lane per MAC cycle
  (passes x span of every matrix), so the figure counts the zero padding the lanes multiply
  (rows past ``4H`` (a GRU's ``3H``) in a matrix's last pass, columns past ``I_k + H`` in its
  last cycle): the *structural zeros*, reported apart from the
  model's own weights (which are counted at their own formats' widths);
* **bandwidth needed**: those bytes at the clock ``f`` once per ``cycles / f``: the rate a
  memory would have to deliver for the weights to keep the lanes busy;
* with a memory of ``G`` GB/s (``lstm-fpga build --memory-gbps G``): the step time
  ``max(cycles / f, bytes / (G * 1e9))``, *compute-bound* when the first is larger (or equal),
  *memory-bound* otherwise, the microseconds per step and the lane utilisation
  (``4H(I_k + H)`` multiplies per layer direction, ``3H(I_k + H)`` for a GRU, over built
  lanes x ``f`` x step time).

Biases (one word per lane per pass) are listed but left out of the bandwidth: on-chip bias
banks are LUT RAM. With on-chip weights (block RAM) the memory figures say what a design
would need if its weights were streamed from external memory; with ``weights="external"``
(:mod:`lstm_fpga.hw.external`) they are what its AXI4 read master fetches, each weight once
per step (the image rounds them up to whole bus beats); with ``--interleave B`` too, once per
group step, so per sequence-step ``1/B`` of them (weight reuse).

The clock (:class:`Clock`) is the Fmax ``lstm-fpga synth`` measured (``build.json``
``"timing"``) when there is one, else :data:`NOMINAL_CLOCK_MHZ`; the figures say which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .interface import TopInterface
from .plan import EnginePlan, MatrixPlan

__all__ = [
    "NOMINAL_CLOCK_MHZ",
    "Clock",
    "DesignLimits",
    "MatrixLimits",
    "MemoryBound",
    "check_memory_gbps",
    "design_limits",
    "measured_clock",
]

#: The clock the figures assume when no Fmax was measured: ``lstm-fpga synth``'s default
#: ``--freq`` target (MHz).
NOMINAL_CLOCK_MHZ = 100.0


def check_memory_gbps(value) -> float:
    """``value`` as a memory bandwidth in GB/s: a finite number > 0 (else ``ValueError``)."""
    try:
        gbps = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"memory bandwidth must be a number of GB/s, not {value!r}") from None
    if not math.isfinite(gbps) or gbps <= 0:
        raise ValueError(f"memory bandwidth must be a positive number of GB/s, not {value!r}")
    return gbps


@dataclass(frozen=True)
class Clock:
    """The clock the figures use: ``mhz`` and where it comes from (``measured``: an Fmax of
    ``lstm-fpga synth``; else nominal), with a ``source`` a reader can check."""

    mhz: float
    measured: bool
    source: str

    def __post_init__(self):
        if not (math.isfinite(self.mhz) and self.mhz > 0):
            raise ValueError(f"clock must be a positive frequency in MHz, not {self.mhz!r}")

    @classmethod
    def nominal(cls, mhz: float = NOMINAL_CLOCK_MHZ) -> Clock:
        return cls(mhz, False, f"nominal {mhz:g} MHz (not measured: run `lstm-fpga synth`)")

    def to_json_dict(self) -> dict:
        return {"mhz": self.mhz, "measured": self.measured, "source": self.source}


def measured_clock(timing: dict | None) -> Clock:
    """The clock of a build's ``build.json`` ``"timing"`` (what ``lstm-fpga synth`` recorded,
    per target): the lowest Fmax measured, else :meth:`Clock.nominal`."""
    runs = [t for t in (timing or {}).values() if t.get("fmax_mhz")]
    if not runs:
        return Clock.nominal()
    run = min(runs, key=lambda t: t["fmax_mhz"])
    where = f"{run.get('part', run.get('device', run['target']))}"
    if run.get("speed") is not None:
        where += f" speed {run['speed']}"
    return Clock(
        float(run["fmax_mhz"]), True, f"measured Fmax {run['fmax_mhz']:g} MHz ({where}, synth)"
    )


@dataclass(frozen=True)
class MatrixLimits:
    """One matrix per step (a layer direction, or the head): its lane bound, the lanes' busy
    cycles, the multiplies it needs and the weight bits the lanes read (zeros included) and
    the model holds."""

    name: str
    lane_bound: int
    mac_cycles: int
    macs: int
    read_bits: int
    model_bits: int

    def to_json_dict(self) -> dict:
        return {
            "name": self.name,
            "lane_bound": self.lane_bound,
            "mac_cycles": self.mac_cycles,
            "multiplies": self.macs,
            "weight_bytes_read": self.read_bits / 8,
            "model_weight_bytes": self.model_bits / 8,
        }


def _matrix_limits(plan: EnginePlan, mp: MatrixPlan) -> MatrixLimits:
    if mp.is_head:
        formats = [(plan.head.formats.weight, mp.real_rows * mp.columns)]
    elif mp.is_projection:  # an LSTMP's W_hr (R x H)
        formats = [(plan.model.directions[mp.projects].formats.w_hr, mp.real_rows * mp.columns)]
    else:
        d = plan.model.directions[mp.index]
        f = d.formats
        rows = mp.useful_rows  # 4H; a GRU's 3H (the rows of W_ih and W_hh)
        # (W_hh: H columns; an LSTMP's R)
        formats = [(f.w_ih, rows * d.input_size), (f.w_hh, rows * plan.real_hidden_size)]
    return MatrixLimits(
        name=mp.name,
        lane_bound=int(mp.bound),
        mac_cycles=int(mp.mac_cycles),
        macs=int(mp.useful_rows * mp.columns),
        read_bits=int(mp.mac_cycles * plan.lanes * plan.weight_shape.width),
        model_bits=int(sum(fmt.width * count for fmt, count in formats)),
    )


@dataclass(frozen=True)
class MemoryBound:
    """The design with its weights from a memory of ``gbps`` GB/s."""

    gbps: float
    compute_us: float
    memory_us: float
    utilisation: float  # of the built lanes, 0..1

    @property
    def memory_bound(self) -> bool:
        """The memory needs longer than the lanes for a step (a tie is compute-bound)."""
        return self.memory_us > self.compute_us

    @property
    def bound(self) -> str:
        return "memory" if self.memory_bound else "compute"

    @property
    def us_per_step(self) -> float:
        return max(self.compute_us, self.memory_us)

    def to_json_dict(self) -> dict:
        return {
            "memory_gbps": self.gbps,
            "bound": self.bound,
            "us_per_step": self.us_per_step,
            "compute_us_per_step": self.compute_us,
            "memory_us_per_step": self.memory_us,
            "lane_utilisation_percent": round(100 * self.utilisation, 2),
        }


@dataclass(frozen=True)
class DesignLimits:
    """The figures of one build per time step (see the module docstring)."""

    lanes: int  # requested (P of the bounds)
    lanes_built: int
    weight_width: int
    cycles_per_step: int
    lane_bound: int
    matrices: tuple[MatrixLimits, ...]  # per step: layer directions (+ head with output all)
    head: MatrixLimits | None
    head_every_step: bool
    bias_bits_per_step: int
    clock: Clock
    #: Sequences interleaved on the lanes (``B``): a "step" is then one sequence's step, the
    #: cycles a group's step takes divided by ``B``; on chip each sequence-step reads its
    #: weights (``docs/interleave.md``), with external weights the group shares them.
    interleave: int = 1
    #: External weights with ``B > 1`` (:attr:`EnginePlan.weight_reuse`): each fetched
    #: weight serves the group's ``B`` sequences, so a sequence-step reads ``1/B`` of them.
    weight_reuse: bool = False

    @property
    def _sharing(self) -> int:
        """Sequence-steps one weight read serves: ``B`` with weight reuse, else 1."""
        return self.interleave if self.weight_reuse else 1

    @property
    def macs_per_step(self) -> int:
        return sum(m.macs for m in self.matrices)

    @property
    def read_bits_per_step(self) -> int:
        return sum(m.read_bits for m in self.matrices)

    @property
    def model_bits_per_step(self) -> int:
        return sum(m.model_bits for m in self.matrices)

    @property
    def bytes_per_step(self) -> float:
        """Weight bytes the lanes read per step (structural zeros included; with weight
        reuse per sequence-step: a group step's over ``B``)."""
        return self.read_bits_per_step / 8 / self._sharing

    @property
    def model_bytes_per_step(self) -> float:
        """The model's own weight bytes per step (at their formats' widths)."""
        return self.model_bits_per_step / 8 / self._sharing

    @property
    def zero_bytes_per_step(self) -> float:
        """Bytes of structural zeros the lanes read per step (padding rows and columns),
        ``W`` bits each."""
        padding = sum(m.mac_cycles * self.lanes_built - m.macs for m in self.matrices)
        return padding * self.weight_width / 8 / self._sharing

    @property
    def compute_us(self) -> float:
        """Microseconds per step when the lanes limit: ``cycles / f``."""
        return self.cycles_per_step / self.clock.mhz

    @property
    def gbps_needed(self) -> float:
        """GB/s (10^9 bytes per second) that keep the lanes busy at the clock."""
        return self.bytes_per_step / (self.compute_us * 1e3)

    @property
    def lane_utilisation(self) -> float:
        """Multiplies per step over built lanes x cycles per step (compute-bound)."""
        return self.macs_per_step / (self.lanes_built * self.cycles_per_step)

    def with_memory(self, gbps: float) -> MemoryBound:
        """The step with the weights from a memory of ``gbps`` GB/s."""
        gbps = check_memory_gbps(gbps)
        memory_us = self.bytes_per_step / (gbps * 1e3)
        step_us = max(self.compute_us, memory_us)
        utilisation = self.macs_per_step / (self.lanes_built * self.clock.mhz * step_us)
        return MemoryBound(gbps, self.compute_us, memory_us, utilisation)

    def to_json_dict(self, memory_gbps=()) -> dict:
        """The figures as ``build.json``'s ``"limits"``, with the bound at each of
        ``memory_gbps`` (GB/s)."""
        return {
            "basis": "computed from the contract (recurrence and lane bounds, weight formats); "
            "weights are on chip: the memory figures say what streaming them from a memory "
            "would need (not simulated)",
            "clock": self.clock.to_json_dict(),
            "lanes": self.lanes,
            "lanes_built": self.lanes_built,
            "interleave": self.interleave,
            "step": "one step of one sequence"
            + (
                f" ({self.interleave} interleaved: a group's step takes "
                f"{self.interleave} times the cycles and bytes)"
                if self.interleave > 1
                else ""
            ),
            "cycles_per_step": self.cycles_per_step,
            "lane_bound_per_step": self.lane_bound,
            "recurrence_limited": self.cycles_per_step > self.lane_bound,
            "us_per_step_compute": round(self.compute_us, 6),
            "multiplies_per_step": self.macs_per_step,
            "lane_utilisation_percent": round(100 * self.lane_utilisation, 2),
            "weight_width_bits": self.weight_width,
            "weight_bytes_per_step": self.bytes_per_step,
            "model_weight_bytes_per_step": self.model_bytes_per_step,
            "structural_zero_bytes_per_step": self.zero_bytes_per_step,
            "bias_bytes_per_step": self.bias_bits_per_step / 8,
            "weight_gbps_needed": round(self.gbps_needed, 6),
            "head_every_step": self.head_every_step,
            "head_per_output": None if self.head is None else self.head.to_json_dict(),
            "matrices": [m.to_json_dict() for m in self.matrices],
            "memory": [self.with_memory(g).to_json_dict() for g in memory_gbps],
        }

    def describe(self, memory_gbps=()) -> list[str]:
        """Lines for a terminal: the step, the bandwidth, the bound at each ``memory_gbps``."""
        limited = (
            f"recurrence-limited: lane bound {self.lane_bound}"
            if self.cycles_per_step > self.lane_bound
            else "the lane bound"
        )
        head = ""
        if self.head is not None:
            head = " (with the head)" if self.head_every_step else " (head: once per sequence)"
        if self.interleave > 1:
            head += f" per sequence, {self.interleave} sequences interleaved"
        lines = [
            f"limits at {self.clock.source}: {self.cycles_per_step} cycles per step{head} "
            f"({limited}) = {self.compute_us:.3f} µs, lanes {100 * self.lane_utilisation:.1f} % "
            f"busy",
            f"  weights read per step: {_bytes(self.bytes_per_step)} ({self.weight_width}-bit "
            f"words, {_bytes(self.zero_bytes_per_step)} of them structural zeros; model "
            f"weights {_bytes(self.model_bytes_per_step)}); streamed from memory they would "
            f"need {self.gbps_needed:.3g} GB/s",
        ]
        for gbps in memory_gbps:
            m = self.with_memory(gbps)
            lines.append(
                f"  from a {gbps:g} GB/s memory: {m.bound}-bound, {m.us_per_step:.3f} µs per "
                f"step, lanes {100 * m.utilisation:.1f} % busy"
            )
        return lines


def _bytes(n: float) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n:g} B"


def design_limits(plan_or_interface, clock: Clock | None = None) -> DesignLimits:
    """The limits of a build (an :class:`EnginePlan` or its :class:`TopInterface`) at
    ``clock`` (default :meth:`Clock.nominal`)."""
    interface = (
        plan_or_interface
        if isinstance(plan_or_interface, TopInterface)
        else TopInterface(plan_or_interface)
    )
    plan = interface.plan
    clock = Clock.nominal() if clock is None else clock
    per_step = (*plan.lstm_matrices, *plan.projection_matrices)  # (an LSTMP's projections)
    matrices = [_matrix_limits(plan, mp) for mp in per_step]
    head = None if plan.head_matrix is None else _matrix_limits(plan, plan.head_matrix)
    every_step = head is not None and plan.output_mode == "all"
    cycles = interface.recurrence_step_bound
    passes = sum(mp.passes for mp in per_step)
    if every_step:
        matrices.append(head)
        cycles += head.lane_bound
        passes += plan.head_matrix.passes
    return DesignLimits(
        lanes=int(plan.config.lanes),
        lanes_built=int(plan.lanes),
        weight_width=int(plan.weight_shape.width),
        cycles_per_step=int(cycles),
        lane_bound=int(interface.step_bound) + (head.lane_bound if every_step else 0),
        matrices=tuple(matrices),
        head=head,
        head_every_step=every_step,
        bias_bits_per_step=int(passes * plan.lanes * plan.bias_shape.width),
        clock=clock,
        interleave=int(plan.interleave),
        weight_reuse=bool(plan.weight_reuse),
    )
