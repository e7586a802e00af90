"""An ``nn.GRU`` digit classifier through lstm-fpga's software flow (no GRU hardware yet).

    python examples/gru_digits.py [OUT_DIR] [--bits N] [--epochs E]

scikit-learn's ``load_digits`` (1,797 8x8 images, shipped with the package) read row by row:
8 time steps of 8 pixels. An ``nn.GRU(8, 24)`` + ``nn.Linear(24, 10)`` on the last step
classifies them. The script trains on CPU (fixed seed), calibrates on the training set,
quantises to ``--bits`` fixed point (16 by default), runs the bit-exact integer reference
(what GRU hardware will compute) on the test set and prints float vs fixed-point accuracy,
the largest logit error and the quantization report's saturation count. ``lstm-fpga build``
refuses a GRU for now (``docs/gru.md``): the hardware row says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _digits import load_sequences, train  # examples/_digits.py, beside this script

from lstm_fpga.hw import HardwareConfig, HardwareConfigError, check_supported
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.numerics import dequantize
from lstm_fpga.sw.reference import quantize_input, run_reference


class GruDigitClassifier(torch.nn.Module):
    def __init__(self, hidden_size: int = 24):
        super().__init__()
        self.gru = torch.nn.GRU(8, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 10)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def run(out: Path, bits: int = 16, epochs: int = 40) -> dict:
    """Train, quantise and evaluate; returns the figures the script prints."""
    x_train, y_train, x_test, y_test = load_sequences()
    net = train(GruDigitClassifier, x_train, y_train, epochs)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "gru_digits.pt")
    with torch.no_grad():
        float_logits = net(torch.tensor(x_test)).double().numpy()

    model, report = quantize_from_torch(net, x_train, width=bits)
    model.save(out / "model")
    (out / "report.txt").write_text(report.table() + "\n")
    reference = run_reference(model, quantize_input(model, x_test), batch_first=True)
    fixed_logits = dequantize(reference.head, model.head.formats.output)
    try:
        check_supported(model, HardwareConfig(lanes=16))
        hardware = "available"
    except HardwareConfigError as error:
        hardware = f"not available yet ({str(error).split(':')[0]})"
    return {
        "test_digits": len(y_test),
        "float_accuracy": float(np.mean(float_logits.argmax(1) == y_test)),
        "fixed_accuracy": float(np.mean(reference.head.argmax(1) == y_test)),
        "agreement": float(np.mean(float_logits.argmax(1) == reference.head.argmax(1))),
        "max_logit_error": float(np.abs(fixed_logits - float_logits).max()),
        "logit_range": float(np.ptp(float_logits)),
        "calibration_saturations": report.total_saturations,
        "test_saturations": reference.saturations.total,
        "hardware": hardware,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default="out/gru_digits", type=Path)
    parser.add_argument("--bits", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    r = run(args.out, args.bits, args.epochs)
    n = r["test_digits"]
    print(f"{'float PyTorch':>24}: {100 * r['float_accuracy']:5.1f} % of {n} test digits")
    print(f"{f'fixed-point ({args.bits} bits)':>24}: {100 * r['fixed_accuracy']:5.1f} %")
    print(f"{'hardware':>24}: {r['hardware']}")
    print(
        f"same class as float: {100 * r['agreement']:.1f} %; largest logit error "
        f"{r['max_logit_error']:.2e} of a {r['logit_range']:.1f} logit range; saturations: "
        f"{r['calibration_saturations']} on the training set, "
        f"{r['test_saturations']} on the test set"
    )
    print(f"IR and quantization report in {args.out}")


if __name__ == "__main__":
    main()
