"""Cycles of the generated GRU hardware (``nn.GRU`` on the lanes) vs its bound.

A GRU layer direction's bound is ``ceil(3H(I_k+H)/P)`` cycles per step (``3H`` rows of
``W_ih`` over ``x`` and of ``W_hh`` over ``h``); the lanes hold each unit as three rows ``r,
z, n`` over ``[x; h]``, the ``n`` row's lane keeping its input and recurrent sums apart (as
PyTorch defines them), so their schedule is ``passes x span`` ~ ``ceil(3H(I_k+H)/P)``. The
table gives, per model: the sum of the bounds over a sequence (``EnginePlan.sequence_bound``,
the ``3H`` form plus the head), the lanes' busy cycles (``sequence_mac_cycles``), the
recurrence bound of the contract (``recurrence_sequence_bound``) and the measured
steady-state cycles per sequence (Verilator, C++ harness of
``lstm_fpga.sim.verilator_harness``; three sequences back to back, input always valid,
output always ready; the distance between the final output beats of consecutive sequences),
cycles per step over the sum of bounds (``+/step``), the same shape's LSTM bound
``ceil(4H(I_k+H)/P)`` for comparison and the LSTM's budget verdict (``benchmarks/cycles.py``:
``ok`` within 4 cycles per step of the sum of bounds, ``at recur`` at no more than the
recurrence bound, where the loop or the passes' shape limit it, else ``OVER``).

    .venv/bin/python benchmarks/gru_cycles.py                # the grid (a few minutes)
    .venv/bin/python benchmarks/gru_cycles.py --demo         # GRU(5, 16) + Linear, P=16 only
    .venv/bin/python benchmarks/gru_cycles.py --json benchmarks/results/gru_cycles.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from cycles import (  # benchmarks/cycles.py
    MODEL_STEPS,
    _verdict,
    measure_model,
    model_config,
)

from lstm_fpga.hw import EnginePlan, cycle_bound

STEPS = MODEL_STEPS

#: (I, H, layers, bidirectional, head outputs, output mode, P). The first is the demo's shape
#: (the MSFT forecaster's GRU(5, 16) + Linear(16, 1)).
MODELS = (
    (5, 16, 1, False, 1, "last", 16),
    (5, 16, 1, False, None, "all", 16),
    (8, 24, 1, False, 10, "last", 16),
    (5, 16, 1, False, 1, "last", 7),
    (32, 32, 2, False, None, "all", 16),
    (32, 32, 1, True, None, "all", 16),
)


def measure(params, workdir: Path) -> dict:
    """:func:`cycles.measure_model` of the GRU of ``params``, with the GRU's ``3H`` step bound
    and the same shape's LSTM bound."""
    r = measure_model(params, workdir, cell_type="gru")
    model, config = model_config(params, "gru")
    P, steady, bound = config.lanes, r["cycles_per_sequence"], r["sum_of_bounds"]
    lstm_step_bound = sum(cycle_bound(d.input_size, r["H"], lanes=P) for d in model.directions)
    return {
        **{k: r[k] for k in ("I", "H", "layers", "bidirectional", "head", "output", "P")},
        "steps": STEPS,
        "schedule": r["schedule"],
        "step_bound": int(EnginePlan(model, config).step_bound()),
        "lstm_step_bound": int(lstm_step_bound),
        "sum_of_bounds": bound,
        "mac_cycles": r["mac_cycles"],
        "recurrence_bound": r["recurrence_bound"],
        "cycles_per_sequence": steady,
        "cycles_per_step": steady / STEPS,
        "first_sequence_latency": r["first_sequence_latency"],
        "over_bound": steady / bound,
        "over_bound_per_step": (steady - bound) / STEPS,
        "over_recurrence_per_step": (steady - r["recurrence_bound"]) / STEPS,
        "verdict": _verdict((steady - bound) / STEPS, (steady - r["recurrence_bound"]) / STEPS),
        "utilization": bound / steady,
    }


HEADER = (
    f"{'I':>3} {'H':>3} {'L':>1} {'dir':>3} {'head':>4} {'out':>4} {'P':>3} "
    f"{'3H bound':>8} {'lanes':>8} {'recur':>8} {'cyc/seq':>8} {'cyc/step':>8} "
    f"{'x bound':>7} {'+/step':>6} {'LSTM/step':>9}  budget"
)


def row(r: dict) -> str:
    return (
        f"{r['I']:>3} {r['H']:>3} {r['layers']:>1} {'bi' if r['bidirectional'] else 'uni':>3} "
        f"{r['head'] or '-':>4} {r['output']:>4} {r['P']:>3} {r['sum_of_bounds']:>8} "
        f"{r['mac_cycles']:>8} {r['recurrence_bound']:>8} {r['cycles_per_sequence']:>8.0f} "
        f"{r['cycles_per_step']:>8.1f} {r['over_bound']:>7.3f} "
        f"{r['over_bound_per_step']:>6.2f} {r['lstm_step_bound']:>9}  {r['verdict']}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="only GRU(5, 16) + Linear, P=16")
    parser.add_argument("--json", type=Path, help="write the rows as JSON")
    args = parser.parse_args(argv)
    models = MODELS[:1] if args.demo else MODELS
    print(f"GRU cycles per sequence of {STEPS} steps (steady state) vs the bound")
    print(HEADER)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, params in enumerate(models):
            r = measure(params, Path(tmp) / f"m{k}")
            rows.append(r)
            print(row(r), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"steps": STEPS, "models": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
