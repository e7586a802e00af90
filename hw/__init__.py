"""Amaranth hardware: matrix-vector unit, weight memories, gate/cell pipeline, sequencer.

Public API::

    from lstm_fpga.hw import HardwareConfig, generate_verilog, write_build, cycle_bound

    verilog_text = generate_verilog(model, HardwareConfig(lanes=16))  # or just 16
    build = write_build(model, HardwareConfig(lanes=16), "out/build")  # lstm_top.v + .hex
    cycle_bound(model, lanes=16)                                        # ceil(4H(I+H)/P)
"""

from .build import TOP_NAME, Build, generate_verilog, hardware_config, write_build
from .config import HardwareConfig, HardwareConfigError, PassGeometry, cycle_bound
from .engine import LstmEngine, LstmTop, check_supported
from .layout import BankImages, Location, bank_images, bias_location, weight_location

__all__ = [
    "TOP_NAME",
    "BankImages",
    "Build",
    "HardwareConfig",
    "HardwareConfigError",
    "Location",
    "LstmEngine",
    "LstmTop",
    "PassGeometry",
    "bank_images",
    "bias_location",
    "check_supported",
    "cycle_bound",
    "generate_verilog",
    "hardware_config",
    "weight_location",
    "write_build",
]
