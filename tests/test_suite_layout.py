"""The test suite's own layout: every folder is a package imported by its full name, so any
test file runs alone (``pytest tests/hw/test_x.py``) exactly as in the whole suite."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_every_test_folder_is_a_package():
    folders = {p.parent for p in TESTS.rglob("test_*.py")}
    assert folders, "no test files found"
    for folder in folders:
        assert (folder / "__init__.py").is_file(), f"{folder} has no __init__.py"


def test_helpers_are_imported_by_package_name():
    """``from conftest import`` resolves to whichever conftest pytest put first on sys.path;
    helpers come from ``tests.<folder>.<module>`` or :mod:`lstm_fpga.testing`."""
    bare = re.compile(r"^\s*(from|import)\s+(conftest|engine_driver)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if bare.search(path.read_text())
    ]
    assert offenders == []
