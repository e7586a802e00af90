"""The recurrence bound: fewest cycles per step when the recurrence loop, not the lanes, limits.

Step ``t + 1``'s first pass reads every unit of ``h_t``; when a job is shorter than the loop
that brings ``h_t`` back (element read, matrix-vector unit, drain, gate and cell pipeline),
the walk waits. A small model of the walker (its rules, without the hardware) runs a few
steps with the loop's :class:`LoopLatencies` and gives the steady-state period. Pure Python;
:class:`~lstm_fpga.hw.interface.TopInterface` takes the latencies from the blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import GATES_PER_UNIT
from .plan import STREAMING, EnginePlan, MatrixPlan

__all__ = ["LoopLatencies", "recurrence_sequence_bound", "recurrence_step_bound"]


@dataclass(frozen=True)
class LoopLatencies:
    """The pipeline latencies that close the recurrence, in cycles (taken from the hardware
    blocks by :attr:`lstm_fpga.hw.interface.TopInterface.loop_latencies`).

    ``to_drain``: from a pass's last column issue to its ``loaded`` pulse (the element read
    and the matrix-vector unit); the pass's units are then handed to the gate and cell
    pipeline one per cycle from the cycle after. ``to_read``: from a unit's hand-off to the
    first issue that may read its ``h`` (the gate and cell pipeline, less the announcement
    lead of the scoreboards and the forwarding).
    """

    to_drain: int
    to_read: int

    @property
    def loop(self) -> int:
        """Cycles from a pass's last issue to the first issue that may read its first unit."""
        return self.to_drain + 1 + self.to_read


#: An LSTMP's projection stage (:class:`~lstm_fpga.hw.projection.ProjectionOutput`): cycles
#: from a unit's hand-off to the first read of its row 0 (rounded, fitted, announced, the
#: announcement registered in the sequencer, then read a cycle later; row ``r`` ``r`` cycles
#: after), and between the hand-offs of a job's
#: units (the stage takes one unit at a time: its four rows' announcements and two stages).
_PROJECTION_TO_READ = 4
_PROJECTION_UNIT_CYCLES = GATES_PER_UNIT + 2

#: A job of the walk model: its matrix and, per run of columns in walk order, ``(length,
#: producer)``: the index of the earlier job whose units ``0 .. length - 1`` it reads, or
#: ``None`` (the input, ``h0``, a state: ready at once).
_WalkJob = tuple[int, tuple[tuple[int, int | None], ...]]


def _step_jobs(
    plan: EnginePlan, steps: int, first: int = 0, *, head: bool = True
) -> list[_WalkJob]:
    """The jobs of a ``steps``-step sequence in schedule order (job indices from
    ``first``), each with the producers of its columns; the head's with ``head``. A job's
    key is ``(layer, direction, time index)``; interleaved (``B > 1``) the ``B`` sequences of
    a group take turns step by step, a key's time index is then ``t * B + b`` and its
    recurrence reaches ``B`` back."""
    H, L, D = plan.hidden_size, plan.num_layers, plan.num_directions
    # (weight reuse: a job is a group job, all B sequences of one step: one per step)
    B = 1 if plan.weight_reuse else plan.interleave
    jobs: list[_WalkJob] = []
    if plan.projected:
        if plan.schedule != STREAMING:
            return _buffered_projected_step_jobs(plan, steps, first, head=head)
        return _projected_step_jobs(plan, steps, first, head=head)
    if plan.schedule == STREAMING:
        keys = []
        for t in range(steps * B):
            for k in range(L):
                keys.append((k, 0, t))
            final = t // B == steps - 1
            if head and plan.head is not None and (plan.output_mode == "all" or final):
                keys.append(("head", 0, t))
    else:
        keys = [
            (k, d, t if d == 0 else steps - 1 - t)
            for k in range(L)
            for t in range(steps)
            for d in range(D)
        ]
        if head and plan.head is not None:
            outputs = range(steps) if plan.output_mode == "all" else (steps - 1,)
            keys += [("head", 0, t) for t in outputs]
    order = {key: n for n, key in enumerate(keys)}

    def index(key):
        return first + order[key]

    for k, d, t in keys:
        if k == "head":  # the top layer's h_t, every direction
            jobs.append((plan.head_index, tuple((H, index((L - 1, e, t))) for e in range(D))))
            continue
        previous = t - B if d == 0 else t + 1
        recurrent = (H, index((k, d, previous)) if 0 <= previous < steps * B else None)
        if k == 0:
            parts = ((plan.input_size, None), recurrent)
        else:
            parts = (recurrent, *((H, index((k - 1, e, t))) for e in range(D)))
        jobs.append((k * D + d, parts))
    return jobs


