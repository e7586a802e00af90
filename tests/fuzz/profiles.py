"""Fuzz campaign sizes: ``ci`` (the default, part of ``make test``) and ``long``
(``make fuzz`` / ``benchmarks/fuzz.py``), chosen with ``LSTM_FPGA_FUZZ_PROFILE``.

Both are reproducible: ``ci`` is derandomized (the same examples on every run); ``long``
draws from ``LSTM_FPGA_FUZZ_SEED`` (default 1; ``benchmarks/fuzz.py --seed`` sets it).
``LSTM_FPGA_FUZZ_LOG`` names a directory where every configuration run appends a JSON line
(for ``benchmarks/fuzz.py``'s summary)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

__all__ = ["PROFILE", "Profile", "log_record"]


@dataclass(frozen=True)
class Profile:
    name: str
    configurations: int  # per configuration family (each one is a simulator build)
    cases: int  # data cases per configuration (one simulation)
    stream_beats: int  # x + y + state beats of the stream-protocol test
    seed: int | None  # None: derandomized

    def settings(self) -> settings:
        return settings(
            max_examples=self.configurations,
            derandomize=self.seed is None,
            deadline=None,
            database=None,
            # Shrinking would rebuild the hardware for every attempt; the failing
            # configuration and case are printed in full instead.
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )


_PROFILES = {
    "ci": Profile("ci", configurations=1, cases=60, stream_beats=100_000, seed=None),
    "long": Profile("long", configurations=6, cases=90, stream_beats=200_000, seed=1),
}


def _profile() -> Profile:
    name = os.environ.get("LSTM_FPGA_FUZZ_PROFILE", "ci")
    if name not in _PROFILES:
        raise ValueError(f"LSTM_FPGA_FUZZ_PROFILE must be one of {sorted(_PROFILES)}, not {name!r}")
    profile = _PROFILES[name]
    seed = os.environ.get("LSTM_FPGA_FUZZ_SEED")
    if seed is not None:
        profile = Profile(
            profile.name, profile.configurations, profile.cases, profile.stream_beats, int(seed)
        )
    return profile


PROFILE = _profile()


def log_record(record: dict) -> None:
    """Append ``record`` to this process's file in ``$LSTM_FPGA_FUZZ_LOG`` (if set)."""
    directory = os.environ.get("LSTM_FPGA_FUZZ_LOG")
    if not directory:
        return
    path = Path(directory) / f"records-{os.getpid()}.jsonl"
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")
