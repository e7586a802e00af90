"""Progress bars with an ETA for long stages (training, calibration, simulation of many
sequences, synthesis and place and route).

Shown only when a person watches: both stdout and stderr are terminals and the command was
not asked for ``--json``. The bar goes to stderr and vanishes when the stage ends, so logs and
machine-readable output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["ToolBars", "counter_bar", "interactive", "progress_bar"]


def interactive() -> bool:
    """Whether a person is watching (stdout and stderr are terminals)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def progress_bar(
    iterable=None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    enabled: bool = True,
    bar_format: str | None = None,
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
        bar_format=bar_format,
        disable=not (enabled and interactive()),
    )


@contextmanager
def counter_bar(
    total: int, *, desc: str, unit: str = "it", enabled: bool = True
) -> Iterator[Callable[[int], None] | None]:
    """A bar over ``total`` set to the counts the yielded callback receives (from any thread,
    e.g. a simulation's progress watcher); yields None when no bar is shown, so the caller
    can skip the counting altogether."""
    with progress_bar(total=total, desc=desc, unit=unit, enabled=enabled) as bar:
        if bar.disable:
            yield None
            return

        def advance(done: int) -> None:
            if done != bar.n:
                bar.n = done
                bar.refresh()

        yield advance


#: A stage the tool's log does not count in: its name and the time it has taken.
_STAGE_ONLY = "{desc} [{elapsed}]"
#: A count with no known end (placer iterations).
_OPEN_COUNT = "{desc}: {n} {unit} [{elapsed}]"


class ToolBars:
    """The ``progress`` callback of a tool run (synthesis, place and route): a bar per stage
    the tool's log names, with the ETA where the log counts toward a total (nextpnr's routed
    arcs), the count where it has no known end (placer iterations) and the elapsed time
    otherwise. Plain messages (not :class:`~lstm_fpga.eda.tools.ToolProgress`) go to ``log``
    as lines. Only on a terminal (:func:`interactive`) and when ``enabled``; :meth:`close`
    removes the last bar."""

    def __init__(self, name: str, log: Callable[[str], None], enabled: bool = True):
        self.name, self.log, self.enabled = name, log, enabled
        self.bar, self.stage, self.total = None, None, None

    def __call__(self, message: str) -> None:
        stage = getattr(message, "stage", None)
        if stage is None:
            from tqdm import tqdm

            self.close()
            with tqdm.external_write_mode(file=sys.stderr):  # other bars (the demo's) redraw
                self.log(str(message))
            return
        if self.bar is None or (stage, message.total) != (self.stage, self.total):
            self.close()
            fmt = None if message.total is not None else _STAGE_ONLY
            if message.done is not None and message.total is None:
                fmt = _OPEN_COUNT
            self.bar = progress_bar(
                total=message.total,
                desc=f"{self.name}: {stage}",
                unit=message.unit or "it",
                enabled=self.enabled,
                bar_format=fmt,
            )
            self.stage, self.total = stage, message.total
        if message.done is not None:
            self.bar.n = message.done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
