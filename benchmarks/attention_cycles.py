"""Cycles of an attention classifier on the generated hardware (cocotb, Verilator).

    nice -n 19 .venv/bin/python benchmarks/attention_cycles.py [--simulator icarus]
                                                               [--size small|digits]
                                                               [--lstm-alone]

``--size small`` (the default) builds ``AttentionClassifier(3, 5, A=4, O=2)`` (seeded, ``v``
scaled by 8, calibrated on its inputs), P = 3 lanes, ``--max-seq-len 6``, and runs 3
sequences of 5, 1 and 3 steps; ``--size digits`` the shape of ``examples/attention_digits.py``
untrained: ``AttentionClassifier(8, 32, A=16, O=10)``, P = 16, ``--max-seq-len 8``, 12
sequences of 8 steps, inputs uniform in [0, 1). Prints the comparison against the integer
reference (bit-exact?), each sequence's latency (first ``x`` beat to the last ``y`` beat) and
the attention unit's own cycles (:func:`lstm_fpga.hw.attention.attention_cycles`; the score
matrix is the lanes' job, so the unit's per-step cycles count ``tanh``, ``v . tanh`` and the
running max only). ``--lstm-alone`` also runs the same LSTM without attention on the same
lanes (``--output all``): the lanes' own time for these inputs.
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

#: (I, H, A, O, lanes, max_seq_len, inputs (T, B, I) from a generator, lengths)
SIZES = {
    "small": (3, 5, 4, 2, 3, 6, lambda rng: rng.uniform(-2, 2, (5, 3, 3)), [5, 1, 3]),
    "digits": (8, 32, 16, 10, 16, 8, lambda rng: rng.uniform(0, 1, (8, 12, 8)), [8] * 12),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    parser.add_argument("--size", default="small", choices=sorted(SIZES))
    parser.add_argument("--lstm-alone", action="store_true")
    args = parser.parse_args()
    I, H, A, O, lanes, max_seq_len, inputs, lengths = SIZES[args.size]
    torch.manual_seed(0)
    net = AttentionClassifier(I, H, A, O, batch_first=False).double()
    with torch.no_grad():
        net.attention.v.weight.mul_(8.0)
    rng = np.random.default_rng(0)
    x = inputs(rng)
    lengths = np.array(lengths)
    model, _ = quantize_from_torch(net, x, lengths=lengths)
    config = HardwareConfig(lanes=lanes, output="last", max_seq_len=max_seq_len)
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
    if args.lstm_alone:
        lstm, _ = quantize_from_torch(net.lstm, x, lengths=lengths)
        alone = compile_model(lstm, HardwareConfig(lanes=lanes, output="all"), args.simulator)
        cycles = compare(simulate(alone, quantize_input(lstm, x), lengths=lengths)).cycles
        print(
            f"the LSTM alone on the lanes: {cycles.run_cycles} cycles for {cycles.steps} "
            f"steps ({cycles.run_cycles / cycles.steps:.1f} per step, bound "
            f"{cycles.bound_per_step}); sequences {list(cycles.sequence_cycles)} cycles; "
            f"with attention {report.cycles.run_cycles} cycles"
        )


if __name__ == "__main__":
    main()
