"""The IR validates itself with exact messages and round-trips through JSON + npz."""

import json
from dataclasses import replace

import numpy as np
import pytest

from lstm_fpga.sw.ir import SCHEMA_VERSION, IRError, LayerDirection, LstmModel
from lstm_fpga.sw.numerics import FixedFormat
from tests.conftest import float_from_torch, quantize_with, torch_lstm


@pytest.mark.parametrize(
    ("I", "H", "L", "bidirectional", "bias", "head"),
    [(5, 11, 1, False, True, 0), (5, 11, 3, True, False, 3), (2, 3, 2, False, True, 1)],
)
def test_save_load_round_trip(tmp_path, I, H, L, bidirectional, bias, head):
    model = quantize_with(float_from_torch(*torch_lstm(I, H, L, bidirectional, bias, head)))
    json_path, npz_path = model.save(tmp_path / "model")
    assert (json_path.name, npz_path.name) == ("model.json", "model.npz")
    meta = json.loads(json_path.read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["directions"][0]["formats"]["cell"] == "Q3.12"
    loaded = LstmModel.load(tmp_path / "model.npz")
    assert loaded == model
    assert not loaded.directions[0].w_ih.flags.writeable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.npz"]


def test_load_errors(tmp_path):
    with pytest.raises(IRError) as info:
        LstmModel.load(tmp_path / "missing")
    assert str(info.value) == (
        f"{tmp_path / 'missing.json'}: no such file; an IR is saved as NAME.json + NAME.npz"
    )
    model = quantize_with(float_from_torch(*torch_lstm(2, 3)))
    json_path, _ = model.save(tmp_path / "m")
    meta = json.loads(json_path.read_text())
    meta["schema_version"] = 99
    json_path.write_text(json.dumps(meta))
    with pytest.raises(IRError) as info:
        LstmModel.load(json_path)
    assert str(info.value) == (
        f"{json_path}: schema_version is 99, this lstm-fpga reads version 1; "
        "regenerate the IR with this version"
    )


def _model():
    return quantize_with(float_from_torch(*torch_lstm(5, 4, 2, True, True)))


def test_validation_messages():
    model = _model()
    d = model.directions[0]
    with pytest.raises(IRError) as info:
        replace(d, w_ih=np.full((16, 5), 40000))
    assert str(info.value) == (
        "l0.w_ih holds values in [40000, 40000] outside its format Q1.14 ([-32768, 32767])"
    )
    with pytest.raises(IRError) as info:
        replace(d, bias=np.zeros(15, dtype=np.int64))
    assert str(info.value) == "l0.bias has shape (15,), expected (16,)"
    with pytest.raises(IRError) as info:
        replace(d, w_ih=np.zeros((16, 5)))
    assert str(info.value) == "l0.w_ih must hold integers, got dtype float64"
    with pytest.raises(IRError) as info:
        replace(model, directions=model.directions[:3])
    assert str(info.value) == (
        "directions are ['l0', 'l0_reverse', 'l1'], expected ['l0', 'l0_reverse', 'l1', "
        "'l1_reverse'] for num_layers=2, bidirectional=True"
    )
    with pytest.raises(IRError) as info:
        replace(model, input_size=6)
    assert str(info.value) == "l0.w_ih has shape (16, 5), expected (16, 6)"
    wrong_x = replace(model.directions[2].formats, x=FixedFormat.parse("Q3.12"))
    directions = list(model.directions)
    directions[2] = LayerDirection(
        1, False, directions[2].w_ih, directions[2].w_hh, directions[2].bias, wrong_x
    )
    with pytest.raises(IRError) as info:
        replace(model, directions=tuple(directions))
    assert str(info.value) == (
        "l1.x is Q3.12 but layer 0's hidden format is Q0.15; "
        "a layer's input format must equal what feeds it"
    )
    with pytest.raises(IRError) as info:
        replace(model, bias=False)
    assert str(info.value) == "l0.bias is non-zero but the model has bias=False"


def test_direction_lookup():
    model = _model()
    assert model.direction(1, True).name == "l1_reverse"
    assert model.output_size == 8
    with pytest.raises(IRError) as info:
        model.direction(2, False)
    assert str(info.value) == "layer 2 does not exist (num_layers=2)"


def test_bias_finer_than_its_accumulator_is_rejected():
    d = _model().directions[0]
    formats = replace(d.formats, bias=FixedFormat(31, 30))
    with pytest.raises(IRError) as info:
        replace(d, formats=formats)
    assert str(info.value) == (
        "l0: bias format Q0.30 has 30 fraction bits but the products it is added to have only "
        "29; use a bias format with at most 29 fraction bits"
    )
