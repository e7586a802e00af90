"""Quickstart: a PyTorch LSTM to verified Verilog in one script (the Python API).

    python examples/quickstart.py [OUT_DIR]

1. a small ``nn.LSTM`` (seeded random weights) and sample input sequences,
2. calibration and 16-bit quantisation, with the per-tensor report,
3. the accelerator's Verilog and weight images (16 MAC lanes) in a build directory,
4. a cocotb simulation of that Verilog on Verilator, compared bit-exactly with the integer
   reference and against float PyTorch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from lstm_fpga.project import write_project
from lstm_fpga.sim import compare, compile_build_directory, simulate
from lstm_fpga.sw.reference import quantize_input


def main(out_dir: Path) -> int:
    torch.manual_seed(0)
    net = torch.nn.LSTM(input_size=5, hidden_size=16, batch_first=True).eval()
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, size=(64, 20, 5))  # (batch, time, features)
    test = rng.uniform(-1, 1, size=(4, 20, 5))

    project = write_project(
        net, out_dir, lanes=16, calibration=calibration, batch_first=True, force=True
    )
    print(project.report.table())
    print(f"\nVerilog: {project.verilog}; cycle bound {project.cycle_bound} cycles per step")

    design = compile_build_directory(project.rtl, project.model, project.config, "verilator")
    result = simulate(design, quantize_input(project.model, test), batch_first=True)
    report = compare(result, float_model=project.float_model, float_inputs=test)
    print(report)
    return 0 if report.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/quickstart")))
