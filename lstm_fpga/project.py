"""A build directory: everything ``lstm-fpga build`` writes, and loading it back.

Layout of ``OUT/``::

    build.json                 manifest: model shape, every tensor format, lanes, cycle bound,
                               interface summary, file list (schema-versioned)
    model.json, model.npz      the quantised model IR
    float_model.npz            the float weights (for comparisons against float)
    quantization_report.json   per-tensor report (also quantization_report.txt)
    rtl/lstm_top.v             Verilog, top module lstm_top; weight banks $readmemh the .hex
                               files next to it (this is what `simulate` verifies)
    rtl/*.hex                  weight and bias bank contents
    rtl/lstm_top_inline.v      the same design with the weights inside the Verilog (one file)
    rtl/manifest.json          hardware manifest (ports, memories, geometry)
    rtl/lstm_axi.v, rtl/lstm_axi_inline.v
                               with ``--control axi-lite``: the AXI4-Lite top (its own copy
                               of the core), with and without ``$readmemh``
    lstm_regs.h                with ``--control axi-lite``: its register map as a C header

Both Verilog files are written for one FPGA family (``build --family``): ``generic`` (portable,
multipliers inferred by synthesis) or ``ecp5`` (``MULT18X18D`` primitives with their registers,
and a simulation model of them for Verilator and Icarus); see :mod:`lstm_fpga.hw.pipeline`.

A build is written into a temporary sibling directory and renamed into place at the end, so an
interrupted or failed build leaves nothing half-written behind. ``force`` replaces only an
earlier build (or an empty directory); see :mod:`lstm_fpga.outdir` for what is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .hw import EnginePlan, HardwareConfig, cycle_bound, generate_verilog, write_build
from .hw.build import WEIGHT_IMAGE_FILE
from .hw.compatibility import check_cell, check_control, check_interleave
from .hw.integration import write_integration_files
from .hw.limits import check_memory_gbps, design_limits, measured_clock
from .outdir import BUILD_KIND, check_output_dir, replace_dir, staging_dir
from .sw.calibrate import (
    QuantizationReport,
    build_report,
    calibrate,
    calibrate_from_range,
    quantization_report,
    quantize_model,
)
from .sw.float_model import FloatLstm
from .sw.ir import IRError, LstmModel
from .sw.numerics import FAMILY_DSP, FixedFormat

__all__ = [
    "BUILD_SCHEMA_VERSION",
    "BuildError",
    "Project",
    "limits_of",
    "load_array",
    "load_member",
    "make_safe_cache_dir",
    "record_timing",
    "sim_cache_for",
    "write_project",
]

BUILD_SCHEMA_VERSION = 1


class BuildError(ValueError):
    """Bad user input for a build (file, array, option); the message names the fix."""


@dataclass(frozen=True, eq=False)
class Project:
    """A loaded build directory."""

    directory: Path
    model: LstmModel
    config: HardwareConfig
    batch_first: bool
    float_model: FloatLstm | None
    report: QuantizationReport | None
    #: FPGA family of the Verilog's primitives (:data:`lstm_fpga.hw.pipeline.FAMILIES`).
    family: str = "generic"
    #: ``build --control``: ``stream`` (``lstm_top`` alone) or ``axi-lite`` (``lstm_axi``).
    control: str = "stream"

    @property
    def rtl(self) -> Path:
        return self.directory / "rtl"

    @property
    def verilog(self) -> Path:
        """The Verilog whose weight banks load the ``.hex`` files next to it."""
        return self.rtl / "lstm_top.v"

    @property
    def verilog_inline(self) -> Path:
        """The same design with the weights inside the Verilog (a single file)."""
        return self.rtl / "lstm_top_inline.v"

    @property
    def cycle_bound(self) -> int:
        return cycle_bound(self.model, lanes=self.config.lanes)

    @property
    def sim_cache(self) -> Path:
        """Where simulator builds of this design are cached: ``sim_build/`` inside the build,
        unless its path has characters GNU Make cannot build in (Verilator's builds use make:
        spaces, ``:``, ``#``, ...); then :func:`make_safe_cache_dir`."""
        return sim_cache_for(self.directory / "sim_build")

    @classmethod
    def load(cls, directory) -> Project:
        directory = Path(directory)
        manifest_path = directory / "build.json"
        if not manifest_path.is_file():
            raise BuildError(
                f"{directory} is not an lstm-fpga build (no build.json); create one with "
                f"`lstm-fpga build MODEL -o {directory}`"
            )
        rebuild = f"rebuild it with `lstm-fpga build MODEL -o {directory} --force`"
        try:
            manifest = json.loads(manifest_path.read_text())
            manifest["hardware"]["lanes"], manifest["batch_first"], manifest["files"]
        except (ValueError, KeyError, TypeError) as error:
            raise BuildError(f"{manifest_path} is corrupted ({error!r}); {rebuild}") from None
        if manifest.get("schema_version") != BUILD_SCHEMA_VERSION:
            raise BuildError(
                f"{manifest_path}: schema_version {manifest.get('schema_version')!r} is not "
                f"{BUILD_SCHEMA_VERSION}; rebuild with this lstm-fpga"
            )
        for name in manifest["files"]:
            if not (directory / name).is_file():
                raise BuildError(f"{directory} is incomplete: {name} is missing; {rebuild}")
        try:
            model = LstmModel.load(directory / "model")
        except IRError as error:
            raise BuildError(f"{directory}: {error}; {rebuild}") from None
        float_path = directory / "float_model.npz"
        report_path = directory / "quantization_report.json"
        return cls(
            directory=directory,
            model=model,
            config=HardwareConfig(
                lanes=manifest["hardware"]["lanes"],
                output=manifest["hardware"]["output"],
                max_seq_len=manifest["hardware"]["max_seq_len"],
                dsp_packing=manifest["hardware"].get("dsp_packing", 1),
                dsp=manifest["hardware"].get("dsp", "DSP48E1"),
                interleave=manifest["hardware"].get("interleave", 1),
                **_external_config(manifest["hardware"].get("external_weights")),
            ),
            batch_first=manifest["batch_first"],
            float_model=FloatLstm.load(float_path) if float_path.is_file() else None,
            report=QuantizationReport.load(report_path) if report_path.is_file() else None,
            family=manifest["hardware"].get("family", "generic"),
            control=manifest.get("control", {}).get("mode", "stream"),
        )


def _external_config(entry: dict | None) -> dict:
    """The :class:`HardwareConfig` fields of a build's ``"external_weights"`` entry."""
    if entry is None:
        return {}
    from .hw.external import AxiReadParams

    axi = entry["axi"]
    params = AxiReadParams(
        data_width=axi["data_width"],
        burst=axi["burst"],
        latency=axi["latency"],
        base=axi["base"],
        address_width=axi["address_width"],
    )
    return {"weights": "external", "axi": params}


_MAKE_UNSAFE = re.compile(r"[\s:#$%*?\[\]\\;'\"=|&<>()`]")


def _make_safe(path: Path) -> bool:
    return _MAKE_UNSAFE.search(str(path)) is None


def sim_cache_for(preferred) -> Path:
    """``preferred`` (absolute) if GNU Make can build there, else :func:`make_safe_cache_dir`."""
    preferred = Path(preferred).absolute()
    return preferred if _make_safe(preferred) else make_safe_cache_dir()


def make_safe_cache_dir() -> Path:
    """A simulator cache directory GNU Make can build in: ``$LSTM_FPGA_SIM_CACHE``,
    ``~/.cache/lstm-fpga/sim-cache`` or one in the temporary directory, the first whose path
    is safe (builds are keyed by content, so any of them is correct)."""
    configured = os.environ.get("LSTM_FPGA_SIM_CACHE")
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path.home() / ".cache" / "lstm-fpga" / "sim-cache",
        Path(tempfile.gettempdir()) / f"lstm-fpga-sim-cache-{os.getuid()}",
        Path("/tmp") / f"lstm-fpga-sim-cache-{os.getuid()}",
    ]
    for candidate in candidates:
        if _make_safe(candidate.absolute()):
            return candidate.absolute()
    raise BuildError(
        "no simulator cache path without spaces or make-special characters was found; set "
        "LSTM_FPGA_SIM_CACHE to one"
    )


