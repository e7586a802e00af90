"""Fixtures for the simulation tests: a shared build cache and small Amaranth DUTs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sim_cache() -> Path:
    """Builds are keyed by a hash of their inputs, so one cache serves every test (and
    every xdist worker: concurrent builds of one configuration are serialised by a lock)."""
    configured = os.environ.get("LSTM_FPGA_SIM_CACHE")
    return Path(configured) if configured else REPO / "build" / "sim-cache"
