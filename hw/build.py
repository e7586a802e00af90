"""Verilog generation from the IR: ``lstm_top.v``, ``.hex`` memory images and a manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from ..sw.ir import LstmModel
from ..sw.numerics import FAMILY_DSP, UNPACKABLE_DSPS
from .compatibility import check_supported
from .config import HardwareConfig, HardwareConfigError
from .control import AXI_TOP_NAME, CONTROL_MODES, LstmAxi
from .engine import LstmTop
from .external import axi_params, check_external, weight_image
from .interface import TOP_NAME, TopInterface
from .memory import MEMORY_INIT_STYLES, weight_bank_module, weight_memories_verilog
from .pipeline import FAMILIES, target
from .plan import GRU_UNIT_ROWS, GRU_UNIT_SUMS, EnginePlan
from .regmap import REGISTER_MAP_VERSION

__all__ = [
    "TOP_NAME",
    "WEIGHT_IMAGE_FILE",
    "Build",
    "control_manifest",
    "generate_verilog",
    "hardware_config",
    "write_build",
]


def hardware_config(config: HardwareConfig | int) -> HardwareConfig:
    """Accept a :class:`HardwareConfig` or a plain lane count."""
    if isinstance(config, HardwareConfig):
        return config
    if isinstance(config, int) and not isinstance(config, bool):
        return HardwareConfig(lanes=config)
    raise HardwareConfigError(
        f"expected a HardwareConfig or a lane count, not {type(config).__name__}"
    )


def _check_init(memory_init: str) -> None:
    if memory_init not in MEMORY_INIT_STYLES:
        raise HardwareConfigError(
            f"memory_init must be one of {', '.join(MEMORY_INIT_STYLES)}, not {memory_init!r}"
        )


#: The weight image a ``weights="external"`` build writes
#: (:func:`~lstm_fpga.hw.external.weight_image`).
WEIGHT_IMAGE_FILE = "weights.bin"


def _verilog(
    top: LstmTop | LstmAxi, memory_init: str, family: str | None, name: str = TOP_NAME
) -> str:
    platform = target(family)
    text = verilog.convert(top, name=name, emit_src=False, platform=platform)
    banks = ""
    if top.engine.plan.config.weights != "external":  # external weights: no weight banks
        banks = weight_memories_verilog(top.engine.images, top.engine.packing, memory_init)
    return (
        f"{text}\n// Packed weight memories (lstm_fpga.hw.memory.weight_bank_verilog).\n{banks}"
        f"\n// Target {platform.family} (lstm_fpga.hw.pipeline).\n{platform.verilog_modules()}"
    )


def _check_family(family: str | None) -> None:
    if family is not None and family not in FAMILIES:
        raise HardwareConfigError(
            f"family must be one of {', '.join(FAMILIES)} (the FPGA family whose primitives "
            f"the Verilog instantiates), not {family!r}"
        )


def _check_packing(config: HardwareConfig, family: str | None) -> None:
    """Two multiplies per DSP only where the family's multiplier takes them."""
    dsp = FAMILY_DSP.get(target(family).family)
    if config.dsp_packing == 2 and dsp in UNPACKABLE_DSPS:
        raise HardwareConfigError(
            f"two multiplies per DSP are not available for family {family!r}: "
            f"{UNPACKABLE_DSPS[dsp]}; generate with dsp_packing=1 or the generic family"
        )


def _check_control(control: str) -> None:
    if control not in CONTROL_MODES:
        raise HardwareConfigError(
            f"control must be one of {', '.join(CONTROL_MODES)} (stream: the bare lstm_top; "
            f"axi-lite: lstm_axi with an AXI4-Lite register map), not {control!r}"
        )


def generate_verilog(
    model: LstmModel,
    config: HardwareConfig | int,
    *,
    memory_init: str = "inline",
    family: str | None = None,
    control: str = "stream",
) -> str:
    """Verilog of the accelerator for ``model``: top module ``lstm_top`` and its submodules.

    ``config`` is a :class:`HardwareConfig` or just the lane count ``P``. ``memory_init``
    ``"inline"`` puts the weights into the Verilog (``initial`` blocks); ``"readmemh"`` loads
    each packed weight memory from ``weights_groupNN.hex`` (see :func:`write_build`) instead.
    ``family`` (``"generic"``, the default, or ``"ecp5"``) chooses the per-family hooks of
    :mod:`lstm_fpga.hw.pipeline` (``"ecp5"`` instantiates ``MULT18X18D`` multipliers with
    their registers, and carries their simulation model). ``control="axi-lite"`` returns
    the AXI4-Lite top ``lstm_axi`` (:class:`~lstm_fpga.hw.control.LstmAxi`) instead.
    """
    config = hardware_config(config)
    _check_init(memory_init)
    _check_family(family)
    _check_packing(config, family)
    _check_control(control)
    check_supported(model, config)
    plan = EnginePlan(model, config)
    if control == "axi-lite":
        return _verilog(LstmAxi(plan, verilog_banks=memory_init), memory_init, family, AXI_TOP_NAME)
    return _verilog(LstmTop(plan, verilog_banks=memory_init), memory_init, family)


