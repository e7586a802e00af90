"""A bitstream for a board: the fit check, the board top's files, Yosys, nextpnr, ecppack.

:func:`write_bitstream` checks the build against the board's part (block RAM, DSP: the
table of :mod:`.devices`) and the PLL against the requested clock *before* any long step,
then writes into a staging directory: the board top (:class:`~.board.BoardPlatformTop`)
as RTLIL with the board's pin and clock constraints (``board_top.lpf``) from its
``amaranth-boards`` platform, the core's Verilog (``lstm_top.v``, weights inline),
synthesizes both with Yosys, places and routes on the pins with nextpnr (every clock against
its own constraint: the oscillator's and the PLL output's) and, when timing is met, packs
``board_top.bit`` (and ``board_top.svf``) with ecppack. The reports: ``report.json``
(clock, PLL, Fmax per clock, the critical path as the design's blocks, utilisation of the
part, seconds per stage) and ``report.txt``; the tools' logs beside them. The staging
directory becomes ``out`` at the end -- also when timing is missed or a tool fails, so the
reports and logs are there to read (``report.json`` says which); only a bitstream that
meets timing is written.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..eda import PlaceRouteReport, SynthReport, pack_bitstream, place_and_route, synthesize
from ..eda.tools import ToolFailedError
from ..outdir import replace_dir, staging_dir
from .board import Board, BoardPlatformTop, ecp5_pll
from .devices import DEVICES, DeviceFitError, check_fit
from .implement import block_label
from .interface import TOP_NAME, TopInterface
from .plan import EnginePlan

__all__ = [
    "BOARD_TOP",
    "CORE_PATH",
    "BitstreamResult",
    "board_chain",
    "check_board_fit",
    "describe",
    "write_bitstream",
]

#: Name of the board's top module (and of its files: ``board_top.bit``, ...).
BOARD_TOP = "board_top"


@dataclass(frozen=True)
class BitstreamResult:
    """What :func:`write_bitstream` did: ``status`` is ``"ok"`` (bitstream written),
    ``"timing"`` (placed and routed, timing missed, no bitstream) or ``"failed"`` (a tool
    failed: ``error``)."""

    directory: Path
    status: str
    report: dict
    error: str | None = None

    @property
    def bitstream(self) -> Path | None:
        path = self.directory / f"{BOARD_TOP}.bit"
        return path if self.status == "ok" else None


def check_board_fit(plan: EnginePlan, spec: Board):
    """The plan's block RAMs and DSPs on the board's part; :class:`DeviceFitError` (naming
    the boards that hold it) when they exceed it."""
    from .board import BOARDS

    fit = check_fit(plan, DEVICES[spec.device])
    if not fit.fits:
        larger = [b.name for b in BOARDS.values() if check_fit(plan, DEVICES[b.device]).fits]
        raise DeviceFitError(
            f"the design does not fit the {spec.title}: {fit.describe()} (needed/available; "
            f"short of {', '.join(fit.short)}); choose --board "
            f"{'|'.join(larger) if larger else '(none holds it)'}, or rebuild with fewer "
            f"--lanes or narrower --bits"
        )
    return fit


#: Hierarchy of ``lstm_top`` inside the board top: BoardTop ``top``, CoreInstance ``core``,
#: the instance ``core``.
CORE_PATH = ("top", "core", "core")


def board_chain(path) -> list[str]:
    """A timing path of the board top as the blocks it crosses: the core's blocks named as
    :func:`~.implement.block_label` names them, the rest ``board: <path>``; repeats merged."""
    from ..eda.netlist import HierarchyName

    chain: list[str] = []
    for step in path:
        where = step.where
        if step.kind == "routing" or not (where.path or where.local):
            continue
        if where.path[: len(CORE_PATH)] == CORE_PATH:
            label = block_label(HierarchyName(where.path[len(CORE_PATH) :], where.local))
        else:
            label = "board: " + ".".join((*where.path, where.local)).strip(".")
        if not chain or chain[-1] != label:
            chain.append(label)
    return chain


def _platform_files(spec: Board, interface: TopInterface, verilog: str, pll, link) -> dict:
    """File name -> contents of the board top for ``spec``'s Amaranth platform."""
    platform = spec.platform_class()()
    platform.add_file(f"{TOP_NAME}.v", verilog)
    top = BoardPlatformTop(spec, interface, pll, link=link)
    plan = platform.prepare(top, name=BOARD_TOP)
    return dict(plan.files)


