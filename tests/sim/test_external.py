"""The weight read master (issue 11 item 3) under cocotb against cocotbext-axi's AXI4 RAM
model with random, pipelined read latency and throttled ``arready``/``rvalid``: the words it
streams are the weight banks' words (bit-exact, in walk order, sweep after sweep); every
sweep reads the image once, in 4 KiB-safe INCR bursts, and its bytes are the weight bytes
of one step of :mod:`lstm_fpga.hw.limits` (rounded up to whole beats)."""

from __future__ import annotations

import math

import pytest
from amaranth.back import verilog

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.external import AxiReadParams, WeightFetcher, weight_image
from lstm_fpga.hw.limits import design_limits
from lstm_fpga.sim.compilation import compile_simulation
from lstm_fpga.sim.external import run_fetcher_scenario
from lstm_fpga.testing import random_model

SWEEPS = 3


def _fetcher_run(tmp_path, sim_cache, plan, params, latency, pacing, seed):
    image = weight_image(plan, data_width=params.data_width)
    fetcher = WeightFetcher(image, params)
    text = verilog.convert(fetcher, name="weight_fetcher")
    build = compile_simulation(text, "weight_fetcher", cache_dir=sim_cache)
    path = tmp_path / "weights.bin"
    path.write_bytes(image.data)
    spec = {
        "image": str(path),
        "base": params.base,
        "ram_bytes": params.base + 2 * image.bytes + 4096,
        "words": SWEEPS * image.words,
        "latency": list(latency),
        "ar_pause": pacing,
        "r_pause": pacing,
        "ready_probability": 1 - pacing,
        "seed": seed,
        "timeout_cycles": 50 * SWEEPS * image.beats + 20 * max(latency) * SWEEPS + 2000,
    }
    return image, run_fetcher_scenario(build, spec, tmp_path / "run", seed=seed)


@pytest.mark.parametrize(
    "I, H, head, lanes, data_width, latency, pacing",
    [
        (5, 6, 3, 5, 64, (5, 40), 0.3),  # odd lanes: 80-bit words over 64-bit beats
        (3, 4, None, 16, 128, (0, 12), 0.2),  # one word a beat, several words a beat
        # 112-bit words over 32-bit beats, no throttling
        pytest.param(4, 3, 2, 7, 32, (20, 60), 0.0, marks=pytest.mark.slow),
        # several words a beat, an image of a few beats
        pytest.param(2, 4, None, 3, 256, (1, 30), 0.4, marks=pytest.mark.slow),
    ],
)
def test_fetcher_streams_the_banks_words(
    tmp_path, sim_cache, I, H, head, lanes, data_width, latency, pacing
):
    model = random_model(I, H, head=head, seed=lanes)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    params = AxiReadParams(data_width=data_width, burst=4, latency=max(latency), base=0x3000)
    image, result = _fetcher_run(tmp_path, sim_cache, plan, params, latency, pacing, seed=lanes)

    # Bit-exact: the banks' words (lane p in bits [pW, (p+1)W)) in address order, every sweep.
    W = plan.weight_shape.width
    mask = (1 << W) - 1
    images = plan.images
    banks = [
        sum((int(images.weights[p, a]) & mask) << (p * W) for p in range(plan.lanes))
        for a in range(plan.bank_depth)
    ]
    assert image.word_values() == banks
    assert [int(w, 16) for w in result["words"]] == banks * SWEEPS
    assert result["read_error"] == 0

    # Traffic: each sweep reads the image once, in order, in bursts of at most `burst` beats
    # that never cross 4 KiB; a sweep is one step's weight bytes (limits.py, whole beats).
    step_bytes = design_limits(plan).bytes_per_step
    assert image.bytes == math.ceil(step_bytes * 8 / data_width) * data_width // 8
    if (step_bytes * 8) % data_width == 0:
        assert image.bytes == step_bytes
    offsets = []
    for address, beats in result["reads"]:
        assert 1 <= beats <= params.burst
        assert address // 4096 == (address + beats * data_width // 8 - 1) // 4096
        offsets.extend(address - params.base + k * data_width // 8 for k in range(beats))
    sweep = [k * data_width // 8 for k in range(image.beats)]
    assert offsets == (sweep * (len(offsets) // image.beats + 1))[: len(offsets)]
    # Prefetch stays within the FIFO and the word assembler's register.
    held = math.ceil((image.word_bits + data_width) / data_width)
    assert 0 <= len(offsets) - SWEEPS * image.beats <= params.fifo_beats + held
