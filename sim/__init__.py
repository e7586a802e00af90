"""Simulation of the generated Verilog with cocotb, and comparison with the reference.

Public API (cocotb is imported only inside the simulator process)::

    from lstm_fpga.sim import compile_model, simulate, compare

    design = compile_model(model, lanes=16)          # Verilator by default; cached build
    result = simulate(design, x_int, lengths=lengths)
    report = compare(result)                         # bit-exact? first mismatch, float error,
    print(report); report.save("compare.json")       # cycles/step vs bound

Lower layers: :mod:`lstm_fpga.sim.runner` (simulators, cached builds, runs),
:mod:`lstm_fpga.sim.plan` (typed stimulus plans and results), :mod:`lstm_fpga.sim.tb` and
:mod:`lstm_fpga.sim.streams` (the cocotb testbench), :mod:`lstm_fpga.sim.selftest` (a FIFO
to check an installation).
"""

from .compare import ComparisonReport, CycleReport, FloatError, Mismatch, TensorCheck, compare
from .lstm import HardwareDesign, SimulationResult, compile_model, design_cycle_bound, simulate
from .plan import Pacing
from .runner import SimulationError, SimulatorNotFoundError, find_simulator

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
    "compile_model",
    "design_cycle_bound",
    "find_simulator",
    "simulate",
]
