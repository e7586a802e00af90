"""Integration files (lstm_fpga.eda.integration) and in-context timing verdicts."""

import pytest

from lstm_fpga.eda import PlaceRouteReport, clock_constraints, fusesoc_core, vlnv_part


@pytest.mark.parametrize(
    "text, part",
    [
        ("out", "out"),
        ("my build", "my_build"),
        ("a:b/c", "a_b_c"),
        ("v0.1.0", "v0.1.0"),
        ("", "design"),
    ],
)
def test_vlnv_parts_keep_fusesoc_characters_only(text, part):
    assert vlnv_part(text) == part


@pytest.mark.parametrize("mhz, period", [(100, "10.000"), (33.3, "30.030"), (112.5, "8.889")])
def test_clock_constraints_in_three_dialects(mhz, period):
    text = clock_constraints("clk", mhz)
    assert text["lpf"].endswith(f'FREQUENCY PORT "clk" {mhz:g} MHZ;\n')
    assert text["xdc"].endswith(f"create_clock -period {period} -name clk [get_ports clk]\n")
    assert text["sdc"].endswith(f"create_clock -name clk -period {period} [get_ports {{clk}}]\n")
    with pytest.raises(ValueError, match="positive"):
        clock_constraints("clk", 0)


def test_core_file_lists_sources_data_and_constraints_by_type():
    core = fusesoc_core(
        vendor="lstm-fpga", library="build", name="x y", version="0.1.0", description='a "q"',
        top="lstm_top", verilog=["lstm_top.v"], data_files=["w.hex"], constraints=["c.lpf"],
    )  # fmt: skip
    assert core.startswith("CAPI=2:\n")
    assert 'name: "lstm-fpga:build:x_y:0.1.0"' in core and 'description: "a \\"q\\""' in core
    assert '- "w.hex": {file_type: user, copyto: "w.hex"}' in core
    assert '- "c.lpf": {file_type: LPF}' in core
    with pytest.raises(ValueError, match="suffix must be one of lpf, xdc, sdc"):
        fusesoc_core(
            vendor="v", library="l", name="n", version="1", description="d", top="t",
            verilog=[], constraints=["c.ucf"],
        )  # fmt: skip


@pytest.mark.parametrize(
    "clocks, met",
    [({"pll": (101.0, 100.0), "osc": (300.0, 25.0)}, True), ({"pll": (99.9, 100.0)}, False)],
)
def test_in_context_timing_checks_every_clock_against_its_own_constraint(clocks, met):
    report = PlaceRouteReport(
        "ecp5", "85k", "CABGA381", 6, 1, 100.0, min(a for a, _ in clocks.values()), (), {},
        None, 0, clocks=clocks, in_context=True,
    )  # fmt: skip
    assert report.timing_met is met
    assert report.to_json_dict()["clocks"]["pll"]["constraint_mhz"] == 100.0
