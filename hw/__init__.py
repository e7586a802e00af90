"""Amaranth hardware: matrix-vector unit, weight memories, gate/cell pipeline, sequencer.

Public API::

    from lstm_fpga.hw import HardwareConfig, generate_verilog, write_build, cycle_bound

    verilog_text = generate_verilog(model, HardwareConfig(lanes=16))  # or just 16
    build = write_build(model, HardwareConfig(lanes=16, output="last"), "out/build")
    cycle_bound(model, lanes=16)            # sum over layer directions of ceil(4H(I_k+H)/P)
                                            # (a GRU: ceil(3H(I_k+H)/P))
    plan = EnginePlan(model, HardwareConfig(lanes=16))   # matrices, memories, bounds
    words = weight_load_words(plan, new_model)           # run-time reload through ``w``
"""

from .banks import BankImages, Location, bank_images, bias_location, weight_location
from .build import Build, generate_verilog, hardware_config, write_build
from .compatibility import check_supported
from .config import OUTPUT_MODES, HardwareConfig, HardwareConfigError
from .engine import LstmEngine, LstmTop
from .interface import TOP_NAME, TopInterface
from .plan import EnginePlan, MatrixPlan, cycle_bound
from .reload import WeightWord, weight_load_words

__all__ = [
    "OUTPUT_MODES",
    "TOP_NAME",
    "BankImages",
    "Build",
    "EnginePlan",
    "HardwareConfig",
    "HardwareConfigError",
    "Location",
    "LstmEngine",
    "LstmTop",
    "MatrixPlan",
    "TopInterface",
    "WeightWord",
    "bank_images",
    "bias_location",
    "check_supported",
    "cycle_bound",
    "generate_verilog",
    "hardware_config",
    "weight_load_words",
    "weight_location",
    "write_build",
]
