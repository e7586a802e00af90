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
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sw.float_model import prepare_sequences
from ..sw.ir import LstmModel
from ..sw.numerics import FixedFormat, dequantize
from .plan import NO_PAUSES, Pacing, Phase, Plan, PlanResult, SinkSpec, SourceSpec, run_plan
from .runner import SimBuild, SimulationError, build, default_cache_dir

if TYPE_CHECKING:  # the hardware package (Amaranth) loads only when a design is compiled
    from ..hw import HardwareConfig

__all__ = [
    "HardwareDesign",
    "SimulationResult",
    "Stimulus",
    "compile_build",
    "compile_model",
    "decode_phase",
    "design_cycle_bound",
    "simulate",
    "stimulus_phase",
]


def design_cycle_bound(model: LstmModel, lanes: int) -> int:
    """Cycles per time step ``lanes`` multipliers need at least: the sum over layer
    directions of ``ceil(4H (I_k + H) / P)`` (``ceil(4H(I+H)/P)`` for one layer)."""
    H = model.hidden_size
    return sum(math.ceil(4 * H * (d.input_size + H) / lanes) for d in model.directions)


def _macs_per_step(model: LstmModel) -> int:
    H = model.hidden_size
    return sum(4 * H * (d.input_size + H) for d in model.directions)


@dataclass(frozen=True, eq=False)
class HardwareDesign:
    """An accelerator for ``model`` with hardware ``config``, compiled for one simulator."""

    model: LstmModel
    config: HardwareConfig
    sim_build: SimBuild
    generate_seconds: float = 0.0

    @property
    def lanes(self) -> int:
        return self.config.lanes

    @property
    def simulator(self) -> str:
        return self.sim_build.simulator

    @property
    def cycle_bound(self) -> int:
        """``ceil(4H(I+H)/P)`` summed over layer directions: the per-step bound."""
        return design_cycle_bound(self.model, self.lanes)