def _projected_step_jobs(plan: EnginePlan, steps: int, first: int, *, head: bool):
    """:func:`_step_jobs` of an LSTMP (streaming): per step and layer the gate job (over
    ``[x; h]`` or ``[h; below]``, ``R`` columns of ``h``) and its projection job (over the
    gate job's ``H`` cell outputs), then the head."""
    H, R, L, B = plan.hidden_size, plan.proj_size, plan.num_layers, plan.interleave
    keys = []
    for t in range(steps * B):  # (interleaved: time index t * B + b, as _step_jobs)
        for k in range(L):
            keys += [("gate", k, t), ("proj", k, t)]
        final = t // B == steps - 1
        if head and plan.head is not None and (plan.output_mode == "all" or final):
            keys.append(("head", 0, t))
    order = {key: first + n for n, key in enumerate(keys)}
    jobs: list[_WalkJob] = []
    for kind, k, t in keys:
        if kind == "head":
            jobs.append((plan.head_index, ((R, order[("proj", L - 1, t)]),)))
        elif kind == "proj":
            jobs.append((plan.projection_index(k), ((H, order[("gate", k, t)]),)))
        else:
            recurrent = (R, order[("proj", k, t - B)] if t >= B else None)
            below = ((plan.input_size, None),) if k == 0 else ((R, order[("proj", k - 1, t)]),)
            jobs.append((k, (*below, recurrent) if k == 0 else (recurrent, *below)))
    return jobs


def _buffered_projected_step_jobs(plan: EnginePlan, steps: int, first: int, *, head: bool):
    """:func:`_step_jobs` of a bidirectional LSTMP (buffered): per layer ``k`` and ``s = 0 ..
    T-1`` the forward direction's gate and projection jobs at step ``s``, then the reverse
    direction's at ``T-1-s``; a gate job reads its own projection of the step before (after,
    reversed) and, above layer 0, both projections of the layer below at its step (``2R``);
    then the head over the top layer's ``2R``."""
    H, R, L = plan.hidden_size, plan.proj_size, plan.num_layers
    keys = []
    for k in range(L):
        for s in range(steps):
            for d, t in ((0, s), (1, steps - 1 - s)):
                keys += [("gate", k, d, t), ("proj", k, d, t)]
    if head and plan.head is not None:
        outputs = range(steps) if plan.output_mode == "all" else (steps - 1,)
        keys += [("head", L - 1, 0, t) for t in outputs]
    order = {key: first + n for n, key in enumerate(keys)}
    jobs: list[_WalkJob] = []
    for kind, k, d, t in keys:
        if kind == "head":  # (both directions' h_t of the top layer)
            jobs.append((plan.head_index, tuple((R, order[("proj", k, e, t)]) for e in range(2))))
        elif kind == "proj":
            jobs.append((plan.projection_index(2 * k + d), ((H, order[("gate", k, d, t)]),)))
        else:
            previous = t - 1 if d == 0 else t + 1
            producer = order[("proj", k, d, previous)] if 0 <= previous < steps else None
            recurrent = (R, producer)
            if k == 0:
                parts = ((plan.input_size, None), recurrent)
            else:
                parts = (recurrent, *((R, order[("proj", k - 1, e, t)]) for e in range(2)))
            jobs.append((2 * k + d, parts))
    return jobs


def _ready_columns(
    plan: EnginePlan,
    mp: MatrixPlan,
    parts: tuple[tuple[int, int | None], ...],
    readable: list[np.ndarray | None],
) -> np.ndarray:
    """The cycle from which each column of a job of matrix ``mp`` may be read
    (``mp.span * groups``, walk order): the cycle ``readable[producer]`` holds for the unit it
    reads, ``-1`` (at once) where the job's ``parts`` name no producer and for the padding."""
    ready = np.full(mp.span * plan.groups, -1, dtype=np.int64)
    column = 0
    for length, producer in parts:
        if producer is not None:
            ready[column : column + length] = readable[producer][:length]
        column += length
    return ready


def _walk(plan: EnginePlan, jobs: list[_WalkJob], latencies: LoopLatencies) -> list[int]:
    """The cycle of each job's last issue when the walk runs ``jobs`` from cycle 0 with
    the input always there: the walker's rules (one cycle of ``groups`` columns at a time;
    a column that reads a unit waits until it may; a pass's last column waits for the
    previous pass's ``loaded`` and for the drain to be empty: with two drain banks
    (interleaved plans) the bank of the pass before the previous one), with ``latencies``."""
    if plan.weight_reuse:
        return _walk_reuse(plan, jobs, latencies)
    G = plan.groups
    double = plan.interleave > 1 and plan.row_lanes % GATES_PER_UNIT == 0
    readable: list[np.ndarray | None] = []
    ends: list[int] = []
    now, loaded, emitted, earlier = 0, -1, -1, -1
    for matrix, parts in jobs:
        mp = plan.matrices[matrix]
        ready = _ready_columns(plan, mp, parts, readable)
        cycles = np.arange(mp.span)
        # The earliest issue of cycle j of a pass that starts at 0 (a wait delays the rest).
        lead = np.maximum.accumulate(ready.reshape(mp.span, G).max(axis=1) - cycles)
        units = np.full(mp.units, -1, dtype=np.int64)
        # A unit leaves the drain after the pass that holds its last row.
        k = mp.unit_rows  # (rows per unit: 4, a GRU layer's 3)
        finishing = (k * np.arange(mp.units) + k - 1) // mp.row_lanes
        projection = mp.is_projection
        for p in range(mp.passes):
            free = earlier if double else emitted  # the drain (bank) this pass lands in
            last = max(now + mp.span - 1, lead[-1] + mp.span - 1, loaded + 1, free + 1)
            loaded = last + latencies.to_drain
            done = np.flatnonzero(finishing == p)
            # (two banks: a pass's units leave after the previous pass's)
            first_hand_off = max(loaded + 1, emitted + 1) if double else loaded + 1
            if projection:  # one unit at a time into the projection stage
                first_hand_off = max(first_hand_off, emitted + _PROJECTION_UNIT_CYCLES)
                hand_offs = first_hand_off + _PROJECTION_UNIT_CYCLES * np.arange(len(done))
            else:
                hand_offs = first_hand_off + np.arange(len(done))
            units[done] = hand_offs + latencies.to_read
            earlier = emitted
            emitted = int(hand_offs[-1]) if done.size else -1
            now = last + 1
        if projection:  # its rows: row r of unit u readable r % 4 cycles after the first
            rows = np.repeat(units - latencies.to_read, GATES_PER_UNIT)
            rows = rows + np.tile(np.arange(GATES_PER_UNIT), mp.units) + _PROJECTION_TO_READ
            units = rows[: mp.real_rows]
        readable.append(None if mp.is_head else units)
        ends.append(last)
    return ends


