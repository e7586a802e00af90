"""``lstm-fpga build --dsp-packing 2`` (issue 13 item 4): two lanes per DSP where the widths
fit the DSP of the target, a one-line error (exit 2, nothing written) where they do not."""

from __future__ import annotations

import json

import pytest

from lstm_fpga.project import Project
from tests.cli.conftest import run_cli


def _build(capsys, files, *flags, out="out"):
    return run_cli(
        capsys, "build", files / "model.pt", "-o", files / out, "--calibrate", files / "cal.npy",
        *flags,
    )  # fmt: skip


@pytest.mark.parametrize(
    "lanes, flags",
    [
        (5, ["--bits", "8"]),  # 8-bit weights and elements: 25 bits, the DSP48E1's port
        (4, ["--weight-bits", "4"]),  # 4-bit weights, 16-bit elements: 25 bits
        (3, ["--bits", "8", "--weight-bits", "9", "--device", "xczu3eg"]),  # 27: DSP48E2
    ],
)
def test_packed_build_records_the_packing(files, capsys, lanes, flags):
    code, out, err = _build(capsys, files, "--lanes", lanes, "--dsp-packing", "2", *flags, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dsp_packing"] == 2 and summary["lane_dsps"] == -(-lanes // 2)
    manifest = json.loads((files / "out" / "build.json").read_text())
    assert manifest["hardware"]["dsp_packing"] == 2
    project = Project.load(files / "out")
    assert project.config.dsp_packing == 2
    assert project.config.dsp == ("DSP48E2" if "xczu3eg" in flags else "DSP48E1")


def test_packed_build_says_how_many_dsps(files, capsys):
    code, out, err = _build(capsys, files, "--lanes", "7", "--dsp-packing", "2", "--bits", "8")
    assert code == 0, err
    assert "7 MAC lanes on 4 DSPs (two multiplies per DSP)" in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            [],
            "lstm-fpga build: error: two multiplies per DSP do not fit the DSP48E1 (25 x 18 "
            "signed): 16-bit weights and 16-bit elements need a 49-bit packed operand "
            "(2 x 16 + 16 + 1) on the 25-bit port and the 16-bit element on the 18-bit port; use "
            "weights of at most 4 bits (--weight-bits 4), or build without --dsp-packing",
        ),
        (
            ["--bits", "8", "--weight-bits", "9"],  # 27 bits: DSP48E2 only
            "lstm-fpga build: error: two multiplies per DSP do not fit the DSP48E1 (25 x 18 "
            "signed): 9-bit weights and 8-bit elements need a 27-bit packed operand "
            "(2 x 9 + 8 + 1) on the 25-bit port and the 8-bit element on the 18-bit port; use "
            "activations/states of at most 6 bits (--bits 6) or weights of at most 8 bits "
            "(--weight-bits 8), or build without --dsp-packing",
        ),
        (["--bits", "8", "--family", "ecp5"], "--dsp-packing 2 is not available with --family"),
        (["--bits", "8", "--device", "ecp5-85"], "MULT9X9D"),
        (["--bits", "8", "--device", "up5k"], "SB_MAC16 is a 16 x 16 multiplier"),
    ],
)
def test_infeasible_packing_is_one_line_exit_2(files, capsys, flags, message):
    code, _, err = _build(capsys, files, "--dsp-packing", "2", *flags, out="refused")
    assert code == 2
    assert message in err.splitlines()[-1]
    assert sum("error" in line for line in err.splitlines()) == 1
    assert not (files / "refused").exists()
    assert not [p for p in files.iterdir() if p.name.startswith(".refused")]


def test_other_packing_factors_are_refused(files, capsys):
    with pytest.raises(SystemExit) as exit_:
        _build(capsys, files, "--dsp-packing", "4", out="refused")
    assert exit_.value.code == 2
    assert "--dsp-packing: invalid choice: 4" in capsys.readouterr().err
