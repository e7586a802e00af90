"""``--memory-gbps`` and the limits report of ``build`` (build.json ``"limits"``), refreshed
at the measured clock by ``synth``'s record_timing."""

import json

import pytest

from lstm_fpga.hw import EnginePlan
from lstm_fpga.hw.limits import design_limits
from lstm_fpga.project import Project, limits_of, record_timing
from tests.cli.conftest import run_cli


@pytest.mark.parametrize("lanes", [3, 16])
def test_build_reports_the_limits(files, capsys, lanes):
    out = files / "out"
    code, text, _ = run_cli(
        capsys, "build", files / "model.pt", "-o", out, "--calibrate", files / "cal.npy",
        "--lanes", lanes, "--memory-gbps", "0.001", "--memory-gbps", "1e3",
    )  # fmt: skip
    assert code == 0
    manifest = json.loads((out / "build.json").read_text())
    limits = manifest["limits"]
    project = Project.load(out)
    expected = design_limits(EnginePlan(project.model, project.config))
    assert limits == expected.to_json_dict([0.001, 1000.0])
    assert limits["clock"]["measured"] is False
    assert [m["bound"] for m in limits["memory"]] == ["memory", "compute"]
    assert limits["weight_bytes_per_step"] == (
        limits["model_weight_bytes_per_step"] + limits["structural_zero_bytes_per_step"]
    )
    assert "limits at nominal 100 MHz" in text
    assert "from a 0.001 GB/s memory: memory-bound" in text
    assert "from a 1000 GB/s memory: compute-bound" in text


def test_build_json_summary_has_the_limits(files, capsys):
    out = files / "out"
    code, text, _ = run_cli(
        capsys, "build", files / "model.pt", "-o", out, "--input-range=-1,1", "--json",
        "--memory-gbps", "0.8",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(text)
    assert summary["limits"] == json.loads((out / "build.json").read_text())["limits"]
    assert summary["limits"]["memory"][0]["memory_gbps"] == 0.8


def test_without_the_flag_no_bound_is_claimed(files, capsys):
    out = files / "out"
    code, text, _ = run_cli(capsys, "build", files / "model.pt", "-o", out, "--input-range=-1,1")
    assert code == 0
    assert json.loads((out / "build.json").read_text())["limits"]["memory"] == []
    assert "GB/s" in text and "-bound" not in text


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan", "inf", ""])
@pytest.mark.parametrize("command", ["build", "compare"])
def test_bad_memory_gbps_is_one_line_and_writes_nothing(files, capsys, bad, command):
    out = files / "out"
    args = ["build", files / "model.pt", "-o", out] if command == "build" else ["compare", out]
    code, text, err = run_cli(capsys, *args, f"--memory-gbps={bad}")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"lstm-fpga {command}: error: --memory-gbps {bad}: give the bandwidth")
    assert "positive number of GB/s" in err
    assert not out.exists() and text == ""


def test_synth_timing_refreshes_the_limits_at_the_measured_clock(files, capsys):
    out = files / "out"
    run_cli(
        capsys, "build", files / "model.pt", "-o", out, "--input-range=-1,1",
        "--memory-gbps", "0.5",
    )  # fmt: skip
    before = json.loads((out / "build.json").read_text())["limits"]
    # What `lstm-fpga synth` records after place and route (test_cli_synth runs the tools).
    record_timing(
        out,
        {"target": "ecp5", "device": "ecp5-85", "part": "LFE5U-85F", "speed": 6,
         "fmax_mhz": 50.0},
    )  # fmt: skip
    after = json.loads((out / "build.json").read_text())["limits"]
    assert after["clock"] == {
        "mhz": 50.0,
        "measured": True,
        "source": "measured Fmax 50 MHz (LFE5U-85F speed 6, synth)",
    }
    # build.json holds these figures rounded to 6 decimals: equal up to that rounding.
    assert after["us_per_step_compute"] == pytest.approx(
        2 * before["us_per_step_compute"], abs=2e-6
    )
    assert after["weight_gbps_needed"] == pytest.approx(before["weight_gbps_needed"] / 2, abs=1e-6)
    assert [m["memory_gbps"] for m in after["memory"]] == [0.5]
    limits, gbps = limits_of(Project.load(out))
    assert gbps == (0.5,) and limits.clock.mhz == 50.0
    assert limits_of(Project.load(out), [2.0])[1] == (2.0,)
