"""What the hardware produced: :class:`SimulationResult`, decoded from a plan's run.

:func:`decode_phase` turns the captures of :func:`~lstm_fpga.sim.phases.stimulus_phase`
phases back into ``nn.LSTM``'s shapes (outputs, ``h_n``/``c_n``, cycles per sequence and
step, status), unpacking beats with the design's
:class:`~lstm_fpga.hw.interface.TopInterface`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sw.ir import LstmModel
from ..sw.numerics import FixedFormat, dequantize
from ..sw.reference import SaturationCounts
from .design import HardwareDesign, read_through
from .phases import Stimulus
from .runner import SimulationError
from .stimulus import PlanResult

__all__ = ["SimulationResult", "decode_phase"]


def _macs_per_step(model: LstmModel) -> int:
    H, R = model.hidden_size, model.proj_size
    if R:  # an LSTMP: the gates over [x; h] (R recurrent columns) and the projection
        return sum(4 * H * (d.input_size + R) + R * H for d in model.directions)
    return sum(4 * H * (d.input_size + H) for d in model.directions)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What the hardware produced, in ``nn.LSTM``'s shapes (like the integer reference).

    ``outputs`` holds what the ``y`` stream carried, in the caller's layout: with output mode
    ``"all"`` one vector per step (``(T, B, F)``, zero past each length), with ``"last"`` only
    each sequence's final one (``(B, F)``). ``F`` is ``D*H`` (the LSTM ``output``) or, for a
    model with a Linear head, the head's ``O``; ``head`` is then the same array (like
    ``run_reference(..., head_on=mode).head``) and ``None`` without a head.
    ``h_n``/``c_n`` (``(L*D, B, H)``) are ``None`` unless the state was read out.
    ``cycles[b]`` counts cycles from sequence ``b``'s first accepted input beat to its last
    output beat (measured by the testbench); ``step_end_cycles[b, t]`` is the cycle of the
    last output beat of step ``t`` (-1 past the length or for steps ``y`` does not carry);
    ``dut_cycles`` is the hardware's own ``cycles`` register at the end.
    ``h0``/``c0`` (``(L*D, B, H)`` or ``None``) and ``carry_state`` record the initial state
    the run used; ``saturations`` the hardware's saturation counters, ``overflow`` its
    sequence-length overflow flag (``None`` on hardware without them).
    """

    design: HardwareDesign
    stimulus: Stimulus  # what was streamed (inputs, lengths, layout)
    run: PlanResult  # the simulator run it was decoded from
    outputs: np.ndarray
    h_n: np.ndarray | None
    c_n: np.ndarray | None
    cycles: np.ndarray
    step_end_cycles: np.ndarray
    dut_cycles: int
    paced: bool
    wall_seconds: float
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    carry_state: bool = False
    saturations: SaturationCounts | None = None
    overflow: bool | None = None
    weights: LstmModel | None = None  # loaded through ``w`` before the run, if any

    # Read through from what the result was decoded from (one copy of each value).
    inputs = read_through("stimulus", "inputs", "The integer inputs, time-major ``(T, B, I)``.")
    lengths = read_through("stimulus", "lengths", "Valid steps of each sequence, ``(B,)``.")
    batch_first = read_through("stimulus", "batch_first")
    unbatched = read_through("stimulus", "unbatched")
    output_mode = read_through("design", "output_mode", '``"all"`` or ``"last"``.')
    total_cycles = read_through("run", "total_cycles")
    sim_seconds = read_through("run", "sim_seconds")
    wakes = read_through("run", "wakes")
    run_dir = read_through("run", "run_dir")
    waves = read_through("run", "waves")

    @property
    def model(self) -> LstmModel:
        """The model whose weights the hardware ran (the reloaded one, if any)."""
        return self.weights if self.weights is not None else self.design.model

    @property
    def head(self) -> np.ndarray | None:
        """The Linear head's outputs (``outputs`` of a model with a head), else ``None``."""
        return self.outputs if self.model.head is not None else None

    @property
    def head_float(self) -> np.ndarray | None:
        return None if self.head is None else self.outputs_float

    @property
    def output_format(self) -> FixedFormat:
        """Format of ``outputs``: the head's output format, or the top layer's hidden one."""
        return self.design.interface.y_format

    @property
    def outputs_float(self) -> np.ndarray:
        return dequantize(self.outputs, self.output_format)

    @property
    def h_n_float(self) -> np.ndarray | None:
        if self.h_n is None:
            return None
        formats = [d.formats.hidden for d in self.model.directions]
        return np.stack([dequantize(h, f) for h, f in zip(self.h_n, formats, strict=True)])

    @property
    def c_n_float(self) -> np.ndarray | None:
        if self.c_n is None:
            return None
        formats = self.model.cell_formats
        return np.stack([dequantize(c, f) for c, f in zip(self.c_n, formats, strict=True)])

    @property
    def cycles_per_step(self) -> float:
        """Steady-state cycles per time step: spacing of step completions inside sequences
        (first steps excluded, they include the pipeline fill). Whole sequences instead when
        ``y`` carries only the last step, for bidirectional models (their outputs leave after
        the whole sequence is computed) or when every sequence has one step."""
        gaps = []
        if self.output_mode == "all" and not self.model.bidirectional:
            for b, length in enumerate(self.lengths):
                ends = self.step_end_cycles[b, :length]
                gaps.extend(np.diff(ends).tolist())
        if gaps:
            return float(np.mean(gaps))
        return float(np.sum(self.cycles) / np.sum(self.lengths))

    @property
    def lane_utilization(self) -> float:
        """Useful multiply-accumulates per lane-cycle in the steady state."""
        return _macs_per_step(self.model) / (self.design.lanes * self.cycles_per_step)

    @property
    def cycles_per_second(self) -> float:
        """Simulated cycles per wall-clock second inside the simulator process."""
        return self.total_cycles / self.sim_seconds if self.sim_seconds else float("nan")