@dataclass(frozen=True)
class Build:
    """What :func:`write_build` wrote, and the interface of its ``lstm_top``."""

    directory: Path
    verilog: Path
    manifest: Path
    hex_files: tuple[Path, ...]
    interface: TopInterface
    #: ``lstm_axi.v`` with ``control="axi-lite"``, else None.
    control_verilog: Path | None = None


def _port_list(interface: TopInterface) -> list[dict]:
    """Every port of ``lstm_top`` in declaration order: name, direction, width and, for the
    data of every stream, whether it is one two's complement number."""
    data_ports = {s.data for s in interface.streams}
    ports = []
    for port in interface.ports:
        entry = {"name": port.name, "direction": port.direction.value, "width": port.width}
        if port.name in data_ports:
            entry["signed"] = port.signed
        ports.append(entry)
    return ports


def _memory_entry(path: Path, kind: str, index: int, images, packing) -> dict:
    """A ``.hex`` file and the memory it initialises: packed weight memory ``index`` (its
    lanes in slot order) or lane ``index``'s bias bank."""
    if kind == "weights":
        group = packing.groups[index]
        return {
            "hex": path.name,
            "memory": f"{weight_bank_module(index)}.mem",
            "width": group.lanes * images.weight_width,
            "depth": max(2, group.depth),
            "lanes": list(range(group.first, group.first + group.lanes)),
        }
    return {
        "hex": path.name,
        "memory": f"{TOP_NAME}.engine.weights.{kind}_bank{index}",
        "width": images.bias_width,
        "depth": images.bias_depth,
        # (a GRU's bias words [D, 2D) initialise its second bias memory, the n rows' b_hn)
        **(
            {
                "memory_hn": f"{TOP_NAME}.engine.weights.{kind}_hn_bank{index}",
                "hn_from": images.bias_read_depth,
            }
            if images.split_biases
            else {}
        ),
    }


def _manifest(top: LstmTop, hexes, memory_init: str, family: str | None) -> dict:
    interface = top.interface
    plan: EnginePlan = interface.plan
    model, config, images = plan.model, plan.config, plan.images
    packing = top.engine.packing
    matrices = [
        {
            "name": mp.name,
            "rows": mp.real_rows,
            # A GRU's 3H lane rows, per unit r, z, n (the n row's sum split in two: xn, hn).
            **(
                {"unit_rows": list(GRU_UNIT_ROWS), "unit_sums": list(GRU_UNIT_SUMS)}
                if plan.is_gru and not mp.is_head
                else {}
            ),
            "columns": mp.columns,
            "column_order": [s.kind for s in mp.segments],
            "passes": mp.passes,
            "span": mp.span,
            "weight_base": mp.weight_base,
            "bias_base": mp.bias_base,
            "mac_cycles": mp.mac_cycles,
            "cycle_bound": mp.bound,
        }
        for mp in plan.matrices
    ]
    return {
        "kind": "lstm-fpga build",
        "top": TOP_NAME,
        "verilog": f"{TOP_NAME}.v",
        "config": {
            "lanes": config.lanes,
            "input_elements": config.input_elements,
            "output": config.output,
            "max_seq_len": config.max_seq_len,
            "dsp_packing": config.dsp_packing,
            "dsp": config.dsp,
        },
        "memory_init": memory_init,
        "family": target(family).family,
        "schedule": plan.schedule,
        "geometry": {
            "input_size": plan.input_size,
            "hidden_size": plan.hidden_size,
            "num_layers": plan.num_layers,
            "num_directions": plan.num_directions,
            "head_out_features": plan.model_head_out,
            "requested_lanes": config.lanes,
            "physical_lanes": plan.lanes,
            "lane_dsps": plan.lane_dsps,
            "groups": plan.groups,
            "bank_depth": plan.bank_depth,
            "bias_depth": plan.bias_depth,
            "cycle_bound": interface.step_bound,
            "matrices": matrices,
        },
        "formats": {
            "input": str(model.input_format),
            "output": str(model.output_format),
            "y": str(model.head.formats.output if model.head is not None else model.output_format),
        },
        "streams": {
            "y_features": interface.y_features,
            "y_per_sequence": "every step" if interface.output_mode == "all" else "final step",
            "state": {
                **{f.name: {"offset": f.offset, "width": f.width} for f in interface.state.fields},
                "beats": interface.state_beats,
            },
            "init_beats": len(interface.state_fields)
            * interface.interleave
            * interface.state_beats,
            # B sequences time-multiplexed step by step (docs/interleave.md); 1: none
            "interleave": interface.interleave,
            "w": {f.name: {"offset": f.offset, "width": f.width} for f in interface.w.fields},
        },
        "ports": _port_list(interface),
        "weight_banks": packing.to_json_dict(),
        "memories": [
            _memory_entry(path, kind, index, images, packing) for path, (kind, index) in hexes
        ],
    }


