"""End-to-end speed of the cocotb verification flow: generate, build, simulate, compare.

For one LSTM configuration (default I = H = 256, P = 64, T = 150: the issue's target) this
prints the wall time of each stage, the simulated cycles per second with the stream drivers,
the same simulator's clock-only rate on the same build (a test that only lets the clock run)
and their ratio, and whether the hardware matched the reference bit for bit.

With ``--drivers`` it also measures the drivers themselves on the AXI-stream FIFO of
:mod:`lstm_fpga.sim.selftest` (a DUT that takes one beat every 64 cycles): the lean drivers
of :mod:`lstm_fpga.sim.streams`, cocotbext-axi's ``AxiStreamSource``/``AxiStreamSink`` and
the clock alone.

    .venv/bin/python benchmarks/simulate.py                      # cold build in a temp dir
    .venv/bin/python benchmarks/simulate.py --cache build/sim-cache   # reuse builds
    .venv/bin/python benchmarks/simulate.py -I 64 -H 64 -P 16 -T 50 --simulator icarus
    .venv/bin/python benchmarks/simulate.py --drivers --json out.json
    .venv/bin/python benchmarks/simulate.py -I 5 -H 16 -P 8 -T 200 --head 1 --output last
    .venv/bin/python benchmarks/simulate.py -I 32 -H 32 -P 16 --layers 2 --head 4

``--layers``, ``--head O`` and ``--output all|last`` select the full model (issue 4's
hardware); the reference comparison then covers the head, ``h_n`` and ``c_n``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sim.compilation import compile_simulation
from lstm_fpga.sim.phases import plan_for
from lstm_fpga.sim.runner import run
from lstm_fpga.sim.selftest import fifo_verilog
from lstm_fpga.sim.stimulus import Phase, Plan, SinkSpec, SourceSpec, run_plan
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.testing import random_model


def clock_only(design, cycles: int) -> tuple[float, int]:
    """Seconds the simulator needs to run ``cycles`` clock cycles with no driver at all."""
    result = run_plan(design.sim_build, plan_for(design, [Phase(idle_cycles=cycles)]))
    return result.sim_seconds, result.total_cycles


def _config(args):
    if args.layers == 1 and not args.head and args.output == "all":
        return args.lanes  # the configuration every hardware generation accepts
    from lstm_fpga.hw import HardwareConfig

    return HardwareConfig(lanes=args.lanes, output=args.output)


def lstm_benchmark(args, cache: Path) -> dict:
    model = random_model(
        args.input,
        args.hidden,
        args.layers,
        head=args.head or None,
        formats="q16_even",
        seed=args.seed,
    )
    rng = np.random.default_rng(args.seed + 1)
    fmt = model.input_format
    x = quantize(rng.uniform(-2, 2, (args.steps, args.input)), fmt)
    started = time.perf_counter()
    design = compile_model(model, _config(args), args.simulator, cache_dir=cache)
    compiled = time.perf_counter()
    result = simulate(design, x)
    simulated = time.perf_counter()
    report = compare(result)
    finished = time.perf_counter()
    clock_seconds, clock_cycles = clock_only(design, result.total_cycles)
    build_info = json.loads((design.sim_build.directory / "build.json").read_text())
    rate = result.total_cycles / result.sim_seconds
    clock_rate = clock_cycles / clock_seconds
    return {
        "config": {
            "input_size": args.input,
            "hidden_size": args.hidden,
            "lanes": args.lanes,
            "steps": args.steps,
            "layers": args.layers,
            "head": args.head,
            "output": design.output_mode,
            "simulator": args.simulator,
        },
        "generate_seconds": design.generate_seconds,
        "build_seconds": build_info.get("seconds", 0.0),
        "compile_seconds": compiled - started,
        "simulate_seconds": simulated - compiled,
        "in_simulator_seconds": result.sim_seconds,
        "compare_seconds": finished - simulated,
        "end_to_end_seconds": finished - started,
        "cycles": result.total_cycles,
        "cycles_per_second": rate,
        "python_wakes": result.wakes,
        "clock_only_cycles_per_second": clock_rate,
        "ratio_to_clock_only": rate / clock_rate,
        "bit_exact": report.bit_exact,
        "checked": [check.tensor for check in report.checks],
        "cycles_per_step": report.cycles.cycles_per_step,
        "bound_per_step": report.cycles.bound_per_step,
        "lane_utilization": report.cycles.lane_utilization,
    }


_COCOTBEXT_MODULE = '''
"""cocotbext-axi on the selftest FIFO (written by benchmarks/simulate.py)."""
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource


@cocotb.test()
async def cocotbext_fifo(dut):
    beats = int(os.environ["BENCH_BEATS"])
    Clock(dut.clk, 10, unit="ns", impl="gpi").start(start_high=False)
    for name in ("x__tvalid", "x__tdata", "x__tlast", "y__tready"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    width = len(dut.x__tdata)
    source = AxiStreamSource(
        AxiStreamBus.from_prefix(dut, "x", bus_separator="__"), dut.clk, byte_size=width
    )
    sink = AxiStreamSink(
        AxiStreamBus.from_prefix(dut, "y", bus_separator="__"), dut.clk, byte_size=width
    )
    data = [k % 1000 for k in range(beats)]
    started, start_ns = time.perf_counter(), get_sim_time("ns")
    await source.send(AxiStreamFrame(data))
    frame = await sink.recv()
    assert list(frame.tdata) == data
    seconds = time.perf_counter() - started
    cycles = (get_sim_time("ns") - start_ns) / 10
    with open(os.environ["BENCH_OUT"], "w") as out:
        out.write(f"{cycles} {seconds}")
'''


def driver_benchmark(simulator: str, cache: Path, beats: int = 4000) -> dict:
    sim_build = compile_simulation(
        fifo_verilog(16, 4, accept_period=64), "fifo_top", simulator, cache_dir=cache
    )
    data = np.arange(beats) % 1000
    last = np.zeros(beats, dtype=bool)
    last[-1] = True
    plan = Plan.single(sources=(SourceSpec("x", data, last),), sinks=(SinkSpec("y", packets=1),))
    lean = run_plan(sim_build, plan)
    results = {
        "lean_cycles_per_second": lean.total_cycles / lean.sim_seconds,
        "lean_wakes_per_beat": lean.wakes / beats,
    }
    seconds, cycles = clock_only(sim_build, lean.total_cycles)
    results["clock_only_cycles_per_second"] = cycles / seconds
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "cocotbext_fifo_bench.py").write_text(_COCOTBEXT_MODULE)
        sys.path.insert(0, str(scratch))  # the runner passes sys.path as PYTHONPATH
        os.environ["BENCH_BEATS"] = str(beats)
        os.environ["BENCH_OUT"] = str(scratch / "out.txt")
        try:
            run(sim_build, "cocotbext_fifo_bench", scratch / "run")
            cycles, seconds = map(float, (scratch / "out.txt").read_text().split())
            results["cocotbext_axi_cycles_per_second"] = cycles / seconds
        except Exception as error:  # report instead of hiding a broken third-party driver
            results["cocotbext_axi_error"] = str(error).splitlines()[0]
        finally:
            sys.path.remove(str(scratch))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-I", "--input", type=int, default=256)
    parser.add_argument("-H", "--hidden", type=int, default=256)
    parser.add_argument("-P", "--lanes", type=int, default=64)
    parser.add_argument("-T", "--steps", type=int, default=150)
    parser.add_argument("--simulator", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--layers", type=int, default=1, help="stacked LSTM layers")
    parser.add_argument("--head", type=int, default=0, help="Linear head outputs (0: none)")
    parser.add_argument("--output", default="all", choices=("all", "last"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="build cache to (re)use; default: a cold one")
    parser.add_argument("--drivers", action="store_true", help="also compare stream drivers")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="lstm-fpga-bench-") as scratch:
        cache = args.cache or Path(scratch)
        figures = {"lstm": lstm_benchmark(args, cache)}
        f = figures["lstm"]
        c = f["config"]
        print(
            f"LSTM I={c['input_size']} H={c['hidden_size']} P={c['lanes']} T={c['steps']} "
            f"layers={c['layers']} head={c['head']} output={c['output']} "
            f"on {c['simulator']} ({'cached' if args.cache else 'cold'} build cache)"
        )
        print(f"  generate Verilog   {f['generate_seconds']:7.2f} s")
        print(f"  simulator build    {f['build_seconds']:7.2f} s")
        print(
            f"  simulate           {f['simulate_seconds']:7.2f} s  ({f['in_simulator_seconds']:.2f}"
            f" s in the simulator, {f['cycles']:,} cycles, {f['python_wakes']:,} Python wakes)"
        )
        print(f"  reference+compare  {f['compare_seconds']:7.2f} s")
        print(f"  end to end         {f['end_to_end_seconds']:7.2f} s")
        print(
            f"  {f['cycles_per_second'] / 1e3:.0f} k cycles/s with drivers, "
            f"{f['clock_only_cycles_per_second'] / 1e3:.0f} k cycles/s clock only: ratio "
            f"{f['ratio_to_clock_only']:.2f}"
        )
        print(
            f"  bit-exact: {'yes' if f['bit_exact'] else 'NO'} ({', '.join(f['checked'])}); "
            f"cycles/step "
            f"{f['cycles_per_step']:.1f} (bound {f['bound_per_step']}), lane utilisation "
            f"{100 * f['lane_utilization']:.1f} %"
        )
        if args.drivers:
            figures["drivers"] = driver_benchmark(args.simulator, cache)
            d = figures["drivers"]
            print("Stream drivers on a FIFO taking one beat per 64 cycles:")
            print(
                f"  lean drivers   {d['lean_cycles_per_second'] / 1e3:7.0f} k cycles/s "
                f"({d['lean_wakes_per_beat']:.1f} wakes per beat)"
            )
            if "cocotbext_axi_cycles_per_second" in d:
                print(
                    f"  cocotbext-axi  {d['cocotbext_axi_cycles_per_second'] / 1e3:7.0f} k cycles/s"
                )
            else:
                print(f"  cocotbext-axi  failed: {d['cocotbext_axi_error']}")
            print(f"  clock only     {d['clock_only_cycles_per_second'] / 1e3:7.0f} k cycles/s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures["lstm"]["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