def _merged(run: PlanResult, phases, kind: str, name: str):
    """Data, last flags and cycles of stream ``name`` over ``phases``, in order."""
    data, last, cycle = [], [], []
    for index in phases:
        phase = run.phases[index]
        if kind == "source":
            cycle.append(np.asarray(phase.source(name).cycle, dtype=np.int64))
            continue
        capture = phase.sink(name)
        data.append(np.asarray(capture.data, dtype=np.int64))
        last.append(np.asarray(capture.last, dtype=bool))
        cycle.append(np.asarray(capture.cycle, dtype=np.int64))
    if kind == "source":
        return np.concatenate(cycle)
    return np.concatenate(data), np.concatenate(last), np.concatenate(cycle)


def _unordered(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``values`` in wire order (beat ``i`` is sequence-order beat ``order[i]``) back in
    sequence order."""
    result = np.empty_like(values)
    result[order] = values
    return result


def _final_states(interface, run: PlanResult, phases, lengths: np.ndarray):
    """``(h_n, c_n)`` (``(L*D, B, H)``, zero for refused sequences) from the ``state``
    stream of ``phases``, or ``(None, None)`` when the state was not read out (``c_n`` is
    ``None`` for a GRU)."""
    s_data, s_last, _ = _merged(run, phases, "sink", interface.state.name)
    if not s_data.size:
        return None, None
    plan = interface.plan
    LD, H, B = plan.num_directions_total, plan.hidden_size, len(lengths)
    beats = interface.state_beats  # per sequence
    kept = np.flatnonzero(~interface.dropped(lengths))
    if s_data.size != kept.size * beats:
        raise SimulationError(
            f"the state stream carried {s_data.size} beats, expected {beats} per "
            f"sequence; run dir {run.run_dir}"
        )
    h, c = interface.final_states(s_data, kept.size)
    h_n = np.zeros((LD, B, plan.real_hidden_size), dtype=np.int64)
    h_n[:, kept] = h
    c_n = None  # a GRU has no cell state
    if c is not None:
        c_n = np.zeros((LD, B, H), dtype=np.int64)
        c_n[:, kept] = c
    if not np.array_equal(np.flatnonzero(s_last) + 1, (np.arange(kept.size) + 1) * beats):
        raise SimulationError(f"state tlast misplaced; run dir {run.run_dir}")
    return h_n, c_n


def decode_phase(
    design: HardwareDesign,
    stimulus: Stimulus,
    run: PlanResult,
    phase_index: int | tuple[int, ...] = 0,
    *,
    paced: bool = False,
    wall_seconds: float = 0.0,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    carry_state: bool = False,
    weights: LstmModel | None = None,
) -> SimulationResult:
    """The :class:`SimulationResult` of a :func:`~lstm_fpga.sim.phases.stimulus_phase`
    inside ``run`` (or of several, given as a tuple of indices, that streamed ``stimulus``'s
    sequences in order). ``h0``/``c0``/``carry_state`` record the state the phases started
    from, for :func:`~lstm_fpga.sim.compare.compare`."""
    from ..hw.interface import SaturationKind, Status

    interface = design.interface
    phases = (phase_index,) if isinstance(phase_index, int) else tuple(phase_index)
    final = run.phases[phases[-1]]
    y_data, y_last, y_cycle = _merged(run, phases, "sink", interface.y.name)
    x_cycles = _merged(run, phases, "source", interface.x.name)
    T, B = stimulus.inputs.shape[:2]
    lengths = stimulus.lengths
    if interface.interleave > 1:  # the wire's interleaved order back to sequence order
        y_order, x_order = interface.y_order(lengths), interface.x_order(lengths)
        if y_data.size == y_order.size:
            y_data, y_last, y_cycle = (_unordered(a, y_order) for a in (y_data, y_last, y_cycle))
        if x_cycles.size == x_order.size:
            x_cycles = _unordered(x_cycles, x_order)
    features = interface.y_features
    expected = interface.y_beats(lengths)
    got = np.diff(np.r_[-1, np.flatnonzero(y_last)])
    if not np.array_equal(got, expected[expected > 0]):
        raise SimulationError(
            f"the output stream's packets have {got.tolist()} beats (tlast positions), "
            f"expected {expected[expected > 0].tolist()} ({design.output_mode!r} output mode, "
            f"{features} values per step); run dir {run.run_dir}"
        )
    last_mode = design.output_mode == "last"
    outputs = np.zeros((B, features) if last_mode else (T, B, features), dtype=np.int64)
    step_end = np.full((B, T), -1, dtype=np.int64)
    cycles = np.zeros(B, dtype=np.int64)
    in_starts = np.r_[0, np.cumsum(lengths * interface.x_beats_per_step)[:-1]]
    out_starts = np.r_[0, np.cumsum(expected)[:-1]]
    for b in range(B):
        n = int(lengths[b])
        if expected[b] == 0:
            continue
        block = slice(out_starts[b], out_starts[b] + expected[b])
        ends = y_cycle[block].reshape(-1, features)[:, -1]
        if last_mode:
            outputs[b] = y_data[block]
            step_end[b, n - 1] = ends[-1]
        else:
            outputs[:n, b] = y_data[block].reshape(n, features)
            step_end[b, :n] = ends
        cycles[b] = y_cycle[block][-1] - x_cycles[in_starts[b]]
    h_n, c_n = _final_states(interface, run, phases, lengths)
    if stimulus.unbatched:
        outputs = outputs[0] if last_mode else outputs[:, 0]
        if h_n is not None:
            h_n, c_n = h_n[:, 0], c_n[:, 0]
    elif stimulus.batch_first and not last_mode:
        outputs = outputs.transpose(1, 0, 2)
    return SimulationResult(
        design=design,
        stimulus=stimulus,
        run=run,
        outputs=outputs,
        h_n=h_n,
        c_n=c_n,
        cycles=cycles,
        step_end_cycles=step_end,
        dut_cycles=final.sample(Status.CYCLES.value),
        paced=paced,
        wall_seconds=wall_seconds,
        h0=h0,
        c0=c0,
        carry_state=carry_state,
        saturations=SaturationCounts(**{k.value: final.sample(k.port) for k in SaturationKind}),
        overflow=bool(final.sample(Status.OVERFLOW.value)),
        weights=weights,
    )
