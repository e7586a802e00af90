"""Quickstart: a PyTorch LSTM to Verilog, with its bit-accurate integer model.

    python examples/quickstart.py [OUT_DIR]

1. build a small ``nn.LSTM`` (random weights, seeded),
2. calibrate and quantise it to 16-bit fixed point, print the per-tensor report,
3. generate the accelerator's Verilog and weight images (16 MAC lanes),
4. run the integer reference (what the hardware computes) and compare with float PyTorch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from lstm_fpga.hw import HardwareConfig, cycle_bound, write_build
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.numerics import dequantize
from lstm_fpga.sw.reference import quantize_input, run_reference


def main(out_dir: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.LSTM(input_size=5, hidden_size=16, batch_first=True).eval()
    rng = np.random.default_rng(0)
    calibration = rng.uniform(-1, 1, size=(64, 20, 5))  # (batch, time, features)
    test = rng.uniform(-1, 1, size=(8, 20, 5))

    model, report = quantize_from_torch(net, calibration, batch_first=True)
    print(report.table())

    config = HardwareConfig(lanes=16)
    build = write_build(model, config, out_dir)
    print(f"\nVerilog: {build.verilog} ({len(build.hex_files)} .hex memory images)")
    print(f"cycle bound per time step: {cycle_bound(model, lanes=config.lanes)}")

    result = run_reference(model, quantize_input(model, test), batch_first=True)
    with torch.no_grad():
        expected = net(torch.tensor(test, dtype=torch.float32))[0].numpy()
    fixed = dequantize(result.output, model.output_format)
    print(f"max |fixed point - float| over all outputs: {np.abs(fixed - expected).max():.2e}")
    print(f"saturations: {result.saturations}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/quickstart"))
