"""Verilog generation from the IR: ``lstm_top.v``, ``.hex`` memory images and a manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog

from ..sw.ir import LstmModel
from .config import HardwareConfig, HardwareConfigError, PassGeometry
from .engine import LstmTop, check_supported
from .fixed import format_shape
from .layout import BankImages, hex_file_name
from .memory import MEMORY_INIT_STYLES, weight_bank_module, weight_bank_verilog

__all__ = ["TOP_NAME", "Build", "generate_verilog", "hardware_config", "write_build"]

#: Name of the generated top module (and of its Verilog file, ``lstm_top.v``).
TOP_NAME = "lstm_top"


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


def _verilog(top: LstmTop, memory_init: str) -> str:
    images = top.engine.images
    lanes = images.geometry.lanes
    text = verilog.convert(top, name=TOP_NAME, emit_src=False)
    banks = "".join(
        weight_bank_verilog(images, lane, memory_init, hex_file_name("weights", lane, lanes))
        for lane in range(lanes)
    )
    return f"{text}\n// Weight banks (lstm_fpga.hw.memory.weight_bank_verilog).\n{banks}"


def generate_verilog(
    model: LstmModel, config: HardwareConfig | int, *, memory_init: str = "inline"
) -> str:
    """Verilog of the accelerator for ``model``: top module ``lstm_top`` and its submodules.

    ``config`` is a :class:`HardwareConfig` or just the lane count ``P``. ``memory_init``
    ``"inline"`` puts the weights into the Verilog (``initial`` blocks); ``"readmemh"`` loads
    each lane's bank from ``weights_laneNN.hex`` (see :func:`write_build`) instead.
    """
    config = hardware_config(config)
    _check_init(memory_init)
    check_supported(model)
    return _verilog(LstmTop(model, config, verilog_banks=memory_init), memory_init)


@dataclass(frozen=True)
class Build:
    """What :func:`write_build` wrote."""

    directory: Path
    verilog: Path
    manifest: Path
    hex_files: tuple[Path, ...]


def _port_list(model: LstmModel, config: HardwareConfig) -> list[dict]:
    x = format_shape(model.input_format)
    y = format_shape(model.output_format)
    k = config.input_elements
    x_port = {"name": "x__tdata", "direction": "in", "width": k * x.width, "signed": x.signed}
    if k > 1:
        x_port.update(signed=False, elements=k, element_width=x.width)
    return [
        {"name": "clk", "direction": "in", "width": 1},
        {"name": "rst", "direction": "in", "width": 1},
        x_port,
        {"name": "x__tvalid", "direction": "in", "width": 1},
        {"name": "x__tready", "direction": "out", "width": 1},
        {"name": "x__tlast", "direction": "in", "width": 1},
        {"name": "y__tdata", "direction": "out", "width": y.width, "signed": y.signed},
        {"name": "y__tvalid", "direction": "out", "width": 1},
        {"name": "y__tready", "direction": "in", "width": 1},
        {"name": "y__tlast", "direction": "out", "width": 1},
        {"name": "cycles", "direction": "out", "width": 32},
        {"name": "busy", "direction": "out", "width": 1},
    ]


def _manifest(
    model: LstmModel,
    config: HardwareConfig,
    geometry: PassGeometry,
    images: BankImages,
    hexes,
    memory_init: str,
) -> dict:
    return {
        "kind": "lstm-fpga build",
        "top": TOP_NAME,
        "verilog": f"{TOP_NAME}.v",
        "config": {"lanes": config.lanes, "input_elements": config.input_elements},
        "memory_init": memory_init,
        "geometry": {
            "input_size": geometry.input_size,
            "hidden_size": geometry.hidden_size,
            "requested_lanes": geometry.requested_lanes,
            "physical_lanes": geometry.lanes,
            "passes": geometry.passes,
            "columns": geometry.columns,
            "bank_depth": geometry.bank_depth,
            "mac_cycles_per_step": geometry.mac_cycles_per_step,
            "cycle_bound": geometry.bound,
        },
        "formats": {
            "input": str(model.input_format),
            "output": str(model.output_format),
        },
        "ports": _port_list(model, config),
        "memories": [
            {
                "hex": path.name,
                "memory": (
                    f"{weight_bank_module(lane)}.mem"
                    if kind == "weights"
                    else f"{TOP_NAME}.engine.weights.{kind}_bank{lane}"
                ),
                "width": images.weight_width if kind == "weights" else images.bias_width,
                "depth": geometry.bank_depth if kind == "weights" else geometry.passes,
            }
            for path, (kind, lane) in hexes
        ],
    }


def write_build(
    model: LstmModel, config: HardwareConfig | int, directory, *, memory_init: str = "inline"
) -> Build:
    """Write ``lstm_top.v``, per-lane ``.hex`` weight/bias images and ``manifest.json``.

    The ``.hex`` files hold the same contents as the Verilog's memory init; with
    ``memory_init="readmemh"`` the Verilog reads the weight banks from them.
    """
    config = hardware_config(config)
    _check_init(memory_init)
    check_supported(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    top = LstmTop(model, config, verilog_banks=memory_init)
    images = top.engine.images
    verilog_path = directory / f"{TOP_NAME}.v"
    verilog_path.write_text(_verilog(top, memory_init))
    paths = images.write_hex(directory)
    # write_hex alternates weights/bias per lane.
    kinds = [(kind, lane) for lane in range(images.geometry.lanes) for kind in ("weights", "bias")]
    hexes = list(zip(paths, kinds, strict=True))
    manifest = _manifest(model, config, images.geometry, images, hexes, memory_init)
    manifest_path = directory / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return Build(directory, verilog_path, manifest_path, tuple(paths))
