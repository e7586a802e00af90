"""The weight image and the read master's parameters (issue 11 item 3), without simulation:
the image holds every weight where :func:`~lstm_fpga.hw.external.image_bit` says (the
byte-wide and the bit-by-bit writers agree), the derived outstanding reads and FIFO depth,
and the models external weights refuse."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError
from lstm_fpga.hw.banks import weight_location
from lstm_fpga.hw.devices import estimate_resources
from lstm_fpga.hw.external import (
    FIFO_WRITE_TO_READ_CYCLES,
    AxiReadParams,
    _bit_string,
    check_external,
    image_bit,
    weight_image,
)
from lstm_fpga.testing import random_model


@pytest.mark.parametrize("I, H, head, lanes, width", [(3, 5, None, 3, 64), (5, 4, 2, 7, 32)])
def test_every_weight_is_where_image_bit_says(I, H, head, lanes, width):
    model = random_model(I, H, head=head, seed=lanes)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes))
    image = weight_image(plan, data_width=width)
    W = plan.weight_shape.width
    whole = int.from_bytes(image.data, "little")
    d = model.directions[0]
    matrix = np.concatenate([d.w_ih, d.w_hh], axis=1)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            bit = image_bit(plan, weight_location(plan, row, column))
            assert (whole >> bit) & ((1 << W) - 1) == int(matrix[row, column]) & ((1 << W) - 1)
    assert len(image.data) == image.bytes == image.beats * width // 8
    assert whole >> image.bits == 0  # the padding is zeros
    values = np.asarray(plan.images.weights[:, : plan.bank_depth]) & ((1 << W) - 1)
    assert _bit_string(values, W, image.bytes) == image.data


def test_derived_parameters():
    params = AxiReadParams(data_width=128, burst=16, latency=100)
    assert params.outstanding == 8  # ceil((100 + 4) / 16) + 1: 128 beats cover 100 + 4 + 16
    assert params.fifo_beats == 128
    assert AxiReadParams(latency=0, burst=4).outstanding == 2
    assert AxiReadParams(latency=64, burst=16).outstanding == 6


@pytest.mark.parametrize("depth", [4, 16, 128])
def test_fifo_write_to_read_latency_is_what_the_master_budgets(depth):
    """``MASTER_LOOP_CYCLES`` counts the prefetch FIFO's write-to-read latency: measure it."""
    from amaranth.lib.fifo import SyncFIFOBuffered
    from amaranth.sim import Simulator

    fifo = SyncFIFOBuffered(width=8, depth=depth)
    seen = []

    async def bench(ctx):
        ctx.set(fifo.w_data, 0x5A)
        ctx.set(fifo.w_en, 1)
        await ctx.tick()
        ctx.set(fifo.w_en, 0)
        for cycle in range(1, 8):
            if ctx.get(fifo.r_rdy):
                seen.append(cycle)
            await ctx.tick()

    sim = Simulator(fifo)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen[0] == FIFO_WRITE_TO_READ_CYCLES


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"data_width": 48}, "AXI data width"),
        ({"burst": 512}, "AXI burst"),
        ({"data_width": 1024, "burst": 64}, "at most 32 beats"),
        ({"latency": -1}, "AXI latency"),
        ({"base": 0x800}, "4 KiB-aligned"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(HardwareConfigError, match=message):
        AxiReadParams(**kwargs)


def test_models_whose_steps_differ_are_refused():
    head_last = random_model(3, 4, head=2, seed=1)
    with pytest.raises(HardwareConfigError, match="--output all"):
        check_external(EnginePlan(head_last, HardwareConfig(lanes=4, output="last")))
    both = random_model(3, 4, bidirectional=True, seed=1)
    with pytest.raises(HardwareConfigError, match="unidirectional"):
        check_external(EnginePlan(both, HardwareConfig(lanes=4, max_seq_len=4)))
    with pytest.raises(HardwareConfigError, match="weights must be one of"):
        HardwareConfig(weights="dram")


def test_external_designs_count_the_fifo_not_the_banks():
    model = random_model(64, 64, seed=2)
    on_chip = estimate_resources(EnginePlan(model, HardwareConfig(lanes=16)), "ecp5")
    params = AxiReadParams(data_width=256, latency=64)
    config = HardwareConfig(lanes=16, weights="external", axi=params)
    external = estimate_resources(EnginePlan(model, config), "ecp5")
    names = [m[0] for m in external.memories]
    assert "weight prefetch FIFO" in names and not any("weight banks" in n for n in names)
    assert external.brams < on_chip.brams


def test_reload_words_of_an_external_build_are_the_biases():
    from lstm_fpga.hw import weight_load_words
    from lstm_fpga.hw.memory import WeightTarget

    model = random_model(3, 4, seed=4)
    config = HardwareConfig(lanes=5, weights="external")
    words = weight_load_words(EnginePlan(model, config), random_model(3, 4, seed=5))
    on_chip = weight_load_words(EnginePlan(model, HardwareConfig(lanes=5)), model)
    assert words and all(w.target == WeightTarget.BIAS for w in words)
    assert len(words) == sum(w.target == WeightTarget.BIAS for w in on_chip)
