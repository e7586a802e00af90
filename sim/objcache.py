"""Compiler wrapper that caches Verilator's runtime library objects between builds.

Every Verilator build compiles the same runtime (``verilated.cpp``, ``verilated_vpi.cpp``,
``verilated_threads.cpp``, ``verilated_dpi.cpp``): about 10 of the 13 seconds a small model
takes. Verilator's makefile prefixes each compile with ``$(OBJCACHE)``; :mod:`.runner` points
it at this module, which serves those objects (and their ``.d`` dependency files) from a
cache keyed by the exact command line, the source text and the compiler. Any other compile
(the model itself, cocotb's ``verilator.cpp`` that includes the model header) runs as is.

Usage (by make): ``python -m lstm_fpga.sim.objcache c++ [flags...] -c -o X.o X.cpp``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["CACHE_ENV", "INCLUDE_ENV", "main"]

#: Directory of cached objects.
CACHE_ENV = "LSTM_FPGA_OBJCACHE_DIR"
#: Verilator's include directory: only sources inside it are cached.
INCLUDE_ENV = "LSTM_FPGA_VERILATOR_INCLUDE"


def _compiler_identity(compiler: str) -> str:
    path = shutil.which(compiler) or compiler
    try:
        stat = Path(path).resolve().stat()
    except OSError:
        return path
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _cacheable(command: list[str]) -> tuple[Path, Path] | None:
    """(source, object) of a plain ``-c -o X.o source.cpp`` compile of a runtime file."""
    include = os.environ.get(INCLUDE_ENV)
    if not include or "-c" not in command or "-o" not in command:
        return None
    output = Path(command[command.index("-o") + 1])
    source = Path(command[-1])
    if source.suffix != ".cpp" or not source.is_absolute():
        return None
    try:
        source.resolve().relative_to(Path(include).resolve())
    except ValueError:
        return None
    return source, output


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if not command:
        print("usage: python -m lstm_fpga.sim.objcache COMPILER ARGS...", file=sys.stderr)
        return 2
    cache_dir = os.environ.get(CACHE_ENV)
    target = _cacheable(command) if cache_dir else None
    if target is None:
        return subprocess.call(command)
    source, output = target
    digest = hashlib.sha256()
    key_args = [arg for k, arg in enumerate(command) if k == 0 or command[k - 1] != "-o"]
    digest.update("\0".join(key_args).encode())
    digest.update(_compiler_identity(command[0]).encode())
    digest.update(source.read_bytes())
    key = digest.hexdigest()[:32]
    entry = Path(cache_dir) / key
    depfile = output.with_suffix(".d")
    if (entry / "object").is_file():
        shutil.copyfile(entry / "object", output)
        if (entry / "deps").is_file():
            shutil.copyfile(entry / "deps", depfile)
        return 0
    status = subprocess.call(command)
    if status == 0:
        partial = Path(cache_dir) / f".{key}.{os.getpid()}"
        partial.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(output, partial / "object")
        if depfile.is_file():
            shutil.copyfile(depfile, partial / "deps")
        try:
            partial.rename(entry)
        except OSError:  # another build stored the same object first
            shutil.rmtree(partial, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