def _walk_reuse(plan: EnginePlan, jobs: list[_WalkJob], latencies: LoopLatencies) -> list[int]:
    """:func:`_walk` for weight reuse (:attr:`EnginePlan.weight_reuse`): group jobs, every
    cycle of a pass issued ``B`` times (sequences ``0 .. B-1``); a cycle waits for its
    columns of the last sequence (the walker checks them once for all ``B``), a pass's last
    cycle for the previous pass's ``loaded`` (its last sequence's load) and for every drain
    bank to be empty. A pass's ``B`` sums land in consecutive cycles and the units it
    completes (:attr:`MatrixPlan.pass_units <lstm_fpga.hw.plan.MatrixPlan.pass_units>`, of
    every sequence) leave one per cycle, sequence by sequence."""
    G, B = plan.groups, plan.interleave
    readable: list[np.ndarray | None] = []
    ends: list[int] = []
    now, loaded, emitted = 0, -1, -1
    for matrix, parts in jobs:
        mp = plan.matrices[matrix]
        ready = _ready_columns(plan, mp, parts, readable)
        units = np.full(mp.units, -1, dtype=np.int64)
        cycle = now
        for first, end in mp.pass_units:
            for j in range(mp.span):
                cycle = max(cycle, int(ready[j * G : (j + 1) * G].max()))
                if j == mp.span - 1:
                    cycle = max(cycle, loaded + 1, emitted + 1)
                cycle += B
            last = cycle - 1  # the last sequence's last issue of the pass
            loaded = last + latencies.to_drain
            done = end - first
            if done:
                hand_offs = last - (B - 1) + latencies.to_drain + 1 + np.arange(B * done)
                emitted = int(hand_offs[-1])
                # (readers check the last sequence's units)
                units[first:end] = hand_offs[(B - 1) * done :] + latencies.to_read
        readable.append(None if mp.is_head else units)
        ends.append(last)
        now = last + 1
    return ends


def recurrence_step_bound(plan: EnginePlan, latencies: LoopLatencies) -> int:
    """Fewest cycles per time step the walk can take with the recurrence loop of
    ``latencies``: the lane bound (:meth:`EnginePlan.step_bound`) or, when a step's first columns
    need ``h`` of the previous step sooner than the loop delivers it (short jobs), the
    steady-state period of the walk (:func:`_walk`: passes times spans plus the waits).
    Interleaved (``B > 1``): per sequence-step, the period of a group's step divided by
    ``B`` (rounded up)."""

    # The steady state: the walk of 8 steps less that of 4 (what a sequence's ends add,
    # such as a layer's wait for the layer below in the buffered schedule, cancels).
    def end(steps):
        return _walk(plan, _step_jobs(plan, steps, head=False), latencies)[-1]

    period = -(-(end(8) - end(4)) // (4 * plan.interleave))
    return max(plan.step_bound(), period)


def recurrence_sequence_bound(plan: EnginePlan, steps: int, latencies: LoopLatencies) -> int:
    """Cycles per ``steps``-step sequence when sequences follow each other back to back,
    with the recurrence loop of ``latencies`` (the walk of :func:`_walk` over three
    sequences: the distance between the last issues of the last two), and at least
    :meth:`EnginePlan.sequence_bound`. Interleaved (``B > 1``): per sequence, a group's
    cycles divided by ``B`` (rounded up)."""
    jobs: list[_WalkJob] = []
    for _ in range(3):
        jobs += _step_jobs(plan, steps, len(jobs))
    ends = _walk(plan, jobs, latencies)
    per_group = len(jobs) // 3
    group = ends[-1] - ends[-1 - per_group]
    return max(plan.sequence_bound(steps), -(-group // plan.interleave))
