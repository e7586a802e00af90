"""Verilog generation API, build directory, Verilator lint and unsupported models."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from lstm_fpga.eda import lint_verilog
from lstm_fpga.hw import (
    EnginePlan,
    HardwareConfig,
    HardwareConfigError,
    bank_images,
    generate_verilog,
    write_build,
)
from lstm_fpga.hw.interface import (
    CLOCK,
    RESET,
    TOP_NAME,
    Control,
    Direction,
    SaturationKind,
    Status,
    TopInterface,
)
from lstm_fpga.testing import FORMAT_SETS, random_model


def _expected_ports(model, lanes, elements=1):
    """Direction and width of every port of ``lstm_top``, keyed by the interface's names,
    widths computed here from the model's formats (not taken from the interface)."""
    interface = TopInterface(EnginePlan(model, HardwareConfig(lanes=lanes)))
    f = model.direction(0, False).formats
    y_width = (model.head.formats.output if model.head is not None else f.hidden).width
    data_widths = {
        interface.x.data: elements * f.x.width,
        interface.y.data: y_width,
        interface.state.data: f.hidden.width + f.cell.width,
        interface.init.data: max(f.hidden.width, f.cell.width),
        interface.w.data: sum(w for _, w in interface.weight_word_fields.values()),
    }
    expected = {CLOCK: ("input", 1), RESET: ("input", 1)}
    for s in interface.streams:
        into, out_of = ("input", "output") if s.direction is Direction.IN else ("output", "input")
        expected[s.data] = (into, data_widths[s.data])
        expected[s.valid] = (into, 1)
        expected[s.ready] = (out_of, 1)
        expected[s.last] = (into, 1)
    for control in Control:
        expected[control.value] = ("input", 1)
    for status in Status:
        expected[status.value] = ("output", 32 if status is Status.CYCLES else 1)
    for kind in SaturationKind:
        expected[kind.port] = ("output", 32)
    return interface, expected


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
    interface, expected = _expected_ports(model, 3)
    assert set(ports) == set(expected)
    f = FORMAT_SETS[formats]
    for name, (direction, width) in expected.items():
        assert ports[name] == (direction, width), name
    assert f.x.width == ports[interface.x.data][1]


@pytest.mark.parametrize("elements", [1, 4])
@pytest.mark.parametrize("head", [None, 3])
def test_port_table_reads_back_from_the_verilog(elements, head):
    """The interface's port table (names, directions, widths) is the Verilog's."""
    model = random_model(5, 3, 2, head=head, formats=("q12", "tight"), scale=2.0)
    config = HardwareConfig(lanes=4, input_elements=elements)
    interface = TopInterface(EnginePlan(model, config))
    ports = _top_ports(generate_verilog(model, config))
    assert sorted(ports) == sorted(p.name for p in interface.ports)
    for port in interface.ports:
        assert ports[port.name] == (port.direction.verilog, port.width), port.name


def test_manifest_ports_have_the_verilog_directions(tmp_path):
    model = random_model(5, 4, formats="q12", scale=1.5)
    build = write_build(model, HardwareConfig(lanes=2, input_elements=2), tmp_path)
    ports = _top_ports(build.verilog.read_text())
    manifest = json.loads(build.manifest.read_text())
    verilog = {"input": "in", "output": "out"}
    listed = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    assert listed == {name: (verilog[d], width) for name, (d, width) in ports.items()}
    directions = {p["direction"] for p in manifest["ports"]}
    assert directions == {"in", "out"}


def test_several_input_elements_widen_only_x_tdata():
    model = random_model(5, 4, formats="q12", scale=1.5)
    ports = _top_ports(generate_verilog(model, HardwareConfig(lanes=2, input_elements=4)))
    interface, expected = _expected_ports(model, 2, elements=4)
    assert ports[interface.x.data] == ("input", 4 * 12)
    assert ports[interface.y.data] == ("output", 12)
    assert set(ports) == set(expected)


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
    _, expected = _expected_ports(model, 3)
    assert [p["name"] for p in manifest["ports"]] == list(expected)
    images = bank_images(EnginePlan(model, HardwareConfig(lanes=3)))
    packing = manifest["weight_banks"]
    assert len(build.hex_files) == packing["groups"] + 3
    for entry in manifest["memories"]:
        words = (build.directory / entry["hex"]).read_text().split()
        assert len(words) == entry["depth"]
    # Lane 1 in its packed memory's words: slot s of a group is bits [12 s, 12 s + 12).
    (entry,) = [e for e in manifest["memories"] if 1 in e.get("lanes", ())]
    slot = entry["lanes"].index(1)
    words = [int(w, 16) for w in (build.directory / entry["hex"]).read_text().split()]
    lane1 = [(w >> (12 * slot)) & 0xFFF for w in words]
    signed = [v - (1 << 12) if v >> 11 else v for v in lane1]
    np.testing.assert_array_equal(signed, images.weights[1])


@pytest.mark.parametrize("lanes", [1, 3, 64, 100])
def test_verilator_lint_has_no_errors(tmp_path, lanes):
    model = random_model(5, 11, seed=lanes, formats="mixed", scale=1.5)
    build = write_build(model, lanes, tmp_path)
    report = lint_verilog(build.verilog, TOP_NAME)
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
    report = lint_verilog(write_build(model, config, tmp_path).verilog, TOP_NAME)
    assert report.clean, "\n".join(report.errors)
    assert set(report.warnings) <= LINT_STYLE_WARNINGS, report.warnings


def test_head_changes_only_y_tdata():
    model = random_model(5, 3, 1, head=2, formats=("q12",), scale=2.0)
    ports = _top_ports(generate_verilog(model, HardwareConfig(lanes=4)))
    interface, expected = _expected_ports(model, 4)
    assert ports[interface.y.data] == ("output", model.head.formats.output.width)
    assert set(ports) == set(expected)


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