def write_build(
    model: LstmModel,
    config: HardwareConfig | int,
    directory,
    *,
    memory_init: str = "inline",
    family: str | None = None,
    control: str = "stream",
) -> Build:
    """Write ``lstm_top.v``, ``.hex`` images (one per packed weight memory, one per lane's
    bias bank) and ``manifest.json``.

    The ``.hex`` files hold the same contents as the Verilog's memory init; with
    ``memory_init="readmemh"`` the Verilog reads the weight banks from them. ``family`` as
    in :func:`generate_verilog`. ``control="axi-lite"`` also writes ``lstm_axi.v`` (the
    AXI4-Lite top with its own copy of the core; use it alone) and records the register map
    in the manifest's ``control``.
    """
    config = hardware_config(config)
    _check_init(memory_init)
    _check_family(family)
    _check_packing(config, family)
    _check_control(control)
    check_supported(model, config)
    external = config.weights == "external"
    if external and control != "stream":
        raise HardwareConfigError(
            "--weights external works with --control stream only (the AXI4-Lite top does not "
            "carry the weight read master yet): drop --control axi-lite"
        )
    plan = EnginePlan(model, config)
    if external:
        check_external(plan)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    top = LstmTop(plan, verilog_banks=memory_init)
    images = top.interface.plan.images
    verilog_path = directory / f"{TOP_NAME}.v"
    verilog_path.write_text(_verilog(top, memory_init, family))
    packing = top.engine.packing
    paths = images.write_hex(directory, packing=packing)
    # write_hex writes the weight memories' files, then the bias banks'.
    kinds = [("weights", g) for g in range(len(packing.groups))]
    kinds += [("bias", lane) for lane in range(images.lanes)]
    hexes = list(zip(paths, kinds, strict=True))
    if external:  # the weights go to the image in external memory, not to banks
        for path, (kind, _index) in hexes:
            if kind == "weights":
                path.unlink()
        hexes = [(path, key) for path, key in hexes if key[0] != "weights"]
        paths = [path for path, _key in hexes]
    manifest = _manifest(top, hexes, memory_init, family)
    if external:
        params = axi_params(plan)
        image = weight_image(plan, data_width=params.data_width)
        (directory / WEIGHT_IMAGE_FILE).write_bytes(image.data)
        manifest["external_weights"] = {
            "image": image.to_json_dict(params.base, WEIGHT_IMAGE_FILE),
            "axi": params.to_json_dict(),
        }
    control_path = None
    manifest["control"] = {"mode": control}
    if control == "axi-lite":
        axi = LstmAxi(top.interface.plan, verilog_banks=memory_init)
        control_path = directory / f"{AXI_TOP_NAME}.v"
        control_path.write_text(_verilog(axi, memory_init, family, AXI_TOP_NAME))
        manifest["control"] = control_manifest(axi)
    manifest_path = directory / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return Build(directory, verilog_path, manifest_path, tuple(paths), top.interface, control_path)


def control_manifest(axi: LstmAxi) -> dict:
    """The ``control`` entry of the manifests of an AXI4-Lite build: top, register map
    version, model hash and every register's offset, access and value after reset."""
    regmap = axi.regmap
    return {
        "mode": "axi-lite",
        "top": AXI_TOP_NAME,
        "verilog": f"{AXI_TOP_NAME}.v",
        "register_map_version": ".".join(map(str, REGISTER_MAP_VERSION)),
        "model_hash": regmap.model_hash,
        "registers": regmap.records(),
    }