def _source_digest() -> str:
    """Hash of the generator's own source (hw and sw packages) and Amaranth's version."""
    import amaranth

    from .. import hw, sw

    digest = hashlib.sha256(amaranth.__version__.encode())
    for package in (hw, sw):
        for path in sorted(Path(package.__file__).parent.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _model_digest(model: LstmModel, config) -> str:
    import json

    digest = hashlib.sha256(json.dumps(model.to_json_dict(), sort_keys=True).encode())
    digest.update(repr(config).encode())
    for d in model.directions:
        for array in (d.w_ih, d.w_hh, d.bias):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    if model.head is not None:
        digest.update(np.ascontiguousarray(model.head.weight, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(model.head.bias, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _generated(model: LstmModel, config, cache_root: Path) -> tuple[Path, float]:
    """A directory with the generated ``lstm_top.v`` (weight banks read by ``$readmemh``)
    and its ``.hex`` files, cached by the IR, the config and the generator's source code."""
    from ..hw import write_build

    combined = _model_digest(model, config) + _source_digest()
    key = hashlib.sha256(combined.encode()).hexdigest()[:32]
    directory = cache_root / "generated" / key
    if (directory / "manifest.json").is_file():
        return directory, 0.0
    started = time.perf_counter()
    partial = cache_root / "generated" / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    write_build(model, config, partial, memory_init="readmemh")
    seconds = time.perf_counter() - started
    try:
        partial.rename(directory)
    except OSError:  # another process finished the same generation first
        shutil.rmtree(partial, ignore_errors=True)
    return directory, seconds


def compile_build(
    build_dir: Path | str,
    model: LstmModel,
    config,
    simulator: str = "verilator",
    *,
    waves: bool = False,
    cache_dir: Path | str | None = None,
) -> HardwareDesign:
    """Compile a directory written by :func:`lstm_fpga.hw.write_build` (``lstm_top.v``, its
    ``.hex`` files, ``manifest.json``) for ``model`` (the IR it was generated from)."""
    from ..hw import TOP_NAME, hardware_config

    directory = Path(build_dir)
    verilog_path = directory / f"{TOP_NAME}.v"
    if not verilog_path.is_file():
        raise FileNotFoundError(f"{verilog_path} does not exist; write it with hw.write_build")
    sim_build = build(
        verilog_path.read_text(),
        TOP_NAME,
        simulator,
        waves=waves,
        cache_dir=cache_dir,
        data_files=sorted(directory.glob("*.hex")),
    )
    return HardwareDesign(model, hardware_config(config), sim_build)


def compile_model(
    model: LstmModel,
    lanes=16,
    simulator: str = "verilator",
    *,
    waves: bool = False,
    cache_dir: Path | str | None = None,
) -> HardwareDesign:
    """Generate the accelerator for ``model`` (``lanes``: a lane count or a
    :class:`~lstm_fpga.hw.HardwareConfig`) and build it for ``simulator``; both cached."""
    from ..hw import hardware_config

    if not isinstance(model, LstmModel):
        raise TypeError(f"compile_model needs an LstmModel (the IR), not {type(model).__name__}")
    config = hardware_config(lanes)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory, seconds = _generated(model, config, root)
    design = compile_build(directory, model, config, simulator, waves=waves, cache_dir=root)
    return HardwareDesign(model, config, design.sim_build, seconds)


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What the hardware produced, in ``nn.LSTM``'s shapes (like the integer reference).

    ``outputs`` holds the output stream's integers, zero past each sequence's length.
    ``h_n``/``c_n`` are ``None`` while the hardware has no state readout port.
    ``cycles[b]`` counts cycles from sequence ``b``'s first accepted input beat to its last
    output beat (measured by the testbench); ``step_end_cycles[b, t]`` is the cycle of the
    last output beat of step ``t`` (-1 past the length); ``dut_cycles`` is the hardware's own
    ``cycles`` register at the end (it covers the final sequence).
    """

    design: HardwareDesign
    inputs: np.ndarray  # (T, B, I) integer, time-major
    lengths: np.ndarray  # (B,)
    outputs: np.ndarray
    h_n: np.ndarray | None
    c_n: np.ndarray | None
    cycles: np.ndarray
    step_end_cycles: np.ndarray
    dut_cycles: int
    total_cycles: int
    batch_first: bool
    unbatched: bool
    paced: bool
    wall_seconds: float
    sim_seconds: float
    wakes: int
    run_dir: Path | None
    waves: Path | None

    @property
    def model(self) -> LstmModel:
        return self.design.model

    @property
    def output_format(self) -> FixedFormat:
        return self.model.output_format

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
        (first steps excluded, they include the pipeline fill); falls back to whole
        sequences when every sequence has one step."""
        gaps = []
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


def _sequences(model: LstmModel, inputs, lengths, batch_first):
    """Time-major ``(T, B, I)`` int64, lengths ``(B,)`` and whether the input was unbatched."""
    if isinstance(inputs, list | tuple):
        if lengths is not None:
            raise ValueError("a list of sequences carries its own lengths; drop lengths=")
        arrays = [np.asarray(seq) for seq in inputs]
        if not arrays:
            raise ValueError("the list of input sequences is empty")
        for k, seq in enumerate(arrays):
            if seq.ndim != 2 or seq.shape[1] != model.input_size or seq.shape[0] < 1:
                raise ValueError(
                    f"sequence {k} has shape {seq.shape}; each must be (T_b >= 1, "
                    f"{model.input_size})"
                )
        lengths = np.array([seq.shape[0] for seq in arrays], dtype=np.int64)
        padded = np.zeros((int(lengths.max()), len(arrays), model.input_size), dtype=np.int64)
        for k, seq in enumerate(arrays):
            _check_integer(seq)
            padded[: seq.shape[0], k] = seq
        xs, lengths, unbatched = prepare_sequences(
            padded, False, lengths, model.input_size, dtype=np.int64
        )
    else:
        _check_integer(np.asarray(inputs))
        xs, lengths, unbatched = prepare_sequences(
            inputs, batch_first, lengths, model.input_size, dtype=np.int64
        )
    fmt = model.input_format
    valid = np.arange(xs.shape[0])[:, None] < lengths[None, :]
    used = xs[valid]
    if used.size and (used.min() < fmt.min_int or used.max() > fmt.max_int):
        raise ValueError(
            f"inputs hold values in [{used.min()}, {used.max()}] outside the input format {fmt} "
            f"([{fmt.min_int}, {fmt.max_int}])"
        )
    return xs, lengths, unbatched


def _check_integer(array: np.ndarray) -> None:
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"inputs must be integers in the model's input format, got dtype {array.dtype}; "
            f"convert floats with lstm_fpga.sw.reference.quantize_input(model, x)"
        )


def _check_no_state(name: str, state) -> None:
    if state is not None and np.any(np.asarray(state)):
        raise NotImplementedError(
            f"{name}: this hardware has no initial-state port yet (it starts every sequence "
            f"from zeros); pass {name}=None"
        )


@dataclass(frozen=True, eq=False)
class Stimulus:
    """Sequences ready to stream: integer ``inputs`` time-major ``(T, B, I)``, ``lengths``
    ``(B,)`` and how the caller laid them out (to give results back the same way)."""

    inputs: np.ndarray
    lengths: np.ndarray
    unbatched: bool = False
    batch_first: bool = False

    @classmethod
    def prepare(cls, model: LstmModel, inputs, lengths=None, batch_first: bool = False):
        """Check and normalise ``inputs`` as :func:`simulate` accepts them."""
        xs, seq_lengths, unbatched = _sequences(model, inputs, lengths, batch_first)
        return cls(xs, seq_lengths, unbatched, batch_first)

    @property
    def batch(self) -> int:
        return self.inputs.shape[1]


def stimulus_phase(
    design: HardwareDesign,
    stimulus: Stimulus,
    *,
    input_pacing: Pacing = NO_PAUSES,
    output_pacing: Pacing = NO_PAUSES,
    timeout_cycles: int | None = None,
    abort_after_cycles: int | None = None,
) -> Phase:
    """The plan phase that streams ``stimulus`` through ``x`` (sequences back to back,
    ``tlast`` on each one's final element) and collects one ``y`` packet per sequence.

    With ``abort_after_cycles`` the phase pulses reset after that many cycles instead (the
    hardware must then be clean for the next phase)."""
    model = design.model
    xs, lengths = stimulus.inputs, stimulus.lengths
    I = model.input_size
    beats = np.concatenate([xs[: lengths[b], b].reshape(-1) for b in range(stimulus.batch)])
    last = np.zeros(beats.size, dtype=bool)
    last[np.cumsum(lengths * I) - 1] = True
    if timeout_cycles is None:
        # Generous: 8x the bound per step plus pauses, plus a fixed pipeline allowance.
        pauses = 1 + max(input_pacing.max_cycles, output_pacing.max_cycles)
        per_step = 8 * design.cycle_bound + pauses * (I + model.output_size)
        timeout_cycles = int(lengths.sum()) * per_step + 10_000
    return Phase(
        sources=(SourceSpec("x", beats, last, input_pacing),),
        sinks=(SinkSpec("y", packets=stimulus.batch, pacing=output_pacing),),
        sample=("cycles", "busy"),
        timeout_cycles=timeout_cycles,
        drain_cycles=2 * design.cycle_bound + 64,
        abort_after_cycles=abort_after_cycles,
    )


def decode_phase(
    design: HardwareDesign,
    stimulus: Stimulus,
    run: PlanResult,
    phase_index: int = 0,
    *,
    paced: bool = False,
    wall_seconds: float = 0.0,
) -> SimulationResult:
    """The :class:`SimulationResult` of a :func:`stimulus_phase` inside ``run``."""
    model = design.model
    phase = run.phases[phase_index]
    y = phase.sink("y")
    x_cycles = phase.source("x").cycle
    T, B, I = stimulus.inputs.shape
    lengths = stimulus.lengths
    out_features = model.output_size
    expected = lengths * out_features
    ends = y.packet_ends
    if ends.size != B or not np.array_equal(np.diff(np.r_[-1, ends]), expected):
        got = np.diff(np.r_[-1, ends]).tolist()
        raise SimulationError(
            f"the output stream's packets have {got} beats (tlast positions), expected "
            f"{expected.tolist()} (length x {out_features} per sequence); run dir {run.run_dir}"
        )
    data = np.asarray(y.data, dtype=np.int64)
    outputs = np.zeros((T, B, out_features), dtype=np.int64)
    step_end = np.full((B, T), -1, dtype=np.int64)
    cycles = np.zeros(B, dtype=np.int64)
    in_starts = np.r_[0, np.cumsum(lengths * I)[:-1]]
    out_starts = np.r_[0, np.cumsum(expected)[:-1]]
    for b in range(B):
        n = int(lengths[b])
        block = slice(out_starts[b], out_starts[b] + n * out_features)
        outputs[:n, b] = data[block].reshape(n, out_features)
        step_end[b, :n] = y.cycle[block].reshape(n, out_features)[:, -1]
        cycles[b] = y.cycle[block][-1] - x_cycles[in_starts[b]]
    if stimulus.unbatched:
        outputs = outputs[:, 0]
    elif stimulus.batch_first:
        outputs = outputs.transpose(1, 0, 2)
    return SimulationResult(
        design=design,
        inputs=stimulus.inputs,
        lengths=lengths,
        outputs=outputs,
        h_n=None,
        c_n=None,
        cycles=cycles,
        step_end_cycles=step_end,
        dut_cycles=phase.sample("cycles"),
        total_cycles=run.total_cycles,
        batch_first=stimulus.batch_first,
        unbatched=stimulus.unbatched,
        paced=paced,
        wall_seconds=wall_seconds,
        sim_seconds=run.sim_seconds,
        wakes=run.wakes,
        run_dir=run.run_dir,
        waves=run.waves,
    )


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
    input_pacing: Pacing = NO_PAUSES,
    output_pacing: Pacing = NO_PAUSES,
    cache_dir: Path | str | None = None,
    run_dir: Path | str | None = None,
    timeout_cycles: int | None = None,
) -> SimulationResult:
    """Run the accelerator on ``inputs`` in a cocotb simulation and return what it produced.

    ``build_or_ir`` is a :class:`HardwareDesign` (from :func:`compile_model`) or an
    :class:`~lstm_fpga.sw.ir.LstmModel` together with ``lanes`` (compiled and cached on the
    fly; ``simulator`` and ``waves`` apply then). ``input_pacing`` inserts idle cycles on
    ``x``, ``output_pacing`` backpressure on ``y``. ``waves=True`` writes a waveform whose
    path is printed and stored in the result.
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
    _check_no_state("h0", h0)
    _check_no_state("c0", c0)
    stimulus = Stimulus.prepare(design.model, inputs, lengths, batch_first)
    phase = stimulus_phase(
        design,
        stimulus,
        input_pacing=input_pacing,
        output_pacing=output_pacing,
        timeout_cycles=timeout_cycles,
    )
    run = run_plan(design.sim_build, Plan((phase,)), run_dir, waves=waves)
    return decode_phase(
        design,
        stimulus,
        run,
        paced=input_pacing.enabled or output_pacing.enabled,
        wall_seconds=time.perf_counter() - started,
    )
