"""yosys synthesis: lanes on exactly P DSPs, weight banks in block RAM; counts saved as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstm_fpga.eda import synthesize
from lstm_fpga.hw import TOP_NAME, EnginePlan, HardwareConfig, write_build
from lstm_fpga.hw.banks import bank_packing
from lstm_fpga.hw.devices import estimate_resources
from lstm_fpga.hw.memory import weight_bank_module, weight_bank_verilog
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
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
        assert estimate.brams == report.total["bram"] + 2 * 5  # 5 units' value, delta ROMs


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


def _weight_memories_top(plan) -> str:
    """The packed weight memories of ``plan``'s generated Verilog under a top that brings
    every port out (the rest of the design left out: seconds, not minutes, of Yosys)."""
    packing = bank_packing(plan)
    images = plan.images
    address = max(1, (images.depth - 1).bit_length())
    ports, body = [], []
    for g in packing.groups:
        width = g.lanes * images.weight_width
        k = g.index
        ports += [
            f"input [{address - 1}:0] ra{k}",
            f"output [{width - 1}:0] rd{k}",
            f"input [{g.lanes - 1}:0] we{k}",
            f"input [{address - 1}:0] wa{k}",
            f"input [{width - 1}:0] wd{k}",
        ]
        body.append(
            f"  {weight_bank_module(k)} m{k}(.clk(clk), .raddr(ra{k}), .rdata(rd{k}), "
            f".we(we{k}), .waddr(wa{k}), .wdata(wd{k}));\n"
        )
    modules = "".join(
        weight_bank_verilog(images, packing, g.index, "inline", "unused.hex")
        for g in packing.groups
    )
    header = ",\n  ".join(["input clk", *ports])
    return f"module banks(\n  {header}\n);\n{''.join(body)}endmodule\n{modules}"


@pytest.mark.parametrize(("I", "H", "P", "most"), [(5, 16, 16, 4)])
def test_packed_weight_banks_map_to_the_planned_block_rams(tmp_path, I, H, P, most):
    """The demo shape (LSTM(5, 16) + Linear(16, 1), P = 16): its packed weight memories take
    the DP16KD the packing plans (16 with a bank per lane), the LUT-RAM groups none."""
    plan = EnginePlan(random_model(I, H, seed=0, head=1), HardwareConfig(lanes=P))
    packing = bank_packing(plan)
    path = tmp_path / "banks.v"
    path.write_text(_weight_memories_top(plan))
    report = synthesize(path, "ecp5", top="banks")
    assert report.total.get("bram", 0) == packing.block_rams <= most
    assert (report.total.get("lutram", 0) > 0) == (packing.lutram_lanes > 0)


#: The design block (Yosys' ``blocks``) of each estimate entry, by the start of its name.
_ENTRY_BLOCKS = (
    ("weight banks", "engine.weights"),
    ("MVU lane", "engine.mvu"),
    ("attention h buffer", "engine.h_buffer"),
    ("attention u buffer", "engine.u_buffer"),
    ("attention", "engine.attention"),
    ("x buffer", "engine.sequencer"),
    ("vector buffer", "engine.sequencer"),
    ("state buffer", "engine.sequencer"),
    ("act_", "engine.cell"),
    ("f*c", "engine.cell"),
    ("i*g", "engine.cell"),
    ("o*tanh(c)", "engine.cell"),
)


def _per_block(entries) -> dict[str, int]:
    """Block RAMs or DSPs of estimate entries ``(name, ..., count)`` per design block (the
    blocks with none left out)."""
    blocks: dict[str, int] = {}
    for name, *_, count in entries:
        block = next(b for start, b in _ENTRY_BLOCKS if name.startswith(start))
        blocks[block] = blocks.get(block, 0) + count
    return {b: n for b, n in blocks.items() if n}


@pytest.mark.parametrize(
    ("I", "H", "A", "O", "P", "T"),
    [
        # everything of the unit in LUT RAM and logic; alpha's unsigned 16 x 19-bit product
        # on one MULT18X18D (Yosys leaves the 1-bit slice to logic)
        (3, 8, 4, 2, 3, 4),
        # h_t memory (8 x 16 words) and head weights (9 x 16) in block RAM
        (4, 16, 8, 9, 4, 8),
    ],
)
def test_attention_build_uses_the_estimated_block_rams_and_dsps(tmp_path, I, H, A, O, P, T):
    """An LSTM with attention pooling (an untrained seeded ``AttentionClassifier``,
    calibrated): the estimate's block RAMs and DSPs are Yosys' per design block, the
    attention unit's included (its memories, the FIFOs in front of it, its products)."""
    torch.manual_seed(0)
    net = AttentionClassifier(I, H, A, O).double()
    model, _ = quantize_from_torch(net, np.random.default_rng(0).uniform(-2, 2, (4, T, I)))
    config = HardwareConfig(lanes=P, output="last", max_seq_len=T)
    build = write_build(model, config, tmp_path, family="ecp5")
    report = synthesize(build.verilog, "ecp5", top=TOP_NAME)
    estimate = estimate_resources(EnginePlan(model, config), "ecp5")
    for resource, entries in (("bram", estimate.memories), ("dsp", estimate.multipliers)):
        measured = {b: c[resource] for b, c in report.blocks.items() if c.get(resource)}
        assert _per_block(entries) == measured, resource
    assert (estimate.brams, estimate.dsps) == (report.total.get("bram", 0), report.total["dsp"])
