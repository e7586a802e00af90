"""The AXI4-Lite register map: one table (hw/regmap.py) behind the docs table, the C header
and ``lstm_axi``'s ports; the model hash; the ``control`` option's checks."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError, TopInterface
from lstm_fpga.hw.build import generate_verilog
from lstm_fpga.hw.control import (
    AXI_LITE_PREFIX,
    AXI_TOP_NAME,
    CONTROL_MODES,
    IRQ,
    axi_lite_ports,
    axis_port,
)
from lstm_fpga.hw.interface import Direction, SaturationKind
from lstm_fpga.hw.regmap import (
    ADDRESS_WIDTH,
    DATA_WIDTH,
    REGISTERS,
    Access,
    RegisterMap,
    c_header,
    format_word,
    markdown_table,
    model_hash,
)
from lstm_fpga.sw.calibrate import quantize_from_torch
from lstm_fpga.sw.modules import AttentionClassifier
from lstm_fpga.sw.numerics import FixedFormat
from lstm_fpga.testing import random_lstmp_model, random_model

DOC = Path(__file__).resolve().parents[2] / "docs" / "axi-lite.md"
BEGIN, END = "<!-- register-table: begin -->", "<!-- register-table: end -->"


@pytest.fixture(scope="module", params=[(3, 5, 1, None, 3), (4, 3, 2, 2, 7)], ids=str)
def regmap(request):
    I, H, L, head, lanes = request.param
    model = random_model(I, H, L, head=head, seed=I * H)
    return RegisterMap(TopInterface(EnginePlan(model, HardwareConfig(lanes=lanes))))


def test_the_docs_table_is_the_register_table():
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} lost its register-table markers"
    table = text.split(BEGIN)[1].split(END)[0].strip() + "\n"
    assert table == markdown_table(), (
        "docs/axi-lite.md's register table differs from hw/regmap.py's REGISTERS; paste "
        "lstm_fpga.hw.regmap.markdown_table() between the markers"
    )


def _defines(header: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (\S+)$", header, re.M))


def test_the_c_header_is_the_register_table(regmap):
    defines = _defines(c_header(regmap))
    number = {name: int(v.rstrip("u"), 0) for name, v in defines.items() if v[0].isdigit()}
    for r in REGISTERS:
        assert number[f"LSTM_REG_{r.name}"] == r.offset
        assert number[f"LSTM_{r.name}_RESET"] == regmap.reset_value(r)
        for f in r.fields:
            assert number[f"LSTM_{r.name}_{f.name}_SHIFT"] == f.lsb
            assert number[f"LSTM_{r.name}_{f.name}_MASK"] == f.mask
        if r.name in regmap.constants:
            assert number[f"LSTM_{r.name}_VALUE"] == regmap.constants[r.name]
    assert sum(k.startswith("LSTM_REG_") for k in number) == len(REGISTERS)
    assert number["LSTM_ADDRESS_WIDTH"] == ADDRESS_WIDTH
    assert defines["LSTM_MODEL_HASH"] == f'"{regmap.model_hash}"'


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_c_header_compiles_and_its_values_hold_in_c(regmap, tmp_path):
    (tmp_path / "lstm_regs.h").write_text(c_header(regmap))
    checks = [f'_Static_assert(LSTM_REG_{r.name} == {r.offset}u, "{r.name}");' for r in REGISTERS]
    checks += [
        f'_Static_assert(LSTM_{name}_VALUE == {value}u, "{name}");'
        for name, value in regmap.constants.items()
    ]
    source = tmp_path / "check.c"
    source.write_text('#include "lstm_regs.h"\n#include "lstm_regs.h"\n' + "\n".join(checks))
    result = subprocess.run(
        ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_constants_hold_the_interface(regmap):
    iface, values = regmap.interface, regmap.constants
    plan = iface.plan
    assert values["GEOMETRY"] == plan.input_size | plan.hidden_size << 16
    assert values["LAYERS"] == (
        plan.num_layers | plan.num_directions << 8 | (plan.head_out or 0) << 16
    )
    assert values["W_WIDTH"] == iface.w.width
    assert values["STATE_BEATS"] == iface.state_beats
    assert values["MODEL_HASH_HI"] << 32 | values["MODEL_HASH_LO"] == regmap.hash64
    assert regmap.hash64 == int(model_hash(plan.model)[:16], 16)


@pytest.mark.parametrize(
    "fmt, word", [(FixedFormat(16, 12), 0x10C10), (FixedFormat(8, -2), 0x1FE08)], ids=str
)
def test_format_words(fmt, word):
    fields = format_word(fmt)
    assert fields["WIDTH"] | fields["FRAC"] << 8 | fields["SIGNED"] << 16 == word


def test_the_model_hash_follows_every_weight_and_format():
    model = random_model(3, 4, seed=2)
    assert model_hash(model) == model_hash(random_model(3, 4, seed=2))
    d = model.directions[0]
    w_hh = d.w_hh.copy()
    w_hh[1, 2] += 1
    changed = replace(model, directions=(replace(d, w_hh=w_hh),))
    assert model_hash(changed) != model_hash(model)
    reformatted = replace(
        model,
        directions=(replace(d, formats=replace(d.formats, preact=FixedFormat(16, 10))),),
    )
    assert model_hash(reformatted) != model_hash(model)


def _bumped(array):
    changed = array.copy()
    flat = changed.reshape(-1)
    flat[0] = flat[0] - 1 if flat[0] > 0 else flat[0] + 1  # stays in its format's range
    return changed


def test_the_model_hash_follows_projections_and_attention_weights():
    lstmp, _ = random_lstmp_model(3, 5, 2, seed=4)
    d = lstmp.directions[0]
    projected = replace(lstmp, directions=(replace(d, w_hr=_bumped(d.w_hr)),))
    assert model_hash(projected) != model_hash(lstmp)

    torch.manual_seed(5)
    net = AttentionClassifier(3, 4, 5, 2).double()
    x = np.random.default_rng(5).uniform(-2, 2, (2, 4, 3))
    model, _ = quantize_from_torch(net, x, lengths=np.array([4, 3]))
    hashes = {model_hash(model)}
    for name in ("w", "bias", "v"):
        changed = replace(model.attention, **{name: _bumped(getattr(model.attention, name))})
        hashes.add(model_hash(replace(model, attention=changed)))
    assert len(hashes) == 4


def test_the_table_is_consistent():
    offsets = [r.offset for r in REGISTERS]
    assert offsets == sorted(set(offsets)) and all(o % (DATA_WIDTH // 8) == 0 for o in offsets)
    assert max(offsets) < 1 << ADDRESS_WIDTH
    for r in REGISTERS:
        assert r.access is Access.RO or r.constant is None
    # Every saturation kind the hardware counts has exactly one counter register.
    names = [r.name for r in REGISTERS]
    for kind in SaturationKind:
        assert names.count(kind.port.upper()) == 1, kind


def test_lstm_axi_ports_in_the_verilog():
    model = random_model(3, 4, seed=3)
    config = HardwareConfig(lanes=3)
    text = generate_verilog(model, config, control="axi-lite")
    header = re.search(rf"module {AXI_TOP_NAME}\((.*?)\);", text, re.S)
    assert header, f"no module {AXI_TOP_NAME}"
    names = {n.strip() for n in header.group(1).split(",")}
    iface = TopInterface(EnginePlan(model, config))
    expected = {"clk", "rst", IRQ}
    expected |= {f"{AXI_LITE_PREFIX}_{n}" for n, _, _ in axi_lite_ports()}
    widths = {}
    for s in iface.streams:
        for p in s.ports:
            name = axis_port(s, p.name.split("__")[1])
            expected.add(name)
            widths[name] = (p.direction, p.width)
    assert names == expected
    for name, (direction, width) in widths.items():
        declared = re.search(
            rf"^\s*({direction.verilog}) (?:signed )?(?:\[(\d+):0\] )?{name};", text, re.M
        )
        assert declared, name
        assert int(declared.group(2) or 0) + 1 == width, name
    assert re.search(rf"input \[{ADDRESS_WIDTH - 1}:0\] {AXI_LITE_PREFIX}_awaddr;", text)
    assert Direction.IN.verilog == "input"


def test_bad_control_mode_names_the_choices():
    model = random_model(2, 3, seed=4)
    with pytest.raises(HardwareConfigError, match="stream, axi-lite"):
        generate_verilog(model, 2, control="axi")
    assert CONTROL_MODES == ("stream", "axi-lite")


def test_format_frac_is_twos_complement_in_eight_bits():
    assert np.int8(np.uint8(format_word(FixedFormat(8, -2))["FRAC"])) == -2
