"""Reading the JSON files lstm-fpga writes: valid JSON carrying the ``schema_version`` this
version reads, else one line naming the file and the fix."""

from __future__ import annotations

import json

__all__ = ["read_versioned_json"]


def read_versioned_json(
    text: str, version: int, what: str, error: type[Exception], fix: str = ""
) -> dict:
    """``text`` parsed as a JSON object whose ``schema_version`` is ``version``; otherwise
    ``error("<what>: ...")`` (with ``; <fix>`` after a version mismatch when given)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(f"{what}: not valid JSON ({problem})") from None
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != version:
        raise error(
            f"{what}: schema_version is {found!r}, this lstm-fpga reads version {version}"
            + (f"; {fix}" if fix else "")
        )
    return data
