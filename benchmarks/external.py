"""Weights from external memory, measured: ``lstm_top`` built with ``--weights external``
in cocotb against cocotbext-axi's ``AxiRamRead`` with a pipelined read latency.

For each shape (one layer, 16-bit formats, output every step) and memory read latency, this
builds the design (``HardwareConfig(weights="external", axi=AxiReadParams(...))``), runs
one sequence (``lstm_fpga.sim.external.external_run``; no throttling) and reports per step:

* **cycles/step** measured: the spacing of the steps' last ``y`` beats in the steady state
  (the first step excluded), against the contract's bound (``hw/limits.py`` ``cycles``: the
  recurrence step bound, at least the lane bound ``ceil(4H(I+H)/P)``) -- the on-chip figure;
* **bytes/step** measured: the bytes of the read bursts over the run, per step (the run
  also prefetches up to a FIFO's worth for the step after the last), against the weight
  bytes of one step of ``hw/limits.py``;
* **GB/s needed** at the clock (nominal 100 MHz): one step's bytes every bound cycles;
* the Verilator build and simulation wall times.

The AXI master's FIFO is sized for ``sized`` cycles of latency (``--axi-latency``); the
memory's latency is ``latency``: a memory slower than the FIFO was sized for shows as
cycles above the bound.

    .venv/bin/python benchmarks/external.py                      # the table (markdown)
    .venv/bin/python benchmarks/external.py --json benchmarks/results/external.json
    .venv/bin/python benchmarks/external.py --table benchmarks/results/external.json

``--interleave``: weight reuse instead (``--interleave B`` with external weights,
``docs/interleave.md#external-weights-weight-reuse``): LSTM(5,16), P = 64, a 1,024-bit bus,
memory latency 64, one group of ``B`` sequences of ``T`` = 8 and of 16 steps; and LSTM(16,32)
on P = 16 lanes (8 passes of the gate matrix), a 256-bit bus, ``T`` = 4 and 8; for ``B = 1,
2, 4``: per group step the bytes read (the difference of the two runs' bursts over ``T``: the
prefetch at the end cancels), per sequence-step those over ``B``, the cycles (spacing of the
group steps' last ``y`` beats, over ``B``) and the lane utilisation (multiplies over built
lanes x cycles); and I = H = 1024 on P = 64 (64 passes), ``T`` = 1 and 2, ``B = 2`` (``B =
1``: the table above). ``--shape`` picks some of :data:`INTERLEAVE_ROWS`.

    .venv/bin/python benchmarks/external.py --interleave --shape 5x16-P64 \
        --json benchmarks/results/external_interleave.json
    .venv/bin/python benchmarks/external.py --interleave --shape 16x32-P16 \
        --json benchmarks/results/external_interleave_passes.json
    .venv/bin/python benchmarks/external.py --interleave --shape 1024x1024-P64 \
        --json benchmarks/results/external_interleave_1024.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from lstm_fpga.hw import HardwareConfig
from lstm_fpga.hw.external import AxiReadParams
from lstm_fpga.hw.limits import design_limits
from lstm_fpga.sim.external import external_run
from lstm_fpga.testing import random_model

#: (I, H, P, AXI data width, steps, [(memory latency, latency the FIFO is sized for)])
ROWS = (
    (16, 16, 16, 256, 6, [(8, 8), (64, 64), (200, 200), (200, 16)]),
    (64, 64, 16, 256, 4, [(8, 8), (64, 64), (200, 200), (200, 16)]),
    (64, 64, 64, 1024, 4, [(8, 8), (64, 64), (200, 200), (200, 16)]),
    (1024, 1024, 64, 1024, 2, [(100, 100)]),
)


def measure(I, H, P, width, steps, latency, sized, work: Path) -> dict:
    model = random_model(I, H, seed=1)
    params = AxiReadParams(data_width=width, burst=16, latency=sized)
    config = HardwareConfig(lanes=P, weights="external", axi=params)
    start = time.monotonic()
    interface, image, _sequences, got = external_run(
        model, config, [steps], (latency, latency), 0.0, 1, work / f"{I}x{H}-{P}-{latency}"
    )
    wall = time.monotonic() - start
    limits = design_limits(interface.plan)
    beats = interface.y_beats([steps]).sum() // steps
    ends = [got["y_cycles"][(k + 1) * beats - 1] for k in range(steps)]
    per_step = (ends[-1] - ends[0]) / (steps - 1)
    fetched = sum(b for _address, b in got["reads"]) * params.bytes_per_beat
    return {
        "shape": f"{I}x{H} P{P}",
        "data_width": width,
        "memory_latency": latency,
        "sized_for_latency": sized,
        "outstanding": params.outstanding,
        "fifo_beats": params.fifo_beats,
        "steps": steps,
        "cycles_per_step": per_step,
        "bound": limits.cycles_per_step,
        "lane_bound": interface.plan.step_bound(),
        "bytes_per_step_limits": limits.bytes_per_step,
        "image_bytes": image.bytes,
        "fetched_bytes": fetched,
        "prefetched_beyond_steps": fetched - steps * image.bytes,
        "gbps_needed": limits.gbps_needed,
        "clock_mhz": limits.clock.mhz,
        "wall_s": round(wall, 1),
    }


#: (I, H, P, AXI data width, steps per sequence, memory latency, B values): one pass per
#: matrix (P = 4H), then a matrix of several passes (P = 16 < 4H = 128: 8 passes).
INTERLEAVE_ROWS = {
    "5x16-P64": (5, 16, 64, 1024, 8, 64, (1, 2, 4)),
    "16x32-P16": (16, 32, 16, 256, 4, 64, (1, 2, 4)),
    # the model too big for any listed part's block RAM: 64 passes of 2,048 columns
    "1024x1024-P64": (1024, 1024, 64, 1024, 1, 100, (2,)),
}


def measure_interleave(I, H, P, width, steps, latency, B, work: Path) -> dict:
    """One design, two runs (``steps`` and ``2 steps`` per sequence): the bytes per group
    step are the difference of the bytes read over the difference of the steps (the
    prefetch at the end, a full FIFO, cancels); cycles from the longer run."""
    from lstm_fpga.sw.reference import run_reference
    from lstm_fpga.testing import padded

    model = random_model(I, H, seed=1)
    params = AxiReadParams(data_width=width, burst=16, latency=latency)
    config = HardwareConfig(lanes=P, weights="external", axi=params, interleave=B)
    start = time.monotonic()
    runs = {}
    for n in (steps, 2 * steps):
        lengths = [n] * B
        interface, image, sequences, got = external_run(
            model, config, lengths, (latency, latency), 0.0, 1, work / f"il{B}-{n}", work / "c"
        )
        ref = run_reference(model, padded(sequences), lengths=lengths, head_on="all")
        expected = [int(v) for b in range(B) for v in ref.output[:n, b].reshape(-1)]
        fetched = sum(b for _address, b in got["reads"]) * params.bytes_per_beat
        runs[n] = (got, fetched, got["y"] == expected)
    wall = time.monotonic() - start
    got, fetched, _ = runs[2 * steps]
    limits = design_limits(interface.plan)
    group_beats = B * interface.y_features  # y beats of one group step (wire order)
    ends = [got["y_cycles"][(k + 1) * group_beats - 1] for k in range(2 * steps)]
    per_group_step = (ends[-1] - ends[0]) / (2 * steps - 1)
    per_sequence_step = per_group_step / B
    per_group_bytes = (runs[2 * steps][1] - runs[steps][1]) / steps
    return {
        "shape": f"{I}x{H} P{P}",
        "interleave": B,
        "data_width": width,
        "memory_latency": latency,
        "steps": [steps, 2 * steps],
        "bit_exact": all(exact for _got, _fetched, exact in runs.values()),
        "cycles_per_group_step": per_group_step,
        "cycles_per_sequence_step": per_sequence_step,
        "lane_bound": interface.plan.step_bound(),
        "bound": limits.cycles_per_step,
        "lane_utilisation": limits.macs_per_step / (interface.plan.lanes * per_sequence_step),
        "passes": interface.plan.lstm_matrices[0].passes,
        "image_bytes": image.bytes,
        "fetched_bytes": [runs[n][1] for n in (steps, 2 * steps)],
        "bytes_per_group_step": per_group_bytes,
        "bytes_per_sequence_step": per_group_bytes / B,
        "bytes_per_step_limits": limits.bytes_per_step,
        "wall_s": round(wall, 1),
    }


def interleave_table(rows) -> list[str]:
    lines = [
        "| shape (passes) | B | bit-exact | cycles per group step | cycles per sequence-step "
        "| lane bound | contract bound | lane utilisation | bytes read (runs of T, 2T steps) "
        "| bytes per group step | bytes per sequence-step | limits.py | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        fetched = ", ".join(f"{f:,}" for f in r["fetched_bytes"])
        lines.append(
            f"| {r['shape']} ({r.get('passes', 1)}) "
            f"| {r['interleave']} | {'yes' if r['bit_exact'] else 'NO'} "
            f"| {r['cycles_per_group_step']:g} | {r['cycles_per_sequence_step']:g} "
            f"| {r['lane_bound']} | {r['bound']} | {100 * r['lane_utilisation']:.1f} % "
            f"| {fetched} "
            f"| {r['bytes_per_group_step']:,.0f} | {r['bytes_per_sequence_step']:,.0f} "
            f"| {r['bytes_per_step_limits']:,.0f} | {r['wall_s']} |"
        )
    return lines


def table(rows) -> list[str]:
    lines = [
        "| shape | bus bits | memory latency | FIFO sized for (outstanding) | cycles/step "
        "| bound | bytes/step (limits.py) | bytes read: steps x image + prefetch "
        "| GB/s needed | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['data_width']} | {r['memory_latency']} "
            f"| {r['sized_for_latency']} ({r['outstanding']}) | {r['cycles_per_step']:g} "
            f"| {r['bound']} | {r['image_bytes']:,} ({r['bytes_per_step_limits']:,.0f}) "
            f"| {r['fetched_bytes']:,} = {r['steps']} x {r['image_bytes']:,} + "
            f"{r['prefetched_beyond_steps']:,} | {r['gbps_needed']:.2f} @ {r['clock_mhz']:g} MHz "
            f"| {r['wall_s']} |"
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--small", action="store_true", help="skip the I=H=1024 row")
    parser.add_argument("--table", type=Path, help="print the table of saved rows and exit")
    parser.add_argument(
        "--interleave", action="store_true", help="weight reuse with --interleave B = 1, 2, 4"
    )
    parser.add_argument(
        "--shape",
        choices=sorted(INTERLEAVE_ROWS),
        action="append",
        help="with --interleave: only these shapes (default: all)",
    )
    args = parser.parse_args(argv)
    if args.table:
        rows = json.loads(args.table.read_text())
        print("\n".join((interleave_table if "interleave" in rows[0] else table)(rows)))
        return 0
    rows = []
    if args.interleave:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.shape or INTERLEAVE_ROWS:
                I, H, P, width, steps, latency, bs = INTERLEAVE_ROWS[name]
                for B in bs:
                    row = measure_interleave(I, H, P, width, steps, latency, B, Path(tmp))
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
        print("\n".join(interleave_table(rows)))
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for I, H, P, width, steps, latencies in ROWS[:-1] if args.small else ROWS:
            for latency, sized in latencies:
                rows.append(measure(I, H, P, width, steps, latency, sized, Path(tmp)))
                print(json.dumps(rows[-1]), file=sys.stderr)
    print("\n".join(table(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
