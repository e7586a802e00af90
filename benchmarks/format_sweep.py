"""Sweep extreme format combinations: the integer reference against exact integer arithmetic.

Runs the property test's strategy (``tests/sw/test_exact_reference.py``: one layer
direction, widths 2..62, fraction bits -64..64, both roundings and overflow modes) for
``--cases`` seeded cases and counts the cases the IR refuses, the cases computed and equal to
the independent Python-integer model, and the cases that differ. ``--unchecked`` disables the
IR's width check (``check_exact``) to show what the check prevents.

    python benchmarks/format_sweep.py --cases 1000
    python benchmarks/format_sweep.py --cases 1000 --unchecked
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lstm_fpga.sw.ir as ir
from lstm_fpga.sw.reference import run_reference
from tests.sw import test_exact_reference as exact


def sweep(cases: int) -> collections.Counter:
    counts = collections.Counter()

    @settings(
        max_examples=cases,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(model=exact.models(), data=st.data())
    def one(model, data):
        if isinstance(model, Exception):
            counts["refused"] += 1
            return
        f, H = model.directions[0].formats, model.hidden_size
        draw = data.draw
        xs = [list(map(int, exact._ints(draw, (model.input_size,), f.x))) for _ in range(2)]
        h0 = list(map(int, exact._ints(draw, (H,), f.hidden)))
        c0 = list(map(int, exact._ints(draw, (H,), f.cell)))
        outputs, h_n, c_n, saturations = exact.exact_run(model, xs, h0, c0)
        try:
            result = run_reference(model, np.array(xs), np.array([h0]), np.array([c0]))
        except (OverflowError, ValueError) as error:
            counts[f"reference failed ({type(error).__name__})"] += 1
            return
        same = (
            result.output.tolist() == outputs
            and result.h_n[0].tolist() == h_n
            and result.c_n[0].tolist() == c_n
            and saturations == {k: getattr(result.saturations, k) for k in saturations}
        )
        counts["computed, equal" if same else "computed, DIFFERENT"] += 1

    one()
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--unchecked", action="store_true", help="disable the width check")
    args = parser.parse_args(argv)
    if args.unchecked:
        ir.check_exact = lambda name, widths: None
    counts = sweep(args.cases)
    mode = "width check disabled" if args.unchecked else "width check on"
    print(f"{args.cases} cases ({mode}): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
