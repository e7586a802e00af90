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
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sw.float_model import prepare_sequences
from ..sw.ir import LstmModel
from ..sw.numerics import FixedFormat, dequantize
from ..sw.reference import SaturationCounts
from .plan import NO_PAUSES, Pacing, Phase, Plan, PlanResult, SinkSpec, SourceSpec, run_plan
from .runner import SimBuild, SimulationError, build, default_cache_dir

if TYPE_CHECKING:  # the hardware package (Amaranth) loads only when a design is compiled
    from ..hw import HardwareConfig

__all__ = [
    "HardwareDesign",
    "SimulationResult",
    "Stimulus",
    "clear_status_phase",
    "compile_build",
    "compile_model",
    "decode_phase",
    "design_cycle_bound",
    "init_phase",
    "plan_for",
    "reload_phase",
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

    @property
    def output_mode(self) -> str:
        """What ``y`` carries: ``"all"`` (every step) or ``"last"`` (each sequence's last)."""
        return getattr(self.config, "output", "all")

    @property
    def has_state_ports(self) -> bool:
        """Whether the top has the full-model ports (``init``, ``state``, ``w``, control and
        status); the one-layer engine of the hardware core issue has only ``x``/``y``."""
        return hasattr(self.config, "max_seq_len")

    @property
    def input_elements(self) -> int:
        """Elements of ``x_t`` per input beat (``HardwareConfig.input_elements``)."""
        return getattr(self.config, "input_elements", 1)

    @property
    def beats_per_step(self) -> int:
        return -(-self.model.input_size // self.input_elements)

    @property
    def y_features(self) -> int:
        """Values per step on ``y``: the head's ``O``, else ``D*H``."""
        head = self.model.head
        return head.out_features if head is not None else self.model.output_size

    @property
    def y_format(self) -> FixedFormat:
        head = self.model.head
        return head.formats.output if head is not None else self.model.output_format

    @cached_property
    def state_widths(self) -> tuple[int, int]:
        """Bits of ``h`` (low) and ``c`` (above it) in a ``state`` beat."""
        from ..hw.plan import EnginePlan

        plan = EnginePlan(self.model, self.config)
        return plan.state_shape.width, plan.cell_shape.width


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
    output_mode: str = "all"
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    carry_state: bool = False
    saturations: SaturationCounts | None = None
    overflow: bool | None = None
    weights: LstmModel | None = None  # loaded through ``w`` before the run, if any

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
        return self.design.y_format

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


def _initial_states(design: HardwareDesign, h0, c0, batch: int):
    """``h0``/``c0`` as ``(L*D, B, H)`` int64 arrays (``None`` when neither is given)."""
    if h0 is None and c0 is None:
        return None, None
    model = design.model
    if not design.has_state_ports:
        for name, state in (("h0", h0), ("c0", c0)):
            if state is not None and np.any(np.asarray(state)):
                raise NotImplementedError(
                    f"{name}: this hardware has no initial-state port (it starts every "
                    f"sequence from zeros); pass {name}=None"
                )
        return None, None
    LD, H = len(model.directions), model.hidden_size
    states = []
    for name, state, formats in (
        ("h0", h0, [d.formats.hidden for d in model.directions]),
        ("c0", c0, list(model.cell_formats)),
    ):
        if state is None:
            states.append(np.zeros((LD, batch, H), dtype=np.int64))
            continue
        array = np.asarray(state)
        if array.dtype.kind not in "iu":
            raise TypeError(
                f"{name} must hold integers in the state formats, got dtype {array.dtype}; "
                f"quantize it with lstm_fpga.sw.numerics.quantize"
            )
        if array.shape == (LD, H):
            array = np.repeat(array[:, None, :], batch, axis=1)
        if array.shape != (LD, batch, H):
            raise ValueError(
                f"{name} has shape {array.shape}; expected (L*D, B, H) = {(LD, batch, H)} or "
                f"{(LD, H)} (the same state for every sequence), as nn.LSTM takes it"
            )
        for k, fmt in enumerate(formats):
            if array[k].min() < fmt.min_int or array[k].max() > fmt.max_int:
                raise ValueError(
                    f"{name}[{k}] holds values outside its format {fmt} "
                    f"([{fmt.min_int}, {fmt.max_int}])"
                )
        states.append(array.astype(np.int64))
    return states[0], states[1]


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

    def subset(self, first: int, stop: int) -> Stimulus:
        """Sequences ``first .. stop-1`` (time-major, trimmed to their longest)."""
        lengths = self.lengths[first:stop]
        return Stimulus(self.inputs[: int(lengths.max()), first:stop], lengths)


_SATURATION_KINDS = ("preact", "cell", "hidden", "head")
#: Inputs of the full-model top held low unless a phase drives them.
_IDLE_INPUTS = (
    "init__tvalid",
    "w__tvalid",
    "state__tready",
    "carry_state",
    "read_state",
    "clear_status",
)


def _dropped(design: HardwareDesign, lengths: np.ndarray) -> np.ndarray:
    """Sequences the hardware refuses (bidirectional, longer than ``max_seq_len``)."""
    limit = getattr(design.config, "max_seq_len", None)
    if not design.model.bidirectional or limit is None:
        return np.zeros(lengths.shape, dtype=bool)
    return lengths > limit


def _y_beats(design: HardwareDesign, lengths: np.ndarray) -> np.ndarray:
    """``y`` beats of each sequence (0 for refused ones)."""
    steps = lengths if design.output_mode == "all" else np.ones_like(lengths)
    return np.where(_dropped(design, lengths), 0, steps * design.y_features)


def _state_beats(design: HardwareDesign) -> int:
    return len(design.model.directions) * design.model.hidden_size


def init_phase(design: HardwareDesign, h0: np.ndarray, c0: np.ndarray) -> Phase:
    """The plan phase that loads ``h0``/``c0`` (``(L*D, H)`` integers) through ``init``:
    ``h0`` flattened, then ``c0``, ``tlast`` on the final value. Sequences that start with
    ``carry_state`` low begin from this state."""
    if not design.has_state_ports:
        raise ValueError("this hardware has no init stream (no initial-state loading)")
    values = np.concatenate([np.asarray(h0).reshape(-1), np.asarray(c0).reshape(-1)])
    last = np.zeros(values.size, dtype=bool)
    last[-1] = True
    return Phase(
        sources=(SourceSpec("init", values, last),),
        timeout_cycles=100 * values.size + 1000,
        drain_cycles=4,
    )


def reload_phase(design: HardwareDesign, model: LstmModel, pacing: Pacing = NO_PAUSES) -> Phase:
    """The plan phase that loads every weight and bias of ``model`` (the generated shape and
    formats) through the ``w`` stream (:func:`lstm_fpga.hw.reload.weight_load_words`, packed
    by ``pack_weight_word``, ``tlast`` on the final word); sequences after it use them."""
    if not design.has_state_ports:
        raise ValueError("this hardware has no weight-load stream (w)")
    from ..hw.plan import EnginePlan
    from ..hw.reload import pack_weight_word, weight_load_words

    _check_same_layout(design.model, model)
    plan = EnginePlan(design.model, design.config)
    words = [pack_weight_word(plan, w) for w in weight_load_words(plan, model)]
    last = np.zeros(len(words), dtype=bool)
    last[-1] = True
    data = np.empty(len(words), dtype=object)
    data[:] = words
    return Phase(
        sources=(SourceSpec("w", data, last, pacing),),
        timeout_cycles=(2 + pacing.max_cycles) * len(words) + 1000,
        drain_cycles=4,
    )


def _layout(model: LstmModel) -> tuple:
    """What generated hardware fixes: sizes, layers, directions, head and every format."""
    head = model.head
    return (
        model.input_size,
        model.hidden_size,
        model.num_layers,
        model.bidirectional,
        None if head is None else (head.out_features, head.formats),
        tuple(d.formats for d in model.directions),
    )


def _check_same_layout(model: LstmModel, other: LstmModel) -> None:
    if not isinstance(other, LstmModel):
        raise TypeError(f"weights must be an LstmModel (the IR), not {type(other).__name__}")
    if _layout(model) != _layout(other):
        raise ValueError(
            "the reloaded model must have the generated model's shape and formats (sizes, "
            "layers, directions, head, every fixed-point format); regenerate the hardware "
            "for a different one"
        )


def clear_status_phase(design: HardwareDesign, cycles: int = 2) -> Phase:
    """A phase that pulses ``clear_status`` for ``cycles`` cycles: the overflow flag and the
    saturation counters restart from zero (the next :func:`stimulus_phase` drives it low)."""
    if not design.has_state_ports:
        raise ValueError("this hardware has no clear_status input")
    return Phase(drive=(("clear_status", 1),), idle_cycles=cycles, drain_cycles=0)


def stimulus_phase(
    design: HardwareDesign,
    stimulus: Stimulus,
    *,
    input_pacing: Pacing = NO_PAUSES,
    output_pacing: Pacing = NO_PAUSES,
    timeout_cycles: int | None = None,
    abort_after_cycles: int | None = None,
    carry_state: bool = False,
    read_state: bool = False,
    clear_status: bool = False,
) -> Phase:
    """The plan phase that streams ``stimulus`` through ``x`` (sequences back to back,
    ``tlast`` on each one's final element) and collects one ``y`` packet per sequence.

    On hardware with the full-model ports the control inputs ``carry_state`` (start each
    sequence from the previous one's final state instead of the loaded ``h0``/``c0``),
    ``read_state`` (emit ``h_n``/``c_n`` on ``state`` after each sequence) and
    ``clear_status`` are held for the whole phase, and the status outputs are sampled at its
    end. With ``abort_after_cycles`` the phase pulses reset after that many cycles instead
    (the hardware must then be clean for the next phase)."""
    model = design.model
    xs, lengths = stimulus.inputs, stimulus.lengths
    I = model.input_size
    beats = np.concatenate([_x_beats(design, xs[: lengths[b], b]) for b in range(stimulus.batch)])
    last = np.zeros(len(beats), dtype=bool)
    last[np.cumsum(lengths * design.beats_per_step) - 1] = True
    y_beats = _y_beats(design, lengths)
    if timeout_cycles is None:
        # Generous: 8x the bound per step plus pauses, plus a fixed pipeline allowance.
        pauses = 1 + max(input_pacing.max_cycles, output_pacing.max_cycles)
        per_step = 8 * design.cycle_bound + pauses * (I + design.y_features)
        state = _state_beats(design) * pauses * int(read_state)
        timeout_cycles = int(lengths.sum()) * per_step + stimulus.batch * state + 10_000
    sinks = [SinkSpec("y", packets=int(np.count_nonzero(y_beats)), pacing=output_pacing)]
    drive: tuple[tuple[str, int], ...] = ()
    sample: tuple[str, ...] = ("cycles", "busy")
    if design.has_state_ports:
        kept = int(np.count_nonzero(~_dropped(design, lengths)))
        state_beats = kept * _state_beats(design) if read_state else 0
        sinks.append(SinkSpec("state", beats=state_beats, pacing=output_pacing, signed=False))
        drive = (
            ("carry_state", int(carry_state)),
            ("read_state", int(read_state)),
            ("clear_status", int(clear_status)),
        )
        sample += ("overflow", *(f"sat_{kind}" for kind in _SATURATION_KINDS))
    elif carry_state or read_state or clear_status:
        raise ValueError("this hardware has no control inputs (carry_state, read_state, ...)")
    return Phase(
        sources=(SourceSpec("x", beats, last, input_pacing),),
        sinks=tuple(sinks),
        drive=drive,
        sample=sample,
        timeout_cycles=timeout_cycles,
        drain_cycles=2 * design.cycle_bound + 64,
        abort_after_cycles=abort_after_cycles,
    )


def _x_beats(design: HardwareDesign, x: np.ndarray) -> np.ndarray:
    """The ``x`` beats of one sequence ``(T, I)``: one element per beat, or with
    ``input_elements = k > 1`` element ``e`` of each beat in bits ``[e*w, (e+1)*w)``
    (``ceil(I/k)`` beats per step, zero-padded)."""
    k = design.input_elements
    if k == 1:
        return x.reshape(-1)
    T, I = x.shape
    width = design.model.input_format.width
    padded = np.zeros((T, design.beats_per_step * k), dtype=np.int64)
    padded[:, :I] = x
    words = padded.reshape(T, design.beats_per_step, k) & ((1 << width) - 1)
    packed = np.empty(T * design.beats_per_step, dtype=object)
    packed[:] = [
        sum(int(v) << (e * width) for e, v in enumerate(beat)) for beat in words.reshape(-1, k)
    ]
    return packed


def _sign_extend(value: np.ndarray, width: int) -> np.ndarray:
    value = value & ((1 << width) - 1)
    return np.where(value >= 1 << (width - 1), value - (1 << width), value)


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
    """The :class:`SimulationResult` of a :func:`stimulus_phase` inside ``run`` (or of
    several, given as a tuple of indices, that streamed ``stimulus``'s sequences in order).
    ``h0``/``c0``/``carry_state`` record the state the phases started from, for
    :func:`~lstm_fpga.sim.compare.compare`."""
    model = design.model
    phases = (phase_index,) if isinstance(phase_index, int) else tuple(phase_index)
    final = run.phases[phases[-1]]
    y_data, y_last, y_cycle = _merged(run, phases, "sink", "y")
    x_cycles = _merged(run, phases, "source", "x")
    T, B = stimulus.inputs.shape[:2]
    lengths = stimulus.lengths
    features = design.y_features
    expected = _y_beats(design, lengths)
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
    in_starts = np.r_[0, np.cumsum(lengths * design.beats_per_step)[:-1]]
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
    h_n = c_n = None
    saturations = overflow = None
    if design.has_state_ports:
        s_data, s_last, _ = _merged(run, phases, "sink", "state")
        if s_data.size:
            h_bits, c_bits = design.state_widths
            LD, H = len(model.directions), model.hidden_size
            kept = np.flatnonzero(~_dropped(design, lengths))
            if s_data.size != kept.size * LD * H:
                raise SimulationError(
                    f"the state stream carried {s_data.size} beats, expected {LD * H} per "
                    f"sequence; run dir {run.run_dir}"
                )
            blocks = s_data.reshape(kept.size, LD, H)
            h_n = np.zeros((LD, B, H), dtype=np.int64)
            c_n = np.zeros((LD, B, H), dtype=np.int64)
            for k, b in enumerate(kept):
                h_n[:, b] = _sign_extend(blocks[k], h_bits)
                c_n[:, b] = _sign_extend(blocks[k] >> h_bits, c_bits)
            if not np.array_equal(np.flatnonzero(s_last) + 1, (np.arange(kept.size) + 1) * LD * H):
                raise SimulationError(f"state tlast misplaced; run dir {run.run_dir}")
        saturations = SaturationCounts(*(final.sample(f"sat_{kind}") for kind in _SATURATION_KINDS))
        overflow = bool(final.sample("overflow"))
    if stimulus.unbatched:
        outputs = outputs[0] if last_mode else outputs[:, 0]
        if h_n is not None:
            h_n, c_n = h_n[:, 0], c_n[:, 0]
    elif stimulus.batch_first and not last_mode:
        outputs = outputs.transpose(1, 0, 2)
    return SimulationResult(
        design=design,
        inputs=stimulus.inputs,
        lengths=lengths,
        outputs=outputs,
        h_n=h_n,
        c_n=c_n,
        cycles=cycles,
        step_end_cycles=step_end,
        dut_cycles=final.sample("cycles"),
        total_cycles=run.total_cycles,
        batch_first=stimulus.batch_first,
        unbatched=stimulus.unbatched,
        paced=paced,
        wall_seconds=wall_seconds,
        sim_seconds=run.sim_seconds,
        wakes=run.wakes,
        run_dir=run.run_dir,
        waves=run.waves,
        output_mode=design.output_mode,
        h0=h0,
        c0=c0,
        carry_state=carry_state,
        saturations=saturations,
        overflow=overflow,
        weights=weights,
    )


def plan_for(design: HardwareDesign, phases) -> Plan:
    """A :class:`Plan` of ``phases`` for ``design``: the full-model top's control inputs and
    unused streams are held idle from the start."""
    initial = _IDLE_INPUTS if design.has_state_ports else ()
    return Plan(tuple(phases), initial=tuple((name, 0) for name in initial))


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
    h0, c0 = _initial_states(design, h0, c0, stimulus.batch)
    if carry_state and not design.has_state_ports:
        raise ValueError("carry_state needs hardware with the state-mode control input")
    if read_state is None:
        read_state = design.has_state_ports
    limit = getattr(design.config, "max_seq_len", None)
    if _dropped(design, stimulus.lengths).any():
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
    groups = [(0, stimulus.batch)]
    if h0 is not None and not carry_state:
        same = all(
            np.array_equal(h0[:, b], h0[:, 0]) and np.array_equal(c0[:, b], c0[:, 0])
            for b in range(stimulus.batch)
        )
        if not same:
            groups = [(b, b + 1) for b in range(stimulus.batch)]
    phases, x_phases = [], []
    if weights is not None:
        phases.append(reload_phase(design, weights))
    for first, stop in groups:
        if h0 is not None:
            phases.append(init_phase(design, h0[:, first], c0[:, first]))
        part = stimulus if len(groups) == 1 else stimulus.subset(first, stop)
        x_phases.append(len(phases))
        phases.append(stimulus_phase(design, part, **options))
    run = run_plan(design.sim_build, plan_for(design, phases), run_dir, waves=waves)
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
