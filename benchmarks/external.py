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
    args = parser.parse_args(argv)
    if args.table:
        print("\n".join(table(json.loads(args.table.read_text()))))
        return 0
    rows = []
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
