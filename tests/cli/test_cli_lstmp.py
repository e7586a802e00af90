"""``lstm-fpga build`` of an ``nn.LSTM(proj_size > 0)``: refused in one line, in CLI terms,
before calibration (the integer reference runs LSTMPs; the hardware does not yet), whether
the model is a state_dict or a saved IR."""

import numpy as np
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from tests.cli.conftest import run_cli


def _refusal(path) -> str:
    return (
        f"lstm-fpga build: error: {path} is an nn.LSTM with proj_size=2: lstm-fpga build (and "
        f"simulate, compare, synth) supports nn.LSTM without proj_size and nn.GRU; LSTMs with "
        f"projections run in the integer reference from Python only for now (docs/lstmp.md)"
    )


def test_build_refuses_lstmp_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 5, proj_size=2).state_dict(), tmp_path / "lstmp.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    argv = ["build", tmp_path / "lstmp.pt", "--calibrate", tmp_path / "cal.npy"]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "out")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "lstmp.pt")
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    model, _ = quantize_from_torch(tmp_path / "lstmp.pt", np.load(tmp_path / "cal.npy"))
    model.save(tmp_path / "ir")
    code, _, err = run_cli(capsys, "build", tmp_path / "ir.json", "-o", tmp_path / "out2")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "ir.json")
