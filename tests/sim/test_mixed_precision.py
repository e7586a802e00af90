"""Mixed precision on the hardware (issue 13): models calibrated with narrow weights
(``weight_bits`` 8 and 4, everything else 16 bits) run bit-exactly on the generated Verilog,
whose weight banks take the weights' width."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.sim import compare, compile_model, simulate
from lstm_fpga.sw.calibrate import calibrate, quantize_model
from lstm_fpga.sw.reference import quantize_input
from lstm_fpga.sw.torch_import import from_module

pytestmark = pytest.mark.slow  # two Verilator builds


@pytest.mark.parametrize(("weight_bits", "lanes"), [(8, 4), (4, 3)])
def test_narrow_weights_are_bit_exact_in_hardware(sim_cache, weight_bits, lanes):
    torch.manual_seed(weight_bits)
    lstm, head = torch.nn.LSTM(3, 5, num_layers=2), torch.nn.Linear(5, 2)
    fm = from_module(lstm, head=head)
    rng = np.random.default_rng(weight_bits)
    x = rng.normal(size=(6, 4, 3))
    model = quantize_model(fm, calibrate(fm, x, weight_bits=weight_bits))
    weights = [f for d in model.directions for f in (d.formats.w_ih, d.formats.w_hh)]
    assert {f.width for f in [*weights, model.head.formats.weight]} == {weight_bits}
    assert {d.formats.x.width for d in model.directions} == {16}
    config = HardwareConfig(lanes=lanes, output="all")
    assert EnginePlan(model, config).weight_shape.width == weight_bits
    design = compile_model(model, config, "verilator", cache_dir=sim_cache)
    sequences = [quantize_input(model, rng.normal(size=(n, 3))) for n in (4, 1, 3)]
    report = compare(simulate(design, sequences))
    assert report.bit_exact, str(report)
