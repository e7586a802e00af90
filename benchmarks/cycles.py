"""Cycles per time step of the generated hardware vs the bound ceil(4H(I+H)/P).

Each (I, H, P) of the grid is generated, compiled with Verilator (C++ harness of
``lstm_fpga.hw.harness``) and run on one sequence with the input always valid and the output
always ready. Cycles per step are measured in the steady state: the distance between the
last output beats of consecutive steps, averaged over all steps after the first. The
``cycles`` register (first input beat to last output beat of the sequence) is printed too.
The timing does not depend on the weight values (there is no data-dependent control), so
random weights are used throughout.

Also times Verilog generation for I = H = 256 and checks that H = 1024 generates.

    .venv/bin/python benchmarks/cycles.py                 # full grid (about 15 minutes)
    .venv/bin/python benchmarks/cycles.py --quick         # I, H in {8, 32}, P in {1, 4, 16}
    .venv/bin/python benchmarks/cycles.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from lstm_fpga.hw import HardwareConfig, PassGeometry, write_build
from lstm_fpga.hw.harness import run_harness
from lstm_fpga.sw.ir import LayerDirection, LstmModel
from lstm_fpga.sw.numerics import FixedFormat, LstmFormats, quantize

Q = FixedFormat.parse
FORMATS = LstmFormats(
    x=Q("Q3.12"),
    w_ih=Q("Q1.14"),
    w_hh=Q("Q1.14"),
    bias=Q("Q3.12"),
    preact=Q("Q4.11"),
    gate=Q("Q0.15"),
    cell=Q("Q4.11"),
    hidden=Q("Q0.15"),
)
#: Simulated cycles per configuration are kept around this many.
CYCLE_BUDGET = 3_000_000
OVERHEAD_BUDGET = 16


def random_model(input_size: int, hidden_size: int, seed: int = 0) -> LstmModel:
    rng = np.random.default_rng(seed)
    f, H, I = FORMATS, hidden_size, input_size
    limit = 1 / math.sqrt(H)
    direction = LayerDirection(
        0,
        False,
        quantize(rng.uniform(-limit, limit, (4 * H, I)), f.w_ih),
        quantize(rng.uniform(-limit, limit, (4 * H, H)), f.w_hh),
        quantize(rng.uniform(-1, 1, 4 * H), f.bias),
        f,
    )
    return LstmModel(I, H, 1, False, True, (direction,))


def measure(I: int, H: int, P: int, workdir: Path, input_elements: int = 1) -> dict:
    geometry = PassGeometry(I, H, P)
    model = random_model(I, H)
    config = HardwareConfig(lanes=P, input_elements=input_elements)
    build = write_build(model, config, workdir, memory_init="readmemh")
    steps = int(np.clip(CYCLE_BUDGET // max(geometry.mac_cycles_per_step, 1), 4, 40))
    rng = np.random.default_rng(1)
    x = quantize(rng.uniform(-4, 4, (steps, I)), FORMATS.x)
    run = run_harness(
        build,
        [x],
        FORMATS.x.width,
        FORMATS.hidden.width,
        hidden_size=H,
        input_elements=input_elements,
    )
    step_ends = run.output_cycles[H - 1 :: H]
    per_step = float(np.mean(np.diff(step_ends)))
    bound = geometry.bound
    return {
        "I": I,
        "H": H,
        "P": P,
        "input_elements": input_elements,
        "physical_lanes": geometry.lanes,
        "steps": steps,
        "bound": bound,
        "cycles_per_step": per_step,
        "overhead": per_step - bound,
        "utilization": bound / per_step,
        "sequence_cycles": run.sequence_cycles[-1],
        "input_elements_per_cycle_needed": I / bound,
    }


HEADER = (
    f"{'I':>4} {'H':>4} {'P':>3} {'k':>2} {'lanes':>5} {'bound':>7} {'cyc/step':>9} "
    f"{'over':>6} {'util':>6} {'x/cyc':>6}  budget   (k: input elements per beat)"
)


def row(r: dict) -> str:
    verdict = "ok" if r["overhead"] <= OVERHEAD_BUDGET else "OVER"
    if r["input_elements_per_cycle_needed"] > r["input_elements"]:
        verdict += " (input-bound)"
    return (
        f"{r['I']:>4} {r['H']:>4} {r['P']:>3} {r['input_elements']:>2} {r['physical_lanes']:>5} "
        f"{r['bound']:>7} {r['cycles_per_step']:>9.1f} {r['overhead']:>6.1f} "
        f"{r['utilization']:>6.1%} {r['input_elements_per_cycle_needed']:>6.2f}  {verdict}"
    )


def _generation(I: int, H: int, P: int) -> dict:
    """Time one generation in a fresh process (its peak memory is then its own)."""
    here = str(Path(__file__).parent)
    code = (
        f"import resource, sys, time; sys.path.insert(0, {here!r})\n"
        "from cycles import random_model\n"
        "from lstm_fpga.hw import generate_verilog\n"
        f"model = random_model({I}, {H}); start = time.perf_counter()\n"
        f"text = generate_verilog(model, {P})\n"
        "print(time.perf_counter() - start, len(text),"
        " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    for _attempt in range(2):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if run.returncode == 0:
            break
    if run.returncode != 0:
        return {"I": I, "H": H, "P": P, "error": run.stderr.strip().splitlines()[-1:]}
    out = run.stdout.split()
    seconds, size, rss_kib = float(out[0]), int(out[1]), int(out[2])
    return {
        "I": I,
        "H": H,
        "P": P,
        "seconds": round(seconds, 2),
        "verilog_mb": round(size / 1e6, 1),
        "peak_rss_gib": round(rss_kib / 2**20, 2),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small grid only")
    parser.add_argument("--jobs", type=int, default=2, help="configurations built in parallel")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--no-generation", action="store_true", help="skip generation timing")
    args = parser.parse_args(argv)
    sizes = (8, 32) if args.quick else (8, 32, 64, 256)
    lanes = (1, 4, 16) if args.quick else (1, 4, 16, 64)
    grid = [(I, H, P) for H in sizes for I in sizes for P in lanes]

    print(HEADER)
    results, widened = [], []
    with tempfile.TemporaryDirectory(prefix="lstm-cycles-") as tmp:

        def job(config):
            I, H, P, k = config
            return measure(I, H, P, Path(tmp) / f"i{I}_h{H}_p{P}_k{k}", k)

        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for r in pool.map(job, [(I, H, P, 1) for I, H, P in grid]):
                results.append(r)
                print(row(r), flush=True)
            # Input-bound shapes again, with enough input elements per beat for the bound.
            retry = [
                (r["I"], r["H"], r["P"], 1 << math.ceil(math.log2(r["I"] / r["bound"])))
                for r in results
                if r["input_elements_per_cycle_needed"] > 1
            ]
            if retry:
                print("\nInput-bound configurations again, with wider input beats:")
                print(HEADER)
            for r in pool.map(job, retry):
                widened.append(r)
                print(row(r), flush=True)
    if args.json:  # the grid first: generation timing below must not lose it
        args.json.write_text(json.dumps({"grid": results, "widened_input": widened}, indent=2))
    generation = []
    if not args.no_generation:
        print("\nVerilog generation (memory init inline):")
        for I, H, P in ((256, 256, 1), (256, 256, 16), (256, 256, 64), (1024, 1024, 64)):
            g = _generation(I, H, P)
            generation.append(g)
            if "error" in g:
                print(f"  I={I} H={H} P={P}: failed: {g['error']}")
                continue
            print(
                f"  I={I} H={H} P={P}: {g['seconds']:.1f} s, {g['verilog_mb']} MB of Verilog, "
                f"peak {g['peak_rss_gib']} GiB"
            )
    if args.json:
        summary = {"grid": results, "widened_input": widened, "generation": generation}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    within = sum(r["overhead"] <= OVERHEAD_BUDGET for r in results)
    over = {(r["I"], r["H"], r["P"]) for r in results if r["overhead"] > OVERHEAD_BUDGET}
    rescued = sum(
        r["overhead"] <= OVERHEAD_BUDGET and (r["I"], r["H"], r["P"]) in over for r in widened
    )
    print(
        f"\n{within}/{len(results)} configurations within bound + {OVERHEAD_BUDGET} with one "
        f"input element per beat; {within + rescued}/{len(results)} with wider beats where "
        f"the shape needs them"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
