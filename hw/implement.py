"""Implementation of a build on a device: fit check, Yosys, nextpnr, in the design's terms.

:func:`implement` checks the plan against the part (:mod:`.devices`) before any long step,
synthesizes with Yosys, places and routes out of context with nextpnr where the flow has it
(ECP5), and reports Fmax, the critical path as a chain of the design's blocks (MVU lanes,
weight banks, activation units, gate/cell pipeline, sequencer, ...) and the utilisation of the
part. Without nextpnr (iCE40, Xilinx 7-series) the utilisation comes from Yosys' counts and
there is no Fmax.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..eda import PathStep, PlaceRouteReport, SynthReport, place_and_route, synthesize
from ..eda.netlist import HierarchyName
from .banks import bank_packing
from .devices import FAMILIES, Device, DeviceFitError, Fit, check_fit
from .plan import EnginePlan

__all__ = [
    "BLOCK_LABELS",
    "Implementation",
    "block_label",
    "critical_chain",
    "implement",
    "write_implementation",
]

#: Hierarchy prefix -> the block's name in the docs (longest prefix wins).
BLOCK_LABELS = {
    "engine.mvu": "MVU lanes",
    "engine.weights": "weight banks",
    "engine.cell.act_": "activation",
    "engine.cell": "gate/cell pipeline",
    "engine.sequencer": "sequencer",
    "engine.head": "head",
    "engine": "engine",
    "": "lstm_top (ports, status)",
}


def block_label(where: HierarchyName) -> str:
    """``activation act_o.rom``, ``MVU lanes``, ``gate/cell pipeline: output``, ..."""
    path = ".".join(where.path)
    prefix = max((p for p in BLOCK_LABELS if path.startswith(p)), key=len)
    rest = path[len(prefix) :].lstrip(".") if prefix != "engine.cell.act_" else path[12:]
    label = BLOCK_LABELS[prefix]
    detail = ".".join(part for part in (rest, where.local) if part)
    return (
        f"{label} {detail}".strip()
        if prefix == "engine.cell.act_"
        else (f"{label}: {detail}" if detail else label)
    )


def critical_chain(path: Sequence[PathStep]) -> list[str]:
    """A timing path (``PlaceRouteReport.critical_path``) as the sequence of blocks it
    crosses, repeats merged."""
    chain: list[str] = []
    for step in path:
        where = step.where
        if step.kind == "routing" or not (where.path or where.local):
            continue  # wires, and cells the mappers left without a name
        label = block_label(where)
        if not chain or chain[-1] != label:
            chain.append(label)
    return chain


@dataclass(frozen=True)
class Implementation:
    """What :func:`implement` measured."""

    target: str
    device: Device
    speed: int | None
    synth: SynthReport
    fit: Fit
    pnr: PlaceRouteReport | None
    #: FPGA family of the synthesized Verilog's primitives (``build --family``).
    verilog_family: str = "generic"
    #: The packed weight memories: block RAMs planned and used against the minimum.
    weight_banks: dict | None = None

    @property
    def fmax_mhz(self) -> float | None:
        return None if self.pnr is None else self.pnr.fmax_mhz

    def to_json_dict(self) -> dict:
        data = {
            "target": self.target,
            "device": self.device.name,
            "part": self.device.part,
            "speed": self.speed,
            "verilog_family": self.verilog_family,
            "fmax_mhz": None if self.pnr is None else round(self.pnr.fmax_mhz, 2),
            "critical_path": None if self.pnr is None else critical_chain(self.pnr.critical_path),
            "fits": self.fit.fits,
            "utilisation": self.fit.to_json_dict(),
            "weight_banks": self.weight_banks,
            "synthesis": self.synth.to_json_dict(),
            "place_and_route": None if self.pnr is None else self.pnr.to_json_dict(),
        }
        return data


def implement(
    verilog,
    plan: EnginePlan,
    device: Device,
    *,
    top: str,
    speed: int = 6,
    package: str | None = None,
    freq_mhz: float = 100.0,
    seed: int = 1,
    workdir=None,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = None,
    verilog_family: str = "generic",
    router: str | None = None,
) -> Implementation:
    """Check, synthesize and (ECP5) place and route ``verilog`` for ``device``.

    Netlists, reports and logs go to ``workdir`` (default: beside the Verilog).
    ``verilog_family`` (the family the Verilog was generated for, ``"generic"`` or
    ``"ecp5"``) is recorded in the result; ``router`` is nextpnr's ``--router`` (its
    default when ``None``).
    Raises :class:`DeviceFitError` before synthesis when the plan's block RAMs or DSPs exceed
    the part, :class:`~lstm_fpga.eda.SynthesisError` / :class:`~lstm_fpga.eda.PlaceRouteError`
    (one line, with the log) when a tool fails.
    """
    say = progress or (lambda message: None)
    planned = check_fit(plan, device)
    if not planned.fits:
        raise DeviceFitError(
            f"the design does not fit {device.part} ({device.name}): {planned.describe()} "
            f"(needed/available; short of {', '.join(planned.short)})"
        )
    family = FAMILIES[device.family]
    say(f"yosys synth_{family.synth} of {Path(verilog).name}")
    synth = synthesize(
        verilog, family.synth, top=top, workdir=workdir, progress=say, timeout=timeout
    )
    pnr = None
    if device.nextpnr is not None:
        say(f"nextpnr-ecp5 --{device.nextpnr} speed {speed} at {freq_mhz:g} MHz, seed {seed}")
        pnr = place_and_route(
            synth.netlist,
            device=device.nextpnr,
            package=package or "CABGA381",
            speed=speed,
            freq_mhz=freq_mhz,
            seed=seed,
            progress=say,
            timeout=timeout,
            router=router,
        )
        measured = {r: used for r, (used, _available) in pnr.utilisation.items()}
    else:
        measured = dict(synth.total)
    needed = {r: measured.get(r, 0) for r in ("bram", "dsp", "lut", "ff")}
    fit = check_fit(plan, device, needed)
    packing = bank_packing(plan)
    weight_banks = {
        # Block RAMs of the weight memory block (bias banks included, LUT RAM when small).
        "block_rams_used": synth.blocks.get("engine.weights", {}).get("bram", 0),
        "block_rams_planned": packing.block_rams,
        "block_rams_minimum": packing.minimum,
        "lanes_per_group": packing.lanes_per_group,
        "lutram_lanes": packing.lutram_lanes,
    }
    return Implementation(
        target=device.family,
        device=device,
        speed=speed if pnr is not None else None,
        synth=synth,
        fit=fit,
        pnr=pnr,
        verilog_family=verilog_family,
        weight_banks=weight_banks,
    )


def write_implementation(result: Implementation, path: Path) -> None:
    """Save ``result`` as JSON (``OUT/synth_<target>.json``)."""
    path.write_text(json.dumps(result.to_json_dict(), indent=2) + "\n")
