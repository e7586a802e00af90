"""Paths with spaces and non-ASCII characters work end to end (issue 15): build, simulate,
compare. GNU Make (Verilator's build) cannot work in a directory with spaces, so such a build
caches its simulator elsewhere."""

import json

import numpy as np
import torch

from lstm_fpga.cli import main
from lstm_fpga.project import Project


def test_build_and_simulate_under_spaces_and_non_ascii(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSTM_FPGA_SIM_CACHE", str(tmp_path / "cache"))
    home = tmp_path / "my models" / "données ü"
    home.mkdir(parents=True)
    torch.manual_seed(6)
    torch.save(torch.nn.LSTM(2, 3).state_dict(), home / "mödel 1.pt")
    rng = np.random.default_rng(6)
    np.save(home / "cal data.npy", rng.uniform(-1, 1, (5, 2, 2)))
    np.save(home / "x ü.npy", rng.uniform(-1, 1, (4, 2, 2)))
    out = home / "build out"
    argv = ["build", home / "mödel 1.pt", "--calibrate", home / "cal data.npy", "-o", out]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    assert Project.load(out).sim_cache == tmp_path / "cache"
    code = main(["simulate", str(out), "--input", str(home / "x ü.npy"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["bit_exact"] is True
    assert main(["compare", str(out)]) == 0
    assert "bit-exact: yes" in capsys.readouterr().out
