"""Which model sizes fit which parts: the largest I = H each listed part holds.

For every part of ``lstm_fpga.hw.devices.DEVICES``: the largest ``I = H`` (unidirectional,
no head, output "all", 16-bit data and states) whose block RAMs and DSPs fit, one and two
layers, with 16-bit and 8-bit weights (``lstm-fpga build --weight-bits 8``), at ``P`` lanes
(default 16, ``build``'s default). The figures are the fit check of ``build --device``
(``check_fit``: ``estimate_resources`` of the plan, the packed weight banks of
``bank_packing`` mapped onto the family's block RAM, the activation ROMs, the sequencer's
buffers, the DSPs). Block RAM grows with ``H``, so the largest ``H`` is found by bisection
(the fit is checked at ``H`` and ``H + 1``). LUTs and flip-flops are not in the estimate
(``lstm-fpga synth`` measures them); iCE40 SPRAM is not used for weights.

    .venv/bin/python benchmarks/fit.py                 # markdown table, P = 16
    .venv/bin/python benchmarks/fit.py --lanes 64
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import cache, lru_cache

import numpy as np

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.devices import DEVICES, FAMILIES, Device, Fit, estimate_resources
from lstm_fpga.sw.ir import LayerDirection, LstmModel
from lstm_fpga.sw.numerics import FixedFormat
from lstm_fpga.testing import width_formats

#: (layers, weight bits) of the table's columns
COLUMNS = ((1, 16), (1, 8), (2, 16), (2, 8))
#: Largest H searched.
H_MAX = 2048


def square_model(H: int, layers: int, weight_bits: int) -> LstmModel:
    """``LSTM(H, H, layers)`` with 16-bit formats and ``weight_bits``-bit weights (zero
    weights: the fit depends on the shape and formats only)."""
    formats, _ = width_formats(16)
    w = FixedFormat(weight_bits, weight_bits - 2)
    formats = replace(formats, w_ih=w, w_hh=w)
    directions = []
    for k in range(layers):
        f = formats if k == 0 else replace(formats, x=formats.hidden)
        zeros = np.zeros((4 * H, H), dtype=np.int16)
        directions.append(LayerDirection(k, False, zeros, zeros, np.zeros(4 * H, np.int16), f))
    return LstmModel(H, H, layers, False, True, tuple(directions))


@lru_cache(maxsize=2)  # plans of large H hold large arrays
def _plan(H: int, layers: int, weight_bits: int, lanes: int) -> EnginePlan:
    return EnginePlan(square_model(H, layers, weight_bits), HardwareConfig(lanes=lanes))


@cache
def _needed(H: int, layers: int, weight_bits: int, lanes: int, family: str) -> dict[str, int]:
    estimate = estimate_resources(_plan(H, layers, weight_bits, lanes), family)
    return {"bram": estimate.brams, "dsp": estimate.dsps}


def fit(dev: Device, H: int, layers: int, weight_bits: int, lanes: int) -> Fit:
    """``check_fit`` of the design on ``dev`` (its estimate cached per family)."""
    needed = _needed(H, layers, weight_bits, lanes, dev.family)
    return Fit(dev, needed, {"bram": dev.brams, "dsp": dev.dsps})


def largest(dev: Device, layers: int, weight_bits: int, lanes: int) -> tuple[int, Fit | None]:
    """The largest ``H`` (up to :data:`H_MAX`) whose design fits ``dev`` and its fit; ``(0,
    fit at H = 1)`` when none does."""
    if not fit(dev, 1, layers, weight_bits, lanes).fits:
        return 0, fit(dev, 1, layers, weight_bits, lanes)
    lo, hi = 1, 2
    while hi <= H_MAX and fit(dev, hi, layers, weight_bits, lanes).fits:
        lo, hi = hi, 2 * hi
    hi = min(hi, H_MAX + 1)
    while hi - lo > 1:  # fits at lo, not at hi
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fit(dev, mid, layers, weight_bits, lanes).fits else (lo, mid)
    return lo, fit(dev, lo, layers, weight_bits, lanes)


def _cell(dev: Device, layers: int, weight_bits: int, lanes: int) -> str:
    H, found = largest(dev, layers, weight_bits, lanes)
    if H == 0:
        short = ", ".join(f"{r} {found.needed[r]}/{found.available[r]}" for r in found.short)
        return f"none ({short} at H = 1)"
    primitive = FAMILIES[dev.family].bram_primitive
    at_least = "≥ " if H == H_MAX else ""
    return f"{at_least}{H} ({found.needed['bram']}/{found.available['bram']} {primitive})"


def table(lanes: int) -> str:
    heads = " | ".join(
        f"{layers} layer{'s' * (layers > 1)}, {bits}-bit W" for layers, bits in COLUMNS
    )
    lines = [f"| part | {heads} |", "|---|" + "---|" * len(COLUMNS)]
    for dev in DEVICES.values():
        cells = " | ".join(_cell(dev, layers, bits, lanes) for layers, bits in COLUMNS)
        lines.append(f"| `{dev.name}` {dev.part} | {cells} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=16, metavar="P", help="MAC lanes (16)")
    args = parser.parse_args(argv)
    if args.lanes < 1:
        parser.error("--lanes must be a positive int")
    print(f"Largest I = H that fits (block RAM and DSP estimate), P = {args.lanes}:\n")
    print(table(args.lanes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
