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

A build is written into a temporary sibling directory and renamed into place at the end, so an
interrupted or failed build leaves nothing half-written behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .hw import HardwareConfig, cycle_bound, generate_verilog, write_build
from .sw.calibrate import QuantizationReport, calibrate, quantization_report, quantize_model
from .sw.float_model import FloatLstm
from .sw.ir import IRError, LstmModel
from .sw.numerics import FixedFormat

__all__ = ["BUILD_SCHEMA_VERSION", "BuildError", "Project", "load_array", "write_project"]

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

    @classmethod
    def load(cls, directory) -> Project:
        directory = Path(directory)
        manifest_path = directory / "build.json"
        if not manifest_path.is_file():
            raise BuildError(
                f"{directory} is not an lstm-fpga build (no build.json); create one with "
                f"`lstm-fpga build MODEL -o {directory}`"
            )
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("schema_version") != BUILD_SCHEMA_VERSION:
            raise BuildError(
                f"{manifest_path}: schema_version {manifest.get('schema_version')!r} is not "
                f"{BUILD_SCHEMA_VERSION}; rebuild with this lstm-fpga"
            )
        model = LstmModel.load(directory / "model")
        float_path = directory / "float_model.npz"
        report_path = directory / "quantization_report.json"
        return cls(
            directory=directory,
            model=model,
            config=HardwareConfig(
                lanes=manifest["hardware"]["lanes"],
                output=manifest["hardware"]["output"],
                max_seq_len=manifest["hardware"]["max_seq_len"],
            ),
            batch_first=manifest["batch_first"],
            float_model=FloatLstm.load(float_path) if float_path.is_file() else None,
            report=QuantizationReport.load(report_path) if report_path.is_file() else None,
        )


def load_array(path, what: str, *, integer_ok: bool = False) -> np.ndarray:
    """Load a ``.npy`` file of float sequences with an error that names the problem."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"{what} file {path} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise BuildError(f"{what} file {path} is not a .npy array ({error})") from None
    kinds = "fiu" if integer_ok else "f"
    if array.dtype.kind not in kinds:
        raise BuildError(
            f"{what} file {path} holds dtype {array.dtype}; save float sequences "
            f"(np.save(path, x.astype(np.float32)))"
        )
    if array.ndim not in (2, 3):
        raise BuildError(
            f"{what} file {path} has shape {array.shape}; expected (T, I) or a batch (3-D)"
        )
    if not np.all(np.isfinite(array)):
        raise BuildError(f"{what} file {path} contains NaN or Inf")
    return array


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
    output: str = "all",
    max_seq_len: int | None = None,
    width: int = 16,
    overrides: dict[str, FixedFormat] | None = None,
    calibration=None,
    calibration_path=None,
    batch_first: bool = False,
    headroom_bits: int = 0,
    force: bool = False,
    log=None,
) -> Project:
    """Quantise ``source`` and generate the accelerator into the directory ``out``.

    ``output`` (``"all"`` steps or only the ``"last"``) and ``max_seq_len`` (needed by
    bidirectional models) are hardware parameters (:class:`HardwareConfig`).
    ``source`` is a state_dict file, an ``nn.Module`` or a saved IR (``.json``/``.npz``; then
    no calibration happens and no float comparison is available). ``calibration`` holds sample
    input sequences (float array, ``(T, I)`` or batched ``(T, B, I)``/``(B, T, I)`` as
    ``batch_first`` says) from which every format is chosen; ``headroom_bits`` extra integer
    bits on data-dependent tensors leave room for inputs larger than the calibration data.
    """
    from .sw.torch_import import import_model

    log = log or (lambda message: None)
    out = Path(out)
    if out.exists() and not force:
        raise BuildError(f"output directory {out} exists; pass --force to replace it")
    config = HardwareConfig(lanes=lanes, output=output, max_seq_len=max_seq_len)
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
        if calibration is None:
            raise BuildError(
                "choosing fixed-point formats needs sample inputs: pass --calibrate X.npy "
                "(float sequences like the ones the model will see)"
            )
        _check_features(
            calibration, float_model.input_size, "calibration", calibration_path or "array"
        )
        log(f"calibrating on {calibration.shape} samples, {width}-bit formats")
        chosen = calibrate(
            float_model,
            calibration,
            batch_first=batch_first,
            width=width,
            overrides=overrides,
            headroom_bits=headroom_bits,
        )
        model = quantize_model(float_model, chosen)
        report = quantization_report(float_model, model, calibration, batch_first=batch_first)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        log(f"generating Verilog ({lanes} lanes)")
        hw_build = write_build(model, config, staging / "rtl", memory_init="readmemh")
        inline = generate_verilog(model, config, memory_init="inline")
        (staging / "rtl" / "lstm_top_inline.v").write_text(inline)
        model.save(staging / "model")
        files = [
            "model.json",
            "model.npz",
            "rtl/lstm_top.v",
            "rtl/lstm_top_inline.v",
            "rtl/manifest.json",
        ]
        if float_model is not None:
            float_model.save(staging / "float_model.npz")
            files.append("float_model.npz")
        if report is not None:
            report.save(staging / "quantization_report.json")
            (staging / "quantization_report.txt").write_text(report.table() + "\n")
            files += ["quantization_report.json", "quantization_report.txt"]
        files += [f"rtl/{p.name}" for p in hw_build.hex_files]
        hw_manifest = json.loads(hw_build.manifest.read_text())
        manifest = {
            "schema_version": BUILD_SCHEMA_VERSION,
            "kind": "lstm-fpga build",
            "lstm_fpga_version": __version__,
            "model": {k: v for k, v in model.to_json_dict().items() if k != "directions"},
            "formats": _all_formats(model),
            "batch_first": batch_first,
            "hardware": {
                "lanes": lanes,
                "output": output,
                "max_seq_len": max_seq_len,
                "geometry": hw_manifest["geometry"],
            },
            "cycle_bound_per_step": cycle_bound(model, lanes=lanes),
            "interface": {"top": hw_manifest["top"], "ports": hw_manifest["ports"]},
            "files": files,
        }
        (staging / "build.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Project(out, model, config, batch_first, float_model, report)


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
