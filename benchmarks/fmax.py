"""Fmax, critical path and resources on ECP5-85F speed 6 (nextpnr out of context).

The demo model ``LSTM(5, 16) + Linear(16, 1)`` (output "last") and I = H in {64, 128} x
P in {4, 16, 64}; the median of 3 place-and-route seeds for the demo model and I = H = 64
at P = 16 and P = 64 (the two the 10 % comparison of P = 64 with P = 16 is made of), one
seed elsewhere; also ``gru`` (the demo's shape as ``nn.GRU(5, 16)`` + Linear)
and ``attention`` (the attention example's shape, an untrained ``AttentionClassifier(8, 32,
A=16, 10)``, sequences up to 8 steps), both at P = 16. Each (configuration, seed) is saved
in the results JSON as soon as it is measured, so an interrupted run resumes where it
stopped; ``--only`` selects configurations and ``--redo`` measures them again (after a
change of the RTL).

    .venv/bin/python benchmarks/fmax.py                        # whole grid (hours on 2 cores)
    .venv/bin/python benchmarks/fmax.py --only demo --only 64x16
    .venv/bin/python benchmarks/fmax.py --redo                 # measure everything again
    .venv/bin/python benchmarks/fmax.py --table                # print the saved table
    .venv/bin/python benchmarks/fmax.py --only 64x64 --seed 2 --router router2  # one seed
    .venv/bin/python benchmarks/fmax.py --only demo --family generic  # inferred multipliers

The Verilog is generated for the ``ecp5`` family by default (``lstm-fpga build --family
ecp5``: ``MULT18X18D`` instances with their input and output registers, which Yosys does not
infer); ``--family generic`` measures the portable Verilog. Either way the synthesis flow
turns the flip-flop behind a block-RAM read into the ``DP16KD`` output register
(:mod:`lstm_fpga.eda.bram`).

Also prints cycles per step (the bound ceil(4H(I+H)/P)) and µs per step at the measured clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstm_fpga.eda import ROUTERS, PathStep, every
from lstm_fpga.hw import TOP_NAME, EnginePlan, HardwareConfig, write_build
from lstm_fpga.hw.devices import DEVICES, estimate_resources
from lstm_fpga.hw.implement import critical_chain, implement
from lstm_fpga.hw.pipeline import FAMILIES
from lstm_fpga.testing import random_model

RESULTS = Path(__file__).parent / "results" / "fmax.json"
DEVICE, SPEED, FREQ_MHZ = "ecp5-85", 6, 125.0
#: name -> (I, H, head outputs or None, P, seeds)
CONFIGS = {
    "demo": (5, 16, 1, 16, (1, 2, 3)),
    **{
        f"{n}x{p}": (n, n, None, p, (1, 2, 3) if (n, p) in ((64, 16), (64, 64)) else (1,))
        for n in (64, 128)
        for p in (4, 16, 64)
    },
    # The demo's shape as an nn.GRU, and the attention example's shape (AttentionClassifier
    # (8, 32, A=16, 10), sequences of up to 8 steps; head = its 10 classes).
    "gru": (5, 16, 1, 16, (1,)),
    "attention": (8, 32, 10, 16, (1,)),
}
#: Models of the extra configurations (the rest are LSTMs).
_LABELS = {"demo": "LSTM(5,16)+Linear", "gru": "GRU(5,16)+Linear", "attention": "LSTM(8,32)+attn"}


def _config(name, I, H, head, P):
    if name == "attention":
        return _attention_config(I, H, head, P)
    kind = {"cell_type": "gru"} if name == "gru" else {}
    model = random_model(I, H, head=head, **kind)
    config = HardwareConfig(lanes=P, output="last" if head else "all")
    return model, config


def _attention_config(I, H, classes, P):
    """A seeded untrained AttentionClassifier of ``attention_cycles.py``'s digits shape,
    calibrated on that benchmark's seeded inputs."""
    import numpy as np
    import torch
    from attention_cycles import SIZES  # benchmarks/attention_cycles.py

    from lstm_fpga.sw.calibrate import quantize_from_torch
    from lstm_fpga.sw.modules import AttentionClassifier

    size_I, size_H, attention_size, size_O, _, max_seq_len, inputs, _ = SIZES["digits"]
    assert (size_I, size_H, size_O) == (I, H, classes), "fmax.py's attention shape is digits'"
    torch.manual_seed(0)
    net = AttentionClassifier(I, H, attention_size, classes, batch_first=False).double()
    model, _ = quantize_from_torch(net, inputs(np.random.default_rng(0)))
    config = HardwareConfig(lanes=P, output="last", max_seq_len=max_seq_len)
    return model, config


