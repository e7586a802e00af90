"""Simulation of the generated Verilog with cocotb, and comparison with the reference."""
