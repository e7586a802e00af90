"""What a simulation does, and what it observed: typed plans and results, and their files.

A :class:`Plan` is a sequence of :class:`Phase` objects: each drives input streams
(:class:`SourceSpec`), collects output streams (:class:`SinkSpec`), sets static inputs,
samples status signals at its end and may abort with a reset. The host writes the plan into
the run directory (``plan.json`` + ``plan.npz``), the cocotb harness
(:mod:`lstm_fpga.sim.harness`) executes it and writes a :class:`PlanResult` back
(``result.json`` + ``result.npz``). Nothing but these dataclasses crosses the boundary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "AXI_STREAM",
    "NO_PAUSES",
    "PLAN_ENV",
    "PROGRESS_ENV",
    "Pacing",
    "Phase",
    "PhaseResult",
    "Plan",
    "PlanResult",
    "SinkCapture",
    "SinkSpec",
    "SourceRecord",
    "SourceSpec",
    "StreamFields",
    "int_array",
    "load_plan",
    "load_result",
    "run_plan",
    "save_plan",
    "save_result",
]

#: Environment variable through which the harness finds ``plan.json``.
PLAN_ENV = "LSTM_FPGA_SIM_PLAN"
#: Environment variable naming the file the harness appends a byte to per progress packet.
PROGRESS_ENV = "LSTM_FPGA_SIM_PROGRESS"
_FORMAT = 1


@dataclass(frozen=True)
class StreamFields:
    """Port names of one stream: ``{name}{separator}{data}`` etc. (Amaranth flattens with
    ``__``). ``last`` may be ``None`` for streams without a last flag."""

    data: str = "tdata"
    valid: str = "tvalid"
    ready: str = "tready"
    last: str | None = "tlast"
    separator: str = "__"

    def port(self, stream: str, member: str) -> str:
        return f"{stream}{self.separator}{member}"


#: AXI4-Stream member names, as the LSTM top uses them (its ``x`` stream: ``x`` + ``__tdata``, ...
AXI_STREAM = StreamFields()


@dataclass(frozen=True)
class Pacing:
    """Pauses a driver inserts before beats: idle cycles (``tvalid`` low) on a source,
    backpressure (``tready`` low) on a sink.

    Before each beat, with probability ``probability``, the driver pauses for a number of
    cycles drawn uniformly from ``[1, max_cycles]`` (seeded by ``seed``).
    """

    probability: float = 0.0
    max_cycles: int = 1
    seed: int = 0

    def __post_init__(self):
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"pause probability must lie in [0, 1], not {self.probability}")
        if self.max_cycles < 1:
            raise ValueError(f"max_cycles must be >= 1, not {self.max_cycles}")

    @property
    def enabled(self) -> bool:
        return self.probability > 0.0


NO_PAUSES = Pacing()


def int_array(values, name: str = "values") -> np.ndarray:
    """A read-only 1-D array of integers: int64, or Python ints (dtype object) when a value
    does not fit 64 bits (wide ports such as a packed weight-load word)."""
    array = np.asarray(values)
    if array.dtype == object:
        items = [int(v) for v in array.reshape(-1)]
        try:
            array = np.array(items, dtype=np.int64)
        except OverflowError:
            array = np.empty(len(items), dtype=object)
            array[:] = items
    elif array.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    else:
        array = np.ascontiguousarray(array.reshape(-1), dtype=np.int64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class SourceSpec:
    """Beats to send on input stream ``name``: ``data[k]`` with ``last[k]`` (all False when
    ``last`` is None)."""

    name: str
    data: np.ndarray
    last: np.ndarray | None = None
    pacing: Pacing = NO_PAUSES
    fields: StreamFields = AXI_STREAM

    def __post_init__(self):
        object.__setattr__(self, "data", int_array(self.data, f"{self.name} data"))
        last = np.zeros(self.data.shape, dtype=bool) if self.last is None else self.last
        last = np.ascontiguousarray(np.asarray(last, dtype=bool).reshape(-1))
        if last.shape != self.data.shape:
            raise ValueError(
                f"stream {self.name}: {last.size} last flags for {self.data.size} data beats"
            )
        last.setflags(write=False)
        object.__setattr__(self, "last", last)


@dataclass(frozen=True)
class SinkSpec:
    """Collect output stream ``name`` until ``packets`` beats with last were received (or
    ``beats`` beats; with neither, until the phase's sources are done and the stream has
    been quiet for the drain period). Data is read as signed unless ``signed=False``.
    ``progress``: each packet counts as one unit of work done (``run_plan(progress=...)``)."""

    name: str
    packets: int | None = None
    beats: int | None = None
    pacing: Pacing = NO_PAUSES
    fields: StreamFields = AXI_STREAM
    signed: bool = True
    progress: bool = False

    def __post_init__(self):
        if self.packets is not None and self.beats is not None:
            raise ValueError(f"stream {self.name}: give packets or beats, not both")
        for count in (self.packets, self.beats):
            if count is not None and count < 0:
                raise ValueError(f"stream {self.name}: expected counts must be >= 0")


@dataclass(frozen=True)
class Phase:
    """One stretch of simulation.

    ``drive`` sets static inputs (name, value) when the phase starts, ``sample`` names signals
    read when it ends. The phase ends when every source sent all beats and every sink got
    what it expects, followed by ``drain_cycles`` in which no further output beat may appear.
    ``abort_after_cycles`` instead pulses reset after that many cycles (drivers stop,
    partial captures are kept); ``timeout_cycles`` bounds the phase.
    """

    sources: tuple[SourceSpec, ...] = ()
    sinks: tuple[SinkSpec, ...] = ()
    drive: tuple[tuple[str, int], ...] = ()
    sample: tuple[str, ...] = ()
    drain_cycles: int = 32
    timeout_cycles: int = 10_000_000
    abort_after_cycles: int | None = None
    idle_cycles: int = 0

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "sinks", tuple(self.sinks))
        object.__setattr__(self, "drive", tuple((str(n), int(v)) for n, v in self.drive))
        object.__setattr__(self, "sample", tuple(self.sample))
        names = [s.name for s in self.sources] + [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"a stream appears twice in one phase: {names}")


@dataclass(frozen=True)
class Plan:
    """Phases run in order after an initial reset of ``reset_cycles`` cycles.

    Before that reset every stream of every phase is driven idle and ``initial`` sets other
    inputs (name, value): an input left undriven reads ``z`` and would put ``x`` into the
    DUT's state.
    """

    phases: tuple[Phase, ...]
    clock_period_ns: int = 10
    reset_cycles: int = 4
    clock: str = "clk"
    reset: str = "rst"
    initial: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "phases", tuple(self.phases))
        object.__setattr__(self, "initial", tuple((str(n), int(v)) for n, v in self.initial))
        if self.clock_period_ns < 2 or self.clock_period_ns % 2:
            raise ValueError("clock_period_ns must be an even number of at least 2 ns")

    @classmethod
    def single(cls, sources=(), sinks=(), **phase_options) -> Plan:
        """A plan with one phase."""
        return cls((Phase(tuple(sources), tuple(sinks), **phase_options),))


@dataclass(frozen=True, eq=False)
class SinkCapture:
    """Beats received on ``name``: data, last and the clock cycle of each handshake;
    ``extra`` counts beats that arrived after the sink had what it expected."""

    name: str
    data: np.ndarray
    last: np.ndarray
    cycle: np.ndarray
    extra: int = 0

    @property
    def packet_ends(self) -> np.ndarray:
        """Indices of beats with last set."""
        return np.flatnonzero(self.last)


@dataclass(frozen=True, eq=False)
class SourceRecord:
    """Handshake cycle of every beat sent on ``name`` (fewer than planned if aborted)."""

    name: str
    cycle: np.ndarray


@dataclass(frozen=True, eq=False)
class PhaseResult:
    sinks: tuple[SinkCapture, ...]
    sources: tuple[SourceRecord, ...]
    samples: tuple[tuple[str, int], ...]
    start_cycle: int
    end_cycle: int
    aborted: bool = False

    def sink(self, name: str) -> SinkCapture:
        return _by_name(self.sinks, name, "sink")

    def source(self, name: str) -> SourceRecord:
        return _by_name(self.sources, name, "source")

    def sample(self, name: str) -> int:
        for key, value in self.samples:
            if key == name:
                return value
        raise KeyError(f"signal {name!r} was not sampled in this phase")


@dataclass(frozen=True, eq=False)
class PlanResult:
    """Per-phase results, total simulated cycles, wall time spent inside the simulator
    process, and how often drivers woke Python (the cost driver of cocotb)."""

    phases: tuple[PhaseResult, ...]
    total_cycles: int
    sim_seconds: float
    wakes: int
    simulator: str = ""
    run_dir: Path | None = None
    wall_seconds: float = 0.0
    waves: Path | None = None


def _by_name(items, name, kind):
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {kind} stream named {name!r}")


# -- files ---------------------------------------------------------------------------------
_TYPES = {
    cls.__name__: cls
    for cls in (
        StreamFields,
        Pacing,
        SourceSpec,
        SinkSpec,
        Phase,
        Plan,
        SinkCapture,
        SourceRecord,
        PhaseResult,
        PlanResult,
    )
}


def _encode(value, arrays: dict[str, np.ndarray]):
    if dataclasses.is_dataclass(value):
        encoded = {"__type__": type(value).__name__}
        for f in dataclasses.fields(value):
            encoded[f.name] = _encode(getattr(value, f.name), arrays)
        return encoded
    if isinstance(value, np.ndarray) and value.dtype == object:
        return {"__ints__": [int(v) for v in value.reshape(-1)]}
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if isinstance(value, tuple | list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a plan file")


_TUPLE_FIELDS = {"phases", "sources", "sinks", "drive", "sample", "samples", "initial"}


def _decode(value, arrays):
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]]
        if "__ints__" in value:
            return int_array(np.array(value["__ints__"], dtype=object))
        if "__path__" in value:
            return Path(value["__path__"])
        cls = _TYPES[value["__type__"]]
        kwargs = {name: _decode(item, arrays) for name, item in value.items() if name != "__type__"}
        for name in _TUPLE_FIELDS & kwargs.keys():
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in kwargs[name] or ())
        return cls(**kwargs)
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def _save(obj, stem: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    document = {"format": _FORMAT, "object": _encode(obj, arrays)}
    np.savez(stem.with_suffix(".npz"), **arrays)
    stem.with_suffix(".json").write_text(json.dumps(document, indent=1))


def _load(stem: Path):
    document = json.loads(stem.with_suffix(".json").read_text())
    if document.get("format") != _FORMAT:
        raise ValueError(f"{stem}.json has format {document.get('format')}, expected {_FORMAT}")
    with np.load(stem.with_suffix(".npz"), allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return _decode(document["object"], arrays)


def save_plan(plan: Plan, run_dir: Path) -> Path:
    _save(plan, Path(run_dir) / "plan")
    return Path(run_dir) / "plan.json"


def load_plan(path: Path | str) -> Plan:
    plan = _load(Path(path).with_suffix(""))
    if not isinstance(plan, Plan):
        raise TypeError(f"{path} does not hold a Plan")
    return plan


def save_result(result: PlanResult, run_dir: Path) -> None:
    _save(result, Path(run_dir) / "result")


def load_result(run_dir: Path | str) -> PlanResult:
    result = _load(Path(run_dir) / "result")
    if not isinstance(result, PlanResult):
        raise TypeError(f"{run_dir} does not hold a PlanResult")
    return result


#: Default run directories kept per build; older ones (and only those idle for an hour) go.
KEEP_RUNS = 20


def _new_run_dir(sim_build) -> Path:
    runs = sim_build.directory / "runs"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = runs / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:  # another process may be pruning the same directory
        ages = {p: time.time() - p.stat().st_mtime for p in runs.iterdir()}
    except OSError:
        return path
    for stale in sorted(ages, key=ages.get)[KEEP_RUNS:]:
        if ages[stale] > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return path


@contextmanager
def _watch(path: Path, report: Callable[[int], None] | None, interval: float = 0.2):
    """Report the size of ``path`` (one byte per progress packet) while the block runs."""
    if report is None:
        yield
        return
    path.write_bytes(b"")
    stop = threading.Event()

    def poll():
        while not stop.wait(interval):
            report(path.stat().st_size)

    watcher = threading.Thread(target=poll, name="sim-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        report(path.stat().st_size)


def run_plan(
    sim_build,
    plan: Plan,
    run_dir: Path | str | None = None,
    *,
    waves: bool = False,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> PlanResult:
    """Execute ``plan`` on ``sim_build`` (a :class:`~lstm_fpga.sim.runner.SimBuild`).

    Files go to ``run_dir`` (default: a fresh directory under the build's ``runs/``).
    ``progress`` is called from a thread with the number of packets received so far on the
    sinks marked ``progress`` (polled while the simulator runs, and once at the end).
    """
    from .runner import SimulationError, run

    started = time.perf_counter()
    run_dir = Path(run_dir) if run_dir is not None else _new_run_dir(sim_build)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("result.json", "result.npz", "error.txt"):
        (run_dir / stale).unlink(missing_ok=True)
    plan_path = save_plan(plan, run_dir)
    env = {PLAN_ENV: str(plan_path.resolve())}
    if progress is not None:
        env[PROGRESS_ENV] = str((run_dir / "progress").resolve())
    try:
        with _watch(run_dir / "progress", progress):
            wave_path = run(
                sim_build, "lstm_fpga.sim.harness", run_dir, env=env, waves=waves, seed=seed
            )
    except SimulationError:
        detail = run_dir / "error.txt"
        if detail.is_file():
            summary = detail.read_text().split("\n\n")[0].strip()
            raise SimulationError(
                f"{summary}\n(simulator {sim_build.simulator}; log: {run_dir / 'sim.log'})"
            ) from None
        raise
    result = load_result(run_dir)
    return dataclasses.replace(
        result,
        simulator=sim_build.simulator,
        run_dir=run_dir,
        wall_seconds=time.perf_counter() - started,
        waves=wave_path if waves else None,
    )
