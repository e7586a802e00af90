"""Cycles per time step of the generated hardware vs the bound ceil(4H(I+H)/P) and vs the
recurrence bound.

Each (I, H, P) of the grid is generated, compiled with Verilator (C++ harness of
``lstm_fpga.sim.verilator_harness``) and run on one sequence with the input always valid and
the output always ready. Cycles per step are measured in the steady state: the distance between the
last output beats of consecutive steps, averaged over all steps after the first. The
``cycles`` register (first input beat to last output beat of the sequence) is printed too.
The timing does not depend on the weight values (there is no data-dependent control), so
random weights are used throughout.

Two bounds: the lanes' ``ceil(4H(I+H)/P)`` (``TopInterface.step_bound``) and the recurrence
bound (``TopInterface.recurrence_step_bound``): the walk's period when a step's first pass
needs ``h`` of the previous step sooner than the recurrence loop (element read, lanes,
drain, gate and cell pipeline, less the scoreboard's announcement lead) delivers it, from
the blocks' latencies. Short jobs (small I + H, many lanes) are limited by the second;
interleaving independent sequences is what would hide it.

Then whole models (stacked, bidirectional, with a head, output "all" or "last"): three
sequences back to back; prints the cycles per sequence (steady state: distance between the
final output beats of consecutive sequences, and the ``cycles`` register of the first
sequence, which has no queueing in front of it) against the sum of the bounds
(``EnginePlan.sequence_bound``: every layer direction's ``ceil(4H(I_k+H)/P)`` per step plus
the head's ``ceil(O*D*H/P)`` per step or once) and the lanes' busy cycles (passes x spans).

Then two multiplies per DSP (``--dsp-packing 2``, issue 13 item 4): 8-bit weights and
elements, ``2D`` packed lanes on ``D`` DSPs against the unpacked bound at ``D`` DSPs: cycles per
step vs ``ceil(bound / 2) + 4`` (and the packed build's recurrence bound).

Also times Verilog generation for I = H = 256 and checks that H = 1024 generates.

    .venv/bin/python benchmarks/cycles.py                 # full grid (about 20 minutes)
    .venv/bin/python benchmarks/cycles.py --quick         # I, H in {8, 32}, P in {1, 4, 16}
    .venv/bin/python benchmarks/cycles.py --models-only   # only the whole-model table
    .venv/bin/python benchmarks/cycles.py --packed-only   # only the packed (2 per DSP) rows
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

from lstm_fpga.hw import EnginePlan, HardwareConfig, write_build
from lstm_fpga.sim.verilator_harness import run_harness
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.testing import FORMAT_SETS, random_model, width_formats

FORMATS = FORMAT_SETS["q16_even"]
#: Simulated cycles per configuration are kept around this many.
CYCLE_BUDGET = 3_000_000
#: Cycles per step over the bound allowed in the steady state (issue 10).
OVERHEAD_BUDGET = 4


#: Whole models: (I, H, layers, bidirectional, head outputs, output mode, P). The first two
#: are the product demos (MSFT forecaster, digit classifier).
MODELS = (
    (5, 16, 1, False, 1, "last", 16),
    (8, 24, 1, False, 10, "last", 16),
    (32, 32, 2, False, None, "all", 16),
    (32, 32, 3, False, 4, "all", 16),
    (64, 64, 2, False, None, "last", 64),
    (8, 8, 2, False, None, "all", 64),
    (32, 32, 1, True, None, "all", 16),
    (32, 32, 2, True, None, "all", 16),
    (32, 32, 2, True, 10, "last", 16),
    (64, 64, 2, True, 10, "last", 64),
)
MODEL_STEPS = 20


def model_config(params, cell_type: str = "lstm") -> tuple:
    """The seeded random model (``q16_even`` formats; a GRU's without ``cell``) and the
    hardware configuration of a :data:`MODELS` row."""
    I, H, L, bidirectional, head, output, P = params
    model = random_model(I, H, L, bidirectional, head=head, formats="q16_even", cell_type=cell_type)
    return model, HardwareConfig(lanes=P, output=output, max_seq_len=MODEL_STEPS)


def measure_model(params, workdir: Path, cell_type: str = "lstm") -> dict:
    """A :data:`MODELS` row (of an ``nn.LSTM``, or ``cell_type="gru"``) built and run on three
    sequences back to back: the steady state from the distance of their final output beats
    (``tlast``), against the sum of the bounds and the recurrence bound."""
    I, H, L, bidirectional, head, output, P = params
    model, config = model_config(params, cell_type)
    build = write_build(model, config, workdir, memory_init="readmemh")
    plan = build.interface.plan
    rng = np.random.default_rng(1)
    sequences = [quantize(rng.uniform(-4, 4, (MODEL_STEPS, I)), FORMATS.x) for _ in range(3)]
    run = run_harness(build, sequences)
    ends = run.output_cycles[run.last_flags == 1]
    steady = float(np.mean(np.diff(ends)))
    bound = int(plan.sequence_bound(MODEL_STEPS))
    recurrence = int(build.interface.recurrence_sequence_bound(MODEL_STEPS))  # NumPy's
    return {
        "I": I,
        "H": H,
        "layers": L,
        "bidirectional": bidirectional,
        "head": head,
        "output": output,
        "P": P,
        "steps": MODEL_STEPS,
        "schedule": plan.schedule,
        "sum_of_bounds": bound,
        "recurrence_bound": recurrence,
        "mac_cycles": int(plan.sequence_mac_cycles(MODEL_STEPS)),
        "cycles_per_sequence": steady,
        "first_sequence_latency": int(run.sequence_cycles[0]),
        "overhead_per_step": (steady - bound) / MODEL_STEPS,
        "over_recurrence_per_step": (steady - recurrence) / MODEL_STEPS,
        "utilization": bound / steady,
    }


MODEL_HEADER = (
    f"{'I':>3} {'H':>3} {'L':>1} {'dir':>3} {'head':>4} {'out':>4} {'P':>3} "
    f"{'bounds':>8} {'recur':>8} {'mac':>8} {'cyc/seq':>8} {'latency':>8} {'over/step':>9} "
    f"{'util':>6}  budget   (recur: recurrence bound)"
)


def _verdict(over: float, over_recurrence: float) -> str:
    """``ok`` within the budget over the lane bound; else ``at recur`` where the hardware
    takes no more than its recurrence bound (the loop or the passes' shape limit it)."""
    if over <= OVERHEAD_BUDGET:
        return "ok"
    return "at recur" if over_recurrence <= 0 else "OVER"


def model_row(r: dict) -> str:
    return (
        f"{r['I']:>3} {r['H']:>3} {r['layers']:>1} {'bi' if r['bidirectional'] else 'uni':>3} "
        f"{r['head'] or '-':>4} {r['output']:>4} {r['P']:>3} {r['sum_of_bounds']:>8} "
        f"{r['recurrence_bound']:>8} {r['mac_cycles']:>8} {r['cycles_per_sequence']:>8.0f} "
        f"{r['first_sequence_latency']:>8} {r['overhead_per_step']:>9.1f} "
        f"{r['utilization']:>6.1%}  "
        f"{_verdict(r['overhead_per_step'], r['over_recurrence_per_step'])}"
    )


def measure(I: int, H: int, P: int, workdir: Path, input_elements: int = 1) -> dict:
    model = random_model(I, H, formats="q16_even")
    config = HardwareConfig(lanes=P, input_elements=input_elements)
    build = write_build(model, config, workdir, memory_init="readmemh")
    plan = build.interface.plan
    steps = int(np.clip(CYCLE_BUDGET // max(plan.matrices[0].mac_cycles, 1), 4, 40))
    rng = np.random.default_rng(1)
    x = quantize(rng.uniform(-4, 4, (steps, I)), FORMATS.x)
    run = run_harness(build, [x])
    step_ends = run.output_cycles[H - 1 :: H]
    per_step = float(np.mean(np.diff(step_ends)))
    bound = int(plan.step_bound())
    recurrence = int(build.interface.recurrence_step_bound)  # a NumPy integer: not JSON
    return {
        "I": I,
        "H": H,
        "P": P,
        "input_elements": input_elements,
        "physical_lanes": plan.lanes,
        "steps": steps,
        "bound": bound,
        "recurrence_bound": recurrence,
        "cycles_per_step": per_step,
        "overhead": per_step - bound,
        "over_recurrence": per_step - recurrence,
        "utilization": bound / per_step,
        "sequence_cycles": int(run.sequence_cycles[-1]),
        "input_elements_per_cycle_needed": I / bound,
    }


HEADER = (
    f"{'I':>4} {'H':>4} {'P':>3} {'k':>2} {'lanes':>5} {'bound':>7} {'recur':>7} {'cyc/step':>9} "
    f"{'over':>6} {'util':>6} {'x/cyc':>6}  budget   (k: input elements per beat; recur: "
    "recurrence bound)"
)


def row(r: dict) -> str:
    verdict = _verdict(r["overhead"], r["over_recurrence"])
    if r["input_elements_per_cycle_needed"] > r["input_elements"]:
        verdict += " (input-bound)"
    return (
        f"{r['I']:>4} {r['H']:>4} {r['P']:>3} {r['input_elements']:>2} {r['physical_lanes']:>5} "
        f"{r['bound']:>7} {r['recurrence_bound']:>7} {r['cycles_per_step']:>9.1f} "
        f"{r['overhead']:>6.1f} "
        f"{r['utilization']:>6.1%} {r['input_elements_per_cycle_needed']:>6.2f}  {verdict}"
    )


#: Packed rows: (I, H, DSPs); 2 x DSPs logical lanes, 8-bit weights and elements.
PACKED = ((8, 8, 4), (32, 32, 4), (32, 32, 16), (64, 64, 16), (64, 64, 32), (256, 256, 64))
PACKED_QUICK = ((8, 8, 4), (32, 32, 4), (32, 32, 16))


def measure_packed(I: int, H: int, dsps: int, workdir: Path) -> dict:
    """``2 * dsps`` lanes packed two per DSP (8-bit weights and elements) against the
    unpacked lane bound at ``dsps`` DSPs: cycles per step in the steady state."""
    layer, head = width_formats(8)
    model = random_model(I, H, formats=layer, head_formats=head)
    unpacked = HardwareConfig(lanes=dsps)
    config = HardwareConfig(lanes=2 * dsps, dsp_packing=2)
    build = write_build(model, config, workdir, memory_init="readmemh")
    plan = build.interface.plan
    unpacked_bound = EnginePlan(model, unpacked).step_bound()
    steps = int(np.clip(CYCLE_BUDGET // max(plan.matrices[0].mac_cycles, 1), 4, 40))
    rng = np.random.default_rng(1)
    x = quantize(rng.uniform(-4, 4, (steps, I)), model.input_format)
    run = run_harness(build, [x])
    per_step = float(np.mean(np.diff(run.output_cycles[H - 1 :: H])))
    target = -(-unpacked_bound // 2) + OVERHEAD_BUDGET
    recurrence = int(build.interface.recurrence_step_bound)
    return {
        "I": I,
        "H": H,
        "dsps": plan.lane_dsps,
        "lanes": plan.lanes,
        "unpacked_bound": unpacked_bound,
        "target": target,
        "bound": plan.step_bound(),
        "recurrence_bound": recurrence,
        "cycles_per_step": per_step,
        "within_target": bool(per_step <= target),
        "over_recurrence": per_step - recurrence,
    }


PACKED_HEADER = (
    f"{'I':>4} {'H':>4} {'DSPs':>4} {'lanes':>5} {'bound@D':>8} {'target':>7} {'recur':>7} "
    f"{'cyc/step':>9}  verdict   (bound@D: unpacked bound at D DSPs; target: "
    f"ceil(bound@D/2)+{OVERHEAD_BUDGET}; recur: the packed build's recurrence bound)"
)


def packed_row(r: dict) -> str:
    verdict = "ok" if r["within_target"] else "at recur" if r["over_recurrence"] <= 0 else "OVER"
    return (
        f"{r['I']:>4} {r['H']:>4} {r['dsps']:>4} {r['lanes']:>5} {r['unpacked_bound']:>8} "
        f"{r['target']:>7} {r['recurrence_bound']:>7} {r['cycles_per_step']:>9.1f}  {verdict}"
    )


def _generation(I: int, H: int, P: int) -> dict:
    """Time one generation in a fresh process (its peak memory is then its own)."""
    code = (
        "import resource, time\n"
        "from lstm_fpga.testing import random_model\n"
        "from lstm_fpga.hw import generate_verilog\n"
        f"model = random_model({I}, {H}, formats='q16_even'); start = time.perf_counter()\n"
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
    parser.add_argument(
        "--models-only", action="store_true", help="only the whole-model table (no grid)"
    )
    parser.add_argument(
        "--packed-only", action="store_true", help="only the two-per-DSP rows (--dsp-packing 2)"
    )
    args = parser.parse_args(argv)
    if args.packed_only:
        return _packed_main(args)
    sizes = (8, 32) if args.quick else (8, 32, 64, 256)
    lanes = (1, 4, 16) if args.quick else (1, 4, 16, 64)
    grid = [] if args.models_only else [(I, H, P) for H in sizes for I in sizes for P in lanes]

    results, widened, models = [], [], []
    with tempfile.TemporaryDirectory(prefix="lstm-cycles-") as tmp:
        print("Whole models, three sequences of", MODEL_STEPS, "steps back to back:")
        print(MODEL_HEADER)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            directories = [Path(tmp) / f"model{k}" for k in range(len(MODELS))]
            for r in pool.map(measure_model, MODELS, directories):
                models.append(r)
                print(model_row(r), flush=True)
        if grid:
            print("\nOne layer direction:")
            print(HEADER)

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
    packed = [] if args.models_only else _packed_rows(args)
    if args.json:  # the grid first: generation timing below must not lose it
        summary = {"models": models, "grid": results, "widened_input": widened, "packed": packed}
        args.json.write_text(json.dumps(summary, indent=2))
    generation = []
    if not args.no_generation and not args.models_only:
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
        summary = {
            "models": models,
            "grid": results,
            "widened_input": widened,
            "packed": packed,
            "generation": generation,
        }
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if models:
        fine = sum(r["overhead_per_step"] <= OVERHEAD_BUDGET for r in models)
        at_recurrence = sum(r["over_recurrence_per_step"] <= 0 for r in models)
        print(
            f"\n{fine}/{len(models)} models within the sum of bounds + {OVERHEAD_BUDGET}/step; "
            f"{at_recurrence}/{len(models)} at their recurrence bound"
        )
    if not results:
        return 0
    within = sum(r["overhead"] <= OVERHEAD_BUDGET for r in results)
    over = {(r["I"], r["H"], r["P"]) for r in results if r["overhead"] > OVERHEAD_BUDGET}
    rescued = sum(
        r["overhead"] <= OVERHEAD_BUDGET and (r["I"], r["H"], r["P"]) in over for r in widened
    )
    at_recurrence = sum(r["over_recurrence"] <= 0 for r in results)
    print(
        f"\n{within}/{len(results)} configurations within bound + {OVERHEAD_BUDGET} with one "
        f"input element per beat; {within + rescued}/{len(results)} with wider beats where "
        f"the shape needs them; {at_recurrence}/{len(results)} at their recurrence bound"
    )
    return 0


def _packed_rows(args) -> list[dict]:
    """Measure and print the packed rows (:data:`PACKED`, or :data:`PACKED_QUICK`)."""
    grid = PACKED_QUICK if args.quick else PACKED
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstm-packed-") as tmp:
        print("\nTwo multiplies per DSP (8-bit weights and elements, --dsp-packing 2):")
        print(PACKED_HEADER)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            directories = [Path(tmp) / f"packed_{I}_{H}_{D}" for I, H, D in grid]
            for r in pool.map(lambda g, d: measure_packed(*g, d), grid, directories):
                rows.append(r)
                print(packed_row(r), flush=True)
    within = sum(r["within_target"] for r in rows)
    at_recurrence = sum(not r["within_target"] and r["over_recurrence"] <= 0 for r in rows)
    print(
        f"\n{within}/{len(rows)} packed configurations within ceil(bound/2) + "
        f"{OVERHEAD_BUDGET} at the same DSP count; {at_recurrence} more at their recurrence bound"
    )
    return rows


def _packed_main(args) -> int:
    rows = _packed_rows(args)
    if args.json:
        args.json.write_text(json.dumps({"packed": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
