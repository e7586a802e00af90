"""Cycle-identity of the engine against a reference commit: the cycle of every handshake.

A timing change that claims to keep the design cycle-identical (registering a verdict a
cycle ahead, say) is checked here: the same scenarios run in the Amaranth simulator on this
tree and on ``--against REF`` (its ``hw``/``sw`` packages exported with ``git archive``; the
drivers are this tree's), and the cycle of every ``x``, ``init``, ``w``, ``y`` and
``state`` handshake, with the ``y`` and ``state`` values, must be equal.

Two kinds of scenario:

- ``run_engine`` (``tests/hw/engine_driver.py``), operations one after the other with
  random idle and back-pressure cycles: sequences (with ``carry_state``/``read_state``),
  ``init`` loads and weight reloads, on the 11 shapes of the walker's check at ``fbaf003``
  plus two GRUs (one with a head); the outputs are also checked against the integer reference;
- concurrent offers (this module's driver): ``x``, ``init`` and ``w`` offered at the same
  time from independent sources with random gaps (a load offered while a sequence would
  start holds the start), including interleaved sequences (``--interleave 2``).

    nice -n 19 .venv/bin/python benchmarks/handshakes.py --against c442dbb
    nice -n 19 .venv/bin/python benchmarks/handshakes.py --record traces.json  # this tree
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The packages of the import tree and their directories in the repository (pyproject's
#: ``package-dir``).
PACKAGE_DIRS = {"lstm_fpga": "lstm_fpga", "eda": "eda", "sw": "sw", "hw": "hw", "sim": "sim"}


def _scenarios():
    """name -> (model, config, kind, options); built after the import root is set."""
    from lstm_fpga.hw import HardwareConfig
    from lstm_fpga.testing import random_model

    stalls = {"idle": 0.3, "stall": 0.3}
    calm = {"idle": 0.0, "stall": 0.0}
    sequential = {
        "demo 5x16+head P=16 stalls": (random_model(5, 16, head=1), dict(lanes=16), stalls),
        "demo 5x16+head P=16 no stalls": (random_model(5, 16, head=1), dict(lanes=16), calm),
        "8x8 P=4 stalls": (random_model(8, 8), dict(lanes=4), stalls),
        "8x8 P=4 no stalls": (random_model(8, 8), dict(lanes=4), calm),
        "8x8 P=32": (random_model(8, 8), dict(lanes=32), stalls),
        "6x8 two layers P=8": (random_model(6, 8, num_layers=2), dict(lanes=8), stalls),
        "5x6 bidirectional P=8": (
            random_model(5, 6, bidirectional=True),
            dict(lanes=8, max_seq_len=4),
            stalls,
        ),
        "5x6 bidirectional+head P=8": (
            random_model(5, 6, bidirectional=True, head=2),
            dict(lanes=8, max_seq_len=4),
            stalls,
        ),
        "16x16 P=64": (random_model(16, 16), dict(lanes=64), stalls),
        "5x11 P=3 stalls": (random_model(5, 11), dict(lanes=3), stalls),
        "5x3 P=24 stalls": (random_model(5, 3), dict(lanes=24), stalls),
        "GRU 4x6 P=4": (random_model(4, 6, cell_type="gru"), dict(lanes=4), stalls),
        # (P = 5: the drain carries rows of a GRU unit (3 rows) and of a head unit (4))
        "GRU 4x6+head P=5": (
            random_model(4, 6, head=2, cell_type="gru"),
            dict(lanes=5),
            stalls,
        ),
    }
    concurrent = {
        "concurrent 5x8 P=8": (random_model(5, 8), dict(lanes=8), 1),
        "concurrent 5x8 P=8 calm": (random_model(5, 8), dict(lanes=8), 1),
        "concurrent 4x6 two layers+head P=16": (
            random_model(4, 6, num_layers=2, head=1),
            dict(lanes=16, output="last"),
            1,
        ),
        "concurrent 5x6 bidirectional P=8": (
            random_model(5, 6, bidirectional=True),
            dict(lanes=8, max_seq_len=4),
            1,
        ),
        "concurrent 5x8 interleave 2 P=8": (random_model(5, 8), dict(lanes=8, interleave=2), 2),
    }
    out = {}
    for name, (model, config, pace) in sequential.items():
        out[name] = (model, HardwareConfig(**config), "sequential", pace)
    for name, (model, config, B) in concurrent.items():
        pace = {"idle": 0.0, "stall": 0.0} if name.endswith("calm") else {"idle": 0.4, "stall": 0.3}
        out[name] = (model, HardwareConfig(**config), "concurrent", {"B": B, **pace})
    return out


def _sequential(model, config, pace) -> dict:
    """Operations one after the other through ``run_engine``; outputs checked against the
    reference."""
    import numpy as np

    from lstm_fpga.testing import random_model, random_sequences
    from tests.hw.engine_driver import (
        InitLoad,
        Sequence,
        WeightLoad,
        expected_results,
        run_engine,
    )

    L, D, H = model.num_layers, model.num_directions, model.hidden_size
    gru = model.cell_type.value == "gru"
    other = random_model(
        model.input_size,
        H,
        num_layers=L,
        bidirectional=model.bidirectional,
        head=None if model.head is None else model.head.weight.shape[0],
        cell_type=model.cell_type.value,
        seed=7,
    )
    xs = random_sequences(model, [3, 2, 4, 1, 2], rng=5)
    rng = np.random.default_rng(3)
    h0 = rng.integers(-1000, 1000, (L * D, H))
    c0 = None if gru else rng.integers(-1000, 1000, (L * D, H))
    operations = [
        Sequence(xs[0], read_state=True),
        InitLoad(h0, c0),
        Sequence(xs[1]),
        WeightLoad(other),
        Sequence(xs[2], read_state=True),
        Sequence(xs[3], carry=True),
        WeightLoad(model),
        Sequence(xs[4], carry=True, read_state=True),
    ]
    result = run_engine(model, config, operations, seed=11, **pace)
    expected = expected_results(model, config, operations)
    bit_exact = len(result["y"]) == len(expected.y) and all(
        np.array_equal(np.asarray(g).reshape(-1), e)
        for g, e in zip(result["y"], expected.y, strict=True)
    )
    return {
        "x": result["x_cycles"],
        "y": result["y_cycles"],
        "loads": result["load_cycles"],
        "y_values": [[int(v) for v in np.asarray(g).reshape(-1)] for g in result["y"]],
        "states": [[int(v) for v in np.asarray(h).reshape(-1)] for h, _ in result["states"]],
        "cycles": int(result["cycles"]),
        "bit_exact": bool(bit_exact),
    }


def _concurrent(model, config, options) -> dict:
    """``x``, ``init`` and ``w`` offered by independent sources with random gaps."""
    import numpy as np
    from amaranth.sim import Simulator

    from lstm_fpga.hw import EnginePlan, TopInterface
    from lstm_fpga.hw.engine import LstmEngine
    from lstm_fpga.hw.reload import weight_load_words
    from lstm_fpga.testing import random_sequences

    plan = EnginePlan(model, config)
    dut = LstmEngine(plan)
    interface = TopInterface(plan)
    B = options["B"]
    idle, stall = options["idle"], options["stall"]
    rng = np.random.default_rng(17)
    # Groups of B sequences of one length, interleaved step by step on the wire.
    lengths = [2, 3, 1, 2, 3, 2]
    xs = random_sequences(model, [n for n in lengths for _ in range(B)], rng=9)
    per_step = plan.x_beats_per_step
    x_beats, flags = [], []
    for g, T in enumerate(lengths):
        group = xs[g * B : (g + 1) * B]
        beats = [interface.x_beat_elements(x) for x in group]
        for t in range(T):
            for b in range(B):
                for e in range(per_step):
                    elements = beats[b][t * per_step + e]
                    data = int(elements[0]) if len(elements) == 1 else [int(v) for v in elements]
                    last = int(t == T - 1 and e == per_step - 1)
                    x_beats.append({"data": data, "last": last})
                    flags.append((g % 3 == 2, g % 2 == 1) if t == 0 and b == 0 and e == 0 else None)
    L, D, H = model.num_layers, model.num_directions, model.hidden_size
    gru = model.cell_type.value == "gru"
    h0 = rng.integers(-1000, 1000, (L * D, H))
    init = [int(v) for v in interface.init_values(h0, None if gru else h0[::-1])]
    init_beats = [{"data": v, "last": int(k == len(init) - 1)} for k, v in enumerate(init)]
    words = weight_load_words(plan, model)
    w_beats = [
        {"word": w.payload(plan), "last": int(k == len(words) - 1)} for k, w in enumerate(words)
    ]
    events = {name: [] for name in ("x", "init", "w", "y", "state")}
    clock = {"now": 0, "sources": 0}

    async def ticker(ctx):
        while True:
            await ctx.tick()
            clock["now"] += 1

    def source(name, port, beats, begin, controls=None):
        async def run(ctx):
            while clock["now"] < begin:
                await ctx.tick()
            for j, beat in enumerate(beats):
                while idle and rng.random() < idle:
                    ctx.set(port.valid, 0)
                    await ctx.tick()
                if controls is not None and controls[j] is not None:
                    ctx.set(dut.carry_state, int(controls[j][0]))
                    ctx.set(dut.read_state, int(controls[j][1]))
                ctx.set(port.payload, beat)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                events[name].append(clock["now"])
            ctx.set(port.valid, 0)
            clock["sources"] += 1

        return run

    async def sink(ctx):
        quiet = 0
        while clock["now"] < 200_000:
            ctx.set(dut.y.ready, not (stall and rng.random() < stall))
            ctx.set(dut.state.ready, not (stall and rng.random() < stall))
            _, _, yv, yr, yd, yl, sv, sr, sd, busy = await ctx.tick().sample(
                dut.y.valid,
                dut.y.ready,
                dut.y.payload.data,
                dut.y.payload.last,
                dut.state.valid,
                dut.state.ready,
                dut.state.payload.as_value(),
                dut.busy,
            )
            if yv and yr:
                events["y"].append([clock["now"], int(yd), int(yl)])
            if sv and sr:
                events["state"].append([clock["now"], int(sd)])
            active = yv or sv or busy or clock["sources"] < 3
            quiet = 0 if active else quiet + 1
            if quiet > 64:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(ticker, background=True)
    sim.add_testbench(source("x", dut.x, x_beats, 0, flags))
    sim.add_testbench(source("init", dut.init, init_beats, 3))
    sim.add_testbench(source("w", dut.weight_write, w_beats, 5))
    sim.add_testbench(sink)
    sim.run()
    return events


def record(path: Path, only: list[str] | None) -> None:
    import lstm_fpga.hw

    traces = {"source": str(Path(lstm_fpga.hw.__file__).parent), "scenarios": {}}
    scenarios = _scenarios()
    unknown = set(only or ()) - set(scenarios)
    if unknown:
        raise SystemExit(f"no scenario named {sorted(unknown)}; the names: {sorted(scenarios)}")
    for name in only or scenarios:  # (in the order asked)
        model, config, kind, options = scenarios[name]
        started = time.monotonic()
        run = _sequential if kind == "sequential" else _concurrent
        traces["scenarios"][name] = run(model, config, options)
        print(f"  {name}: {time.monotonic() - started:.0f} s", flush=True)
        path.write_text(json.dumps(traces))  # (after each scenario: a partial run counts)


def _export(commit: str, into: Path) -> Path:
    """The packages of ``commit`` laid out for import (``lstm_fpga`` with ``hw``, ``sw``,
    ``eda``, ``sim`` inside)."""
    tree = into / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", commit, *PACKAGE_DIRS.values()],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    root = into / "import"
    package = root / "lstm_fpga"
    package.parent.mkdir()
    (tree / "lstm_fpga").rename(package)
    for name, directory in PACKAGE_DIRS.items():
        if name != "lstm_fpga":
            (tree / directory).rename(package / name)
    return root


def _compare(reference: dict, current: dict) -> list[str]:
    problems = []
    for name, ref in reference["scenarios"].items():
        got = current["scenarios"].get(name)
        if got is None:
            problems.append(f"{name}: missing")
            continue
        for key in ref:
            if ref[key] != got.get(key):
                a, b = ref[key], got.get(key)
                where = ""
                if isinstance(a, list) and isinstance(b, list):
                    k = next(
                        (i for i, (u, v) in enumerate(zip(a, b, strict=False)) if u != v),
                        min(len(a), len(b)),
                    )
                    where = f" (first difference at index {k} of {len(a)}/{len(b)})"
                problems.append(f"{name}: {key} differs{where}")
        if "bit_exact" in got and not got["bit_exact"]:
            problems.append(f"{name}: outputs differ from the reference")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", metavar="COMMIT", help="compare with this commit")
    parser.add_argument("--record", type=Path, metavar="JSON", help="write this tree's traces")
    parser.add_argument("--only", action="append", help="this scenario (by name; repeatable)")
    parser.add_argument(
        "--compare",
        nargs=2,
        type=Path,
        metavar=("REFERENCE", "CURRENT"),
        help="compare two recorded JSON files",
    )
    parser.add_argument("--import-root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record:
        if args.import_root:
            sys.path.insert(0, str(args.import_root))
        record(args.record, args.only)
        return 0
    if args.compare:
        reference, current = (json.loads(path.read_text()) for path in args.compare)
        return _report(reference, current, str(args.compare[0]))
    if not args.against:
        parser.error("give --against COMMIT, --record JSON or --compare REFERENCE CURRENT")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = _export(args.against, tmp)
        runs = {}
        for label, import_root in (("reference", root), ("this tree", None)):
            print(f"{label}:", flush=True)
            out = tmp / f"{label.replace(' ', '_')}.json"
            command = [sys.executable, str(Path(__file__).resolve()), "--record", str(out)]
            for o in args.only or []:
                command += ["--only", o]
            env = dict(os.environ)
            paths = [str(import_root)] if import_root else []
            env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT)])
            subprocess.run(command, cwd=ROOT, env=env, check=True)
            runs[label] = json.loads(out.read_text())
            print(f"  (packages from {runs[label]['source']})")
    return _report(runs["reference"], runs["this tree"], args.against)


def _report(reference: dict, current: dict, against: str) -> int:
    if reference["source"] == current["source"]:
        print("the reference run imported this tree's packages: nothing compared")
        return 2
    problems = _compare(reference, current)
    count = len(reference["scenarios"])
    if set(reference["scenarios"]) != set(current["scenarios"]):
        only = sorted(set(reference["scenarios"]) ^ set(current["scenarios"]))
        print(f"recorded on one side only (not compared): {only}")
        problems = [p for p in problems if not p.endswith(": missing")]
        count = len(set(reference["scenarios"]) & set(current["scenarios"]))
    for problem in problems:
        print("DIFFERENT:", problem)
    if not problems:
        handshakes = sum(
            len(v)
            for name, s in current["scenarios"].items()
            if name in reference["scenarios"]
            for k, v in s.items()
            if k in {"x", "y", "loads", "init", "w", "state"}
        )
        exact = sum(
            "bit_exact" in s for n, s in current["scenarios"].items() if n in reference["scenarios"]
        )
        print(
            f"cycle-identical to {against} on {count} scenarios ({handshakes} handshakes, "
            f"outputs equal; {exact} run_engine scenarios equal to the integer reference)"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
