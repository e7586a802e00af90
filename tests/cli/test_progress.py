"""Progress bars: an ETA on a terminal, nothing under --json or when output is redirected."""

import pytest

from lstm_fpga import progress


@pytest.mark.parametrize(
    ("watching", "enabled", "shown"),
    [(True, True, True), (True, False, False), (False, True, False)],
    ids=["terminal", "json", "redirected"],
)
def test_bar_only_for_a_person_watching(capsys, monkeypatch, watching, enabled, shown):
    monkeypatch.setattr(progress, "interactive", lambda: watching)
    assert list(progress.progress_bar(range(3), desc="simulating", enabled=enabled)) == [0, 1, 2]
    err = capsys.readouterr().err
    assert ("simulating:" in err and "/3 [" in err) == shown
    assert err == "" or shown


def test_redirected_output_is_not_interactive(capsys):
    assert not progress.interactive()  # pytest captures stdout and stderr
