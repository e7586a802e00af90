"""``lstm-fpga bitstream``: argument errors and fit refusal before anything is written, the
FuseSoC core file ``build`` writes, and (slow) the whole flow on a ULX3S for a tiny model."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main
from tests.cli.conftest import run_cli


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Builds of a seeded ``nn.LSTM(3, 4)`` (2 lanes) and ``nn.LSTM(3, 8)`` (24 lanes: 32
    DSPs, more than a ULX3S-12F/25F has)."""
    root = tmp_path_factory.mktemp("bitstream")
    cal = root / "cal.npy"
    np.save(cal, np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)).astype(np.float32))
    builds = {}
    for name, hidden, lanes in (("tiny", 4, 2), ("wide", 8, 24)):
        torch.manual_seed(0)
        torch.save(torch.nn.LSTM(3, hidden).state_dict(), root / f"{name}.pt")
        out = root / name
        code = main(
            ["build", str(root / f"{name}.pt"), "-o", str(out), "--lanes", str(lanes),
             "--calibrate", str(cal), "--json"]
        )  # fmt: skip
        assert code == 0
        builds[name] = out
    return builds


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--board", "ulx3s-99f"], "unknown board 'ulx3s-99f'; --board is one of ulx3s-85f|"),
        (["--board", "ulx3s-85f", "--freq", "0"], "--freq must be a positive frequency"),
        (["--board", "ulx3s-85f", "--freq", "433"], "outside the ECP5 PLL's output range"),
        (["--board", "ulx3s-85f", "--freq", "7.5"], "outside the ECP5 PLL's output range"),
        (["--board", "ulx3s-85f", "--baud", "40000000"], "--baud 40000000: baud rate"),
        (["--board", "ulx3s-85f", "--baud", "-3"], "--baud must be a positive rate"),
    ],
)
def test_bad_arguments_stop_in_one_line_before_anything_is_written(built, capsys, argv, message):
    out = built["tiny"]
    code, stdout, err = run_cli(capsys, "bitstream", out, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstm-fpga bitstream: error: ")
    assert message in lines[0]
    assert not (out / "bitstream").exists() and stdout == ""


@pytest.mark.parametrize("name", ["ulx3s-12f", "ulx3s-25f"])
def test_a_design_too_big_for_the_board_is_refused_naming_the_boards_that_hold_it(
    built, capsys, name
):
    out = built["wide"]
    code, _, err = run_cli(capsys, "bitstream", out, "--board", name)
    assert code == 2
    assert "does not fit the ULX3S" in err and "DSP 32/28" in err
    assert "choose --board ulx3s-85f|ulx3s-45f" in err
    assert not (out / "bitstream").exists()


def test_not_a_build_directory(tmp_path, capsys):
    code, _, err = run_cli(capsys, "bitstream", tmp_path, "--board", "ulx3s-85f")
    assert code == 2 and "is not an lstm-fpga build" in err


def test_build_writes_a_fusesoc_core_that_fusesoc_parses(built, tmp_path):
    rtl = built["tiny"] / "rtl"
    core = (rtl / "lstm_top.core").read_text()
    manifest = json.loads((built["tiny"] / "build.json").read_text())
    for name in ("lstm_top.core", "lstm_top.lpf", "lstm_top.xdc", "lstm_top.sdc"):
        assert f"rtl/{name}" in manifest["files"]
    for hex_file in rtl.glob("*.hex"):
        assert f'"{hex_file.name}": {{file_type: user, copyto: "{hex_file.name}"}}' in core
    assert 'FREQUENCY PORT "clk" 100 MHZ;' in (rtl / "lstm_top.lpf").read_text()
    assert (
        "create_clock -period 10.000 -name clk [get_ports clk]"
        in (rtl / "lstm_top.xdc").read_text()
    )
    fusesoc = Path(sys.executable).parent / "fusesoc"
    if not fusesoc.is_file():
        pytest.skip("fusesoc not installed (pip install -e '.[test]')")
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    shown = subprocess.run(
        [str(fusesoc), "--cores-root", str(rtl), "core", "show", "lstm-fpga:build:tiny:0.1.0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "Name:        lstm-fpga:build:tiny:0.1.0" in shown.stdout
    for target in ("default", "lint"):
        assert f"\n{target}" in shown.stdout


def test_router_reaches_the_nextpnr_command_line(built, tmp_path, capsys, monkeypatch):
    """``--router`` (as ``synth --router``) goes to nextpnr and into ``report.json``; without
    it nextpnr picks its own (router1). No place and route: Yosys' netlist is replaced by an
    empty one, which the real nextpnr refuses at once (a tool failure, exit 2)."""
    from lstm_fpga.eda import nextpnr
    from lstm_fpga.eda.tools import run_logged
    from lstm_fpga.hw import bitstream

    out = tmp_path / "tiny"
    shutil.copytree(built["tiny"], out)

    def empty_netlist(verilog, family, *, workdir, **options):
        netlist = Path(workdir) / "board_top_ecp5.json"
        netlist.write_text("{}")
        return SimpleNamespace(netlist=netlist, total={})

    commands = []

    def recorded(command, **options):
        commands.append(list(command))
        return run_logged(command, **options)

    monkeypatch.setattr(bitstream, "synthesize", empty_netlist)
    monkeypatch.setattr(nextpnr, "run_logged", recorded)
    for router in (None, "router2"):
        argv = () if router is None else ("--router", router)
        code, stdout, err = run_cli(
            capsys, "bitstream", out, "--board", "ulx3s-85f", *argv, "--json"
        )
        assert code == 2 and "nextpnr failed" in err
        assert json.loads(stdout)["router"] == (router or "router1")
    default, chosen = commands
    assert "--router" not in default
    assert chosen[chosen.index("--router") + 1] == "router2"
    with pytest.raises(SystemExit):
        main(["bitstream", str(out), "--board", "ulx3s-85f", "--router", "router3"])
    assert "argument --router: invalid choice: 'router3'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.synth
def test_the_whole_flow_writes_a_bitstream_that_meets_timing(built, capsys):
    out = built["tiny"]
    code, stdout, err = run_cli(
        capsys, "bitstream", out, "--board", "ulx3s-12f", "--freq", "50", "--json"
    )
    assert code == 0, err
    report = json.loads(stdout)
    directory = out / "bitstream" / "ulx3s-12f"
    assert report["status"] == "ok" and report["timing_met"] is True
    assert report["clock"]["achieved_mhz"] == 50 and report["clock"]["pll"]["vco_mhz"] == 600
    assert report["host_link"]["component"] == "HostLink"
    bit = directory / "board_top.bit"
    assert bit.stat().st_size > 10_000 and (directory / "board_top.svf").is_file()
    assert all(mhz >= 50 for mhz in report["fmax_mhz"].values())
    assert report["utilisation"]["dsp"]["used"] >= 2 + 8  # the lanes and the cell's multiplies
    assert json.loads((directory / "report.json").read_text())["bitstream"] == "board_top.bit"
    assert "timing met" in (directory / "report.txt").read_text()
    # The build stays lstm-fpga's: `build --force` may replace it.
    assert "bitstream" in json.loads((out / "build.json").read_text())["generated"]


@pytest.mark.parametrize("osc, fmax", [(25, 112.3), (25, 97.0), (100, 143.9), (25, 10.5)])
def test_the_suggested_frequency_after_missed_timing_stays_below_the_fmax(osc, fmax):
    from lstm_fpga.cli import _safe_frequency
    from lstm_fpga.hw.pll import ecp5_pll

    suggested = _safe_frequency(osc, fmax)
    assert float(ecp5_pll(osc, suggested).output_mhz) <= fmax
    assert suggested > fmax - 5  # not needlessly low
