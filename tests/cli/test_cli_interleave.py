"""``lstm-fpga build --interleave B``: ``B`` lands in ``build.json`` (hardware, limits, the
``lstm_top`` stream contract) and the build reloads with it; what it does not support is one
line naming the flag, exit 2, nothing written."""

import json

import pytest

from lstm_fpga.project import Project
from tests.cli.conftest import run_cli


def test_interleaved_build_records_b(files, capsys):
    out = files / "il"
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--out", out]
    code, _out, err = run_cli(capsys, *argv, "--lanes", "5", "--interleave", "3")
    assert code == 0, err
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["hardware"]["interleave"] == 3
    assert manifest["limits"]["interleave"] == 3
    rtl = json.loads((out / "rtl" / "manifest.json").read_text())
    assert rtl["streams"]["interleave"] == 3
    assert rtl["streams"]["init_beats"] == 2 * 3 * rtl["streams"]["state"]["beats"]
    assert Project.load(out).config.interleave == 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--interleave", "0"], "--interleave 0"),
        (["--interleave", "2", "--control", "axi-lite"], "--control stream only"),
    ],
)
def test_unsupported_interleave_is_one_line_exit_2(files, capsys, extra, message):
    out = files / "bad"
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--out", out]
    code, _stdout, err = run_cli(capsys, *argv, *extra)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in files.iterdir()) == ["cal.npy", "model.pt"]  # nothing written


@pytest.mark.parametrize(
    "make, message",
    [
        ("LSTM(3, 4, bidirectional=True)", "--interleave B > 1 runs unidirectional models only"),
        (
            "LSTM(3, 4, bidirectional=True, proj_size=2)",
            "--interleave B > 1 runs unidirectional models only",
        ),
        ("GRU(3, 4)", "--interleave B > 1 runs nn.LSTM models only"),
    ],
)
def test_models_interleave_does_not_run_are_refused(files, capsys, make, message):
    import torch

    torch.manual_seed(1)
    torch.save(eval(f"torch.nn.{make}").state_dict(), files / "other.pt")
    out = files / "other"
    argv = ["build", files / "other.pt", "--calibrate", files / "cal.npy", "--out", out]
    code, stdout, err = run_cli(capsys, *argv, "--interleave", "2", "--max-seq-len", "8")
    assert code == 2
    # Refused before calibration: no progress line, only the error.
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert stdout == ""
    assert sorted(p.name for p in files.iterdir()) == ["cal.npy", "model.pt", "other.pt"]


def test_external_weights_interleave_share_the_weights(files, capsys):
    """``--weights external --interleave B``: built in one pass per matrix (``P >= 4H``) and
    with several passes (``--lanes 5`` below ``4H = 16``, not dividing it): weight reuse,
    build.json's bytes per sequence-step are ``1/B`` of B = 1's."""
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--weights", "external"]
    for lanes in ([], ["--lanes", "5"]):
        per_step = {}
        for B in (1, 2):
            out = files / f"ext{B}_{len(lanes)}"
            code, _stdout, err = run_cli(
                capsys, *argv, "--out", out, "--interleave", str(B), *lanes
            )
            assert code == 0, err
            limits = json.loads((out / "build.json").read_text())["limits"]
            per_step[B] = limits["weight_bytes_per_step"]
        assert per_step[2] * 2 == per_step[1]


def test_simulate_an_interleaved_build(files, capsys):
    """``simulate`` streams whole groups bit-exactly; a batch that is not whole groups of
    equal length is one line, exit 2."""
    import numpy as np

    out = files / "il"
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--out", out]
    code, _out, err = run_cli(capsys, *argv, "--lanes", "5", "--interleave", "2")
    assert code == 0, err
    rng = np.random.default_rng(3)
    np.save(files / "x.npy", rng.uniform(-1, 1, (4, 2, 3)))
    np.save(files / "x3.npy", rng.uniform(-1, 1, (4, 3, 3)))
    code, stdout, err = run_cli(capsys, "simulate", out, "--input", files / "x.npy", "--json")
    assert code == 0, err
    assert json.loads(stdout)["bit_exact"] is True
    code, _stdout, err = run_cli(capsys, "simulate", out, "--input", files / "x3.npy")
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "--interleave 2" in errors[0], err
