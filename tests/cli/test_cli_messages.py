"""``lstm-fpga build``: the cases issues 15 and 16 found silent, misnamed or a traceback."""

import json
import warnings

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main
from lstm_fpga.project import Project
from tests.cli.conftest import run_cli


def _build(capsys, *argv):
    return run_cli(capsys, "build", *argv)


def _one_line(code, err, expected):
    assert code == 2, err
    assert err.splitlines()[-1] == f"lstm-fpga build: error: {expected}"
    assert "Traceback" not in err and "Warning" not in err


def test_model_that_is_not_a_pytorch_file_is_named(files, capsys):
    (files / "random.pt").write_bytes(np.random.default_rng(1).bytes(300))
    np.save(files / "array.npy", np.zeros((3, 3)))
    expected = (
        "MODEL is a PyTorch state_dict (torch.save(model.state_dict(), path)) or an IR .json "
        "saved by lstm-fpga"
    )
    code, _, err = _build(capsys, files / "random.pt", "-o", files / "o")
    _one_line(code, err, f"model file {files / 'random.pt'} is not a PyTorch file; {expected}")
    code, _, err = _build(capsys, files / "array.npy", "-o", files / "o")
    _one_line(code, err, f"model file {files / 'array.npy'} is a NumPy array (.npy); {expected}")
    assert "pickles" not in err


def test_torch_warnings_do_not_precede_the_error(files, capsys):
    import pickle

    with (files / "legacy.pt").open("wb") as file:
        pickle.dump({"x": 1}, file, protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        code, _, err = _build(capsys, files / "legacy.pt", "-o", files / "o")
    assert code == 2 and len(err.splitlines()) == 1, err


def test_calibration_directory_is_not_called_missing(files, capsys):
    code, _, err = _build(capsys, files / "model.pt", "--calibrate", files, "-o", files / "o")
    _one_line(code, err, f"calibration file {files} is a directory; give a .npy (or .npz) file")


@pytest.mark.parametrize("shape", [(0, 2, 3), (5, 0, 3), (0, 3)], ids=str)
def test_empty_calibration_is_refused(files, capsys, shape):
    np.save(files / "empty.npy", np.zeros(shape))
    code, _, err = _build(
        capsys, files / "model.pt", "--calibrate", files / "empty.npy", "-o", files / "o"
    )
    _one_line(
        code,
        err,
        f"calibration file {files / 'empty.npy'} has shape {shape}: no values (a zero-length "
        "batch or sequences without time steps); give at least one step of one sequence",
    )
    assert not (files / "o").exists()


def test_calibration_npz_with_lengths(files, capsys):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (7, 3, 3))
    x[4:, 0] = 50.0  # padding past sequence 0's length: must not widen any format
    np.savez(files / "cal.npz", x=x, lengths=np.array([4, 7, 7]))
    code, _, err = _build(
        capsys, files / "model.pt", "--calibrate", files / "cal.npz", "-o", files / "o"
    )
    assert code == 0, err
    assert str(Project.load(files / "o").model.input_format) == "Q0.15"
    manifest = json.loads((files / "o" / "build.json").read_text())
    assert manifest["calibration"]["data_seen"] is True


def test_options_that_do_not_apply_to_an_ir_are_refused(files, capsys):
    assert (
        _build(capsys, files / "model.pt", "--calibrate", files / "cal.npy", "-o", files / "a")[0]
        == 0
    )
    ir = files / "a" / "model.json"
    for extra, named in (
        (["--bits", "8"], "--bits does"),
        (["--calibrate", files / "cal.npy"], "--calibrate does"),
        (["--bits", "16", "--headroom", "1"], "--bits, --headroom do"),
    ):
        code, _, err = _build(capsys, ir, "-o", files / "b", *extra)
        _one_line(
            code,
            err,
            f"{named} not apply to a saved IR ({ir}): its formats are fixed; give the PyTorch "
            "state_dict to quantize again",
        )
    assert _build(capsys, ir, "-o", files / "b")[0] == 0


def test_build_without_data_uses_the_input_range_and_says_so(files, capsys):
    code, out, err = _build(capsys, files / "model.pt", "-o", files / "o", "--input-range=-1.5,1.5")
    assert code == 0, err
    assert "no calibration data seen: formats chosen for inputs in [-1.5, 1.5]" in out
    project = Project.load(files / "o")
    assert str(project.model.input_format) == "Q1.14"  # [-1.5, 1.5] needs one integer bit
    manifest = json.loads((files / "o" / "build.json").read_text())
    assert manifest["calibration"]["data_seen"] is False
    assert manifest["calibration"]["input_range"] == [-1.5, 1.5]
    report = (files / "o" / "quantization_report.txt").read_text()
    assert "no data seen (formats from the declared input range [-1.5, 1.5])" in report
    code, out, _ = _build(capsys, files / "model.pt", "-o", files / "d", "--json")
    assert code == 0 and json.loads(out)["calibration_data_seen"] is False


