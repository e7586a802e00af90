"""Attention pooling on generated hardware: handwritten digits as 8-step sequences.

    python examples/attention_digits.py [OUT_DIR] [--lanes P] [--simulator verilator|icarus]
                                        [--epochs E] [--hidden H] [--attention A]
                                        [--test-digits N]

scikit-learn's ``load_digits`` (1,797 8x8 images, shipped with the package; nothing
downloads) read row by row: 8 time steps of 8 pixels. An ``AttentionClassifier`` (an
``nn.LSTM(8, H)``, attention pooling over the 8 steps, ``nn.Linear(H, 10)``) is trained on CPU
(fixed seed), calibrated on the training set and built with ``--output last --max-seq-len 8``
(the layers and the score matrix ``W h_t + b`` on the lanes, the rest of attention pooling
and the head in the attention unit, ``docs/attention.md``); the script simulates the test
digits (all 360, or the first ``--test-digits``) with cocotb and prints float vs
fixed-point vs hardware accuracy and whether the hardware's logits equal the integer
reference's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _digits import load_sequences, train  # examples/_digits.py, beside this script

from lstm_fpga.project import write_project
from lstm_fpga.sim import compile_build_directory, simulate
from lstm_fpga.sw.modules import AttentionClassifier
from lstm_fpga.sw.reference import quantize_input, run_reference


def run(
    out: Path,
    *,
    lanes: int = 16,
    simulator: str = "verilator",
    epochs: int = 15,
    hidden: int = 32,
    attention: int = 16,
    test_digits: int | None = None,
) -> dict:
    """Train, build, simulate; returns the figures the script prints."""
    x_train, y_train, x_test, y_test = load_sequences()
    if test_digits is not None:
        x_test, y_test = x_test[:test_digits], y_test[:test_digits]
    net = train(lambda: AttentionClassifier(8, hidden, attention, 10), x_train, y_train, epochs)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "attention_digits.pt")
    with torch.no_grad():
        float_logits = net(torch.tensor(x_test)).numpy()

    project = write_project(
        out / "attention_digits.pt",
        out / "build",
        lanes=lanes,
        output="last",
        max_seq_len=8,
        calibration=x_train,
        batch_first=True,
        force=True,
    )
    model = project.model
    x_int = quantize_input(model, x_test)
    reference = run_reference(model, x_int, batch_first=True, head_on="last")
    design = compile_build_directory(project.rtl, model, project.config, simulator)
    hardware = simulate(design, x_int, batch_first=True)
    return {
        "test_digits": len(y_test),
        "float PyTorch": float(np.mean(float_logits.argmax(1) == y_test)),
        "fixed-point reference": float(np.mean(reference.head.argmax(1) == y_test)),
        "hardware (simulated)": float(np.mean(hardware.head.argmax(1) == y_test)),
        "bit_exact": bool(np.array_equal(hardware.head, reference.head)),
        "cycles": float(np.mean(hardware.cycles)),
        "cycles_per_step": float(hardware.cycles_per_step),
        "lane_bound": project.cycle_bound,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/attention_digits", type=Path)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--attention", type=int, default=16)
    parser.add_argument("--test-digits", type=int, default=None)
    args = parser.parse_args(argv)
    r = run(
        args.out,
        lanes=args.lanes,
        simulator=args.simulator,
        epochs=args.epochs,
        hidden=args.hidden,
        attention=args.attention,
        test_digits=args.test_digits,
    )
    for name in ("float PyTorch", "fixed-point reference", "hardware (simulated)"):
        print(f"{name:>22}: {100 * r[name]:5.1f} % of {r['test_digits']} test digits")
    print(f"hardware logits bit-exact with the reference: {'yes' if r['bit_exact'] else 'NO'}")
    print(
        f"cycles per classification: {r['cycles']:.0f} ({r['cycles_per_step']:.1f} per step, "
        f"lane bound {r['lane_bound']})"
    )


if __name__ == "__main__":
    main()
