"""Cycles per step of the generated LSTMP hardware (``nn.LSTM(proj_size=R)``) on Verilator.

    python benchmarks/lstmp_cycles.py [I,H,R,L,P[,B] ...]

For each shape (default: the table of docs/lstmp.md) an ``nn.LSTM(I, H, L, proj_size=R)``
(``torch.manual_seed(0)``) calibrated on 4 sequences of 8 steps uniform in [-2, 2)
(``numpy`` seed 0), generated on ``P`` lanes with ``B`` sequences interleaved
(``--interleave B``, default 1), the same sequences simulated back to back; prints
bit-exactness, the measured cycles per (sequence-)step (``compare``'s throughput: first
input beat to last output beat over all steps), the recurrence model's prediction
(``TopInterface.recurrence_step_bound``) and the lane bound ``cycle_bound(model, lanes=P)``
= ``ceil(4H(I_k+R)/P) + ceil(RH/P)`` per layer.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
import torch

from lstm_fpga.hw import HardwareConfig, cycle_bound
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.reference import quantize_input

SHAPES = [(3, 5, 2, 1, 4), (4, 8, 3, 1, 3), (7, 4, 3, 2, 5), (16, 32, 8, 1, 4)]


def measure(I, H, R, L, P, B, cache_dir):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H, L, proj_size=R)
    x = np.random.default_rng(0).uniform(-2, 2, (8, 4, I))
    model, _ = quantize_from_torch(lstm, x)
    config = HardwareConfig(lanes=P, interleave=B)
    design = compile_model(model, config, "verilator", cache_dir=cache_dir)
    report = compare(simulate(design, quantize_input(model, x)))
    measured = report.cycles.cycles_per_step
    predicted = design.interface.recurrence_step_bound
    return report.bit_exact, measured, predicted, cycle_bound(model, lanes=P)


def main(argv):
    shapes = [tuple(int(v) for v in a.split(",")) for a in argv] or SHAPES
    shapes = [shape if len(shape) == 6 else (*shape, 1) for shape in shapes]
    print("| I | H | R | layers | P | B | bit-exact | cycles/step | model | bound |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as cache:
        for shape in shapes:
            exact, measured, predicted, bound = measure(*shape, cache)
            cells = [*shape, "yes" if exact else "NO", f"{measured:.1f}", predicted, bound]
            print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
