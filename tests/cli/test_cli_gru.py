"""``lstm-fpga build`` / ``simulate`` / ``compare`` on a saved ``nn.GRU``: the generated
hardware is bit-exact against the GRU integer reference; a cell state (``c0``) is refused
in one line (a GRU has none)."""

import json

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main
from lstm_fpga.sw.calibrate import quantize_from_torch
from tests.cli.conftest import run_cli


@pytest.fixture(scope="module")
def gru_build(tmp_path_factory):
    """A bidirectional ``nn.GRU(3, 5)`` state_dict built for 3 lanes."""
    directory = tmp_path_factory.mktemp("cli_gru")
    torch.manual_seed(0)
    torch.save(torch.nn.GRU(3, 5, bidirectional=True).state_dict(), directory / "gru.pt")
    rng = np.random.default_rng(0)
    np.save(directory / "cal.npy", rng.uniform(-1, 1, (6, 2, 3)))
    np.save(directory / "x.npy", rng.uniform(-1, 1, (5, 2, 3)))
    np.save(directory / "h0.npy", rng.uniform(-0.5, 0.5, (2, 2, 5)))
    argv = ["build", directory / "gru.pt", "--calibrate", directory / "cal.npy"]
    argv += ["--max-seq-len", "6", "--lanes", "3", "-o", directory / "out"]
    assert main([str(a) for a in argv]) == 0
    return directory


def test_build_describes_the_gru(gru_build):
    manifest = json.loads((gru_build / "out" / "build.json").read_text())
    assert manifest["model"]["cell_type"] == "gru"
    H, I, P = 5, 3, 3
    bound = 2 * -(-3 * H * (I + H) // P)  # two directions of ceil(3H(I+H)/P)
    assert manifest["cycle_bound_per_step"] == bound
    geometry = manifest["hardware"]["geometry"]
    assert geometry["cycle_bound"] == bound
    for matrix in geometry["matrices"]:
        # Three lane rows per unit, the n row's sum handed out as two.
        assert matrix["unit_rows"] == ["r", "z", "n"]
        assert matrix["unit_sums"] == ["r", "z", "xn", "hn"]
        assert matrix["rows"] == 3 * H
        assert matrix["passes"] * matrix["span"] == -(-3 * H * (I + H) // P)


def test_simulate_then_compare_a_gru(gru_build, capsys):
    out = gru_build / "out"
    argv = ["simulate", out, "--input", gru_build / "x.npy", "--h0", gru_build / "h0.npy"]
    code, stdout, _ = run_cli(capsys, *argv, "--json")
    summary = json.loads(stdout)
    assert code == 0
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
    assert summary["compared"] == 5 * 2 * 10 + 2 * 2 * 5  # outputs and h_n (no c_n)
    assert summary["max_abs_error_vs_float"] < 0.01
    code, stdout, _ = run_cli(capsys, "compare", out, "--json")
    assert code == 0 and json.loads(stdout)["bit_exact"] is True


def test_c0_for_a_gru_is_one_line_exit_2(gru_build, capsys):
    out = gru_build / "out"
    argv = ["simulate", out, "--input", gru_build / "x.npy", "--c0", gru_build / "h0.npy"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.splitlines()[-1] == (
        "lstm-fpga simulate: error: --c0: an nn.GRU has no cell state; give its initial "
        "state with --h0"
    )
    assert sum("error" in line for line in err.splitlines()) == 1


def test_build_from_a_saved_gru_ir(gru_build, capsys, tmp_path):
    model, _ = quantize_from_torch(gru_build / "gru.pt", np.load(gru_build / "cal.npy"))
    model.save(tmp_path / "gru_ir")
    argv = ["build", tmp_path / "gru_ir.json", "--max-seq-len", "6", "--lanes", "7"]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "out")
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "build.json").read_text())
    assert manifest["model"]["cell_type"] == "gru"
