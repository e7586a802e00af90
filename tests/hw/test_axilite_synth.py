"""yosys synthesis of ``lstm_axi`` (``build --control axi-lite``): it synthesizes, and the
AXI4-Lite wrapper costs only its registers and decode next to the same ``lstm_top``."""

from __future__ import annotations

import json

import pytest

from lstm_fpga.eda import synthesize
from lstm_fpga.hw import TOP_NAME, HardwareConfig, write_build
from lstm_fpga.hw.control import AXI_TOP_NAME
from lstm_fpga.testing import random_model

pytestmark = [pytest.mark.synth, pytest.mark.slow]


def test_lstm_axi_synthesizes_and_the_wrapper_is_small(tmp_path):
    model = random_model(3, 4, seed=7, formats="q12")
    build = write_build(model, HardwareConfig(lanes=3), tmp_path, control="axi-lite")
    core = synthesize(build.verilog, "ecp5", top=TOP_NAME, workdir=tmp_path / "core")
    axi = synthesize(build.control_verilog, "ecp5", top=AXI_TOP_NAME, workdir=tmp_path / "axi")
    # The core is the same: same DSPs and block RAMs.
    for resource in ("dsp", "bram"):
        assert axi.total.get(resource, 0) == core.total.get(resource, 0), resource
    wrapper = {r: axi.total[r] - core.total[r] for r in ("lut", "ff")}
    (tmp_path / "wrapper.json").write_text(json.dumps(wrapper))
    print(f"AXI4-Lite wrapper on ECP5: {wrapper}")
    # Its flip-flops: the counters (2 x 32 sequences, 64 busy cycles, 32 latched), the
    # channel registers (2 x 12 address, 32 read data, 2 + 2 responses, the write data and
    # strobe bits some field takes: 4 + 1) and 14 control bits: 243 (measured). Its LUTs:
    # the read multiplexer of 28 words (SAT_ATTENTION the 28th) and the counters' adders (478
    # measured; 439 with 27 words).
    assert 230 <= wrapper["ff"] <= 260, wrapper
    assert 0 < wrapper["lut"] <= 600, wrapper
