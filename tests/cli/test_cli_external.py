"""``lstm-fpga build --weights external``: the build writes ``rtl/weights.bin`` (the image
of :func:`lstm_fpga.hw.external.weight_image`) and its map, the ``lstm_top`` ports carry the
AXI4 read master, the build reloads with the same config; unsupported combinations and bad
master parameters are one line naming the flag, exit 2, nothing written."""

import json

import pytest

from lstm_fpga.hw import EnginePlan
from lstm_fpga.hw.external import AxiReadParams, weight_image
from lstm_fpga.project import Project
from tests.cli.conftest import run_cli


def test_external_build_writes_the_image_and_its_map(files, capsys):
    out = files / "ext"
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--out", out]
    argv += ["--lanes", "5", "--weights", "external", "--axi-data-width", "128"]
    argv += ["--axi-latency", "40", "--weights-base", "0x10000"]
    code, _out, err = run_cli(capsys, *argv)
    assert code == 0, err
    manifest = json.loads((out / "build.json").read_text())
    hardware = manifest["hardware"]
    assert hardware["weights"] == "external"
    entry = hardware["external_weights"]
    params = AxiReadParams(data_width=128, latency=40, base=0x10000)
    assert entry["axi"] == params.to_json_dict()
    project = Project.load(out)
    assert project.config.weights == "external" and project.config.axi == params
    image = weight_image(EnginePlan(project.model, project.config), data_width=128)
    assert (out / "rtl" / "weights.bin").read_bytes() == image.data
    assert entry["image"] == image.to_json_dict(0x10000, "weights.bin")
    assert "rtl/weights.bin" in manifest["files"]
    assert not list((out / "rtl").glob("weights_group*.hex"))
    ports = {p["name"]: p for p in manifest["interface"]["ports"]}
    assert ports["m_axi_rdata"]["width"] == 128
    assert ports["m_axi_araddr"]["direction"] == "out"
    assert "lstm_top_weights_group" not in (out / "rtl" / "lstm_top.v").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--axi-latency", "8"], "--axi-latency set the external-weights read master"),
        (["--weights", "external", "--axi-data-width", "48"], "AXI data width"),
        (["--weights", "external", "--axi-burst", "3"], "AXI burst"),
        (["--weights", "external", "--weights-base", "0x100"], "4 KiB-aligned"),
        (["--weights", "external", "--control", "axi-lite"], "--control stream only"),
    ],
)
def test_bad_external_flags_are_one_line_exit_2(files, capsys, extra, message):
    out = files / "bad"
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--out", out]
    code, _stdout, err = run_cli(capsys, *argv, *extra)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_bidirectional_model_is_refused(files, capsys):
    import torch

    torch.manual_seed(1)
    torch.save(torch.nn.LSTM(3, 4, bidirectional=True).state_dict(), files / "bi.pt")
    out = files / "bi"
    argv = ["build", files / "bi.pt", "--calibrate", files / "cal.npy", "--out", out]
    code, _stdout, err = run_cli(capsys, *argv, "--weights", "external", "--max-seq-len", "8")
    assert code == 2
    assert "--weights external supports unidirectional models only" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "command",
    [
        ["simulate", "{out}", "--input", "{x}"],
        ["bitstream", "{out}", "--board", "ulx3s-85f"],
        ["virtual-device", "{out}"],
    ],
)
def test_on_chip_commands_refuse_an_external_build(files, capsys, command):
    import numpy as np

    out = files / "ext"
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "--out", out]
    assert run_cli(capsys, *argv, "--weights", "external")[0] == 0
    np.save(files / "x.npy", np.zeros((3, 3)))
    argv = [a.format(out=out, x=files / "x.npy") for a in command]
    code, _stdout, err = run_cli(capsys, *argv)
    assert code == 2
    assert f"lstm-fpga {command[0]} needs a build with on-chip weights" in err, err
    assert len(err.strip().splitlines()) == 1
