"""Progress bars with an ETA for long stages (training, simulation of many sequences).

Shown only when a person watches: both stdout and stderr are terminals and the command was
not asked for ``--json``. The bar goes to stderr and vanishes when the stage ends, so logs and
machine-readable output stay clean.
"""

from __future__ import annotations

import sys

__all__ = ["interactive", "progress_bar"]


def interactive() -> bool:
    """Whether a person is watching (stdout and stderr are terminals)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress_bar(
    iterable=None, *, total: int | None = None, desc: str, unit: str = "it", enabled: bool = True
):
    """A ``tqdm`` bar over ``iterable`` (or updated by hand up to ``total``); inert unless
    ``enabled`` and :func:`interactive`."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=not (enabled and interactive()),
    )
