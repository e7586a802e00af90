"""``lstm-fpga build``: what it writes, and a one-line error (exit 2) for every bad input."""

import json

import numpy as np
import pytest
import torch

from lstm_fpga.project import Project
from lstm_fpga.sw.ir import LstmModel
from tests.cli.conftest import run_cli


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7)
    torch.save(lstm.state_dict(), tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (12, 4, 5)).astype(np.float32))
    np.save(tmp_path / "wrong_features.npy", np.zeros((12, 4, 6), dtype=np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((12, 4, 5), dtype=np.int32))
    np.save(tmp_path / "flat.npy", np.zeros(5, dtype=np.float32))
    (tmp_path / "not_a_model.pt").write_bytes(b"garbage")
    return tmp_path


def _build(capsys, files, *flags, model="model.pt", out="out"):
    """``lstm-fpga build files/MODEL -o files/OUT --calibrate files/cal.npy FLAGS...``."""
    return run_cli(
        capsys, "build", files / model, "-o", files / out, "--calibrate", files / "cal.npy", *flags
    )


@pytest.mark.parametrize("lanes", [1, 3, 16])
def test_build_writes_a_complete_directory(files, capsys, lanes):
    out_dir = files / "out"
    code, out, err = _build(capsys, files, "--lanes", lanes, "--json")
    assert code == 0, err
    summary = json.loads(out)
    manifest = json.loads((out_dir / "build.json").read_text())
    for name in manifest["files"]:
        assert (out_dir / name).is_file(), name
    project = Project.load(out_dir)
    assert project.config.lanes == lanes
    assert summary["cycle_bound_per_step"] == manifest["cycle_bound_per_step"]
    assert manifest["cycle_bound_per_step"] == -(-4 * 7 * (5 + 7) // lanes)
    assert project.model == LstmModel.load(out_dir / "model.json")
    assert "module lstm_top" in project.verilog.read_text()
    assert manifest["formats"]["l0.gate"] == "Q0.15"


def test_format_override_reaches_the_ir(files, capsys):
    code, _, err = _build(capsys, files, "--format", "l0.cell=Q4.11", "--bits", "16")
    assert code == 0, err
    assert str(Project.load(files / "out").model.direction(0, False).formats.cell) == "Q4.11"


BAD_INPUTS = [
    (["missing.pt", "--calibrate", "cal.npy"], "model file {d}/missing.pt does not exist"),
    (
        ["model.pt", "--input-range", "1,-1"],
        "--input-range 1,-1: give LO,HI with LO < HI (e.g. -1,1)",
    ),
    (["model.pt", "--calibrate", "nope.npy"], "calibration file {d}/nope.npy does not exist"),
    (
        ["model.pt", "--calibrate", "wrong_features.npy"],
        "calibration file {d}/wrong_features.npy has 6 features per time step but the model "
        "expects 5",
    ),
    (
        ["model.pt", "--calibrate", "ints.npy"],
        "calibration file {d}/ints.npy holds dtype int32; save float sequences "
        "(np.save(path, x.astype(np.float32)))",
    ),
    (
        ["model.pt", "--calibrate", "flat.npy"],
        "calibration file {d}/flat.npy has shape (5,); expected (T, I) or a batch (3-D)",
    ),
    (
        ["model.pt", "--calibrate", "cal.npy", "--format", "l0.bogus=Q1.2"],
        "unknown tensor 'l0.bogus' in format overrides; valid names: x, l0.w_ih, l0.w_hh, l0.bias, "
        "l0.preact, l0.gate, l0.cell, l0.hidden",
    ),
    (
        ["model.pt", "--calibrate", "cal.npy", "--lanes", "0"],
        "lanes must be a positive int (the number of MAC lanes, P), not 0",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(files, capsys, argv, message):
    argv = [str(files / a) if a.endswith((".pt", ".npy")) else a for a in argv]
    code, _, err = run_cli(capsys, "build", *argv, "-o", files / "out")
    assert code == 2
    # Progress lines may precede it; the error itself is the one last line.
    assert err.splitlines()[-1] == f"lstm-fpga build: error: {message.format(d=files)}"
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (files / "out").exists()
    assert not [p for p in files.iterdir() if p.name.startswith(".out")]


def test_existing_output_needs_force(files, capsys):
    assert _build(capsys, files)[0] == 0
    code, _, err = _build(capsys, files)
    assert code == 2
    expected = f"output directory {files / 'out'} exists; pass --force to replace it"
    assert err == f"lstm-fpga build: error: {expected}\n"
    assert _build(capsys, files, "--force")[0] == 0


def test_unsafe_model_file_is_refused(files, capsys):
    code, _, err = _build(capsys, files, model="not_a_model.pt")
    assert code == 2
    assert err.startswith("lstm-fpga build: error: ") and err.count("\n") == 1


def test_bidirectional_needs_max_seq_len_and_output_mode_is_recorded(tmp_path, capsys):
    torch.manual_seed(1)
    torch.save(torch.nn.LSTM(3, 4, bidirectional=True).state_dict(), tmp_path / "bi.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(1).uniform(-1, 1, (5, 2, 3)))
    base = ["build", tmp_path / "bi.pt", "--calibrate", tmp_path / "cal.npy", "--lanes", 4]
    code, _, err = run_cli(capsys, *base, "-o", tmp_path / "out")
    assert code == 2
    assert "set --max-seq-len L to the longest sequence" in err.splitlines()[-1]
    assert "HardwareConfig" not in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(
        capsys, *base, "-o", tmp_path / "out", "--max-seq-len", 12, "--output", "last"
    )
    assert code == 0, err
    config = Project.load(tmp_path / "out").config
    assert (config.max_seq_len, config.output) == (12, "last")


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--format", "l0.preact=Q2.59", "--format", "l0.gate=Q0.7"],
            "the pre-activation rescale (accumulator with",
        ),
        (
            ["--format", "l0.preact=Q2.50", "--format", "l0.gate=Q0.29"],
            "needs",
        ),
        (["--bits", "31"], "--bits must be an int from 4 to 30, not 31"),
    ],
)
def test_build_refuses_formats_the_reference_cannot_compute_exactly(files, capsys, flags, message):
    """Formats whose intermediates exceed int64 are refused at build with the flag to change,
    and nothing is written."""
    out_dir = files / "refused"
    code, _, err = _build(capsys, files, *flags, out="refused")
    line = err.splitlines()[-1]
    assert code == 2 and line.startswith("lstm-fpga build: error: ") and message in line
    if flags[0] == "--format":
        assert "more than 62" in line and line.endswith("=Qm.n sets that format)")
    assert not out_dir.exists()


def test_weight_bits_narrow_the_weights_only(files, capsys):
    code, _, err = _build(capsys, files, "--weight-bits", "6", "--json")
    assert code == 0, err
    model = LstmModel.load(files / "out" / "model.json")
    f = model.directions[0].formats
    assert (f.w_ih.width, f.w_hh.width) == (6, 6)
    assert {f.x.width, f.bias.width, f.preact.width, f.cell.width, f.hidden.width} == {16}


def test_weight_bits_out_of_range_is_one_line(files, capsys):
    code, _, err = _build(capsys, files, "--weight-bits", "2", out="refused")
    assert code == 2
    assert err.splitlines()[-1] == (
        "lstm-fpga build: error: --weight-bits must be an int from 4 to 30, not 2"
    )
    assert not (files / "refused").exists()
