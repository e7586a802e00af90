"""The weight read master (issue 11 item 3) under cocotb against cocotbext-axi's AXI4 RAM
model with random, pipelined read latency and throttled ``arready``/``rvalid``: the words it
streams are the weight banks' words (bit-exact, in walk order, sweep after sweep); every
sweep reads the image once, in 4 KiB-safe INCR bursts, and its bytes are the weight bytes
of one step of :mod:`lstm_fpga.hw.limits` (rounded up to whole beats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.back import verilog

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.external import AxiReadParams, WeightFetcher, weight_image
from lstm_fpga.hw.limits import design_limits
from lstm_fpga.sim.compilation import compile_simulation
from lstm_fpga.sim.external import external_run, run_fetcher_scenario
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import padded, random_model

SWEEPS = 3


def _fetcher_run(tmp_path, sim_cache, plan, params, latency, pacing, seed, sweeps=SWEEPS):
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
        "words": sweeps * image.words,
        "image_words": image.words,
        "word_bits": image.word_bits,
        "latency": list(latency),
        "ar_pause": pacing,
        "r_pause": pacing,
        "ready_probability": 1 - pacing,
        "seed": seed,
        "timeout_cycles": 50 * sweeps * image.beats + 20 * max(latency) * sweeps + 2000,
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
    assert result["words"] == SWEEPS * len(banks)
    assert (result["mismatches"], result["first_mismatch"]) == (0, None)
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


def _expected_y(model, sequences):
    lengths = [len(s) for s in sequences]
    ref = run_reference(model, padded(sequences), lengths=lengths, head_on="all")
    parts = [
        (ref.head[:n, b] if model.head is not None else ref.output[:n, b])
        for b, n in enumerate(lengths)
    ]
    return np.concatenate([np.asarray(p).reshape(-1) for p in parts])


def _top_run(tmp_path, sim_cache, model, config, lengths, latency, pacing, seed):
    return external_run(
        model, config, lengths, latency, pacing, seed, tmp_path, cache_dir=sim_cache
    )


@pytest.mark.parametrize(
    "I, H, layers, head, lanes, data_width, latency, pacing",
    [
        (3, 5, 1, None, 3, 64, (4, 40), 0.3),  # odd lanes: 48-bit words over 64-bit beats
        (5, 4, 2, 2, 7, 32, (10, 30), 0.2),  # two layers and a head; 112-bit words
        (3, 2, 1, None, 16, 64, (2, 20), 0.2),  # two column groups (P = 2 * 4H)
        pytest.param(4, 6, 1, 3, 16, 128, (0, 60), 0.0, marks=pytest.mark.slow),
        # one lane: two 16-bit words per 32-bit beat
        pytest.param(2, 3, 1, 2, 1, 32, (1, 9), 0.3, marks=pytest.mark.slow),
    ],
)
def test_external_weights_are_bit_exact(
    tmp_path, sim_cache, I, H, layers, head, lanes, data_width, latency, pacing
):
    model = random_model(I, H, num_layers=layers, head=head, seed=lanes)
    params = AxiReadParams(data_width=data_width, burst=8, latency=max(latency), base=0x2000)
    config = HardwareConfig(lanes=lanes, weights="external", axi=params)
    lengths = [3, 2]
    interface, image, sequences, got = _top_run(
        tmp_path, sim_cache, model, config, lengths, latency, pacing, seed=lanes
    )
    np.testing.assert_array_equal(np.asarray(got["y"]), _expected_y(model, sequences))
    assert got["read_error"] == 0
    # Every step's words were fetched once, in order: the sweeps the steps needed, plus
    # what the FIFO prefetched for the next step after the last one.
    steps = sum(lengths)
    step_bytes = design_limits(interface.plan).bytes_per_step
    assert image.bytes == math.ceil(step_bytes * 8 / data_width) * data_width // 8
    fetched = sum(beats for _address, beats in got["reads"]) * params.bytes_per_beat
    held = math.ceil((image.word_bits + data_width) / data_width) + params.fifo_beats
    assert steps * image.bytes <= fetched <= steps * image.bytes + held * params.bytes_per_beat
    offsets = [
        address - params.base + k * params.bytes_per_beat
        for address, beats in got["reads"]
        for k in range(beats)
    ]
    sweep = [k * params.bytes_per_beat for k in range(image.beats)]
    assert offsets == (sweep * (len(offsets) // image.beats + 1))[: len(offsets)]


@pytest.mark.slow
def test_external_weights_run_a_model_too_big_for_block_ram(tmp_path, sim_cache):
    """I = H = 1024, one layer, 64 lanes, on a 2-step sequence: 16 MiB of weights streamed
    over a 1,024-bit bus, bit-exact, each step reading the image once."""
    model = random_model(1024, 1024, seed=5)
    params = AxiReadParams(data_width=1024, burst=16, latency=100)
    config = HardwareConfig(lanes=64, weights="external", axi=params)
    lengths = [2]
    interface, image, sequences, got = _top_run(
        tmp_path, sim_cache, model, config, lengths, (40, 100), 0.05, seed=5
    )
    np.testing.assert_array_equal(np.asarray(got["y"]), _expected_y(model, sequences))
    assert got["read_error"] == 0
    assert image.bytes == design_limits(interface.plan).bytes_per_step == 16 * 2**20
    fetched = sum(beats for _address, beats in got["reads"]) * params.bytes_per_beat
    held = math.ceil((image.word_bits + 1024) / 1024) + params.fifo_beats
    assert 2 * image.bytes <= fetched <= 2 * image.bytes + held * params.bytes_per_beat


@pytest.mark.parametrize(
    "I, H, layers, head, lanes, B, lengths, data_width, latency, pacing",
    [
        # two layers and a head, two groups of different lengths; 128-bit words on 64 bits
        (3, 2, 2, 3, 9, 2, [3, 3, 2, 2], 64, (4, 30), 0.3),
        (3, 2, 1, None, 9, 3, [3, 3, 3], 128, (2, 20), 0.2),  # one word a beat
        # several passes: 16 gate rows on 5 lanes (units straddle passes), 8 head rows
        (5, 4, 2, 5, 5, 2, [3, 3, 2, 2], 64, (4, 30), 0.3),
    ],
)
def test_interleaved_groups_share_each_weight_fetch(
    tmp_path, sim_cache, I, H, layers, head, lanes, B, lengths, data_width, latency, pacing
):
    """``--interleave B`` with external weights (an odd lane count: 8 lanes built of 9, one
    pass per matrix; or 5 lanes, 4 passes of the gate matrix and 2 of the head): every
    ``y`` equal to the reference of each sequence alone (the wire's order
    ``TopInterface.y_order``), and each weight word fetched once per step of a group: the
    bytes read are a group step's image per group step (plus the prefetch), so per
    sequence-step ``1/B`` of the image."""
    model = random_model(I, H, num_layers=layers, head=head, seed=lanes + B)
    params = AxiReadParams(data_width=data_width, burst=8, latency=max(latency), base=0x2000)
    config = HardwareConfig(lanes=lanes, weights="external", axi=params, interleave=B)
    interface, image, sequences, got = _top_run(
        tmp_path, sim_cache, model, config, lengths, latency, pacing, seed=lanes + B
    )
    np.testing.assert_array_equal(np.asarray(got["y"]), _expected_y(model, sequences))
    assert got["read_error"] == 0
    group_steps = sum(lengths) // B
    fetched = sum(beats for _address, beats in got["reads"]) * params.bytes_per_beat
    held = math.ceil((image.word_bits + data_width) / data_width) + params.fifo_beats
    assert group_steps * image.bytes <= fetched
    assert fetched <= group_steps * image.bytes + held * params.bytes_per_beat
    # limits.py: the weight bytes per sequence-step are the image's over B
    assert design_limits(interface.plan).bytes_per_step * B == image.bytes
