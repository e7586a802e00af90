"""``lstm-fpga finetune``: quantisation-aware fine-tuning from files to an IR ``build`` takes."""

import json

import numpy as np
import pytest
import torch

from lstm_fpga.cli import main
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.reference import quantize_input, run_reference


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4, batch_first=True)
        self.fc = torch.nn.Linear(4, 2)


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    torch.save(_Net().state_dict(), tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.uniform(-1, 1, (24, 5, 3)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.full((24, 2), 0.3, dtype=np.float32))
    np.save(tmp_path / "y_short.npy", np.zeros((23, 2), dtype=np.float32))
    return tmp_path


def _run(capsys, files, *flags, y="y.npy", out="tuned"):
    argv = ["finetune", files / "model.pt", "--data", files / "x.npy", files / y]
    code = main([str(a) for a in [*argv, "-o", files / out, "--batch-first", *flags]])
    return code, *capsys.readouterr()


def test_finetune_writes_an_ir_that_build_takes(files, capsys):
    code, out, err = _run(capsys, files, "--weight-bits", "8", "--epochs", "4", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["losses"][-1] < summary["losses"][0]
    model = LstmModel.load(files / "tuned.json")
    assert model.directions[0].formats.w_ih.width == 8
    assert model.directions[0].formats.x.width == 16
    x = np.load(files / "x.npy")
    head = run_reference(model, quantize_input(model, x), batch_first=True).head
    loss = np.mean((head * model.head.formats.output.lsb - 0.3) ** 2)
    assert loss < summary["losses"][0]
    code, _, err = main_build(files, capsys)
    assert code == 0, err
    assert LstmModel.load(files / "build" / "model.json") == model


def main_build(files, capsys):
    code = main(["build", str(files / "tuned.json"), "-o", str(files / "build"), "--json"])
    return code, *capsys.readouterr()


@pytest.mark.parametrize(
    ("flags", "y", "message"),
    [
        ([], "y_short.npy", "x holds 24 sequences but y has 23 targets"),
        (["--weight-bits", "3"], "y.npy", "--weight-bits must be an int from 4 to 30, not 3"),
        (["--epochs", "0"], "y.npy", "epochs must be a positive int, not 0"),
    ],
)
def test_finetune_bad_input_is_one_line(files, capsys, flags, y, message):
    code, _, err = _run(capsys, files, *flags, y=y)
    assert code == 2 and err.splitlines()[-1] == f"lstm-fpga finetune: error: {message}"
    assert not (files / "tuned.json").exists()


def test_finetune_does_not_overwrite_without_force(files, capsys):
    (files / "tuned.json").write_text("{}")
    code, _, err = _run(capsys, files)
    assert code == 2 and "tuned.json exists; pass --force" in err
    assert (files / "tuned.json").read_text() == "{}"
