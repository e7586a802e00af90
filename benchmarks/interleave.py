"""Interleaved sequences, measured: ``lstm_top`` built with ``--interleave B`` in cocotb
(Verilator), LSTM(5,16) (one layer, 16-bit formats, output every step) at P=64 lanes.

For each ``B`` this builds the design (``HardwareConfig(lanes=64, interleave=B)``), streams
``B`` sequences of ``STEPS`` steps as one group (time-multiplexed: step ``t`` of sequences
``0 .. B-1``, then step ``t + 1``), checks every output, ``h_n`` and ``c_n`` bit-exactly
against the integer reference run per sequence, and reports:

* **cycles per sequence-step** in the steady state: the spacing of one sequence's steps
  (its ``y`` vectors' last beats, the first step excluded) divided by ``B``;
* against the **lane bound** ``ceil(4H(I+H)/P)`` = 21 and the contract's bound per
  sequence-step (``TopInterface.recurrence_step_bound``);
* the **lane utilisation**: ``4H(I+H)`` multiplies per sequence-step over ``P`` x the cycles;
* the weight bytes the lanes read per sequence-step (``hw/limits.py``; on-chip weights are
  read once per sequence-step, the group does not share a fetch: ``docs/interleave.md``).

    .venv/bin/python benchmarks/interleave.py                       # the table (markdown)
    .venv/bin/python benchmarks/interleave.py --json benchmarks/results/interleave.json
    .venv/bin/python benchmarks/interleave.py --table benchmarks/results/interleave.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.hw.limits import design_limits
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.testing import random_model, random_sequences

I, H, P = 5, 16, 64
STEPS = 16
GROUPS = (1, 2, 3, 4)


def measure(B: int) -> dict:
    model = random_model(I, H)
    started = time.perf_counter()
    design = compile_model(model, HardwareConfig(lanes=P, interleave=B))
    build_s = time.perf_counter() - started
    sequences = random_sequences(model, [STEPS] * B, 5)
    result = simulate(design, sequences)
    report = compare(result)
    if not report.bit_exact:
        raise SystemExit(f"B={B}: not bit-exact:\n{report}")
    per_step = result.cycles_per_step / B
    macs = 4 * H * (I + H)
    limits = design_limits(design.interface.plan)
    return {
        "B": B,
        "lanes": P,
        "shape": f"LSTM({I},{H})",
        "steps": STEPS,
        "cycles_per_group_step": float(result.cycles_per_step),
        "cycles_per_sequence_step": float(per_step),
        "lane_bound": int(design.interface.step_bound),
        "contract_bound_per_sequence_step": int(design.interface.recurrence_step_bound),
        "lane_utilisation_percent": round(100 * macs / (P * per_step), 2),
        "weight_bytes_per_sequence_step": float(limits.bytes_per_step),
        "bit_exact": True,
        "build_seconds": round(build_s, 1),
    }


def table(rows) -> str:
    lines = [
        "| B | cycles / group step | cycles / sequence-step | lane bound | contract bound | "
        "lane utilisation | weight bytes / sequence-step |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['B']} | {r['cycles_per_group_step']:g} | {r['cycles_per_sequence_step']:g} "
            f"| {r['lane_bound']} | {r['contract_bound_per_sequence_step']} "
            f"| {r['lane_utilisation_percent']:.1f} % | {r['weight_bytes_per_sequence_step']:g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    parser.add_argument("--table", type=Path, help="print the table of a saved run")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())["rows"]))
        return 0
    rows = [measure(B) for B in GROUPS]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