def test_json_output_format_is_what_y_carries_and_lanes_built(tmp_path, capsys):
    torch.manual_seed(4)
    lstm, head = torch.nn.LSTM(3, 4), torch.nn.Linear(4, 2)
    state = {**lstm.state_dict(), **{f"head.{k}": v * 40 for k, v in head.state_dict().items()}}
    torch.save(state, tmp_path / "m.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(4).uniform(-1, 1, (6, 2, 3)))
    code, out, err = _build(
        capsys,
        tmp_path / "m.pt",
        "--calibrate",
        tmp_path / "cal.npy",
        "-o",
        tmp_path / "o",
        "--lanes",
        100000,
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    model = Project.load(tmp_path / "o").model
    assert summary["output_format"] == str(model.head.formats.output)
    assert summary["output_format"] != str(model.output_format)
    # 4H = 16 rows per group, min(100000 // 16, I + H = 7) = 7 groups.
    assert (summary["lanes"], summary["lanes_built"]) == (100000, 7 * 16)


def test_corrupted_or_incomplete_build_directory(files, capsys):
    assert (
        _build(capsys, files / "model.pt", "--calibrate", files / "cal.npy", "-o", files / "o")[0]
        == 0
    )
    np.save(files / "x.npy", np.zeros((4, 3)))
    hex_file = sorted((files / "o" / "rtl").glob("*.hex"))[0]
    hex_file.unlink()
    for command in (["simulate", "--input", files / "x.npy"], ["synth"]):
        code = main([command[0], str(files / "o"), *map(str, command[1:])])
        err = capsys.readouterr().err
        assert code == 2 and f"rtl/{hex_file.name} is missing" in err.splitlines()[-1], err
    (files / "o" / "build.json").write_text("{not json")
    code = main(["simulate", str(files / "o"), "--input", str(files / "x.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "build.json is corrupted" in err.splitlines()[-1]
    assert "Traceback" not in err


def test_calibration_initial_states_from_flags_or_npz(files, capsys):
    """States the samples start from count in the ranges: a cell state of 6 needs Q3.12."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (6, 2, 3))
    h0, c0 = rng.uniform(-0.5, 0.5, (1, 2, 4)), np.full((1, 2, 4), 6.0)
    np.save(files / "h0.npy", h0)
    np.save(files / "c0.npy", c0)
    np.savez(files / "cal.npz", x=x, h0=h0, c0=c0)
    np.save(files / "x.npy", x)
    base = [files / "model.pt", "--calibrate"]
    cases = {
        "zero": [files / "x.npy"],
        "flags": [
            files / "x.npy",
            "--calibrate-h0",
            files / "h0.npy",
            "--calibrate-c0",
            files / "c0.npy",
        ],
        "npz": [files / "cal.npz"],
    }
    cells = {}
    for name, extra in cases.items():
        code, _, err = _build(capsys, *base, *extra, "-o", files / name)
        assert code == 0, err
        project = Project.load(files / name)
        cells[name] = str(project.model.direction(0, False).formats.cell)
        assert project.report.initial_states == ("zero" if name == "zero" else "sampled")
    assert cells["flags"] == cells["npz"] == "Q3.12" != cells["zero"]
    code, _, err = _build(
        capsys, files / "model.pt", "--calibrate-h0", files / "h0.npy", "-o", files / "bad"
    )
    _one_line(code, err, "--calibrate-h0/--calibrate-c0 describe --calibrate samples: add it")


@pytest.mark.parametrize("kind", ["meta", "sparse"])
def test_state_dict_with_meta_or_sparse_tensors(files, capsys, kind):
    state = torch.nn.LSTM(3, 4).state_dict()
    if kind == "meta":
        state = {k: v.to("meta") for k, v in state.items()}
        expected = "is a meta tensor (a shape without values)"
    else:
        state = {k: v.to_sparse() if v.dim() == 2 else v for k, v in state.items()}
        expected = "is a torch.sparse_coo tensor; save dense weights"
    torch.save(state, files / "odd.pt")
    code, _, err = _build(capsys, files / "odd.pt", "-o", files / "o")
    assert code == 2 and expected in err.splitlines()[-1] and "Traceback" not in err


def test_bits_outside_what_works_names_the_flag(files, capsys):
    code, _, err = _build(capsys, files / "model.pt", "--bits", 31, "-o", files / "o")
    _one_line(code, err, "--bits must be an int from 4 to 30, not 31")


def test_simulate_does_not_write_through_a_linked_sim_directory(files, capsys, tmp_path_factory):
    assert (
        _build(capsys, files / "model.pt", "--calibrate", files / "cal.npy", "-o", files / "o")[0]
        == 0
    )
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "outputs.npy").write_bytes(b"user data")
    (files / "o" / "sim").symlink_to(elsewhere, target_is_directory=True)
    np.save(files / "x.npy", np.zeros((4, 3)))
    code = main(["simulate", str(files / "o"), "--input", str(files / "x.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "is not the directory lstm-fpga wrote" in err.splitlines()[-1]
    assert (elsewhere / "outputs.npy").read_bytes() == b"user data"
