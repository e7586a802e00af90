"""``lstm-fpga build`` on an ``nn.GRU``: one clear line naming what hardware exists (exit 2,
nothing written) -- the GRU's software flow is the Python API (``tests/sw/test_gru.py``)."""

import numpy as np
import pytest
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from tests.cli.conftest import run_cli

EXPECTED = (
    "lstm-fpga build: error: nn.GRU models have no hardware yet: lstm-fpga generates hardware "
    "for nn.LSTM (proj_size=0; layers, bidirectional, h0/c0, Linear head); a GRU runs through "
    "the software flow only"
)


@pytest.fixture
def gru_files(tmp_path):
    torch.manual_seed(0)
    torch.save(torch.nn.GRU(3, 5, bidirectional=True).state_dict(), tmp_path / "gru.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    return tmp_path


@pytest.mark.parametrize("source", ["gru.pt", "ir"])
def test_build_refuses_gru_in_one_line(gru_files, capsys, source):
    if source == "ir":
        model, _ = quantize_from_torch(gru_files / "gru.pt", np.load(gru_files / "cal.npy"))
        model.save(gru_files / "gru_ir")
        source = "gru_ir.json"
    argv = ["build", gru_files / source, "--calibrate", gru_files / "cal.npy"]
    argv += ["--max-seq-len", "6", "-o", gru_files / "out"]
    if source.endswith(".json"):
        argv.remove("--calibrate")
        argv.remove(gru_files / "cal.npy")
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1].startswith(EXPECTED), err
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (gru_files / "out").exists()