def load_array(
    path, what: str, *, integer_ok: bool = False, key: str = "x", ndim=(2, 3)
) -> np.ndarray:
    """Load float sequences from a ``.npy`` file, or the array ``key`` of an ``.npz`` file
    (``np.savez(path, x=..., lengths=...)``), with an error that names the problem."""
    array = _load_member(path, what, key, required=True)
    kinds = "fiu" if integer_ok else "f"
    if array.dtype.kind not in kinds:
        raise BuildError(
            f"{what} file {path} holds dtype {array.dtype}; save float sequences "
            f"(np.save(path, x.astype(np.float32)))"
        )
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in dims:
        expected = "(T, I) or a batch (3-D)" if dims == (2, 3) else f"{dims[0]}-D"
        raise BuildError(f"{what} file {path} has shape {array.shape}; expected {expected}")
    if array.size == 0:
        raise BuildError(
            f"{what} file {path} has shape {array.shape}: no values (a zero-length batch or "
            f"sequences without time steps); give at least one step of one sequence"
        )
    if not np.all(np.isfinite(array)):
        raise BuildError(f"{what} file {path} contains NaN or Inf")
    return array


def load_member(path, what: str, key: str) -> np.ndarray | None:
    """The array ``key`` of an ``.npz`` file (``None`` when absent, or for a ``.npy``)."""
    return _load_member(path, what, key, required=False)


