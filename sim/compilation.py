"""Compiled simulation models of Verilog, cached: :func:`compile_simulation`.

The compiled model's directory is named by a hash of the Verilog text, data files, simulator,
tool versions and options, and reused while that hash is unchanged (concurrent compilations
of one configuration are serialised by a file lock, so ``pytest -n`` workers share it).
:func:`~lstm_fpga.sim.runner.run` runs cocotb tests on a :class:`SimBuild`.
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .runner import (
    SimulationError,
    Toolchain,
    _environment,
    _tail,
    default_cache_dir,
    find_simulator,
)

__all__ = ["DEFAULT_TIMESCALE", "SimBuild", "compile_simulation", "wave_format"]

#: Amaranth emits no ``timescale``; every compilation gets this one (unit, precision).
DEFAULT_TIMESCALE = ("1ns", "1ps")
#: Bumped whenever the way models are compiled changes, so old cache entries are not reused.
_BUILD_FORMAT = 1


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


def compile_simulation(
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
            f"compile_simulation() takes the Verilog source text and its top module name; "
            f"the text does not define `module {toplevel}`"
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
    # What names the build both in its hash and in the SimBuild: listed once.
    identity = {"simulator": simulator, "toplevel": toplevel, "waves": waves, "wave_format": fmt}
    header = {
        **identity,
        "format": _BUILD_FORMAT,
        "toolchain": toolchain.version,
        "cocotb": _cocotb_version(),
        "timescale": list(timescale),
        "options": options,
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
        **identity,
        directory=directory,
        key=key,
        timescale=tuple(timescale),
        data_files=tuple(directory / p.name for p in data_paths),
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
