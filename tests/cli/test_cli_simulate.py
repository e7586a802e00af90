"""``lstm-fpga simulate`` / ``compare`` on a real build: bit-exact, and exit 1 when it is not."""

import json

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main
from lstm_fpga.project import Project


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli_sim")
    torch.manual_seed(3)
    torch.save(torch.nn.LSTM(3, 5).state_dict(), directory / "model.pt")
    rng = np.random.default_rng(3)
    np.save(directory / "cal.npy", rng.uniform(-1, 1, (6, 8, 3)).astype(np.float32))
    np.save(directory / "x.npy", rng.uniform(-1, 1, (2, 7, 3)).astype(np.float32))
    np.save(directory / "x_wrong.npy", rng.uniform(-1, 1, (2, 7, 4)).astype(np.float32))
    out = directory / "out"
    code = main(
        [
            "build",
            str(directory / "model.pt"),
            "-o",
            str(out),
            "--calibrate",
            str(directory / "cal.npy"),
            "--lanes",
            "3",
            "--batch-first",
        ]
    )
    assert code == 0
    return directory


def test_simulate_then_compare(built, capsys):
    out = built / "out"
    code = main(["simulate", str(out), "--input", str(built / "x.npy"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
    assert summary["compared"] == 2 * 7 * 5 + 2 * (2 * 5)  # outputs, h_n and c_n
    assert summary["cycle_bound_per_step"] == -(-4 * 5 * (3 + 5) // 3)
    assert 0 < summary["lane_utilization"] <= 1
    assert summary["max_abs_error_vs_float"] < 0.01
    outputs = np.load(out / "sim" / "outputs.npy")
    assert outputs.shape == (2, 7, 5)  # batch_first like the build
    assert main(["compare", str(out), "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    assert compared["bit_exact"] is True
    assert compared["limits"]["clock"]["measured"] is False and compared["limits"]["memory"] == []
    assert main(["compare", str(out), "--memory-gbps", "0.1"]) == 0
    assert "from a 0.1 GB/s memory: memory-bound" in capsys.readouterr().out


def test_wrong_input_shape_is_exit_2(built, capsys):
    code = main(["simulate", str(built / "out"), "--input", str(built / "x_wrong.npy")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == (
        f"lstm-fpga simulate: error: input file {built / 'x_wrong.npy'} has 4 features per "
        "time step but the model expects 3"
    )


def test_a_corrupted_weight_image_is_not_bit_exact(built, capsys, tmp_path):
    """One weight changed in a .hex file: simulate must say so (exit 1) and locate it.

    (A change of one LSB can vanish in the rounding of the pre-activation; tests/sim shows the
    one-LSB case with a weight the reference predicts to matter.)"""
    import shutil

    corrupt = tmp_path / "corrupt"
    shutil.copytree(built / "out", corrupt, ignore=shutil.ignore_patterns("sim_build", "sim"))
    project = Project.load(corrupt)
    # Lane 1's first word: slot 1 of the first packed weight memory (two 16-bit lanes).
    hex_path = sorted(project.rtl.glob("weights_group*.hex"))[0]
    lines = hex_path.read_text().splitlines()
    width = len(lines[0])
    assert width == 8
    lines[0] = format((int(lines[0], 16) + (0x1000 << 16)) % (16**width), f"0{width}x")
    hex_path.write_text("\n".join(lines) + "\n")
    code = main(["simulate", str(corrupt), "--input", str(built / "x.npy"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert summary["bit_exact"] is False and summary["mismatches"] > 0
    assert "layer 0 (forward)" in summary["first_mismatch"]


def _simulate(capsys, *argv):
    code = main(["simulate", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _outside_q015(values) -> int:
    q = np.floor(np.asarray(values) * 2**15 + 0.5)  # round half up, as the input format
    return int(np.count_nonzero((q < -(2**15)) | (q > 2**15 - 1)))


def test_clamped_inputs_are_counted_and_strict_refuses(built, capsys):
    x = np.load(built / "x.npy") * 100  # a Q0.15 input format: almost everything clamps
    np.save(built / "x_big.npy", x)
    code, out, err = _simulate(capsys, built / "out", "--input", built / "x_big.npy", "--json")
    assert code == 0, err
    summary = json.loads(out)
    expected = _outside_q015(x)
    assert expected > 0 and summary["clamped_inputs"] == {"x": expected}
    assert f"warning: x: {expected} of {x.size} values outside its format Q0.15" in err
    code, _, err = _simulate(
        capsys, built / "out", "--input", built / "x_big.npy", "--strict", "--json"
    )
    assert code == 2
    assert err.splitlines()[-1].startswith(
        f"lstm-fpga simulate: error: x: {expected} of {x.size} values outside its format Q0.15"
    )


def test_error_vs_float_is_against_the_unclamped_initial_state(built, capsys):
    rng = np.random.default_rng(7)
    h0 = rng.uniform(-9, 9, (1, 2, 5))
    c0 = rng.uniform(-9, 9, (1, 2, 5))
    np.save(built / "h0.npy", h0)
    np.save(built / "c0.npy", c0)
    argv = ["--input", built / "x.npy", "--h0", built / "h0.npy", "--c0", built / "c0.npy"]
    code, out, err = _simulate(capsys, built / "out", *argv, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["clamped_inputs"]["h0[l0]"] == _outside_q015(h0) > 0
    assert "c0[l0]" in summary["clamped_inputs"]
    lstm = torch.nn.LSTM(3, 5, batch_first=True).double()
    lstm.load_state_dict(torch.load(built / "model.pt"))
    with torch.no_grad():
        expected, _ = lstm(
            torch.tensor(np.load(built / "x.npy"), dtype=torch.float64),
            (torch.tensor(h0), torch.tensor(c0)),
        )
    true_error = np.abs(np.load(built / "out" / "sim" / "outputs.npy") - expected.numpy()).max()
    assert true_error > 0.1  # against the clamped state it would look like quantisation noise
    assert summary["report"]["float_errors"][0]["max_abs"] == pytest.approx(true_error, rel=1e-9)


@pytest.mark.parametrize("container", ["npy", "npz"])
def test_lengths_for_a_padded_batch(built, capsys, container):
    x = np.load(built / "x.npy")  # (B=2, T=7, I=3), batch_first build
    lengths = np.array([4, 7])
    padded = x.copy()
    padded[0, 4:] = 1e6  # garbage past the length: neither clamped nor computed
    if container == "npz":
        np.savez(built / "xl.npz", x=padded, lengths=lengths)
        argv = ["--input", built / "xl.npz"]
    else:
        np.save(built / "xp.npy", padded)
        np.save(built / "lengths.npy", lengths)
        argv = ["--input", built / "xp.npy", "--lengths", built / "lengths.npy"]
    code, out, err = _simulate(capsys, built / "out", *argv, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["clamped_inputs"] == {}
    assert summary["compared"] == (4 + 7) * 5 + 2 * (2 * 5)
    assert summary["report"]["cycles"]["sequence_lengths"] == [4, 7]
    outputs = np.load(built / "out" / "sim" / "outputs.npy")
    assert not outputs[0, 4:].any()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: np.zeros((0, 7, 3)), "no values (a zero-length batch"),
        (lambda: np.zeros((2, 0, 3)), "no values (a zero-length batch"),
    ],
    ids=["zero-batch", "zero-steps"],
)
def test_empty_input_is_one_line(built, capsys, make, message):
    np.save(built / "empty.npy", make())
    code, _, err = _simulate(capsys, built / "out", "--input", built / "empty.npy")
    assert code == 2 and message in err.splitlines()[-1] and "Traceback" not in err


@pytest.fixture(scope="module")
def time_major_bidirectional(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli_bi")
    torch.manual_seed(5)
    torch.save(torch.nn.LSTM(3, 4, bidirectional=True).state_dict(), directory / "bi.pt")
    argv = ["build", directory / "bi.pt", "-o", directory / "out", "--max-seq-len", 6]
    assert main([str(a) for a in argv]) == 0
    return directory


def test_time_major_layout_is_printed_and_a_suspicious_one_warned(time_major_bidirectional, capsys):
    d = time_major_bidirectional
    np.save(d / "x.npy", np.random.default_rng(5).uniform(-1, 1, (2, 10, 3)))
    code, _, err = _simulate(capsys, d / "out", "--input", d / "x.npy")
    assert code == 0, err
    assert (
        "warning: input (2, 10, 3) read as 10 sequence(s) of 2 steps, (T, B, I); for (B, T, I) "
        "data rebuild with --batch-first"
    ) in err


def test_bidirectional_sequence_longer_than_max_seq_len(time_major_bidirectional, capsys):
    d = time_major_bidirectional
    np.save(d / "long.npy", np.zeros((9, 2, 3)))
    code, _, err = _simulate(capsys, d / "out", "--input", d / "long.npy")
    assert code == 2
    assert err.splitlines()[-1] == (
        "lstm-fpga simulate: error: a sequence of 9 steps is longer than this bidirectional "
        "build buffers (--max-seq-len 6); rebuild with --max-seq-len 9 or split it"
    )
