"""Verilator lint of generated Verilog."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .tools import find_verilator

__all__ = ["LintReport", "lint_verilog"]


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


def lint_verilog(path, top: str) -> LintReport:
    """Run ``verilator --lint-only -Wall`` on ``path``; warnings do not fail the run."""
    path = Path(path)
    verilator = find_verilator()
    args = [
        str(verilator.executable),
        "--lint-only",
        "-Wall",
        "-Wno-fatal",
        "--top-module",
        top,
        path.name,
    ]
    run = subprocess.run(
        args, cwd=path.parent, env=verilator.env(), capture_output=True, text=True, check=False
    )
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