def _load_member(path, what: str, key: str, *, required: bool) -> np.ndarray | None:
    path = Path(path)
    if path.is_dir():
        raise BuildError(f"{what} file {path} is a directory; give a .npy (or .npz) file")
    if not path.is_file():
        raise BuildError(f"{what} file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise BuildError(f"{what} file {path} is not a .npy or .npz array ({error})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded if required else None
    with loaded:
        names = list(loaded.files)
        if key in names:
            try:
                return loaded[key]
            except ValueError as error:
                raise BuildError(f"{what} file {path}: array {key!r}: {error}") from None
        if key == "x" and len(names) == 1:
            return loaded[names[0]]
    if required:
        raise BuildError(
            f"{what} file {path} holds arrays {names} but no {key!r}; save it with "
            f"np.savez(path, {key}=...)"
        )
    return None


def _check_features(array: np.ndarray, input_size: int, what: str, path) -> None:
    if array.shape[-1] != input_size:
        raise BuildError(
            f"{what} file {path} has {array.shape[-1]} features per time step but the model "
            f"expects {input_size}"
        )


def write_project(
    source,
    out,
    *,
    lanes: int = 16,
    output: str | None = None,
    max_seq_len: int | None = None,
    width: int = 16,
    weight_bits: int | None = None,
    overrides: dict[str, FixedFormat] | None = None,
    calibration=None,
    calibration_path=None,
    batch_first: bool = False,
    headroom_bits: int = 0,
    force: bool = False,
    input_range: tuple[float, float] | None = None,
    calibration_lengths=None,
    calibration_h0=None,
    calibration_c0=None,
    device: str | None = None,
    family: str = "generic",
    dsp_packing: int = 1,
    control: str = "stream",
    weights: str = "on-chip",
    axi=None,
    interleave: int = 1,
    memory_gbps=(),
    log=None,
    progress: bool = False,
) -> Project:
    """Quantise ``source`` and generate the accelerator into the directory ``out``.

    ``output`` (``"all"`` steps or only the ``"last"``; default ``"last"`` for a model with
    attention pooling, which outputs once per sequence, else ``"all"``) and ``max_seq_len``
    (needed by bidirectional and attention models) are hardware parameters
    (:class:`HardwareConfig`).
    ``source`` is a state_dict file, an ``nn.Module`` or a saved IR (``.json``/``.npz``; then
    no calibration happens and no float comparison is available). ``calibration`` holds sample
    input sequences (float array, ``(T, I)`` or batched ``(T, B, I)``/``(B, T, I)`` as
    ``batch_first`` says) from which every format is chosen; ``headroom_bits`` extra integer
    bits on data-dependent tensors leave room for inputs larger than the calibration data.
    ``width`` is the bits of every format, ``weight_bits`` (default ``width``) those of the
    weight matrices alone (mixed precision; :func:`lstm_fpga.sw.formats.choose_formats`).
    ``calibration_lengths``/``calibration_h0``/``calibration_c0``: the samples' lengths and
    float initial states (:func:`lstm_fpga.sw.calibrate.calibrate`). Without sample data,
    ``input_range=(lo, hi)`` chooses formats from bounds derived from the weights
    (:func:`lstm_fpga.sw.calibrate.calibrate_from_range`); the report and ``build.json`` then
    say that no data was seen. ``device`` (a name of :data:`lstm_fpga.hw.devices.DEVICES`) is
    checked before the Verilog is generated: a design whose block RAMs or DSPs exceed it
    raises ``DeviceFitError``. ``family`` (``"generic"`` or ``"ecp5"``) is the FPGA family
    whose primitives the Verilog instantiates (:func:`lstm_fpga.hw.write_build`).
    ``dsp_packing=2`` shares one DSP multiplier between two lanes
    (:attr:`HardwareConfig.dsp_packing`), checked against the DSP of ``device``'s family (the
    7-series DSP48E1 without a device). ``log`` gets
    a line per stage; ``progress`` shows bars with the ETA for calibration and its report on a
    terminal (:mod:`lstm_fpga.progress`). ``control="axi-lite"`` adds the AXI4-Lite top
    (``rtl/lstm_axi.v``, ``rtl/lstm_axi_inline.v``) and its C header ``lstm_regs.h``.
    ``weights="external"`` streams the weights from external memory through an AXI4 read
    master (``axi``: :class:`~lstm_fpga.hw.external.AxiReadParams`, default its defaults):
    ``rtl/weights.bin`` is the image to load there, its map in ``build.json``'s
    ``"hardware"`` ``"external_weights"`` (``docs/external.md``).
    ``interleave`` (:attr:`HardwareConfig.interleave`) time-multiplexes that many sequences
    on the lanes (``docs/interleave.md``).
    ``memory_gbps`` (GB/s, any number of them) adds to ``build.json``'s ``"limits"``
    (:mod:`lstm_fpga.hw.limits`) whether the design would be compute- or memory-bound with
    its weights from a memory of that bandwidth.
    """
    from .sw.torch_import import import_model

    log = log or (lambda message: None)
    try:
        memory_gbps = tuple(check_memory_gbps(g) for g in memory_gbps)
    except ValueError as error:
        raise BuildError(f"memory_gbps: {error}") from None
    out = Path(out)
    inputs = [source if isinstance(source, str | Path) else None, calibration_path]
    check_output_dir(out, force=force, inputs=inputs)
    float_model = report = None
    if isinstance(source, str | Path) and Path(source).suffix in (".json", ".npz"):
        log(f"loading IR {source}")
        try:
            model = LstmModel.load(source)
        except IRError as error:
            raise BuildError(str(error)) from None
        if overrides:
            raise BuildError("--format needs a PyTorch model: a saved IR already has formats")
    else:
        float_model = import_model(source)
    if output is None:  # attention pooling outputs once per sequence
        shape = model if float_model is None else float_model
        output = "last" if getattr(shape, "attention", None) is not None else "all"
    config = HardwareConfig(
        lanes=lanes,
        output=output,
        max_seq_len=max_seq_len,
        dsp_packing=dsp_packing,
        dsp=_packing_dsp(device, family),
        weights=weights,
        axi=axi,
        interleave=interleave,
    )
    if float_model is not None:
        check_cell(float_model, config)  # before calibration, the long step
        check_control(float_model, control)
        check_interleave(float_model, config)
        model, report = _quantize(
            float_model,
            calibration,
            calibration_path,
            calibration_lengths,
            calibration_h0,
            calibration_c0,
            input_range,
            batch_first=batch_first,
            width=width,
            weight_bits=weight_bits,
            overrides=overrides,
            headroom_bits=headroom_bits,
            head_on=output,
            log=log,
            progress=progress,
        )
    check_control(model, control)  # (a saved IR too)
    if weights == "external":  # before any long step: the schedule must suit the image
        from .hw.external import check_external

        check_external(EnginePlan(model, config))
    fit = _device_fit(model, config, device)
    limits = design_limits(EnginePlan(model, config)).to_json_dict(memory_gbps)
    staging = staging_dir(out)
    try:
        log(f"generating {family} Verilog ({lanes} lanes)")
        hw_build = write_build(
            model, config, staging / "rtl", memory_init="readmemh", family=family, control=control
        )
        inline = generate_verilog(model, config, memory_init="inline", family=family)
        (staging / "rtl" / "lstm_top_inline.v").write_text(inline)
        control_files = _write_control(staging, model, config, family, control, hw_build)
        model.save(staging / "model")
        files = [
            "model.json",
            "model.npz",
            "rtl/lstm_top.v",
            "rtl/lstm_top_inline.v",
            "rtl/manifest.json",
            *control_files,
        ]
        if float_model is not None:
            float_model.save(staging / "float_model.npz")
            files.append("float_model.npz")
        if report is not None:
            report.save(staging / "quantization_report.json")
            (staging / "quantization_report.txt").write_text(report.table() + "\n")
            files += ["quantization_report.json", "quantization_report.txt"]
        files += [f"rtl/{p.name}" for p in hw_build.hex_files]
        if weights == "external":
            files.append(f"rtl/{WEIGHT_IMAGE_FILE}")
        files += [
            f"rtl/{name}"
            for name in write_integration_files(
                staging / "rtl",
                name=out.name,
                version=__version__,
                description=f"lstm-fpga {__version__} build {out.name}: {_describe(model)}",
            )
        ]
        hw_manifest = json.loads(hw_build.manifest.read_text())
        manifest = {
            "schema_version": BUILD_SCHEMA_VERSION,
            "kind": BUILD_KIND,
            "lstm_fpga_version": __version__,
            "model": {k: v for k, v in model.to_json_dict().items() if k != "directions"},
            "formats": _all_formats(model),
            "batch_first": batch_first,
            "hardware": {
                "lanes": lanes,
                "output": output,
                "max_seq_len": max_seq_len,
                "dsp_packing": dsp_packing,
                "dsp": config.dsp,
                "family": hw_manifest["family"],
                "geometry": hw_manifest["geometry"],
                # Packed weight memories vs ceil(weight bits / block-RAM bits); the list of
                # memories is in rtl/manifest.json.
                "weight_banks": {
                    k: v for k, v in hw_manifest["weight_banks"].items() if k != "memories"
                },
                "weights": weights,
                "external_weights": hw_manifest.get("external_weights"),
                "interleave": interleave,
            },
            "cycle_bound_per_step": cycle_bound(model, lanes=lanes),
            "device": fit,
            "limits": limits,
            "calibration": _calibration_record(report, calibration_path, input_range),
            "interface": {"top": hw_manifest["top"], "ports": hw_manifest["ports"]},
            "control": {k: v for k, v in hw_manifest["control"].items() if k != "registers"},
            "files": files,
        }
        (staging / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
        check_output_dir(out, force=force, inputs=inputs)  # nothing changed meanwhile
        replace_dir(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Project(
        out, model, config, batch_first, float_model, report, hw_manifest["family"], control
    )


def _write_control(staging: Path, model, config, family: str, control: str, hw_build) -> list:
    """The AXI4-Lite top's inline Verilog and ``lstm_regs.h`` (``control="axi-lite"``)."""
    if control != "axi-lite":
        return []
    from .hw.control import AXI_TOP_NAME
    from .hw.regmap import RegisterMap, c_header

    inline = generate_verilog(model, config, memory_init="inline", family=family, control=control)
    (staging / "rtl" / f"{AXI_TOP_NAME}_inline.v").write_text(inline)
    (staging / "lstm_regs.h").write_text(c_header(RegisterMap(hw_build.interface)))
    return [f"rtl/{AXI_TOP_NAME}.v", f"rtl/{AXI_TOP_NAME}_inline.v", "lstm_regs.h"]


def _quantize(
    float_model: FloatLstm,
    calibration,
    calibration_path,
    lengths,
    h0,
    c0,
    input_range,
    *,
    log,
    progress: bool,
    **options,
) -> tuple[LstmModel, QuantizationReport]:
    """Formats from the samples (or the input range), the quantised IR and its report."""
    head_on = options.pop("head_on")
    batch_first = options.pop("batch_first")
    if calibration is None:
        if input_range is None:
            raise BuildError(
                "choosing fixed-point formats needs sample inputs: pass --calibrate X.npy "
                "(float sequences like the ones the model will see) or --input-range LO,HI"
            )
        if h0 is not None or c0 is not None:
            raise BuildError("--calibrate-h0/--calibrate-c0 need --calibrate samples")
        log(
            f"no calibration data: formats from inputs in [{input_range[0]:g}, "
            f"{input_range[1]:g}] and bounds from the weights"
        )
        chosen = calibrate_from_range(float_model, input_range, **options)
        model = quantize_model(float_model, chosen)
        return model, build_report(float_model, model, None, head_on, tuple(input_range))
    _check_features(calibration, float_model.input_size, "calibration", calibration_path)
    weights = options["weight_bits"] or options["width"]
    log(
        f"calibrating on {calibration.shape} samples, {options['width']}-bit formats, "
        f"{weights}-bit weights"
    )
    data = dict(
        batch_first=batch_first, lengths=lengths, head_on=head_on, h0=h0, c0=c0, progress=progress
    )
    chosen = calibrate(float_model, calibration, **data, **options)
    model = quantize_model(float_model, chosen)
    return model, quantization_report(float_model, model, calibration, **data)


def _calibration_record(report: QuantizationReport | None, path, input_range) -> dict | None:
    if report is None:
        return None
    if input_range is not None:
        return {
            "data_seen": False,
            "input_range": [float(v) for v in input_range],
            "note": "no calibration data: formats from the input range and bounds derived from "
            "the weights; pass --calibrate X.npy for real data",
        }
    return {"data_seen": True, "file": _str(path), "coverage": report.coverage}


def _str(path) -> str | None:
    return None if path is None else str(path)


def _packing_dsp(device: str | None, family: str) -> str:
    """The DSP packed products must fit: ``device``'s family's, else ``family``'s (generic:
    the 7-series DSP48E1, which the UltraScale DSP48E2 contains)."""
    from .hw.devices import device as find_device

    if device is not None:
        family = find_device(device).family
    return FAMILY_DSP.get(family, FAMILY_DSP["generic"])


def _device_fit(model: LstmModel, config: HardwareConfig, name: str | None) -> dict:
    """The fit on ``name`` (refused when it does not fit), or the smallest parts that hold
    the design, from the plan's block RAMs and DSPs (``lstm-fpga synth`` measures the rest).
    """
    from .hw.devices import DeviceFitError, check_fit, device, smallest_fits

    plan = EnginePlan(model, config)
    if name is None:
        return {"smallest_fitting": [fit.to_json_dict() for fit in smallest_fits(plan)]}
    dev = device(name)
    fit = check_fit(plan, dev)
    if not fit.fits:
        larger = ", ".join(f.device.name for f in smallest_fits(plan)) or "none listed"
        raise DeviceFitError(
            f"the design does not fit {dev.part} ({dev.name}): {fit.describe()} "
            f"(needed/available; short of {', '.join(fit.short)}); choose a larger --device "
            f"(smallest that hold it: {larger}), narrower --bits or, for DSPs, fewer --lanes"
        )
    return {"chosen": fit.to_json_dict()}


def limits_of(project: Project, memory_gbps=None):
    """The :class:`~lstm_fpga.hw.limits.DesignLimits` of a loaded build at its measured clock
    (``build.json`` ``"timing"``, else the nominal one) and the memory bandwidths to show:
    ``memory_gbps``, else those the build was made with (``build --memory-gbps``)."""
    manifest = json.loads((project.directory / "build.json").read_text())
    limits = design_limits(
        EnginePlan(project.model, project.config), measured_clock(manifest.get("timing"))
    )
    if memory_gbps is None:
        memory_gbps = [m["memory_gbps"] for m in manifest.get("limits", {}).get("memory", [])]
    return limits, tuple(memory_gbps)


def record_timing(directory: Path, timing: dict) -> None:
    """Add the measured clock of ``lstm-fpga synth`` to ``build.json`` (``"timing"``) and
    recompute its ``"limits"`` at that clock."""
    path = Path(directory) / "build.json"
    manifest = json.loads(path.read_text())
    manifest.setdefault("timing", {})[timing["target"]] = timing
    if "limits" in manifest:
        project = Project.load(directory)
        gbps = [m["memory_gbps"] for m in manifest["limits"].get("memory", [])]
        limits = design_limits(
            EnginePlan(project.model, project.config), measured_clock(manifest["timing"])
        )
        manifest["limits"] = limits.to_json_dict(gbps)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(path)


def _describe(model: LstmModel) -> str:
    """``LSTM(I, H, layers L[, bidirectional]) + Linear(H, O)`` of ``model`` (``GRU(...)``
    for an ``nn.GRU``)."""
    cell = model.cell_type.module.removeprefix("nn.")
    text = f"{cell}({model.input_size}, {model.hidden_size}, layers {model.num_layers}"
    text += ", bidirectional)" if model.num_directions == 2 else ")"
    if model.head is not None:
        text += f" + Linear({model.hidden_size * model.num_directions}, {model.head.out_features})"
    return text


def _all_formats(model: LstmModel) -> dict[str, str]:
    formats = {"x": str(model.input_format)}
    for d in model.directions:
        for name, fmt in d.formats.items():
            if name != "x":
                formats[f"{d.name}.{name}"] = str(fmt)
    if model.head is not None:
        for name, fmt in model.head.formats.items():
            if name != "x":
                formats[f"head.{name}"] = str(fmt)
    return formats
