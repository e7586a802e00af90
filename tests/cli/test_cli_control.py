"""``lstm-fpga build --control``: the AXI4-Lite top, its C header and the build.json record;
a bad value is argparse's one-line error (exit 2) and writes nothing."""

import json

import pytest

from lstm_fpga.hw.interface import TopInterface
from lstm_fpga.hw.regmap import REGISTER_MAP_VERSION, RegisterMap, c_header, model_hash
from lstm_fpga.project import Project
from tests.cli.conftest import run_cli


def test_axi_lite_build_writes_the_top_header_and_record(files, capsys):
    out_dir = files / "out"
    code, out, err = run_cli(
        capsys,
        "build",
        files / "model.pt",
        "-o",
        out_dir,
        "--lanes",
        3,
        "--control",
        "axi-lite",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["control"] == "axi-lite"
    manifest = json.loads((out_dir / "build.json").read_text())
    for name in ("rtl/lstm_axi.v", "rtl/lstm_axi_inline.v", "lstm_regs.h", "rtl/lstm_top.v"):
        assert name in manifest["files"] and (out_dir / name).is_file(), name
    project = Project.load(out_dir)
    assert project.control == "axi-lite"
    control = manifest["control"]
    assert control["mode"] == "axi-lite" and control["top"] == "lstm_axi"
    assert control["register_map_version"] == "{}.{}".format(*REGISTER_MAP_VERSION)
    assert control["model_hash"] == model_hash(project.model)
    regmap = RegisterMap(TopInterface(_plan(project)))
    assert (out_dir / "lstm_regs.h").read_text() == c_header(regmap)
    assert "module lstm_axi(" in (out_dir / "rtl" / "lstm_axi_inline.v").read_text()
    assert "$readmem" not in (out_dir / "rtl" / "lstm_axi_inline.v").read_text()


def _plan(project):
    from lstm_fpga.hw import EnginePlan

    return EnginePlan(project.model, project.config)


def test_bad_control_value_is_argparse_error_and_writes_nothing(files, capsys):
    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, "build", files / "model.pt", "-o", files / "out", "--control", "axi")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        "lstm-fpga build: error: argument --control: invalid choice: 'axi' "
        "(choose from 'stream', 'axi-lite')"
    )
    assert not (files / "out").exists()
