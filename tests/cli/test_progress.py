"""Progress bars: an ETA on a terminal, nothing under --json or when output is redirected."""

import json

import numpy as np
import pytest

from lstm_fpga import progress
from tests.cli.conftest import on_terminal, run_cli


@pytest.mark.parametrize(
    ("watching", "enabled", "shown"),
    [(True, True, True), (True, False, False), (False, True, False)],
    ids=["terminal", "json", "redirected"],
)
def test_bar_only_for_a_person_watching(capsys, monkeypatch, watching, enabled, shown):
    monkeypatch.setattr(progress, "interactive", lambda: watching)
    assert list(progress.progress_bar(range(3), desc="simulating", enabled=enabled)) == [0, 1, 2]
    err = capsys.readouterr().err
    assert ("simulating:" in err and "/3 [" in err) == shown
    assert err == "" or shown


def test_redirected_output_is_not_interactive(capsys):
    assert not progress.interactive()  # pytest captures stdout and stderr


def test_build_shows_calibration_progress_on_a_terminal_only(files, capsys, monkeypatch):
    np.save(files / "many.npy", np.random.default_rng(0).uniform(-1, 1, (8, 600, 3)))
    build = ["build", "model.pt", "--lanes", "2", "--calibrate", "many.npy"]
    shown = on_terminal(*build, "-o", "a", cwd=files)
    # 600 sequences in chunks of 256: the bars count sequences towards their total.
    assert "calibrating:" in shown and "/600 [" in shown and "reporting:" in shown
    quiet = on_terminal(*build, "-o", "b", "--json", cwd=files)
    assert quiet.startswith("{")  # the JSON summary alone: no bars, no log lines
    # Redirected (pytest captures both streams): log lines, no bars.
    monkeypatch.chdir(files)
    code, _, err = run_cli(capsys, *build, "-o", files / "c")
    assert code == 0
    assert "calibrating on" in err and "calibrating:" not in err and "\r" not in err


@pytest.mark.parametrize("watching", [True, False], ids=["terminal", "redirected"])
def test_tool_bars_draw_stages_and_counts(capsys, monkeypatch, watching):
    from lstm_fpga.eda.tools import ToolProgress

    monkeypatch.setattr(progress, "interactive", lambda: watching)
    lines = []
    bars = progress.ToolBars("synth", lines.append)
    bars("nextpnr-ecp5 --25k")  # a plain message is a line for the log
    bars(ToolProgress("Packing IOs", 1.0))
    bars(ToolProgress("Running main analytical placer", 2.0, 7, None, "iterations"))
    bars(ToolProgress("Routing 100 arcs", 3.0, 60, 100, "arcs"))
    bars.close()
    err = capsys.readouterr().err
    assert lines == ["nextpnr-ecp5 --25k"]
    shown = ("synth: Packing IOs [", "placer: 7 iterations [", "synth: Routing 100 arcs:  60%")
    assert all((text in err) == watching for text in shown), err
    assert "60/100" in err if watching else err == ""


def test_simulate_counts_sequences_on_a_terminal_only(files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    build = ["build", "model.pt", "--lanes", "2", "--calibrate", "cal.npy", "--batch-first"]
    assert run_cli(capsys, *build, "-o", "out")[0] == 0
    np.save(files / "x.npy", np.random.default_rng(1).uniform(-1, 1, (12, 5, 3)))
    simulate = ["simulate", "out", "--input", "x.npy", "--simulator", "icarus"]
    shown = on_terminal(*simulate, cwd=files)
    # One cocotb run for the whole batch: the testbench reports each finished sequence.
    assert "simulating:" in shown and "12/12 [" in shown and "bit-exact" in shown
    quiet = on_terminal(*simulate, "--json", cwd=files)
    assert json.loads(quiet)["bit_exact"] is True  # the JSON summary alone: no bar, no log
    code, _, err = run_cli(capsys, *simulate)
    assert code == 0
    assert "simulating 12 sequence(s)" in err and "simulating:" not in err and "\r" not in err
