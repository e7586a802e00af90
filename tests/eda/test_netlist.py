"""Flattened names back to the design hierarchy; cell classes and DSP register use."""

import pytest

from lstm_fpga.eda import PathStep, PlaceRouteReport, hierarchy_of
from lstm_fpga.eda.netlist import count_cells, dsp_registers
from lstm_fpga.hw.implement import block_label, critical_chain


@pytest.mark.parametrize(
    ("name", "path", "local"),
    [
        ("engine.cell.act_o.rom.0.0", ("engine", "cell", "act_o", "rom"), ""),
        ("engine.cell.output$85_TRELLIS_FF_Q_2", ("engine", "cell"), "output"),
        ("engine.cell.$130_MULT18X18D_P9", ("engine", "cell"), ""),
        (
            "engine.weights$88.weights_bank3.mem.0.0",
            ("engine", "weights", "weights_bank3", "mem"),
            "",
        ),
        ("lstm_top/$flatten\\engine.\\mvu.$mul$lstm_top.v:3258$4446", ("engine", "mvu"), ""),
        ("busy_LUT4_Z", (), "busy"),
        ("engine.sequencer.layer_LUT4_D_Z_CCU2C_COUT", ("engine", "sequencer"), "layer"),
        ("$abc$123$auto_4", (), ""),
        ("engine.sequencer.walk_col", ("engine", "sequencer"), "walk_col"),
    ],
)
def test_hierarchy_of_flattened_names(name, path, local):
    where = hierarchy_of(name)
    assert (where.path, where.local) == (path, local)


def test_blocks_are_named_in_the_designs_terms():
    assert block_label(hierarchy_of("engine.cell.act_o.rom.0.0")) == "activation act_o.rom"
    assert block_label(hierarchy_of("engine.mvu.acc$3_TRELLIS_FF_Q")) == "MVU lanes: acc"
    assert block_label(hierarchy_of("engine.weights$8.weights_bank0.mem.0.0")).startswith(
        "weight banks"
    )
    assert block_label(hierarchy_of("busy_LUT4_Z")).startswith("lstm_top")


def test_the_critical_path_is_a_chain_of_blocks():
    steps = (
        PathStep("clk-to-q", 5.8, "engine.cell.act_o.rom.0.0"),
        PathStep("routing", 2.1, "engine.cell.act_o.$8_MULT18X18D_P9", "engine.cell.act_o._0_"),
        PathStep("logic", 3.9, "engine.cell.act_o.$8_MULT18X18D_P9"),
        PathStep("logic", 0.4, "engine.cell.output$85_CCU2C_S0$CCU2_COMB1"),
        PathStep("logic", 0.1, "engine.cell.output$85_CCU2C_S1$CCU2_COMB0"),
        PathStep("setup", 0.0, "engine.cell.output$85_TRELLIS_FF_Q_2"),
    )
    report = PlaceRouteReport("ecp5", "85k", "CABGA381", 6, 1, 100.0, 80.0, steps, {}, None, 0)
    assert critical_chain(report.critical_path) == [
        "activation act_o.rom",
        "activation act_o",
        "gate/cell pipeline: output",
    ]
    assert report.path_ns == pytest.approx(12.3)
    assert not report.timing_met


def test_ecp5_luts_include_carry_cells_and_dsp_registers_are_counted():
    cells = {
        "a": {"type": "LUT4"},
        "b": {"type": "CCU2C"},
        "c": {"type": "CCU2C"},
        "d": {"type": "TRELLIS_FF"},
        "m0": {"type": "MULT18X18D", "parameters": {"REG_OUTPUT_CLK": "CLK0"}},
        "m1": {"type": "MULT18X18D", "parameters": {}},
    }
    assert count_cells(cells, "ecp5")["lut"] == 1 + 2 * 2
    assert count_cells(cells, "ecp5")["dsp"] == 2
    assert dsp_registers(cells, "ecp5")["output"] == 1
    assert dsp_registers(cells, "ecp5")["input A"] == 0
    xilinx = {"p": {"type": "DSP48E1", "parameters": {"AREG": "01", "PREG": "1", "MREG": "0"}}}
    assert dsp_registers(xilinx, "xilinx") == {
        "AREG": 1,
        "BREG": 0,
        "DREG": 0,
        "ADREG": 0,
        "MREG": 0,
        "PREG": 1,
    }
