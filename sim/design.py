"""A generated accelerator compiled for a simulator: :class:`HardwareDesign`.

:func:`compile_model` generates ``lstm_top`` for a model (cached by the IR, the hardware
config and the generator's source) and compiles it; :func:`compile_build_directory` compiles a
directory :func:`lstm_fpga.hw.write_build` wrote. The design's
:attr:`~HardwareDesign.interface` (the :class:`~lstm_fpga.hw.interface.TopInterface` of its
top) is what every testbench phase and decoder reads: ports, layouts, bound.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sw.ir import LstmModel
from .compilation import SimBuild, compile_simulation
from .runner import default_cache_dir

if TYPE_CHECKING:  # the hardware package (Amaranth) loads only when a design is used
    from ..hw import EnginePlan, HardwareConfig, TopInterface

__all__ = ["HardwareDesign", "compile_build_directory", "compile_model"]


def read_through(owner: str, name: str, doc: str | None = None) -> property:
    """A read-only attribute that is ``self.<owner>.<name>``: one copy of the value, where it
    is decided (for the results and designs that carry what they were made from)."""
    return property(lambda self: getattr(getattr(self, owner), name), doc=doc)


@dataclass(frozen=True, eq=False)
class HardwareDesign:
    """An accelerator for ``model`` with hardware ``config``, compiled for one simulator."""

    model: LstmModel
    config: HardwareConfig
    sim_build: SimBuild
    generate_seconds: float = 0.0

    @cached_property
    def plan(self) -> EnginePlan:
        """The engine plan of the design (built once, on first use)."""
        from ..hw import EnginePlan

        return EnginePlan(self.model, self.config)

    @cached_property
    def interface(self) -> TopInterface:
        """Ports, stream layouts, compatibility and bound of the design's ``lstm_top``."""
        from ..hw import TopInterface

        return TopInterface(self.plan)

    lanes = read_through("config", "lanes")
    simulator = read_through("sim_build", "simulator")
    cycle_bound = read_through(
        "interface",
        "step_bound",
        "``ceil(4H(I+H)/P)`` (a GRU: ``ceil(3H(I+H)/P)``) summed over layer directions: the bound.",
    )
    output_mode = read_through(
        "config", "output", 'What ``y`` carries: ``"all"`` steps or each sequence\'s ``"last"``.'
    )


def _source_digest() -> str:
    """Hash of the generator's own source (hw and sw packages) and Amaranth's version."""
    import amaranth

    from .. import hw, sw

    digest = hashlib.sha256(amaranth.__version__.encode())
    for package in (hw, sw):
        for path in sorted(Path(package.__file__).parent.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _model_digest(model: LstmModel, config) -> str:
    digest = hashlib.sha256(json.dumps(model.to_json_dict(), sort_keys=True).encode())
    digest.update(repr(config).encode())
    for d in model.directions:
        for array in (d.w_ih, d.w_hh, d.bias):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    if model.head is not None:
        digest.update(np.ascontiguousarray(model.head.weight, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(model.head.bias, dtype=np.int64).tobytes())
    if model.attention is not None:
        for array in (model.attention.w, model.attention.bias, model.attention.v):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _generated(model: LstmModel, config, cache_root: Path) -> tuple[Path, float]:
    """A directory with the generated ``lstm_top.v`` (weight banks read by ``$readmemh``)
    and its ``.hex`` files, cached by the IR, the config and the generator's source code."""
    from ..hw import write_build

    combined = _model_digest(model, config) + _source_digest()
    key = hashlib.sha256(combined.encode()).hexdigest()[:32]
    directory = cache_root / "generated" / key
    if (directory / "manifest.json").is_file():
        return directory, 0.0
    started = time.perf_counter()
    partial = cache_root / "generated" / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    write_build(model, config, partial, memory_init="readmemh")
    seconds = time.perf_counter() - started
    try:
        partial.rename(directory)
    except OSError:  # another process finished the same generation first
        shutil.rmtree(partial, ignore_errors=True)
    return directory, seconds


def compile_build_directory(
    build_dir: Path | str,
    model: LstmModel,
    config,
    simulator: str = "verilator",
    *,
    waves: bool = False,
    cache_dir: Path | str | None = None,
) -> HardwareDesign:
    """Compile a directory written by :func:`lstm_fpga.hw.write_build` (``lstm_top.v``, its
    ``.hex`` files, ``manifest.json``) for ``model`` (the IR it was generated from)."""
    from ..hw import TOP_NAME, hardware_config

    directory = Path(build_dir)
    verilog_path = directory / f"{TOP_NAME}.v"
    if not verilog_path.is_file():
        raise FileNotFoundError(f"{verilog_path} does not exist; write it with hw.write_build")
    sim_build = compile_simulation(
        verilog_path.read_text(),
        TOP_NAME,
        simulator,
        waves=waves,
        cache_dir=cache_dir,
        data_files=sorted(directory.glob("*.hex")),
    )
    return HardwareDesign(model, hardware_config(config), sim_build)


def compile_model(
    model: LstmModel,
    lanes=16,
    simulator: str = "verilator",
    *,
    waves: bool = False,
    cache_dir: Path | str | None = None,
) -> HardwareDesign:
    """Generate the accelerator for ``model`` (``lanes``: a lane count or a
    :class:`~lstm_fpga.hw.HardwareConfig`) and compile it for ``simulator``; both cached."""
    from ..hw import hardware_config

    if not isinstance(model, LstmModel):
        raise TypeError(f"compile_model needs an LstmModel (the IR), not {type(model).__name__}")
    config = hardware_config(lanes)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory, seconds = _generated(model, config, root)
    design = compile_build_directory(
        directory, model, config, simulator, waves=waves, cache_dir=root
    )
    return HardwareDesign(model, config, design.sim_build, seconds)
