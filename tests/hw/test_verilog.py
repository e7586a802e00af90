"""Verilog generation API, build directory, Verilator lint and unsupported models."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lstm_fpga.hw import (
    EnginePlan,
    HardwareConfig,
    HardwareConfigError,
    bank_images,
    generate_verilog,
    write_build,
)
from lstm_fpga.hw.reload import weight_word_fields
from lstm_fpga.hw.tools import lint_verilog
from lstm_fpga.testing import FORMAT_SETS, random_model

PORTS = {
    "clk": ("input", 1),
    "rst": ("input", 1),
    "x__tdata": ("input", None),
    "x__tvalid": ("input", 1),
    "x__tready": ("output", 1),
    "x__tlast": ("input", 1),
    "y__tdata": ("output", None),
    "y__tvalid": ("output", 1),
    "y__tready": ("input", 1),
    "y__tlast": ("output", 1),
    "state__tdata": ("output", "state"),
    "state__tvalid": ("output", 1),
    "state__tready": ("input", 1),
    "state__tlast": ("output", 1),
    "init__tdata": ("input", "init"),
    "init__tvalid": ("input", 1),
    "init__tready": ("output", 1),
    "init__tlast": ("input", 1),
    "w__tdata": ("input", "w"),
    "w__tvalid": ("input", 1),
    "w__tready": ("output", 1),
    "w__tlast": ("input", 1),
    "carry_state": ("input", 1),
    "read_state": ("input", 1),
    "clear_status": ("input", 1),
    "cycles": ("output", 32),
    "busy": ("output", 1),
    "started": ("output", 1),
    "done": ("output", 1),
    "overflow": ("output", 1),
    "sat_preact": ("output", 32),
    "sat_cell": ("output", 32),
    "sat_hidden": ("output", 32),
    "sat_head": ("output", 32),
}


def _expected_width(name, width, model, lanes):
    f = model.direction(0, False).formats
    if isinstance(width, int):
        return width
    if name.startswith("x"):
        return f.x.width
    if name.startswith("y"):
        return f.hidden.width
    if width == "state":
        return f.hidden.width + f.cell.width
    if width == "init":
        return max(f.hidden.width, f.cell.width)
    fields = weight_word_fields(EnginePlan(model, HardwareConfig(lanes=lanes)))
    return sum(w for _, w in fields.values())


#: Only the style categories of Amaranth's Verilog backend (docs/hardware.md lists them).
LINT_STYLE_WARNINGS = {
    "CASEINCOMPLETE",
    "DECLFILENAME",
    "PROCASSINIT",
    "UNUSEDSIGNAL",
    "WIDTHEXPAND",
    "WIDTHTRUNC",
    "UNUSEDPARAM",
    "CMPCONST",
}


def _top_ports(text):
    body = text[text.index("module lstm_top(") :]
    body = body[: body.index("endmodule")]
    ports = {}
    for direction, width, name in re.findall(
        r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:\[(\d+):0\]\s+)?(\w+);",
        body,
        re.M,
    ):
        ports[name] = (direction, int(width) + 1 if width else 1)
    return ports


@pytest.mark.parametrize("formats", ["q16", "q12", "mixed"])
def test_top_module_name_and_ports(formats):
    model = random_model(3, 4, formats=formats, scale=1.5)
    text = generate_verilog(model, HardwareConfig(lanes=3))
    ports = _top_ports(text)
    assert set(ports) == set(PORTS)
    f = FORMAT_SETS[formats]
    for name, (direction, width) in PORTS.items():
        assert ports[name] == (direction, _expected_width(name, width, model, 3)), name
    assert f.x.width == ports["x__tdata"][1]


def test_several_input_elements_widen_only_x_tdata():
    model = random_model(5, 4, formats="q12", scale=1.5)
    ports = _top_ports(generate_verilog(model, HardwareConfig(lanes=2, input_elements=4)))
    assert ports["x__tdata"] == ("input", 4 * 12)
    assert ports["y__tdata"] == ("output", 12)
    assert set(ports) == set(PORTS)


def test_lanes_may_be_given_as_an_int():
    model = random_model(2, 3, scale=1.5)
    assert generate_verilog(model, 2) == generate_verilog(model, HardwareConfig(lanes=2))


def test_build_directory_holds_verilog_hex_and_manifest(tmp_path):
    model = random_model(5, 11, seed=2, formats="q12", scale=1.5)
    build = write_build(model, HardwareConfig(lanes=3), tmp_path / "build")
    assert build.verilog.read_text().count("module lstm_top(") == 1
    manifest = json.loads(build.manifest.read_text())
    assert manifest["top"] == "lstm_top"
    assert manifest["geometry"]["cycle_bound"] == -(-44 * 16 // 3)
    assert [p["name"] for p in manifest["ports"]] == list(PORTS)
    images = bank_images(_geometry(3), model.direction(0, False))
    assert len(build.hex_files) == 2 * 3
    for entry in manifest["memories"]:
        words = (build.directory / entry["hex"]).read_text().split()
        assert len(words) == entry["depth"]
    lane1 = [int(w, 16) for w in (build.directory / "weights_lane1.hex").read_text().split()]
    signed = [v - (1 << 12) if v >> 11 else v for v in lane1]
    np.testing.assert_array_equal(signed, images.weights[1])


def _geometry(lanes):
    return HardwareConfig(lanes=lanes).geometry(5, 11)


@pytest.mark.parametrize("lanes", [1, 3, 64, 100])
def test_verilator_lint_has_no_errors(tmp_path, lanes):
    model = random_model(5, 11, seed=lanes, formats="mixed", scale=1.5)
    build = write_build(model, lanes, tmp_path)
    report = lint_verilog(build.verilog)
    assert report.clean, "\n".join(report.errors)
    assert set(report.warnings) <= LINT_STYLE_WARNINGS, report.warnings


@pytest.mark.parametrize(
    "layers, bidirectional, head, output",
    [(2, False, 3, "all"), (2, True, None, "last"), (3, True, 2, "all")],
)
def test_full_models_lint_clean(tmp_path, layers, bidirectional, head, output):
    model = random_model(
        5, 3, layers, bidirectional, head=head, formats=("q16", "tight"), scale=2.0
    )
    config = HardwareConfig(lanes=5, output=output, max_seq_len=6)
    report = lint_verilog(write_build(model, config, tmp_path).verilog)
    assert report.clean, "\n".join(report.errors)
    assert set(report.warnings) <= LINT_STYLE_WARNINGS, report.warnings


def test_head_changes_only_y_tdata():
    model = random_model(5, 3, 1, head=2, formats=("q12",), scale=2.0)
    ports = _top_ports(generate_verilog(model, HardwareConfig(lanes=4)))
    assert ports["y__tdata"] == ("output", model.head.formats.output.width)
    assert set(ports) == set(PORTS)


def test_unsupported_models_are_refused_with_the_reason():
    model = random_model(3, 2, 2, bidirectional=True, scale=2.0)
    with pytest.raises(HardwareConfigError, match="max_seq_len"):
        generate_verilog(model, 2)
    with pytest.raises(HardwareConfigError, match="HardwareConfig or a lane count"):
        generate_verilog(model, "4")
    with pytest.raises(HardwareConfigError, match="expected an LstmModel"):
        generate_verilog(model.direction(0, False), 4)
    with pytest.raises(HardwareConfigError, match="output must be one of"):
        HardwareConfig(output="first")
    with pytest.raises(HardwareConfigError, match="max_seq_len must be"):
        HardwareConfig(max_seq_len=0)
