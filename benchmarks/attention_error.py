"""Error of the integer reference of an attention classifier (LSTM + attention pooling + Linear)
against PyTorch's float model (``lstm_fpga.sw.modules.AttentionClassifier``).

    python benchmarks/attention_error.py

Two tables, quoted in docs/attention.md, each at 16, 12 and 8 bits; the error is the
largest |integer logits - PyTorch logits| over the range (max - min) of PyTorch's logits:

* random models: shapes (I, H, A, O, layers, bidirectional, proj_size) x seeds 0-2, ``v``
  as initialised and scaled by 12 (sharper attention, scores spread over the exp table), 8
  sequences of 1-10 steps (variable lengths), inputs uniform in [-2, 2), formats calibrated
  on the same data;
* digits: an AttentionClassifier(8, 32, A=16, 10) trained 15 epochs on scikit-learn's 8x8
  digits (8 steps of 8 pixels, the examples' split), calibrated on the 1,437 training
  sequences, measured on the 360 test sequences as they are (no clipping), with the test
  accuracy of PyTorch and of the integer reference.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from lstm_fpga.sw.calibrate import quantize_from_torch  # noqa: E402
from lstm_fpga.sw.modules import AttentionClassifier  # noqa: E402
from lstm_fpga.sw.numerics import dequantize  # noqa: E402
from lstm_fpga.sw.reference import quantize_input, run_reference  # noqa: E402

SHAPES = [(3, 5, 4, 2, 1, False, 0), (4, 8, 6, 3, 2, True, 0), (5, 6, 3, 1, 1, True, 3)]
SHAPES += [(2, 4, 5, 4, 3, False, 0), (8, 32, 16, 10, 1, False, 0), (6, 12, 8, 5, 2, True, 4)]
WIDTHS = (16, 12, 8)


def _logits(model, x, lengths=None) -> np.ndarray:
    result = run_reference(model, quantize_input(model, x), batch_first=True, lengths=lengths)
    return dequantize(result.head, model.head.formats.output)


def random_models(width: int) -> float:
    worst = 0.0
    for I, H, A, O, L, bidirectional, R in SHAPES:
        for seed in range(3):
            for peaky in (1.0, 12.0):
                torch.manual_seed(seed)
                net = AttentionClassifier(
                    I, H, A, O, num_layers=L, bidirectional=bidirectional, proj_size=R
                ).double()
                with torch.no_grad():
                    net.attention.v.weight.mul_(peaky)
                rng = np.random.default_rng(seed)
                x = rng.uniform(-2, 2, (8, 10, I))
                lengths = rng.integers(1, 11, 8)
                model, _ = quantize_from_torch(net, x, lengths=lengths, width=width)
                with torch.no_grad():
                    expected = net(torch.tensor(x), torch.tensor(lengths)).numpy()
                error = np.abs(_logits(model, x, lengths) - expected).max() / np.ptp(expected)
                worst = max(worst, error)
    return worst


def digits() -> list[tuple[int, float, float, float]]:
    from _digits import load_sequences, train

    x_train, y_train, x_test, y_test = load_sequences()
    net = train(lambda: AttentionClassifier(8, 32, 16, 10), x_train, y_train, epochs=15)
    net = net.double()
    with torch.no_grad():
        expected = net(torch.tensor(x_test, dtype=torch.float64)).numpy()
    float_accuracy = float((expected.argmax(1) == y_test).mean())
    rows = []
    for width in WIDTHS:
        model, _ = quantize_from_torch(net, x_train.astype(np.float64), width=width)
        got = _logits(model, x_test.astype(np.float64))
        error = np.abs(got - expected).max() / np.ptp(expected)
        rows.append((width, error, float_accuracy, float((got.argmax(1) == y_test).mean())))
    return rows


def _power(error: float) -> str:
    return f"{error:.1e} (2^{math.log2(error):.1f})" if error > 0 else "0"


def main() -> None:
    print("random models (6 shapes x 3 seeds x 2 attention sharpnesses, variable lengths)")
    print("| bits | worst error / output range |")
    print("|---|---|")
    for width in WIDTHS:
        print(f"| {width} | {_power(random_models(width))} |")
    print()
    print("digits, AttentionClassifier(8, 32, A=16, 10), 360 test sequences")
    print("| bits | worst error / output range | accuracy float | accuracy integer |")
    print("|---|---|---|---|")
    for width, error, float_accuracy, accuracy in digits():
        print(
            f"| {width} | {_power(error)} | {100 * float_accuracy:.1f} % | {100 * accuracy:.1f} % |"
        )


if __name__ == "__main__":
    main()
