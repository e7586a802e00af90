"""``lstm-fpga build``, ``simulate`` and ``compare`` of an attention classifier (``lstm``,
``attention``, ``fc``): it builds with ``--max-seq-len L`` (``--output last``: its default)
and simulates bit-exact; what the hardware does not run is refused in one line, in CLI terms, before
calibration, whether the model is a state_dict or a saved IR; nothing is written then."""

import json

import numpy as np
import pytest
import torch

from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from tests.cli.conftest import run_cli


def _refusal(path, what) -> str:
    return (
        f"lstm-fpga build: error: {path} has attention pooling (lstm, attention, fc) and "
        f"{what}: lstm-fpga build (and simulate, compare, synth) runs attention pooling with "
        f"--output last, --max-seq-len L (the longest sequence its attention unit keeps), "
        f"on-chip weights, --control stream and no --interleave (docs/attention.md)"
    )


@pytest.mark.parametrize(
    ("flags", "what"),
    [
        (["--output", "all"], "--output all"),
        ([], "no --max-seq-len"),  # (--output last is the default for attention pooling)
        (["--output", "last", "--max-seq-len", "6", "--weights", "external"], "--weights external"),
        (["--output", "last", "--max-seq-len", "6", "--control", "axi-lite"], "--control axi-lite"),
    ],
)
def test_build_refuses_what_the_hardware_does_not_run_in_one_line(tmp_path, capsys, flags, what):
    torch.manual_seed(0)
    torch.save(AttentionClassifier(3, 5, 4, 2).state_dict(), tmp_path / "att.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    argv = ["build", tmp_path / "att.pt", "--calibrate", tmp_path / "cal.npy", *flags]
    code, _, err = run_cli(capsys, *argv, "-o", tmp_path / "out")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "att.pt", what)
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    model, _ = quantize_from_torch(tmp_path / "att.pt", np.load(tmp_path / "cal.npy"))
    model.save(tmp_path / "ir")
    code, _, err = run_cli(capsys, "build", tmp_path / "ir.json", *flags, "-o", tmp_path / "o2")
    assert code == 2
    assert err.splitlines()[-1] == _refusal(tmp_path / "ir.json", what)
    assert not (tmp_path / "o2").exists()


def test_build_simulate_compare_on_icarus(tmp_path, capsys):
    """The state_dict builds (calibrated from the CLI; ``--output last`` by default for
    attention pooling), simulates on Icarus bit-exact with variable lengths, once per
    sequence (O outputs each), and compares."""
    torch.manual_seed(1)
    torch.save(AttentionClassifier(3, 5, 4, 2).state_dict(), tmp_path / "att.pt")
    rng = np.random.default_rng(1)
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (6, 4, 3)))
    x = rng.uniform(-1, 1, (5, 3, 3))
    np.savez(tmp_path / "x.npz", x=x, lengths=np.array([5, 1, 3]))
    argv = ["build", tmp_path / "att.pt", "--calibrate", tmp_path / "cal.npy", "--lanes", "3"]
    flags = ["--max-seq-len", "5", "-o", tmp_path / "out"]
    code, _, err = run_cli(capsys, *argv, *flags, "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "build.json").read_text())["hardware"]["output"] == "last"
    argv = ["simulate", tmp_path / "out", "--input", tmp_path / "x.npz", "--simulator", "icarus"]
    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
    assert np.load(tmp_path / "out" / "sim" / "outputs.npy").shape == (3, 2)
    code, out, _ = run_cli(capsys, "compare", tmp_path / "out", "--json")
    assert code == 0 and json.loads(out)["bit_exact"] is True


def test_build_names_the_supported_layout_for_another_one(tmp_path, capsys):
    state = AttentionClassifier(3, 5, 4, 2).state_dict()
    state["attention.v.bias"] = torch.zeros(1)
    torch.save(state, tmp_path / "att.pt")
    code, _, err = run_cli(capsys, "build", tmp_path / "att.pt", "-o", tmp_path / "out")
    assert code == 2
    assert "unexpected key 'attention.v.bias'" in err.splitlines()[-1]
    assert "AttentionClassifier; docs/attention.md" in err.splitlines()[-1]
