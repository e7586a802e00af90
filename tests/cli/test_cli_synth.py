"""``lstm-fpga build --device`` and ``lstm-fpga synth``: fit checks, Fmax, utilisation."""

import json
import re

import numpy as np
import pytest
import torch

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.devices import DEVICES, check_fit
from lstm_fpga.sw.calibrate import quantize_from_torch
from tests.cli.conftest import on_terminal, run_cli
from tests.conftest import ecp5_multipliers


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 4).state_dict(), tmp_path / "tiny.pt")
    torch.save(torch.nn.LSTM(256, 256).state_dict(), tmp_path / "big.pt")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "cal3.npy", rng.uniform(-1, 1, (6, 2, 3)).astype(np.float32))
    np.save(tmp_path / "cal256.npy", rng.uniform(-1, 1, (2, 1, 256)).astype(np.float32))
    return tmp_path


def test_build_refuses_a_part_too_small_naming_block_ram(files, capsys):
    ecp5 = DEVICES["ecp5-85"]
    out = files / "big"
    code, _, err = run_cli(
        capsys, "build", files / "big.pt", "-o", out, "--lanes", 64,
        "--calibrate", files / "cal256.npy", "--device", "ecp5-85",
    )  # fmt: skip
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1
    # The figures are the estimate's (pinned by tests/hw/test_devices.py), not this test's:
    # of the model build calibrates (its activation tables decide which ROMs are block RAM).
    model, _ = quantize_from_torch(files / "big.pt", np.load(files / "cal256.npy"))
    fit = check_fit(EnginePlan(model, HardwareConfig(lanes=64)), ecp5)
    needed, available = fit.needed["bram"], fit.available["bram"]
    assert needed > available
    assert f"block RAM {needed}/{available} DP16KD" in err and "xc7a200t" in err
    assert not out.exists()


def test_build_without_device_lists_the_smallest_parts(files, capsys):
    out = files / "tiny"
    code, stdout, _ = run_cli(
        capsys, "build", files / "tiny.pt", "-o", out, "--lanes", 2,
        "--calibrate", files / "cal3.npy", "--json",
    )  # fmt: skip
    assert code == 0
    smallest = json.loads(stdout)["device"]["smallest_fitting"]
    # 2 lanes + 8 gate/cell multipliers: more DSPs than the 8 of an iCE40 UP5K.
    assert [f["device"] for f in smallest] == ["ecp5-12", "xc7a35t", "xczu3eg"]
    assert all(f["fits"] for f in smallest)
    code, _, err = run_cli(capsys, "synth", out, "--target", "ecp5", "--device", "xc7a35t")
    assert code == 2 and "not a ecp5 part" in err
    code, _, err = run_cli(capsys, "synth", out, "--device", "25k", "--package", "CABGA756")
    assert code == 2 and "CABGA256, CABGA381" in err
    code, _, err = run_cli(capsys, "synth", out, "--speed", "5")
    assert code == 2 and "--speed must be 6, 7 or 8" in err


def test_build_for_the_ecp5_family_simulates_bit_exactly_and_synthesizes_only_for_ecp5(
    files, capsys
):
    out = files / "tiny_ecp5"
    build = ("build", files / "tiny.pt", "-o", out, "--lanes", 2, "--calibrate", files / "cal3.npy")
    code, stdout, _ = run_cli(capsys, *build, "--family", "ecp5", "--json")
    assert code == 0 and json.loads(stdout)["family"] == "ecp5"
    assert json.loads((out / "build.json").read_text())["hardware"]["family"] == "ecp5"
    for verilog in ("lstm_top.v", "lstm_top_inline.v"):
        text = (out / "rtl" / verilog).read_text()
        # One per lane, the cell's three products and the five activation units'
        # interpolation multiplies; the primitive's model is for simulators.
        assert text.count("MULT18X18D #(") == ecp5_multipliers(2)
    np.save(files / "x3.npy", np.random.default_rng(1).uniform(-1, 1, (5, 3)).astype(np.float32))
    code, stdout, _ = run_cli(
        capsys, "simulate", out, "--input", files / "x3.npy", "--simulator", "icarus", "--json"
    )
    assert code == 0 and json.loads(stdout)["bit_exact"] is True
    code, _, err = run_cli(capsys, "synth", out, "--target", "xc7")
    assert code == 2 and "built with --family ecp5" in err and "--target ecp5" in err
    code, _, err = run_cli(capsys, *build, "--force", "--family", "xc7")
    assert code == 2 and "--family must be one of generic|ecp5" in err
    code, _, err = run_cli(capsys, *build, "--force", "--family", "ecp5", "--device", "xc7a35t")
    assert code == 2 and "xc7a35t is a xc7 part" in err
    assert json.loads((out / "build.json").read_text())["hardware"]["family"] == "ecp5"


