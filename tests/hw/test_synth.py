"""yosys synthesis: lanes on exactly P DSPs, weight banks in block RAM; counts saved as JSON."""

from __future__ import annotations

import json

import pytest

from lstm_fpga.eda import synthesize
from lstm_fpga.hw import TOP_NAME, EnginePlan, HardwareConfig, write_build
from lstm_fpga.hw.devices import estimate_resources
from lstm_fpga.testing import random_model

pytestmark = [pytest.mark.synth, pytest.mark.slow]

#: yosys flow -> device family of the capacity model
FAMILY = {"ecp5": "ecp5", "xilinx": "xc7"}


def gate_pipeline_multipliers(dp) -> int:
    """f*c, i*g, o*tanh(c), plus one interpolation product per interpolating table."""
    tables = (dp.sigmoid, dp.sigmoid, dp.tanh_gate, dp.sigmoid, dp.tanh_cell)
    return 3 + sum(t.segment_shift > 0 for t in tables)


@pytest.mark.parametrize("family", ["ecp5", "xilinx"])
def test_lanes_use_exactly_p_dsps_and_weights_use_block_ram(tmp_path, family):
    lanes = 3
    model = random_model(16, 16, seed=0, formats="q16", scale=1.5)
    build = write_build(model, HardwareConfig(lanes=lanes), tmp_path)
    report = synthesize(build.verilog, family, top=TOP_NAME)
    counts = tmp_path / f"synth_{family}.json"
    counts.write_text(json.dumps(report.to_json_dict(), indent=2))
    assert json.loads(counts.read_text())["total"]["dsp"] == report.total["dsp"]

    dp = model.datapath(0)
    blocks = report.blocks
    assert blocks["engine.mvu"]["dsp"] == lanes
    assert blocks["engine.cell"]["dsp"] == gate_pipeline_multipliers(dp) == 8
    assert report.total["dsp"] == lanes + 8
    # One 704 x 16-bit weight bank per lane: one block RAM each. The 22-word bias banks
    # (writable through the w port) are distributed RAM: a few cells per lane at most.
    assert blocks["engine.weights"]["bram"] == lanes
    assert blocks["engine.weights"].get("lutram", 0) <= 8 * lanes
    assert report.total["lut"] > 0 and report.total["ff"] > 0
    # The plan-derived estimate of the device model: exact on ECP5; an upper bound on
    # Xilinx, where Yosys builds the activation ROMs from LUTs.
    estimate = estimate_resources(EnginePlan(model, HardwareConfig(lanes=lanes)), FAMILY[family])
    assert estimate.dsps == report.total["dsp"]
    if family == "ecp5":
        assert estimate.brams == report.total["bram"]
    else:
        assert estimate.brams == report.total["bram"] + 5


def test_packed_lanes_use_half_the_dsps(tmp_path):
    """``--dsp-packing 2``: each packed lane pair is one DSP48E1 with its input and product
    registers (issue 13 item 4); an odd P leaves one lane on its own DSP."""
    from lstm_fpga.sw.numerics import FixedFormat
    from lstm_fpga.testing import width_formats

    layer, head = width_formats(8)
    model = random_model(16, 16, seed=0, formats=layer, head_formats=head)
    assert {layer.w_ih, layer.x} == {FixedFormat(8, 6), FixedFormat(8, 4)}
    lanes = 5
    config = HardwareConfig(lanes=lanes, dsp_packing=2)
    build = write_build(model, config, tmp_path)
    report = synthesize(build.verilog, "xilinx", top=TOP_NAME)
    assert report.blocks["engine.mvu"]["dsp"] == EnginePlan(model, config).lane_dsps == 3
    # Every DSP (lanes and cell) has its operand registers and its product register; Yosys
    # puts a pair's pack add into the DSP's pre-adder, whose AD register is then the packed
    # operand's register (the even weight's bank output register moves into DREG).
    dsps, registers = report.total["dsp"], report.dsp_registers
    pairs = len(EnginePlan(model, config).lane_pairs)
    assert registers["ADREG"] == registers["DREG"] == pairs == 2
    assert registers["AREG"] + registers["ADREG"] == registers["BREG"] == dsps
    assert registers["MREG"] + registers["PREG"] >= dsps
    assert estimate_resources(EnginePlan(model, config), "xc7").dsps == dsps
