"""Cycles of an attention classifier on the generated hardware (cocotb, Verilator).

    nice -n 19 .venv/bin/python benchmarks/attention_cycles.py [--simulator icarus]

Builds ``AttentionClassifier(3, 5, A=4, O=2)`` (seeded, ``v`` scaled by 8, calibrated on its
inputs), P = 3 lanes, ``--max-seq-len 6``; runs 3 sequences of 5, 1 and 3 steps, prints the
comparison against the integer reference (bit-exact?), each sequence's latency (first ``x``
beat to the last ``y`` beat) and the attention unit's own cycles
(:func:`lstm_fpga.hw.attention.attention_cycles`; the score matrix is the lanes' job, so
the unit's per-step cycles count ``tanh``, ``v . tanh`` and the running max only).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.attention import attention_cycles
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from lstm_fpga.sw.reference import quantize_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    args = parser.parse_args()
    torch.manual_seed(0)
    net = AttentionClassifier(3, 5, 4, 2, batch_first=False).double()
    with torch.no_grad():
        net.attention.v.weight.mul_(8.0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (5, 3, 3))
    lengths = np.array([5, 1, 3])
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    config = HardwareConfig(lanes=3, output="last", max_seq_len=6)
    design = compile_model(model, config, args.simulator)
    report = compare(simulate(design, quantize_input(model, x), lengths=lengths))
    print(report)
    plan = EnginePlan(model, config)
    ad = model.attention_datapath()
    A, F = model.attention.attention_size, model.attention.features
    O = model.head.out_features
    choice = dict(exp_width=ad.formats.exp.width, recip_bits=ad.recip_bits)
    choice["max_steps"] = plan.attention_steps
    for steps, cycles in zip(lengths, report.cycles.sequence_cycles, strict=True):
        parts = attention_cycles(F, A, O, int(steps), **choice)
        print(
            f"sequence of {steps} steps: {cycles} cycles measured; attention unit: "
            f"{parts['receive']} receive + {parts['per_step']} per step, "
            f"{parts['per_sequence']} at the sequence's end"
        )


if __name__ == "__main__":
    main()
