"""Shared test helpers: seeded random PyTorch LSTMs and their quantised IR."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstm_fpga.sw.float_model import FloatDirection, FloatHead, FloatLstm
from lstm_fpga.sw.ir import LayerDirection, LinearHead, LstmModel
from lstm_fpga.sw.numerics import FixedFormat, HeadFormats, LstmFormats, quantize

Q = FixedFormat.parse


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


def fixed_formats(width: int = 16) -> dict[str, FixedFormat]:
    """Hand-chosen formats for random nn.LSTM weights (|w| < 1) and inputs in [-4, 4)."""
    return {
        "x": FixedFormat(width, width - 4),
        "w": FixedFormat(width, width - 2),
        "bias": FixedFormat(width, width - 3),
        "preact": FixedFormat(width, width - 4),
        "gate": FixedFormat(width, width - 1),
        "cell": FixedFormat(width, width - 4),
        "hidden": FixedFormat(width, width - 1),
        "head_out": FixedFormat(width, width - 4),
    }


def quantize_with(fm: FloatLstm, width: int = 16) -> LstmModel:
    """Quantise every tensor of ``fm`` with :func:`fixed_formats` (no calibration)."""
    f = fixed_formats(width)
    directions = []
    for d in fm.directions:
        formats = LstmFormats(
            x=f["x"] if d.layer == 0 else f["hidden"],
            w_ih=f["w"],
            w_hh=f["w"],
            bias=f["bias"],
            preact=f["preact"],
            gate=f["gate"],
            cell=f["cell"],
            hidden=f["hidden"],
        )
        directions.append(
            LayerDirection(
                d.layer,
                d.reverse,
                quantize(d.w_ih, formats.w_ih),
                quantize(d.w_hh, formats.w_hh),
                quantize(d.bias, formats.bias),
                formats,
            )
        )
    head = None
    if fm.head is not None:
        hf = HeadFormats(x=f["hidden"], weight=f["w"], bias=f["bias"], output=f["head_out"])
        head = LinearHead(quantize(fm.head.weight, hf.weight), quantize(fm.head.bias, hf.bias), hf)
    return LstmModel(
        fm.input_size,
        fm.hidden_size,
        fm.num_layers,
        fm.bidirectional,
        fm.bias,
        tuple(directions),
        head,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
