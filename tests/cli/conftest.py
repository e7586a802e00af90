"""Shared CLI test helpers: a small model with calibration samples, and running a command in
this process or on a pseudo-terminal."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main


@pytest.fixture
def files(tmp_path):
    """``model.pt`` (a seeded ``nn.LSTM(3, 4)`` state_dict) and ``cal.npy`` (6 steps of 2
    sequences in [-1, 1)) in ``tmp_path``."""
    torch.manual_seed(0)
    torch.save(torch.nn.LSTM(3, 4).state_dict(), tmp_path / "model.pt")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (6, 2, 3)))
    return tmp_path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``lstm-fpga ARGV`` in this process: exit code, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def on_terminal(*argv, cwd) -> str:
    """What ``lstm-fpga ARGV`` shows on a (pseudo-)terminal: stdout and stderr together."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal has 0 columns; tqdm draws into the width the terminal reports.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "lstm_fpga.cli", *map(str, argv)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        cwd=cwd,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=600) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")
