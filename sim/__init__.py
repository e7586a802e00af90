"""Simulation of the generated Verilog with cocotb, and comparison with the reference.

Public API (cocotb is imported only inside the simulator process)::

    from lstm_fpga.sim import compile_model, simulate, compare

    design = compile_model(model, lanes=16)          # Verilator by default; cached build
    result = simulate(design, x_int, lengths=lengths)
    report = compare(result)                         # bit-exact? first mismatch, float error,
    print(report); report.save("compare.json")       # cycles/step vs bound

Lower layers: :mod:`lstm_fpga.sim.design` (generated designs compiled for a simulator),
:mod:`lstm_fpga.sim.phases` and :mod:`lstm_fpga.sim.result` (what is streamed through
``lstm_top`` and what came back, both through its
:class:`~lstm_fpga.hw.interface.TopInterface`), :mod:`lstm_fpga.sim.runner` (simulators,
cached compilations, runs), :mod:`lstm_fpga.sim.stimulus` (typed stimulus plans and their
results), :mod:`lstm_fpga.sim.tb` and :mod:`lstm_fpga.sim.streams` (the cocotb testbench),
:mod:`lstm_fpga.sim.selftest` (a FIFO to check an installation),
:mod:`lstm_fpga.sim.verilator_harness` (a compiled C++ harness for fast cycle counts).
"""

from .compare import ComparisonReport, CycleReport, FloatError, Mismatch, TensorCheck, compare
from .design import HardwareDesign, compile_build_directory, compile_model
from .lstm import simulate
from .result import SimulationResult
from .runner import SimulationError, SimulatorNotFoundError, find_simulator
from .stimulus import Pacing

__all__ = [
    "ComparisonReport",
    "CycleReport",
    "FloatError",
    "HardwareDesign",
    "Mismatch",
    "Pacing",
    "SimulationError",
    "SimulationResult",
    "SimulatorNotFoundError",
    "TensorCheck",
    "compare",
    "compile_build_directory",
    "compile_model",
    "find_simulator",
    "simulate",
]
