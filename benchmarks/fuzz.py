"""The long fuzz campaign (``make fuzz``): hardware == reference over thousands of cases.

Runs ``tests/fuzz`` with the ``long`` profile (:mod:`tests.fuzz.profiles`: 6 configurations
per family x 90 cases, 4 families, plus the stream-protocol test over 200,000 beats and the
5,000-step sequences) under pytest-xdist, then prints a summary from the campaign log:
cases, configurations and what they covered, values compared, mismatches (must be 0),
float-bound violations (must be 0), the worst |reference - float| and worst error/bound
ratio per bit width, and build and run times.

    .venv/bin/python benchmarks/fuzz.py                 # seed 1, 2 workers
    .venv/bin/python benchmarks/fuzz.py --seed 7 -n 1   # another draw
    .venv/bin/python benchmarks/fuzz.py --json out.json

Exit status: pytest's (0 when every case was bit-exact and within the bound).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def summarize(records: list[dict]) -> dict:
    """Totals over the per-configuration records of a campaign log."""
    widths: dict[int, dict[str, float]] = {}
    features, case_features = Counter(), Counter()
    for r in records:
        features.update(r["features"])
        case_features.update(r["case_features"])
        w = widths.setdefault(r["width"], {"cases": 0, "worst_error": 0.0, "worst_ratio": 0.0})
        w["cases"] += r["cases"]
        w["worst_error"] = max(w["worst_error"], *r["worst_float_error"].values(), 0.0)
        w["worst_ratio"] = max(w["worst_ratio"], r["worst_bound_ratio"])
    return {
        "cases": sum(r["cases"] for r in records),
        "configurations": len(records),
        "distinct_configurations": len({r["configuration"] for r in records}),
        "families": dict(Counter(r["family"] for r in records)),
        "sequences": sum(r["sequences"] for r in records),
        "steps": sum(r["steps"] for r in records),
        "values_compared": sum(r["values"] for r in records),
        "mismatches": sum(len(r["mismatches"]) for r in records),
        "bound_violations": sum(len(r["bound_violations"]) for r in records),
        "configuration_features": dict(features),
        "case_features": dict(case_features),
        "per_width": {str(k): v for k, v in sorted(widths.items())},
        "build_seconds": sum(r["build_seconds"] for r in records),
        "run_seconds": sum(r["run_seconds"] for r in records),
    }


def _print(summary: dict, wall: float, status: int) -> None:
    s = summary
    print(f"fuzz campaign: {s['cases']} hardware cases on {s['configurations']} configurations")
    print(f"  families: {s['families']}")
    print(f"  {s['sequences']} sequences, {s['steps']} steps, {s['values_compared']} integers")
    print(f"  configurations with: {s['configuration_features']}")
    print(f"  cases with: {s['case_features']}")
    print(f"  mismatches: {s['mismatches']}, float-bound violations: {s['bound_violations']}")
    for width, w in s["per_width"].items():
        print(
            f"  {width:>2}-bit: {w['cases']:5d} cases, worst |reference - float| "
            f"{w['worst_error']:.3g}, worst error/bound {w['worst_ratio']:.3f}"
        )
    print(
        f"  builds {s['build_seconds']:.0f} s, simulations and checks {s['run_seconds']:.0f} s "
        f"(summed over workers); wall {wall:.0f} s; pytest exit {status}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="Hypothesis seed (default 1)")
    parser.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lstm-fpga-fuzz-") as log:
        env = os.environ | {
            "LSTM_FPGA_FUZZ_PROFILE": "long",
            "LSTM_FPGA_FUZZ_SEED": str(args.seed),
            "LSTM_FPGA_FUZZ_LOG": log,
        }
        command = [sys.executable, "-m", "pytest", "tests/fuzz", "-p", "no:cacheprovider"]
        command += ["-q", "-n", str(args.workers)]
        started = time.perf_counter()
        status = subprocess.call(command, cwd=REPO, env=env)
        wall = time.perf_counter() - started
        records = [
            json.loads(line) for path in sorted(Path(log).glob("*.jsonl")) for line in path.open()
        ]
    summary = summarize(records) | {"seed": args.seed, "wall_seconds": wall, "exit": status}
    _print(summary, wall, status)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
