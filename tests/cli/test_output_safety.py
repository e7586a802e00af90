"""No command ever removes a file lstm-fpga did not write (issue 16 item 1).

Decoy directories hold user files; every refused command must exit 2 with one line and leave
every one of them byte for byte in place.
"""

import json
import os

import pytest

from lstm_fpga import project as project_module
from lstm_fpga.cli import main
from lstm_fpga.outdir import is_build

USER_FILES = {"thesis.tex": b"\\documentclass{article}\n", "sub/data.csv": b"t,x\n0,1.5\n"}


def _decoy(directory):
    for name, data in USER_FILES.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    return directory


def _assert_survived(directory):
    for name, data in USER_FILES.items():
        assert (directory / name).read_bytes() == data, name


def _build(capsys, files, out, *extra):
    argv = ["build", files / "model.pt", "--calibrate", files / "cal.npy", "-o", out, *extra]
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _refused(code, err, fragment):
    assert code == 2
    last = err.splitlines()[-1]
    assert last.startswith("lstm-fpga build: error: ") and fragment in last, err
    assert sum("error" in line for line in err.splitlines()) == 1


def test_force_does_not_replace_a_directory_of_user_files(files, capsys):
    decoy = _decoy(files / "thesis")
    code, err = _build(capsys, files, decoy, "--force")
    _refused(code, err, "is not an lstm-fpga build")
    _assert_survived(decoy)
    assert sorted(p.name for p in decoy.iterdir()) == ["sub", "thesis.tex"]
    assert not [p for p in files.iterdir() if p.name.startswith(".thesis")]


@pytest.mark.parametrize("relative", [".", "..", "../.."])
def test_force_refuses_the_working_directory_and_its_parents(files, capsys, monkeypatch, relative):
    work = _decoy(files / "a" / "b" / "work")
    (work / "model.pt").write_bytes((files / "model.pt").read_bytes())
    monkeypatch.chdir(work)
    code, err = _build(capsys, files, relative, "--force")
    _refused(code, err, "working directory")
    _assert_survived(work)


def test_force_refuses_a_symlink_even_to_a_build(files, capsys):
    assert _build(capsys, files, files / "real")[0] == 0
    before = sorted(p.name for p in (files / "real").iterdir())
    (files / "link").symlink_to(files / "real", target_is_directory=True)
    code, err = _build(capsys, files, files / "link", "--force")
    _refused(code, err, "is a symlink")
    assert (files / "link").is_symlink()
    assert sorted(p.name for p in (files / "real").iterdir()) == before


def test_force_refuses_a_directory_holding_the_inputs(files, capsys):
    code, err = _build(capsys, files, files, "--force")
    _refused(code, err, "contains the input")
    assert (files / "model.pt").is_file() and (files / "cal.npy").is_file()


def test_force_refuses_a_build_a_user_added_files_to(files, capsys):
    out = files / "out"
    assert _build(capsys, files, out)[0] == 0
    (out / "rtl" / "my_constraints.lpf").write_text("LOCATE COMP clk SITE A1;\n")
    code, err = _build(capsys, files, out, "--force")
    _refused(code, err, "holds rtl/my_constraints.lpf, which lstm-fpga did not write")
    assert (out / "rtl" / "my_constraints.lpf").is_file()
    assert is_build(out)


def test_force_replaces_an_earlier_build_with_its_simulation_outputs(files, capsys):
    out = files / "out"
    assert _build(capsys, files, out)[0] == 0
    (out / "sim").mkdir()
    (out / "sim" / "outputs.npy").write_bytes(b"old")
    (out / "synth_ecp5.json").write_text("{}")
    assert _build(capsys, files, out, "--force")[0] == 0
    assert is_build(out) and not (out / "sim").exists()
    assert sorted(p.name for p in files.iterdir()) == ["cal.npy", "model.pt", "out"]


def test_an_empty_directory_is_used_without_force(files, capsys):
    (files / "empty").mkdir()
    assert _build(capsys, files, files / "empty")[0] == 0
    assert is_build(files / "empty")


def test_a_failed_rebuild_leaves_the_old_build_whole(files, capsys, monkeypatch):
    out = files / "out"
    assert _build(capsys, files, out)[0] == 0
    manifest = (out / "build.json").read_text()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project_module, "write_build", broken)
    code, err = _build(capsys, files, out, "--force")
    assert code == 2 and "No space left on device" in err.splitlines()[-1]
    assert (out / "build.json").read_text() == manifest
    for name in json.loads(manifest)["files"]:
        assert (out / name).is_file()
    assert sorted(p.name for p in files.iterdir()) == ["cal.npy", "model.pt", "out"]


def test_output_that_is_a_file_or_under_a_file(files, capsys):
    (files / "notes.txt").write_text("keep me\n")
    code, err = _build(capsys, files, files / "notes.txt", "--force")
    _refused(code, err, "exists and is a file")
    code, err = _build(capsys, files, files / "notes.txt" / "out")
    _refused(code, err, "which is a file")
    assert (files / "notes.txt").read_text() == "keep me\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_parent_is_one_line(files, capsys):
    locked = files / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, err = _build(capsys, files, locked / "out")
    finally:
        locked.chmod(0o700)
    _refused(code, err, "not writable")


def test_demo_refuses_a_directory_of_user_files_before_any_work(files, capsys):
    decoy = _decoy(files / "report")
    code = main(["demo", "-o", str(decoy), "--no-synth"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is not an lstm-fpga build" in err.splitlines()[-1]
    _assert_survived(decoy)
