"""What limits each design of the benchmark grid: lanes, recurrence, or a weight memory.

For the demo model ``LSTM(5, 16) + Linear(16, 1)`` (output "last", P = 16) and I = H in
{64, 128, 256, 1024} x P in {4, 16, 64} (one layer, 16-bit formats): cycles per step (the
contract's recurrence bound, ``TopInterface.recurrence_step_bound``, at least the lane bound
``ceil(4H(I+H)/P)``), weight bytes the lanes read per step, the bandwidth that keeps the lanes
busy, and the step time and lane utilisation if the weights came from a memory of each
bandwidth (``lstm_fpga.hw.limits``). The clock is the median Fmax of
``benchmarks/results/fmax.json`` where it has the configuration, else the nominal 100 MHz
(marked).

COMPUTED from the contract, not simulated: the memory columns are what a build with
``--weights external`` (the AXI4 read master, docs/external.md) would give if its memory
delivered that bandwidth; ``benchmarks/external.py`` measures the traffic and cycles of such
builds in simulation (bytes per step equal to these figures).

Memory bandwidths (peak, 10^9 bytes/s; sustained rates are lower, refresh and bank switches
cost 10-30 %):

* 0.2  SDR SDRAM, 16 bits at 100 MHz (ULX3S: 32 MB, IS42S16160);
* 1.6  DDR3-800, 16 bits (400 MHz clock, the ECP5 DDR3 interface's top rate; ECPIX-5);
* 4.3  DDR3-1066, 32 bits (Zynq-7020 processing system's DDR controller);
* 19.2 DDR4-2400, 64 bits (Zynq UltraScale+ processing system's DDR controller).

    .venv/bin/python benchmarks/limits.py                  # the table (markdown)
    .venv/bin/python benchmarks/limits.py --gbps 0.2 --gbps 3.2
    .venv/bin/python benchmarks/limits.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.limits import NOMINAL_CLOCK_MHZ, Clock, design_limits
from lstm_fpga.testing import random_model

FMAX = Path(__file__).parent / "results" / "fmax.json"
#: (GB/s, what it is)
MEMORIES = (
    (0.2, "SDRAM x16 @ 100 MHz (ULX3S)"),
    (1.6, "DDR3-800 x16 (ECP5, ECPIX-5)"),
    (4.3, "DDR3-1066 x32 (Zynq-7020 PS)"),
    (19.2, "DDR4-2400 x64 (ZynqMP PS)"),
)
#: name -> (I, H, head outputs or None, P); names as in benchmarks/fmax.py
CONFIGS = {
    "demo": (5, 16, 1, 16),
    **{f"{n}x{p}": (n, n, None, p) for n in (64, 128, 256, 1024) for p in (4, 16, 64)},
}


def clocks(path: Path = FMAX) -> dict[str, Clock]:
    """The median measured Fmax of each configuration of ``fmax.json`` (all its seeds and
    Verilog families)."""
    rows = json.loads(path.read_text()) if path.is_file() else []
    found = {}
    for name in {r["config"] for r in rows}:
        runs = [r for r in rows if r["config"] == name and r.get("fmax_mhz")]
        # The generic Verilog's runs (fmax.py's default family) where there are some.
        generic = [r for r in runs if r.get("family", "generic") == "generic"]
        runs = generic or runs
        if runs:
            mhz = statistics.median(r["fmax_mhz"] for r in runs)
            family = runs[0].get("family", "generic")
            source = (
                f"measured {mhz:g} MHz (median of {len(runs)}, {family} Verilog, ECP5-85F, "
                f"fmax.json)"
            )
            found[name] = Clock(mhz, True, source)
    return found


def _num(x: float) -> str:
    """A figure with three significant digits, thousands separated, no exponent."""
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def rows(gbps, nominal_mhz: float = NOMINAL_CLOCK_MHZ) -> list[dict]:
    measured = clocks()
    result = []
    for name, (I, H, head, P) in CONFIGS.items():
        model = random_model(I, H, head=head)
        plan = EnginePlan(model, HardwareConfig(lanes=P, output="last" if head else "all"))
        clock = measured.get(name, Clock.nominal(nominal_mhz))
        limits = design_limits(plan, clock)
        result.append({"config": name, "I": I, "H": H, "head": head, "P": P,
                       **limits.to_json_dict(gbps)})  # fmt: skip
    return result


def table(data: list[dict], memories) -> str:
    names = " | ".join(f"{g:g} GB/s" for g in memories)
    lines = [
        f"| model | P | clock MHz | cycles/step (lane bound) | µs/step | weight KiB/step "
        f"(zeros) | GB/s needed | {names} |",
        "|---|---|---|---|---|---|---|" + "---|" * len(memories),
    ]
    for row in data:
        model = "LSTM(5,16)+Linear" if row["config"] == "demo" else f"I=H={row['H']}"
        clock = row["clock"]
        mhz = f"{clock['mhz']:g}" + ("" if clock["measured"] else " (nominal)")
        cells = [
            f"{m['bound']} {_num(m['us_per_step'])} µs ({m['lane_utilisation_percent']:.0f} %)"
            for m in row["memory"]
        ]
        lines.append(
            f"| {model} | {row['P']} | {mhz} | {row['cycles_per_step']} "
            f"({row['lane_bound_per_step']}) | {_num(row['us_per_step_compute'])} | "
            f"{_num(row['weight_bytes_per_step'] / 1024)} "
            f"({_num(row['structural_zero_bytes_per_step'] / 1024)}) | "
            f"{_num(row['weight_gbps_needed'])} | {' | '.join(cells)} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gbps", type=float, action="append", help="memory bandwidths (default: the list above)"
    )
    parser.add_argument(
        "--nominal-mhz",
        type=float,
        default=NOMINAL_CLOCK_MHZ,
        help=f"clock where fmax.json has no measurement ({NOMINAL_CLOCK_MHZ:g})",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    memories = args.gbps or [g for g, _ in MEMORIES]
    if any(not g > 0 for g in memories) or not args.nominal_mhz > 0:
        parser.error("--gbps and --nominal-mhz must be positive")
    data = rows(memories, args.nominal_mhz)
    print(
        "Computed from the contract (recurrence and lane bounds, the builds' weight formats), "
        "not simulated:\nthe memory columns are what `--weights external` would give with "
        "that memory's bandwidth\n(benchmarks/external.py measures external builds in "
        "simulation).\n"
    )
    if not args.gbps:
        for g, what in MEMORIES:
            print(f"  {g:g} GB/s: {what} (peak)")
        print()
    print(table(data, memories))
    print(
        "\nmemory cells: bound, µs per step, lane utilisation; µs/step and GB/s needed: "
        "compute-bound at the clock"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
