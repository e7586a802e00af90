"""The "which model sizes fit which parts" table of docs/hardware.md is benchmarks/fit.py's
output, and that script's fit is build --device's (check_fit)."""

import importlib.util
import re
from pathlib import Path

import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig
from lstm_fpga.hw.devices import DEVICES, check_fit

ROOT = Path(__file__).resolve().parents[2]


def _fit_script():
    spec = importlib.util.spec_from_file_location("fit_benchmark", ROOT / "benchmarks" / "fit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fit = _fit_script()


def test_docs_table_is_the_scripts_output():
    docs = (ROOT / "docs" / "hardware.md").read_text()
    found = re.search(r"<!-- fit table: [^\n]*-->\n(.*?)\n<!-- end fit table -->", docs, re.S)
    assert found, "docs/hardware.md lost its fit table markers"
    assert found.group(1) == fit.table(16), (
        "the fit table is stale: paste `.venv/bin/python benchmarks/fit.py` into docs/hardware.md"
    )


@pytest.mark.parametrize(
    ("name", "H", "layers", "bits", "lanes"),
    [("ecp5-25", 76, 1, 16, 16), ("ecp5-12", 23, 2, 8, 5), ("xc7a35t", 41, 1, 8, 64)],
)
def test_the_scripts_fit_is_build_devices_fit(name, H, layers, bits, lanes):
    dev = DEVICES[name]
    plan = EnginePlan(fit.square_model(H, layers, bits), HardwareConfig(lanes=lanes))
    expected = check_fit(plan, dev)
    got = fit.fit(dev, H, layers, bits, lanes)
    assert (got.needed, got.available, got.fits) == (
        expected.needed,
        expected.available,
        expected.fits,
    )
    assert plan.weight_shape.width == bits


@pytest.mark.parametrize("name", ["ecp5-25", "xc7a35t"])
@pytest.mark.parametrize(("layers", "bits"), fit.COLUMNS)
def test_largest_fits_and_one_more_does_not(name, layers, bits):
    dev = DEVICES[name]
    H, found = fit.largest(dev, layers, bits, 16)
    assert H > 0 and found.fits
    assert not fit.fit(dev, H + 1, layers, bits, 16).fits