def _commit() -> str:
    """The checked-out commit (with ``+dirty`` when the tree has uncommitted changes other
    than the results themselves)."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (
        "+dirty"
        if git(
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ":(top)",
            ":(exclude,top)benchmarks/results",
        )
        else ""
    )


def measure(
    name: str, seed: int, workdir: Path, family: str = "ecp5", router: str | None = None
) -> dict:
    I, H, head, P, _ = CONFIGS[name]
    commit = _commit()  # of the tree the Verilog comes from
    model, config = _config(name, I, H, head, P)
    build = write_build(
        model, config, workdir / f"{name}_{family}_s{seed}", memory_init="readmemh", family=family
    )
    plan = EnginePlan(model, config)
    started = time.monotonic()
    result = implement(
        build.verilog,
        plan,
        DEVICES[DEVICE],
        top=TOP_NAME,
        verilog_family=family,
        speed=SPEED,
        freq_mhz=FREQ_MHZ,
        seed=seed,
        router=router,
        progress=every(15, lambda m: print(f"    [{name} s{seed}] {m}", flush=True)),
    )
    estimate = estimate_resources(plan, "ecp5")
    used = result.fit.needed
    return {
        "config": name,
        "I": I,
        "H": H,
        "head": head,
        "P": P,
        "seed": seed,
        "family": family,
        "device": DEVICE,
        "speed": SPEED,
        "router": router or "router1",
        "fmax_mhz": round(result.fmax_mhz, 2),
        "critical_path": critical_chain(result.pnr.critical_path),
        "critical_path_steps": result.pnr.to_json_dict()["critical_path"],
        "critical_path_ns": round(result.pnr.path_ns, 2),
        "lut": used["lut"],
        "ff": used["ff"],
        "dsp": used["dsp"],
        "bram": used["bram"],
        "yosys": result.synth.total,
        "dsp_registers": result.synth.dsp_registers,
        "estimate": {"bram": estimate.brams, "dsp": estimate.dsps},
        "cycle_bound": plan.step_bound(),
        "synth_seconds": round(result.synth.seconds),
        "pnr_seconds": round(result.pnr.seconds),
        "wall_seconds": round(time.monotonic() - started),
        "commit": commit,
        "command": "benchmarks/fmax.py " + " ".join(sys.argv[1:]),
    }


def _load() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else []


def _save(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")


def _chain(row: dict) -> str:
    """The critical path's blocks, named by today's code when the raw steps were saved."""
    steps = row.get("critical_path_steps")
    if steps:
        path = [PathStep(s["kind"], s["delay_ns"], s["cell"], s["net"]) for s in steps]
        return " → ".join(critical_chain(path))
    return " → ".join(row["critical_path"])


def _family(row: dict) -> str:
    return row.get("family", "generic")  # rows saved before the family was recorded


def table(rows: list[dict]) -> str:
    """Markdown table: one line per configuration and Verilog family, the median Fmax over its
    seeds."""
    lines = [
        "| model | P | family | seeds | Fmax MHz (median) | cycles/step (bound) | µs/step | LUT | "
        "FF | DSP | BRAM (estimate) | critical path |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, family in ((n, f) for n in CONFIGS for f in FAMILIES):
        runs = sorted(
            (r for r in rows if r["config"] == name and _family(r) == family),
            key=lambda r: r["fmax_mhz"],
        )
        if not runs:
            continue
        mid = runs[(len(runs) - 1) // 2]
        fmax = statistics.median(r["fmax_mhz"] for r in runs)
        model = _LABELS.get(name, f"I=H={mid['I']}")
        seeds = ", ".join(f"{r['fmax_mhz']:.1f}" for r in runs)
        lines.append(
            f"| {model} | {mid['P']} | {family} | {len(runs)} | {fmax:.1f} "
            f"({seeds}) | {mid['cycle_bound']} | "
            f"{mid['cycle_bound'] / fmax:.3f} | {mid['lut']} | {mid['ff']} | {mid['dsp']} | "
            f"{mid['bram']} ({mid['estimate']['bram']}) | {_chain(mid)} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(CONFIGS), help="configuration")
    parser.add_argument("--redo", action="store_true", help="measure saved results again")
    parser.add_argument("--seeds", type=int, help="at most this many seeds per configuration")
    parser.add_argument(
        "--seed",
        type=int,
        action="append",
        help="only this seed (of the configuration's; repeatable): runs of different seeds "
        "can go side by side, each saving its row",
    )
    parser.add_argument("--table", action="store_true", help="only print the saved table")
    parser.add_argument(
        "--family",
        choices=list(FAMILIES),
        default="ecp5",
        help="Verilog family (ecp5: the MULT18X18D primitives with their registers)",
    )
    parser.add_argument(
        "--router",
        choices=ROUTERS,
        help="nextpnr router (default router1; router2 for the 64-lane shapes, which router1 "
        "rips up without end)",
    )
    args = parser.parse_args(argv)
    rows = _load()
    if not args.table:
        names = args.only or list(CONFIGS)
        if args.redo:
            rows = [r for r in rows if r["config"] not in names or _family(r) != args.family]
            _save(rows)
        with tempfile.TemporaryDirectory(prefix="lstm-fmax-") as tmp:
            for name in names:
                for seed in CONFIGS[name][4][: args.seeds]:
                    if args.seed and seed not in args.seed:
                        continue
                    if any(
                        r["config"] == name and r["seed"] == seed and _family(r) == args.family
                        for r in rows
                    ):
                        continue
                    print(f"{name} seed {seed} ({args.family})", flush=True)
                    row = measure(name, seed, Path(tmp), args.family, args.router)
                    print(
                        f"  {row['fmax_mhz']} MHz, LUT {row['lut']} FF {row['ff']} DSP "
                        f"{row['dsp']} BRAM {row['bram']}: {' → '.join(row['critical_path'])}",
                        flush=True,
                    )
                    # Re-read first: another run (another configuration) may have saved since.
                    rows = _load()
                    rows.append(row)
                    _save(rows)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
