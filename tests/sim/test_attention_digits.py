"""``examples/attention_digits.py`` on a tiny budget: it trains, builds, simulates on Icarus and
the hardware's logits equal the integer reference's."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_attention_digits_example_runs_bit_exact(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import attention_digits

    r = attention_digits.run(
        tmp_path, lanes=8, simulator="icarus", epochs=1, hidden=6, attention=4, test_digits=8
    )
    assert r["bit_exact"] is True
    assert r["test_digits"] == 8
    assert 0.0 <= r["hardware (simulated)"] <= 1.0
    assert r["hardware (simulated)"] == r["fixed-point reference"]
    sys.modules.pop("attention_digits", None)
    sys.modules.pop("_digits", None)
