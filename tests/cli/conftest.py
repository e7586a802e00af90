"""Shared CLI test helpers: a small model with calibration samples, and running a command."""

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main


@pytest.fixture
def files(tmp_path):
    """``model.pt`` (a seeded ``nn.LSTM(3, 4)`` state_dict) and ``cal.npy`` (6 steps of 2
    sequences in [-1, 1)) in ``tmp_path``."""
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 4).state_dict(), tmp_path / "model.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    return tmp_path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``lstm-fpga ARGV`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
