"""Output directories that never cost the user a file.

Every command that writes a directory goes through here. :func:`check_output_dir` decides,
before any work starts, whether ``OUT`` may be written: a new path, an empty directory, or
(with ``--force``) a directory that is recognisably an earlier lstm-fpga build -- its
``build.json`` says ``"kind": "lstm-fpga build"`` and every file in it is one lstm-fpga
wrote. Anything else is refused with :class:`OutputDirError` (the CLI's exit 2) and nothing
is touched: a directory holding other files, the working directory or one of its parents,
the home directory, a symlink, a path under a file, a directory containing the command's
input files. :func:`replace_dir` then swaps the finished staging directory in atomically: the
old build is renamed aside, the new one renamed into place, and only then is the old one
deleted.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "BUILD_KIND",
    "OutputDirError",
    "check_output_dir",
    "is_build",
    "record_generated",
    "replace_dir",
    "staging_dir",
]

#: The ``kind`` of a build directory's ``build.json``.
BUILD_KIND = "lstm-fpga build"
#: Entries of a build directory that lstm-fpga commands create after ``build`` (simulation
#: outputs and cache, synthesis reports), besides the files ``build.json`` lists.
_GENERATED_DIRS = ("sim", "sim_build")
_GENERATED_FILES = ("build.json", "synth_*.json")


class OutputDirError(ValueError):
    """An output path lstm-fpga refuses to write (one line, exit 2); nothing was touched."""


def _manifest(directory: Path) -> dict | None:
    try:
        manifest = json.loads((directory / "build.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def is_build(directory) -> bool:
    """Whether ``directory`` is an lstm-fpga build (its ``build.json`` says so)."""
    manifest = _manifest(Path(directory))
    return manifest is not None and manifest.get("kind") == BUILD_KIND


def _foreign_file(directory: Path, manifest: dict) -> str | None:
    """The first file in ``directory`` that no lstm-fpga command wrote, else ``None``."""
    known = {str(name) for name in manifest.get("files", [])}
    generated = [str(name) for name in manifest.get("generated", [])]
    for root, dirs, files in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        if rel_root.parts and rel_root.parts[0] in (*_GENERATED_DIRS, *generated):
            continue
        for name in sorted(files) + sorted(d for d in dirs if (Path(root) / d).is_symlink()):
            rel = (rel_root / name).as_posix()
            if rel in known or rel in generated:
                continue
            if not rel_root.parts and any(fnmatch.fnmatch(name, p) for p in _GENERATED_FILES):
                continue
            return rel
    return None


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_output_dir(out, *, force: bool, inputs=(), option: str = "-o") -> Path:
    """Refuse (:class:`OutputDirError`) an ``out`` that writing or replacing could cost the
    user a file; ``inputs`` are the command's input files (never inside ``out``). Returns
    ``out``. ``option`` names the CLI option in messages."""
    out = Path(out)
    if out.is_symlink():
        raise OutputDirError(
            f"output {out} is a symlink; lstm-fpga does not write through links: give the "
            f"real path ({option} {out.resolve()})"
        )
    for parent in out.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise OutputDirError(f"output {out} is under {parent}, which is a file")
    resolved = out.resolve()
    protected = {Path.cwd().resolve(): "the working directory"}
    protected[Path.home().resolve()] = "your home directory"
    for path, what in protected.items():
        if _inside(path, resolved):
            whose = what if path == resolved else f"a parent of {what}"
            raise OutputDirError(
                f"output {out} is {whose}; lstm-fpga writes into a new directory: choose "
                f"another {option} (e.g. {option} {out / 'lstm_build'})"
            )
    for given in inputs:
        if given is not None and _inside(Path(given).resolve(), resolved):
            raise OutputDirError(
                f"output {out} contains the input {given}; choose another {option}"
            )
    if out.exists():
        if not out.is_dir():
            raise OutputDirError(
                f"output {out} exists and is a file; choose a directory path for {option}"
            )
        if not any(out.iterdir()):
            return out
        manifest = _manifest(out)
        if manifest is None or manifest.get("kind") != BUILD_KIND:
            raise OutputDirError(
                f"output directory {out} exists and is not an lstm-fpga build (no build.json "
                f"saying so); lstm-fpga replaces only its own builds: choose another {option}"
            )
        foreign = _foreign_file(out, manifest)
        if foreign is not None:
            raise OutputDirError(
                f"output directory {out} holds {foreign}, which lstm-fpga did not write; move "
                f"it out or choose another {option}"
            )
        if not force:
            raise OutputDirError(f"output directory {out} exists; pass --force to replace it")
    parent = _existing_parent(out.absolute())
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputDirError(f"cannot write {out}: {parent} is not writable")
    return out


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor)


def staging_dir(out) -> Path:
    """A new empty directory beside ``out`` to write into before :func:`replace_dir`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))


def replace_dir(staging: Path, out) -> None:
    """Move the finished ``staging`` directory to ``out`` (checked by
    :func:`check_output_dir`): the old directory is renamed aside, the new one renamed into
    place, then the old one is deleted -- a failure at any point leaves one of the two whole."""
    out = Path(out)
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
        old.rmdir()
        out.rename(old)
    try:
        staging.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def record_generated(directory, *names: str) -> None:
    """Add ``names`` (relative paths a command wrote into the build ``directory``) to its
    ``build.json``, so a later ``--force`` knows they are lstm-fpga's to replace."""
    directory = Path(directory)
    manifest = _manifest(directory)
    if manifest is None:
        return
    generated = list(manifest.get("generated", []))
    generated += [name for name in names if name not in generated]
    manifest["generated"] = generated
    path = directory / "build.json"
    partial = path.with_name(".build.json.partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(path)
