"""``lstm-fpga build`` of an ``nn.LSTM(proj_size > 0)``: a unidirectional one builds; a
bidirectional, interleaved or external-weight one is refused in one line, in CLI terms,
before calibration, whether the model is a state_dict or a saved IR."""

import numpy as np
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from tests.cli.conftest import run_cli


def _refusal(path, what) -> str:
    return (
        f"lstm-fpga build: error: {path} is an nn.LSTM with proj_size=2 and {what}: "
        f"lstm-fpga build (and simulate, compare, synth) runs LSTMs with projections "
        f"unidirectional, with on-chip weights and --control stream (any layers, lanes, "
        f"--interleave and Linear head); use a unidirectional model, drop --weights external "
        f"and --control axi-lite, or run it in the integer reference from Python "
        f"(docs/lstmp.md)"
    )


def test_build_refuses_unsupported_lstmp_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, proj_size=2, bidirectional=True)
    torch.save(lstm.state_dict(), tmp_path / "lstmp.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    argv = ["build", tmp_path / "lstmp.pt", "--calibrate", tmp_path / "cal.npy"]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "out", "--max-seq-len", "8")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "lstmp.pt", "bidirectional=True")
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    model, _ = quantize_from_torch(tmp_path / "lstmp.pt", np.load(tmp_path / "cal.npy"))
    model.save(tmp_path / "ir")
    argv = ["build", tmp_path / "ir.json", "-o", tmp_path / "out2", "--max-seq-len", "8"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "ir.json", "bidirectional=True")


def test_build_refuses_lstmp_with_external_weights(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 5, proj_size=2).state_dict(), tmp_path / "lstmp.pt")
    argv = ["build", tmp_path / "lstmp.pt", "-o", tmp_path / "out", "--weights", "external"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "lstmp.pt", "--weights external")
    assert not (tmp_path / "out").exists()


def test_build_refuses_lstmp_behind_axi_lite(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 5, proj_size=2).state_dict(), tmp_path / "lstmp.pt")
    argv = ["build", tmp_path / "lstmp.pt", "-o", tmp_path / "out", "--control", "axi-lite"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "lstmp.pt", "--control axi-lite")
    assert not (tmp_path / "out").exists()


def test_build_generates_a_unidirectional_lstmp(tmp_path, capsys):
    """A unidirectional LSTMP builds: the projection on the lanes, its bound in build.json."""
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 5, proj_size=2).state_dict(), tmp_path / "lstmp.pt")
    code, _, err = run_cli(
        capsys, "build", tmp_path / "lstmp.pt", "-o", tmp_path / "out", "--lanes", "4"
    )
    assert code == 0, err
    assert (tmp_path / "out" / "rtl" / "lstm_top.v").exists()
