"""lstm-fpga: PyTorch LSTM -> fixed point -> Amaranth -> Verilog -> cocotb, checked bit-exactly.

Subpackages: :mod:`lstm_fpga.sw` (numerics, IR, import, calibration, reference),
:mod:`lstm_fpga.hw` (Amaranth components and Verilog generation) and :mod:`lstm_fpga.sim`
(cocotb simulation and comparison).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
