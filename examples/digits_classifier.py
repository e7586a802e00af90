"""Sequence classification on generated hardware: handwritten digits as 8-step sequences.

    python examples/digits_classifier.py [OUT_DIR] [--lanes P] [--simulator verilator|icarus]

scikit-learn's ``load_digits`` (1,797 8x8 images, shipped with the package) read row by row:
8 time steps of 8 pixels. An ``nn.LSTM(8, 24)`` + ``nn.Linear(24, 10)`` on the last step
classifies them. The script trains on CPU (fixed seed), quantises to 16-bit fixed point,
generates the accelerator (LSTM and head on the same MAC lanes), simulates the whole test
set with cocotb and prints float vs fixed-point vs hardware accuracy and bit-exactness.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _digits import load_sequences, train  # examples/_digits.py, beside this script

from lstm_fpga.project import write_project
from lstm_fpga.sim import compile_build_directory, simulate
from lstm_fpga.sw.reference import quantize_input, run_reference


class DigitClassifier(torch.nn.Module):
    def __init__(self, hidden_size: int = 24):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/digits", type=Path)
    parser.add_argument("--lanes", type=int, default=16)
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    args = parser.parse_args(argv)

    x_train, y_train, x_test, y_test = load_sequences()
    net = train(DigitClassifier, x_train, y_train)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "digits.pt")
    with torch.no_grad():
        float_logits = net(torch.tensor(x_test)).numpy()

    project = write_project(
        args.out / "digits.pt",
        args.out / "build",
        lanes=args.lanes,
        output="last",
        calibration=x_train,
        batch_first=True,
        force=True,
    )
    model = project.model
    x_int = quantize_input(model, x_test)
    reference = run_reference(model, x_int, batch_first=True, head_on="last")
    design = compile_build_directory(project.rtl, model, project.config, args.simulator)
    hardware = simulate(design, x_int, batch_first=True)

    accuracy = {
        "float PyTorch": np.mean(float_logits.argmax(1) == y_test),
        "fixed-point reference": np.mean(reference.head.argmax(1) == y_test),
        "hardware (simulated)": np.mean(hardware.head.argmax(1) == y_test),
    }
    for name, value in accuracy.items():
        print(f"{name:>22}: {100 * value:5.1f} % of {len(y_test)} test digits")
    exact = np.array_equal(hardware.head, reference.head)
    print(f"hardware logits bit-exact with the reference: {'yes' if exact else 'NO'}")
    print(
        f"cycles per classification: {np.mean(hardware.cycles):.0f} "
        f"({hardware.cycles_per_step:.1f} per step, bound {project.cycle_bound})"
    )


if __name__ == "__main__":
    main()