@pytest.mark.slow
@pytest.mark.synth
def test_synth_places_and_routes_a_small_model_on_ecp5_25f(files, capsys):
    # The ECP5 family's Verilog: MULT18X18D with its registers, which synth reports.
    out = files / "tiny"
    assert run_cli(
        capsys, "build", files / "tiny.pt", "-o", out, "--lanes", 2,
        "--calibrate", files / "cal3.npy", "--family", "ecp5",
    )[0] == 0  # fmt: skip
    # One place and route (minutes on 2 cores), run as a user on a terminal sees it: the
    # tools' steps as lines and a bar per stage their logs name (a stage shorter than the 1 s
    # poll may pass unseen on this small design; tests/eda checks the counts).
    # router2 here; the demo's synth test runs nextpnr's default, router1.
    shown = on_terminal(
        "synth", out, "--target", "ecp5", "--device", "25k", "--freq", 50,
        "--router", "router2", cwd=files,
    )  # fmt: skip
    assert "yosys synth_ecp5 of lstm_top.v" in shown and "nextpnr-ecp5 --25k" in shown
    assert re.search(r"synth: \w+.*\[\d\d:\d\d", shown) and "Fmax" in shown
    # What `synth --json` prints, less the limits, is the record synth writes.
    result = json.loads((out / "synth_ecp5.json").read_text())
    assert result["device"] == "ecp5-25" and result["speed"] == 6
    assert result["verilog_family"] == "ecp5"
    # The lanes' multipliers use the MULT18X18D input and output registers (no pipeline
    # register: Multiplier.LATENCY is 2); the cell's f*c, i*g and o*tanh(c) (operands already
    # in fabric registers) and the five activation units' interpolation multiplies their
    # output register only.
    assert result["synthesis"]["dsp_registers"] == {
        "input A": 2, "input B": 2, "pipeline": 0, "output": ecp5_multipliers(2)
    }  # fmt: skip
    assert 10 < result["fmax_mhz"] < 500
    assert f"Fmax {result['fmax_mhz']:.1f} MHz" in shown
    assert result["critical_path"] and all(isinstance(b, str) for b in result["critical_path"])
    used = result["utilisation"]["needed"]
    yosys = result["synthesis"]["total"]
    # nextpnr's LUT count holds every LUT4 slot: carry halves and LUT RAM included.
    assert used["lut"] >= yosys["lut"] > 0
    assert used["dsp"] == yosys["dsp"] and used["bram"] == yosys["bram"]
    assert result["fits"] and "fits: yes" in shown
    timing = json.loads((out / "build.json").read_text())["timing"]["ecp5"]
    assert timing["fmax_mhz"] == result["fmax_mhz"]
    assert "--router router2" in timing["source"]
    (pnr_log,) = (out / "synth").glob("pnr_*.log")
    assert "Running router2" in pnr_log.read_text()
    # The limits report, in build.json, at the measured clock.
    limits = json.loads((out / "build.json").read_text())["limits"]
    assert limits["clock"]["measured"] and limits["clock"]["mhz"] == result["fmax_mhz"]
    # Netlists and logs live in OUT/synth/, so a rebuild over the build may replace them.
    assert not list((out / "rtl").glob("*.log")) and list((out / "synth").glob("*.log"))
    assert run_cli(
        capsys, "build", files / "tiny.pt", "-o", out, "--lanes", 2,
        "--calibrate", files / "cal3.npy", "--force",
    )[0] == 0  # fmt: skip


def test_synth_for_ice40_says_what_the_up5k_lacks(files, capsys):
    # P + 8 multipliers never fit the UP5K's 8 SB_MAC16: one line before any synthesis.
    out = files / "tiny"
    run_cli(capsys, "build", files / "tiny.pt", "-o", out, "--lanes", 2, "--calibrate",
         files / "cal3.npy")  # fmt: skip
    code, _, err = run_cli(capsys, "synth", out, "--target", "ice40")
    assert code == 2
    assert "does not fit iCE40UP5K (up5k)" in err and "DSP 10/8" in err
    assert "Traceback" not in err