def write_bitstream(
    plan: EnginePlan,
    verilog: str,
    spec: Board,
    out,
    *,
    freq_mhz: float,
    seed: int = 1,
    router: str | None = None,
    link_factory: Callable | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> BitstreamResult:
    """Build the bitstream of ``verilog`` (the core ``lstm_top`` of ``plan``, weights
    inline) for board ``spec`` at ``freq_mhz`` (the PLL's nearest) into the directory
    ``out`` (replaced). ``link_factory(interface, clk_freq)`` makes the host link (``None``:
    the core's inputs idle); ``router`` is nextpnr's ``--router`` (its default when
    ``None``). Raises :class:`DeviceFitError` / :class:`~.board.BoardError`
    before anything is written; tool failures and missed timing come back in the result."""
    say = progress or (lambda message: None)
    fit = check_board_fit(plan, spec)
    pll = ecp5_pll(spec.clock_mhz, freq_mhz)
    achieved = float(pll.output_mhz)
    interface = TopInterface(plan)
    out = Path(out)
    staging = staging_dir(out)
    stages: dict[str, float] = {}
    report: dict = {
        "board": spec.name,
        "title": spec.title,
        "part": spec.part,
        "package": spec.package,
        "speed": spec.speed,
        "seed": seed,
        "router": router or "router1",
        "clock": {
            "oscillator_mhz": spec.clock_mhz,
            "requested_mhz": freq_mhz,
            "achieved_mhz": round(achieved, 6),
            "pll": pll.to_json_dict(),
        },
        "planned_fit": fit.to_json_dict(),
        "host_link": None,
    }
    synth: SynthReport | None = None
    pnr: PlaceRouteReport | None = None
    status, error = "failed", None
    try:
        started = time.monotonic()
        link = None
        if link_factory is not None:
            link = link_factory(interface, achieved * 1e6)
            report["host_link"] = {
                "component": type(link).__name__,
                "clocks_per_bit": getattr(link, "clocks_per_bit", None),
                "pins": f"{spec.uart} rx/tx",
            }
        say(f"board top for the {spec.title}: {spec.clock_mhz:g} MHz -> PLL -> {achieved:g} MHz")
        for name, contents in _platform_files(spec, interface, verilog, pll, link).items():
            path = staging / name
            if isinstance(contents, bytes):
                path.write_bytes(contents)
            else:
                path.write_text(contents)
        stages["elaborate"] = time.monotonic() - started
        started = time.monotonic()
        synth = synthesize(
            staging / f"{TOP_NAME}.v",
            "ecp5",
            top=BOARD_TOP,
            rtlil=(f"{BOARD_TOP}.il",),
            workdir=staging,
            progress=say,
            timeout=timeout,
        )
        stages["synthesis"] = time.monotonic() - started
        say(
            f"nextpnr-ecp5 --{spec.nextpnr} {spec.package} speed {spec.speed}, seed {seed}"
            + (f", --router {router}" if router else "")
        )
        started = time.monotonic()
        pnr = place_and_route(
            synth.netlist,
            device=spec.nextpnr,
            package=spec.package,
            speed=spec.speed,
            freq_mhz=achieved,
            seed=seed,
            progress=say,
            timeout=timeout,
            lpf=staging / f"{BOARD_TOP}.lpf",
            textcfg=f"{BOARD_TOP}.config",
            router=router,
        )
        stages["place_and_route"] = time.monotonic() - started
        if pnr.timing_met:
            started = time.monotonic()
            say("ecppack")
            pack_bitstream(
                staging / f"{BOARD_TOP}.config",
                f"{BOARD_TOP}.bit",
                svf=f"{BOARD_TOP}.svf",
                timeout=timeout,
            )
            stages["bitstream"] = time.monotonic() - started
            status = "ok"
        else:
            status = "timing"
    except ToolFailedError as failure:
        error = str(failure).replace(str(staging), str(out))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report |= {
        "status": status,
        "error": error,
        "timing_met": None if pnr is None else pnr.timing_met,
        "fmax_mhz": None
        if pnr is None
        else {name: round(a, 2) for name, (a, _c) in pnr.clocks.items()},
        "critical_path": None if pnr is None else board_chain(pnr.critical_path),
        "critical_path_ns": None if pnr is None else round(pnr.path_ns, 2),
        "utilisation": None
        if pnr is None
        else {r: {"used": u, "available": a} for r, (u, a) in pnr.utilisation.items()},
        "synthesis": None if synth is None else synth.total,
        # The measured LUTs, FFs, block RAMs and DSPs against the part's data sheet (nextpnr
        # offers the 12F the whole die of the 25F it shares).
        "fit": None
        if pnr is None
        else check_fit(
            plan, DEVICES[spec.device], {r: used for r, (used, _a) in pnr.utilisation.items()}
        ).to_json_dict(),
        "seconds": {name: round(s, 1) for name, s in stages.items()},
        "bitstream": f"{BOARD_TOP}.bit" if status == "ok" else None,
    }
    try:
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (staging / "report.txt").write_text(describe(report) + "\n")
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BitstreamResult(out, status, report, error)


def describe(report: dict) -> str:
    """``report.json`` as lines for people."""
    clock = report["clock"]
    pll = clock["pll"]
    lines = [
        f"{report['title']}: {report['part']} {report['package']} speed {report['speed']}",
        f"clock: {clock['oscillator_mhz']:g} MHz oscillator -> PLL (CLKI_DIV {pll['clki_div']}, "
        f"CLKFB_DIV {pll['clkfb_div']}, CLKOP_DIV {pll['clkop_div']}, VCO {pll['vco_mhz']:g} "
        f"MHz) -> {clock['achieved_mhz']:g} MHz (requested {clock['requested_mhz']:g})",
        "host link: "
        + (
            f"{link['component']} on {link['pins']}, {link['clocks_per_bit']} clocks per bit"
            if (link := report["host_link"])
            else "none (core inputs idle)"
        ),
    ]
    if report["fmax_mhz"] is not None:
        fmax = ", ".join(f"{name} {mhz:.1f} MHz" for name, mhz in report["fmax_mhz"].items())
        lines.append(f"Fmax: {fmax}; timing {'met' if report['timing_met'] else 'NOT met'}")
        lines.append(
            f"critical path {report['critical_path_ns']:.2f} ns: "
            f"{' -> '.join(report['critical_path']) or '(board logic)'}"
        )
    if report["utilisation"] is not None:
        lines.append("utilisation (nextpnr):")
        for resource, use in report["utilisation"].items():
            percent = 100.0 * use["used"] / max(1, use["available"])
            lines.append(
                f"  {resource:>6}: {use['used']:>7} / {use['available']:<7} {percent:5.1f} %"
            )
    if report["fit"] is not None:
        fit = report["fit"]
        short = [r for r in fit["needed"] if fit["needed"][r] > fit["available"][r]]
        lines.append(
            f"fits the {fit['part']} by its data sheet: "
            + ("yes" if fit["fits"] else f"NO ({', '.join(short)})")
        )
    if report["error"]:
        lines.append(f"error: {report['error']}")
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    lines.append(f"time: {seconds}")
    lines.append(
        f"bitstream: {report['bitstream']}"
        if report["bitstream"]
        else "bitstream: none written ("
        + ("timing not met)" if report["status"] == "timing" else "failed)")
    )
    return "\n".join(lines)
