"""Task metric vs weight width: post-training quantisation and quantisation-aware fine-tuning.

For the MSFT demo (``lstm_fpga.demo``: ``nn.LSTM(5, 16)`` + ``nn.Linear(16, 1)``, next-day
close, test RMSE in USD) and the digits example (``examples/digits_classifier.py``:
``nn.LSTM(8, 24)`` + ``nn.Linear(24, 10)``, test accuracy), trains the float model once
(fixed seed), then for every weight width in ``--bits`` (activations, states and biases stay
16 bits):

* PTQ: calibrate on the training data with ``weight_bits=N`` and quantise;
* QAT: fine-tune that model with :func:`lstm_fpga.sw.qat.finetune` (forward pass = the
  integer reference), same formats;

and evaluates both with :func:`run_reference` on the test set: the integers the hardware
computes. Block-RAM figures: the weight bits stored (every weight and bias at its width) and
the ECP5 block RAMs of a 16-lane build (``lstm_fpga.hw.devices.estimate_resources``; the
bank width follows the widest weight format).

    nice -n 5 .venv/bin/python benchmarks/precision.py               # both tasks, ~5 min
    nice -n 5 .venv/bin/python benchmarks/precision.py --json benchmarks/results/precision.json \\
        --plot docs/precision.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from lstm_fpga.hw import EnginePlan, HardwareConfig  # noqa: E402
from lstm_fpga.hw.devices import estimate_resources  # noqa: E402
from lstm_fpga.sw.qat import finetune, prepare_qat  # noqa: E402
from lstm_fpga.sw.reference import quantize_input, run_reference  # noqa: E402

#: Weight widths of the sweep (issue 13).
DEFAULT_BITS = (16, 12, 8, 6, 4)


def _storage(model) -> dict:
    bits = sum(
        d.w_ih.size * d.formats.w_ih.width
        + d.w_hh.size * d.formats.w_hh.width
        + d.bias.size * d.formats.bias.width
        for d in model.directions
    )
    if model.head is not None:
        f = model.head.formats
        bits += model.head.weight.size * f.weight.width + model.head.bias.size * f.bias.width
    plan = EnginePlan(model, HardwareConfig(lanes=16, output="last"))
    return {
        "weight_bits_stored": int(bits),
        "bank_width": plan.weight_shape.width,
        "ecp5_brams_16_lanes": estimate_resources(plan, "ecp5").brams,
    }


def _sweep(name, net, x_train, y_train, x_test, metric, loss, bits_list, tune, log) -> dict:
    with torch.no_grad():
        float_value = metric(net(torch.tensor(x_test, dtype=torch.float32)).numpy())
    log(f"{name}: float {float_value:.4f}")
    rows = []
    for bits in bits_list:
        qat = prepare_qat(net, x_train, batch_first=True, weight_bits=bits)
        row = {"weight_bits": bits, **_storage(qat.export())}
        for stage in ("ptq", "qat"):
            if stage == "qat":
                started = time.perf_counter()
                finetune(qat, x_train, y_train, loss=loss, **tune)
                row["finetune_seconds"] = round(time.perf_counter() - started, 1)
            model = qat.export()
            head = run_reference(model, quantize_input(model, x_test), batch_first=True).head
            row[stage] = metric(head * model.head.formats.output.lsb)
        log(
            f"{name}: {bits:2d}-bit weights  PTQ {row['ptq']:.4f}  QAT {row['qat']:.4f}  "
            f"({row['weight_bits_stored']} bits, {row['ecp5_brams_16_lanes']} ECP5 BRAM)"
        )
        rows.append(row)
    return {"float": float_value, "finetune": tune, "rows": rows}


def msft(bits_list, log) -> dict:
    from lstm_fpga.stock_data import load_stock_data, train_forecaster

    data = load_stock_data(window=20)
    net = train_forecaster(data, hidden_size=16, epochs=15, seed=0)

    def rmse(scaled):
        error = data.price(np.asarray(scaled)[:, 0]) - data.close_test
        return float(np.sqrt(np.mean(error**2)))

    tune = dict(epochs=2, lr=1e-4, batch_size=128, seed=0)
    y_train = data.y_train[:, None]
    result = _sweep(
        "msft", net, data.x_train, y_train, data.x_test, rmse, "mse", bits_list, tune, log
    )
    return {"task": "MSFT next-day close", "metric": "test RMSE (USD)", **result}


def digits(bits_list, log) -> dict:
    from digits_classifier import load_sequences, train

    x_train, y_train, x_test, y_test = load_sequences()
    net = train(x_train, y_train)

    def accuracy(logits):
        return float(100.0 * np.mean(np.asarray(logits).argmax(1) == y_test))

    tune = dict(epochs=3, lr=1e-3, batch_size=64, seed=0)
    result = _sweep(
        "digits", net, x_train, y_train, x_test, accuracy, "cross_entropy", bits_list, tune, log
    )
    return {"task": "digits (load_digits)", "metric": "test accuracy (%)", **result}


def large_model_brams(bits_list, size: int = 256) -> dict:
    """Block RAMs of an ``nn.LSTM(size, size)`` (random weights, formats from an input range)
    at each weight width: where the weight banks, not the fixed tables, decide the count."""
    from lstm_fpga.sw.calibrate import calibrate_from_range, quantize_model
    from lstm_fpga.testing import random_float_model

    fm = random_float_model(size, size, seed=0)
    rows = []
    for bits in bits_list:
        chosen = calibrate_from_range(fm, (-1.0, 1.0), weight_bits=bits)
        plan = EnginePlan(quantize_model(fm, chosen), HardwareConfig(lanes=16, output="last"))
        rows.append(
            {
                "weight_bits": bits,
                "bank_width": plan.weight_shape.width,
                "ecp5_brams": estimate_resources(plan, "ecp5").brams,
                "xc7_brams": estimate_resources(plan, "xc7").brams,
            }
        )
    return {"shape": f"nn.LSTM({size}, {size}), 16 lanes", "rows": rows}


def table(result: dict) -> str:
    lines = [
        f"{result['task']}: {result['metric']}, float {result['float']:.4g}",
        "| weight bits | PTQ | QAT | stored weight bits | bank width | ECP5 BRAM (16 lanes) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['weight_bits']} | {r['ptq']:.4g} | {r['qat']:.4g} | "
            f"{r['weight_bits_stored']} | {r['bank_width']} | {r['ecp5_brams_16_lanes']} |"
        )
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), dpi=110)
    for ax, result in zip(np.atleast_1d(axes), results, strict=True):
        bits = [r["weight_bits"] for r in result["rows"]]
        ax.plot(bits, [r["ptq"] for r in result["rows"]], "o-", label="post-training")
        ax.plot(bits, [r["qat"] for r in result["rows"]], "s-", label="fine-tuned (QAT)")
        ax.axhline(result["float"], color="gray", linestyle="--", label="float")
        ax.set_xlabel("weight bits (activations 16)")
        ax.set_ylabel(result["metric"])
        ax.set_title(result["task"])
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, nargs="+", default=list(DEFAULT_BITS))
    parser.add_argument("--task", choices=["msft", "digits", "both"], default="both")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--plot", type=Path, help="write a PNG plot")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    results = []
    if args.task in ("digits", "both"):
        results.append(digits(args.bits, log))
    if args.task in ("msft", "both"):
        results.append(msft(args.bits, log))
    for result in results:
        print(table(result) + "\n")
    large = large_model_brams(args.bits)
    print(f"block RAM of {large['shape']}:")
    print("| weight bits | bank width | ECP5 BRAM | Xilinx 7 BRAM |\n|---:|---:|---:|---:|")
    for r in large["rows"]:
        print(f"| {r['weight_bits']} | {r['bank_width']} | {r['ecp5_brams']} | {r['xc7_brams']} |")
    if args.json:
        args.json.write_text(json.dumps({"tasks": results, "large_model": large}, indent=2) + "\n")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
