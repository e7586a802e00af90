"""Progress of a running tool read from its log: stages, placer iterations, routed arcs."""

import itertools
import sys
import textwrap

from lstm_fpga.eda import nextpnr
from lstm_fpga.eda.tools import ToolProgress, every, run_logged

#: A stand-in for nextpnr writing its log lines (as nextpnr-ecp5 prints them) block by block:
#: the next block once a report came after this one (an ``ack*`` file), however loaded the
#: machine is (only the first block can share a report, with the "starting" one).
_FAKE_NEXTPNR = textwrap.dedent(
    """
    import pathlib, sys, time
    here = pathlib.Path.cwd()
    acks = lambda: len(list(here.glob("ack*")))
    for block in sys.argv[1:]:
        before = acks()
        print(block.replace(";", "\\n"), flush=True)
        deadline = time.monotonic() + 60
        while acks() <= before and time.monotonic() < deadline:
            time.sleep(0.05)
    """
)
_LOG = (
    "Info: Packing IOs..",
    "Info: Running main analytical placer, max placement attempts per cell = 99.;"
    "Info:     at iteration #1, type ALL: wirelen solved = 1369, spread = 161469;"
    "Info:     at iteration #2, type ALL: wirelen solved = 6278, spread = 82804",
    "Info: Routing 100 arcs.;"
    "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) total(sec)|;"
    "Info:       1000 |        0        60 |    0    60 |        40|       0.50       0.50|",
    "Info: Routing complete.",
)


def test_stages_and_counts_reach_the_progress_callback(tmp_path):
    script = tmp_path / "fake_nextpnr.py"
    script.write_text(_FAKE_NEXTPNR)
    seen: list[ToolProgress] = []

    def report(message: ToolProgress) -> None:
        seen.append(message)
        (tmp_path / f"ack{len(seen)}").touch()

    status = run_logged(
        [sys.executable, str(script), *_LOG],
        cwd=tmp_path,
        log=tmp_path / "fake.log",
        stage=nextpnr._STAGE,
        count=nextpnr._count,
        progress=report,
    )
    assert status == 0
    parts = [(p.stage, p.done, p.total, p.unit) for p in seen]
    assert ("Running main analytical placer", 2, None, "iterations") in parts
    assert ("Routing 100 arcs", 60, 100, "arcs") in parts
    routed = next(p for p in seen if p.total == 100)
    assert str(routed) == f"Routing 100 arcs: 60/100 arcs ({routed.elapsed:.0f} s)"
    # Reported on change only: no two reports in a row say the same.
    assert all(a != b for a, b in itertools.pairwise(parts))
    assert (tmp_path / "fake.log").read_text().count("Info:") == 8


def test_every_thins_tool_progress_out_for_readers_of_lines():
    lines = []
    say = every(15, lines.append)
    for elapsed in (1, 2, 16, 20, 31, 32):
        say(ToolProgress("Routing", elapsed))
    say("nextpnr-ecp5 --25k")  # a plain message always passes
    assert lines == ["Routing (1 s)", "Routing (16 s)", "Routing (31 s)", "nextpnr-ecp5 --25k"]


def test_every_starts_over_for_the_next_tool_of_a_flow():
    lines = []
    say = every(30, lines.append)
    for elapsed in (400, 420):  # yosys
        say(ToolProgress("OPT_CLEAN", elapsed))
    for elapsed in (1, 10, 35):  # then nextpnr, its own clock from 0
        say(ToolProgress("Routing", elapsed))
    assert lines == ["OPT_CLEAN (400 s)", "Routing (1 s)", "Routing (35 s)"]
