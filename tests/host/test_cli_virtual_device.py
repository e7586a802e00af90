"""`lstm-fpga virtual-device`: bad input is one line and exit 2 (serving is exercised through
the Python API in test_virtual_device.py)."""

import pytest

from lstm_fpga.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port 70000 is not a TCP port"),
        (["--port", "-1"], "--port -1 is not a TCP port"),
        ([], "is not an lstm-fpga build"),
        (["--leds", "/nonexistent/dir/leds.log"], "--leds /nonexistent/dir/leds.log: no directory"),
    ],
)
def test_bad_input(tmp_path, capsys, argv, message):
    assert main(["virtual-device", str(tmp_path / "missing"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("lstm-fpga virtual-device:")
