"""Error of the integer reference of ``nn.LSTM(proj_size > 0)`` against PyTorch's float LSTM.

    python benchmarks/lstmp_error.py

For each width (16, 12, 8 bits) the largest |error| of ``output`` over the float output's
range (as docs/gru.md measures a GRU), across shapes (I, H, R, layers, bidirectional) and
seeds 0-2, inputs uniform in [-2, 2), 16 steps x 8 sequences; formats calibrated on the same
data. Prints the table quoted in docs/lstmp.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.numerics import dequantize
from lstm_fpga.sw.reference import quantize_input, run_reference

SHAPES = [(3, 5, 2, 1, False), (7, 4, 3, 2, False), (5, 9, 4, 1, True), (1, 3, 1, 3, True)]
SHAPES += [(16, 32, 12, 2, True), (8, 64, 16, 1, False)]


def worst_error(width: int) -> float:
    worst = 0.0
    for I, H, R, L, bidirectional in SHAPES:
        for seed in range(3):
            torch.manual_seed(seed)
            lstm = torch.nn.LSTM(I, H, L, bidirectional=bidirectional, proj_size=R).double()
            x = np.random.default_rng(seed).uniform(-2, 2, (16, 8, I))
            model, _ = quantize_from_torch(lstm, x, width=width)
            result = run_reference(model, quantize_input(model, x))
            out = lstm(torch.tensor(x))[0].detach().numpy()
            got = dequantize(result.output, model.output_format)
            worst = max(worst, np.abs(got - out).max() / np.ptp(out))
    return worst


def main() -> None:
    print("| bits | worst error / output range |")
    print("|---|---|")
    for width in (16, 12, 8):
        error = worst_error(width)
        print(f"| {width} | {error:.1e} (2^{math.log2(error):.1f}) |")


if __name__ == "__main__":
    main()
