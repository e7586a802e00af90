"""The generated LSTM accelerator as a Python function: :func:`simulate`.

::

    design = compile_model(model, lanes=16)              # Verilog + simulator build (cached)
    result = simulate(design, x_int, lengths=lengths)   # or simulate(model, x_int, lanes=16)
    result.outputs, result.cycles, result.cycles_per_step

Inputs are integers in the model's input format (:func:`lstm_fpga.sw.reference.quantize_input`
converts floats), shaped like ``nn.LSTM`` input: ``(T, I)``, ``(T, B, I)`` (``(B, T, I)`` with
``batch_first``) with optional ``lengths``, or a list of ``(T_b, I)`` arrays of different
lengths. Sequences stream back to back through the ``x`` port (``tlast`` ends each); the
result has the reference's shapes (:func:`lstm_fpga.sw.reference.run_reference`), so the two
compare with ``==``.

The parts: :mod:`~lstm_fpga.sim.design` (compiled designs), :mod:`~lstm_fpga.sim.phases`
(input checks and the phases streamed), :mod:`~lstm_fpga.sim.result` (decoding what came
back).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..progress import counter_bar
from ..sw.ir import LstmModel
from .design import HardwareDesign, compile_model
from .phases import Stimulus, init_phase, initial_states, plan_for, reload_phase, stimulus_phase
from .result import SimulationResult, decode_phase
from .stimulus import NO_PAUSES, Pacing, run_plan

__all__ = ["simulate"]


def simulate(
    build_or_ir,
    inputs,
    h0=None,
    c0=None,
    simulator: str = "verilator",
    waves: bool = False,
    *,
    lanes=None,
    lengths=None,
    batch_first: bool = False,
    carry_state: bool = False,
    read_state: bool | None = None,
    weights: LstmModel | None = None,
    input_pacing: Pacing = NO_PAUSES,
    output_pacing: Pacing = NO_PAUSES,
    cache_dir: Path | str | None = None,
    run_dir: Path | str | None = None,
    timeout_cycles: int | None = None,
    progress: bool = False,
) -> SimulationResult:
    """Run the accelerator on ``inputs`` in a cocotb simulation and return what it produced.

    ``build_or_ir`` is a :class:`HardwareDesign` (from :func:`compile_model`) or an
    :class:`~lstm_fpga.sw.ir.LstmModel` together with ``lanes`` (compiled and cached on the
    fly; ``simulator`` and ``waves`` apply then). ``input_pacing`` inserts idle cycles on
    ``x``, ``output_pacing`` backpressure on ``y``. ``waves=True`` writes a waveform whose
    path is printed and stored in the result.

    ``h0``/``c0`` (integers, ``(L*D, B, H)`` or ``(L*D, H)`` for all sequences) are loaded
    through ``init`` before the sequences that need them. ``carry_state=True`` starts every
    sequence after the first from the previous one's final state (stateful streaming).
    ``read_state`` (default: whenever the hardware can) reads ``h_n``/``c_n`` out after every
    sequence. ``weights`` (an IR model of the generated shape and formats) is loaded through
    the run-time weight reload port first; the result and :func:`compare` then refer to it.
    ``progress`` shows a bar with the ETA over the sequences on a terminal.
    """
    started = time.perf_counter()
    if isinstance(build_or_ir, LstmModel):
        if lanes is None:
            raise ValueError("simulate(model, ...) needs lanes= (the MAC lane count P)")
        design = compile_model(build_or_ir, lanes, simulator, waves=waves, cache_dir=cache_dir)
    elif isinstance(build_or_ir, HardwareDesign):
        design = build_or_ir
        if lanes is not None and int(getattr(lanes, "lanes", lanes)) != design.lanes:
            raise ValueError(f"the design has {design.lanes} lanes, not {lanes}")
        if waves and not design.sim_build.waves:
            raise ValueError(
                "waves=True needs a design compiled with compile_model(..., waves=True)"
            )
    else:
        raise TypeError(
            f"simulate() takes a HardwareDesign or an LstmModel, not {type(build_or_ir).__name__}"
        )
    stimulus = Stimulus.prepare(design.model, inputs, lengths, batch_first)
    if stimulus.unbatched:
        for name, state in (("h0", h0), ("c0", c0)):
            if state is not None and np.ndim(state) == 2:
                state = np.asarray(state)[:, None, :]
            if name == "h0":
                h0 = state
            else:
                c0 = state
    h0, c0 = initial_states(design, h0, c0, stimulus.batch)
    if read_state is None:
        read_state = True
    limit = design.config.max_seq_len
    if design.interface.dropped(stimulus.lengths).any():
        raise ValueError(
            f"a sequence has {int(stimulus.lengths.max())} steps but the hardware buffers at "
            f"most max_seq_len={limit}; split it or generate with a larger max_seq_len"
        )
    options = dict(
        input_pacing=input_pacing,
        output_pacing=output_pacing,
        timeout_cycles=timeout_cycles,
        carry_state=carry_state,
        read_state=read_state,
    )
    # Sequences sharing an initial state stream in one phase; a different h0/c0 needs its
    # own load before the sequence (the init stream and x would otherwise race).
    design.interface.check_groups(stimulus.lengths)
    step = design.interface.interleave  # interleaved sequences load their h0/c0 together
    groups = [(0, stimulus.batch)]
    if h0 is not None and not carry_state:
        same = all(
            np.array_equal(h0[:, b], h0[:, 0])
            and (c0 is None or np.array_equal(c0[:, b], c0[:, 0]))
            for b in range(stimulus.batch)
        )
        if not same:
            groups = [(b, b + step) for b in range(0, stimulus.batch, step)]
    phases, x_phases = [], []
    if weights is not None:
        phases.append(reload_phase(design, weights))
    for first, stop in groups:
        if h0 is not None:
            if step > 1:
                group = slice(first, first + step)  # (carry_state: the first group's)
                phases.append(init_phase(design, h0[:, group], c0[:, group]))
            else:
                phases.append(
                    init_phase(design, h0[:, first], None if c0 is None else c0[:, first])
                )
        part = stimulus if len(groups) == 1 else stimulus.subset(first, stop)
        x_phases.append(len(phases))
        phases.append(stimulus_phase(design, part, **options))
    bar = counter_bar(stimulus.batch, desc="simulating", unit="seq", enabled=progress)
    with bar as advance:
        plan = plan_for(design, phases)
        run = run_plan(design.sim_build, plan, run_dir, waves=waves, progress=advance)
    return decode_phase(
        design,
        stimulus,
        run,
        tuple(x_phases),
        paced=input_pacing.enabled or output_pacing.enabled,
        wall_seconds=time.perf_counter() - started,
        h0=h0,
        c0=c0,
        carry_state=carry_state,
        weights=weights,
    )
