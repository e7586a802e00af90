"""Software core: fixed-point numerics, model IR, PyTorch import, calibration, reference."""
