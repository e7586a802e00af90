"""``lstm-fpga build`` of an attention classifier (``lstm``, ``attention``, ``fc``): refused in
one line, in CLI terms, before calibration, whether the model is a state_dict or a saved IR;
nothing is written."""

import numpy as np
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from tests.cli.conftest import run_cli


def _refusal(path) -> str:
    return (
        f"lstm-fpga build: error: {path} has attention pooling (lstm, attention, fc): "
        f"lstm-fpga build (and simulate, compare, synth) runs nn.LSTM and nn.GRU models with "
        f"an optional Linear head (--output last or all), not attention pooling yet; quantize "
        f"it and run the integer reference from Python "
        f"(lstm_fpga.sw.calibrate.quantize_from_torch, lstm_fpga.sw.reference.run_reference; "
        f"docs/attention.md)"
    )


def test_build_refuses_attention_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(AttentionClassifier(3, 5, 4, 2).state_dict(), tmp_path / "att.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    argv = ["build", tmp_path / "att.pt", "--calibrate", tmp_path / "cal.npy"]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "out")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "att.pt")
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    model, _ = quantize_from_torch(tmp_path / "att.pt", np.load(tmp_path / "cal.npy"))
    model.save(tmp_path / "ir")
    code, _, err = run_cli(capsys, "build", tmp_path / "ir.json", "-o", tmp_path / "out2")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "ir.json")
    assert not (tmp_path / "out2").exists()


def test_build_names_the_supported_layout_for_another_one(tmp_path, capsys):
    state = AttentionClassifier(3, 5, 4, 2).state_dict()
    state["attention.v.bias"] = torch.zeros(1)
    torch.save(state, tmp_path / "att.pt")
    code, _, err = run_cli(capsys, "build", tmp_path / "att.pt", "-o", tmp_path / "out")
    assert code == 2
    assert "unexpected key 'attention.v.bias'" in err.splitlines()[-1]
    assert "AttentionClassifier; docs/attention.md" in err.splitlines()[-1]
