"""The demo's test windows through the virtual device: a demo-shaped forecaster
(``nn.LSTM(5, 16)`` + ``nn.Linear(16, 1)``, 16 lanes, forecast on the last step, batch first)
run by lstm_fpga.host.Device equals the integer reference bit for bit."""

import os
import time
from pathlib import Path

import numpy as np
import pytest

from lstm_fpga.host import Device, virtual_device
from lstm_fpga.project import write_project
from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.testing import random_model

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_demo_test_windows_are_bit_exact(tmp_path):
    pytest.importorskip("pmdarima")  # the demo's data (the `demo` extra)
    from lstm_fpga.stock_data import load_stock_data

    data = load_stock_data(window=20)
    model = random_model(5, 16, head=1, seed=0)
    model.save(tmp_path / "ir" / "model")
    build = tmp_path / "build"
    write_project(tmp_path / "ir" / "model.json", build, lanes=16, output="last", batch_first=True)
    x = quantize_input(model, data.x_test)  # (windows, 20, 5)
    reference = run_reference(model, x, batch_first=True, head_on="last").head
    cache = Path(os.environ.get("LSTM_FPGA_SIM_CACHE", REPO / "build" / "sim-cache"))
    with virtual_device(build, cache=cache / "virtual_device") as url, Device(url, build) as dev:
        started = time.monotonic()
        got = np.stack([dev.run(window)[0][0] for window in x])
        seconds = time.monotonic() - started
        status = dev.status()
    np.testing.assert_array_equal(got, reference)
    assert status.dropped == 0 and not status.overflow
    print(f"{len(x)} windows in {seconds:.1f} s: {len(x) / seconds:.0f} predictions/s")
