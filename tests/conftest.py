"""Shared test helpers: seeded PyTorch LSTMs and their quantised IR (random IR models and
format sets: :mod:`lstm_fpga.testing`)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import settings

from lstm_fpga.sw.float_model import FloatDirection, FloatHead, FloatLstm
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.testing import quantize_float_model, width_formats

# Property tests draw the same examples on every run (``derandomize``): a failure is
# reproducible, and a suite run three times runs the same tests three times.
# LSTM_FPGA_HYPOTHESIS=explore draws new examples each run (to search, not for CI).
settings.register_profile("seeded", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("LSTM_FPGA_HYPOTHESIS", "seeded"))


#: The cell's ``MULT18X18D``s on ``--family ecp5`` (f*c, i*g, o*tanh(c)) and those of its five
#: activation units (i, f, g, o, tanh c: the interpolation multiplies), per layer direction.
CELL_MULTIPLIERS = 3 + 5


def ecp5_multipliers(lanes: int, *, attention: bool = False) -> int:
    """``MULT18X18D`` instances in the ``--family ecp5`` Verilog of a one-layer LSTM on
    ``lanes`` lanes: the lanes', the cell's (:data:`CELL_MULTIPLIERS`) and, with attention
    pooling, the attention unit's two (its multiply-accumulate and alpha's)."""
    return lanes + CELL_MULTIPLIERS + 2 * attention


def torch_lstm(I, H, L=1, bidirectional=False, bias=True, head=0, seed=0, batch_first=False):
    """A seeded ``nn.LSTM`` (and ``nn.Linear`` head with ``head`` outputs, 0 for none)."""
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(I, H, L, bias=bias, bidirectional=bidirectional, batch_first=batch_first)
    linear = torch.nn.Linear(H * (2 if bidirectional else 1), head) if head else None
    return lstm, linear


def float_from_torch(lstm, linear=None) -> FloatLstm:
    """Direct parameter copy (independent of the import module under test elsewhere)."""
    sd = {k: v.detach().double().numpy() for k, v in lstm.state_dict().items()}
    D = 2 if lstm.bidirectional else 1
    directions = []
    for layer in range(lstm.num_layers):
        for reverse in (False, True)[:D]:
            s = f"l{layer}{'_reverse' if reverse else ''}"
            bias = np.zeros(4 * lstm.hidden_size)
            if lstm.bias:
                bias = sd[f"bias_ih_{s}"] + sd[f"bias_hh_{s}"]
            directions.append(
                FloatDirection(layer, reverse, sd[f"weight_ih_{s}"], sd[f"weight_hh_{s}"], bias)
            )
    head = None
    if linear is not None:
        head = FloatHead(
            linear.weight.detach().double().numpy(), linear.bias.detach().double().numpy()
        )
    return FloatLstm(
        lstm.input_size,
        lstm.hidden_size,
        lstm.num_layers,
        lstm.bidirectional,
        lstm.bias,
        tuple(directions),
        head,
    )


def quantize_with(fm: FloatLstm, width: int = 16) -> LstmModel:
    """Quantise every tensor of ``fm`` into :func:`lstm_fpga.testing.width_formats`."""
    return quantize_float_model(fm, *width_formats(width))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
