"""Time steps per second of the integer reference vs torch float on the CPU.

    python benchmarks/reference.py [--hidden 256] [--input 256] [--steps 150] [--batch 64]

Prints the figures quoted in docs/numerics.md. The target is the integer reference within
10x of torch float for H=256, I=256, T=150, batch 64.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.sw.torch_import import from_module
from lstm_fpga.testing import FORMAT_SETS, quantize_float_model


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    H, I, T, B = args.hidden, args.input, args.steps, args.batch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H)
    model = quantize_float_model(from_module(lstm), FORMAT_SETS["q16_even"])
    x = np.random.default_rng(0).uniform(-1, 1, size=(T, B, I))
    xq = quantize_input(model, x)
    xt = torch.tensor(x, dtype=torch.float32)

    torch.set_num_threads(torch.get_num_threads())
    with torch.inference_mode():
        t_torch = _best_of(args.repeats, lambda: lstm(xt))
    t_ref = _best_of(args.repeats, lambda: run_reference(model, xq))
    steps = T * B
    print(f"config: H={H} I={I} T={T} batch={B} (torch threads: {torch.get_num_threads()})")
    print(f"torch float32 nn.LSTM : {t_torch * 1e3:9.1f} ms  {steps / t_torch:12,.0f} steps/s")
    print(f"integer reference     : {t_ref * 1e3:9.1f} ms  {steps / t_ref:12,.0f} steps/s")
    print(f"reference / torch time: {t_ref / t_torch:9.2f}x  (target <= 10x)")


if __name__ == "__main__":
    main()
