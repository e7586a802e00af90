"""``lstm-fpga build`` of an ``nn.LSTM(proj_size > 0)``: a unidirectional or bidirectional one
builds; one with external weights or behind AXI4-Lite is refused in one line, in CLI terms,
before calibration, whether the model is a state_dict or a saved IR (a bidirectional one
with ``--interleave``: tests/cli/test_cli_interleave.py)."""

import numpy as np
import pytest
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from tests.cli.conftest import run_cli


def _refusal(path, what) -> str:
    return (
        f"lstm-fpga build: error: {path} is an nn.LSTM with proj_size=2 and {what}: "
        f"lstm-fpga build (and simulate, compare, synth) runs LSTMs with projections with "
        f"on-chip weights and --control stream (unidirectional or bidirectional, any layers, "
        f"lanes and Linear head; --interleave for unidirectional ones); drop --weights "
        f"external and --control axi-lite, or run it in the integer reference from Python "
        f"(docs/lstmp.md)"
    )


def test_build_refuses_unsupported_lstmp_in_one_line(tmp_path, capsys):
    """A bidirectional LSTMP with external weights: refused (state_dict and saved IR)."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, proj_size=2, bidirectional=True)
    torch.save(lstm.state_dict(), tmp_path / "lstmp.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    argv = ["build", tmp_path / "lstmp.pt", "--calibrate", tmp_path / "cal.npy"]
    external = ["--max-seq-len", "8", "--weights", "external"]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "out", *external)
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "lstmp.pt", "--weights external")
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    model, _ = quantize_from_torch(tmp_path / "lstmp.pt", np.load(tmp_path / "cal.npy"))
    model.save(tmp_path / "ir")
    code, _, err = run_cli(capsys, "build", tmp_path / "ir.json", "-o", tmp_path / "o2", *external)
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "ir.json", "--weights external")


@pytest.mark.parametrize(
    "flags", [("--weights", "external"), ("--control", "axi-lite")], ids=["external", "axi-lite"]
)
def test_build_refuses_lstmp_with_an_unsupported_flag(tmp_path, capsys, flags):
    """Exit 2, one line naming the flag in CLI terms, nothing written."""
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 5, proj_size=2).state_dict(), tmp_path / "lstmp.pt")
    argv = ["build", tmp_path / "lstmp.pt", "-o", tmp_path / "out", *flags]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "lstmp.pt", " ".join(flags))
    assert sum("error" in line for line in err.splitlines()) == 1
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


def test_build_generates_a_bidirectional_lstmp(tmp_path, capsys):
    """A bidirectional two-layer LSTMP builds (the buffered schedule, ``--max-seq-len``)."""
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, 2, proj_size=2, bidirectional=True)
    torch.save(lstm.state_dict(), tmp_path / "lstmp.pt")
    argv = ["build", tmp_path / "lstmp.pt", "-o", tmp_path / "out", "--max-seq-len", "8"]
    code, _, err = run_cli(capsys, *argv, "--lanes", "5")
    assert code == 0, err
    assert (tmp_path / "out" / "rtl" / "lstm_top.v").exists()
