"""Cycles per step of the generated LSTMP hardware (``nn.LSTM(proj_size=R)``) on Verilator.

    python benchmarks/lstmp_cycles.py [--simulator icarus] [I,H,R,L,P[,B[,D]] ...]

For each shape (default: the table of docs/lstmp.md) an ``nn.LSTM(I, H, L, proj_size=R)``
(``bidirectional=True`` with ``D = 2``; ``torch.manual_seed(0)``) calibrated on 4 sequences
of 8 steps uniform in [-2, 2) (``numpy`` seed 0), generated on ``P`` lanes with ``B``
sequences interleaved (``--interleave B``, default 1; a bidirectional one with
``--max-seq-len 8``), the same sequences simulated back to back; prints
bit-exactness, the measured cycles per (sequence-)step (``compare``'s throughput: first
input beat to last output beat over all steps), the recurrence model's prediction
(``TopInterface.recurrence_step_bound``) and the lane bound ``cycle_bound(model, lanes=P)``
= ``ceil(4H(I_k+R)/P) + ceil(RH/P)`` per layer direction.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

from lstm_fpga.hw import HardwareConfig, cycle_bound
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.reference import quantize_input

SHAPES = [(3, 5, 2, 1, 4), (4, 8, 3, 1, 3), (7, 4, 3, 2, 5), (16, 32, 8, 1, 4)]


def measure(I, H, R, L, P, B, D, cache_dir, simulator="verilator"):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H, L, proj_size=R, bidirectional=D == 2)
    x = np.random.default_rng(0).uniform(-2, 2, (8, 4, I))
    model, _ = quantize_from_torch(lstm, x)
    config = HardwareConfig(lanes=P, interleave=B, max_seq_len=8 if D == 2 else None)
    design = compile_model(model, config, simulator, cache_dir=cache_dir)
    report = compare(simulate(design, quantize_input(model, x)))
    measured = report.cycles.cycles_per_step
    predicted = design.interface.recurrence_step_bound
    return report.bit_exact, measured, predicted, cycle_bound(model, lanes=P)


def _shape(text: str) -> tuple[int, ...]:
    """``I,H,R,L,P[,B[,D]]`` as integers, ``B`` and ``D`` defaulting to 1."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not 5 <= len(values) <= 7 or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a shape: give I,H,R,L,P[,B[,D]] as positive integers, e.g. 3,5,2,1,4"
        )
    return (*values, 1, 1)[:7]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # (the cycles are the RTL's: Verilator, the default, and Icarus count the same)
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    parser.add_argument(
        "shapes",
        nargs="*",
        type=_shape,
        metavar="I,H,R,L,P[,B[,D]]",
        help="default: the table of docs/lstmp.md",
    )
    args = parser.parse_args(argv)
    simulator = args.simulator
    shapes = args.shapes or [(*shape, 1, 1)[:7] for shape in SHAPES]
    print("| I | H | R | layers | D | P | B | bit-exact | cycles/step | model | bound |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    # (LSTM_FPGA_SIM_CACHE: a build cache to keep, as the tests' sim_cache fixture takes it)
    with tempfile.TemporaryDirectory() as temporary:
        cache = os.environ.get("LSTM_FPGA_SIM_CACHE", temporary)
        for shape in shapes:
            exact, measured, predicted, bound = measure(*shape, cache, simulator)
            I, H, R, L, P, B, D = shape
            cells = [I, H, R, L, D, P, B, "yes" if exact else "NO", f"{measured:.1f}"]
            cells += [predicted, bound]
            print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
