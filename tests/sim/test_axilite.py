"""``lstm_axi`` (``build --control axi-lite``) under cocotb with cocotbext-axi's AxiLiteMaster:
every register's reset value, write/read-back and strobes, SLVERR for unmapped addresses and
read-only registers, the x gate, a run through the AXI4-Stream ports bit-exact against the
integer reference with the cycle counters, DONE, irq and the saturation counters as
documented, and CLEAR_STATUS."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_fpga.hw import HardwareConfig, write_build
from lstm_fpga.hw.control import AXI_TOP_NAME, axis_prefix
from lstm_fpga.hw.interface import SATURATION_KINDS
from lstm_fpga.hw.regmap import (
    ADDRESS_WIDTH,
    REGISTERS,
    Access,
    RegisterMap,
    Resp,
    model_hash,
    register,
)
from lstm_fpga.sim.axilite import run_axilite_scenario
from lstm_fpga.sim.compilation import compile_simulation
from lstm_fpga.sw.reference import run_reference
from lstm_fpga.testing import padded, random_model, random_sequences

OKAY, SLVERR = int(Resp.OKAY), int(Resp.SLVERR)
#: What the hand-driven writes put into CONTROL (every field but ENABLE).
CONTROL_VALUE = sum(f.mask for f in register("CONTROL").fields if f.name != "ENABLE")


def _mask(name: str) -> int:
    reg, field = name.split(".")
    return register(reg).field(field).mask


def _spec(interface, sequences, pacing: bool, carried) -> dict:
    regmap = RegisterMap(interface)
    lengths = [len(s) for s in sequences]
    last = REGISTERS[-1].offset
    control = register("CONTROL")
    return {
        "state_run": {
            "control": sum(control.field(f).mask for f in ("ENABLE", "CARRY_STATE", "READ_STATE")),
            "x": {
                "data": [int(v) for v in interface.pack_x(carried)],
                "last": [bool(v) for v in interface.x_last([len(carried)])],
            },
            "y_beats": int(interface.y_beats([len(carried)]).sum()),
            "state_beats": interface.state_beats,
        },
        "registers": regmap.records(),
        "fields": {f"{r.name}.{f.name}": f.mask for r in REGISTERS for f in r.fields},
        "unmapped": [last + 4, last + 5, (1 << ADDRESS_WIDTH) - 4],
        "control_reset": register("CONTROL").reset,
        "control_value": CONTROL_VALUE,
        "sources": [{"port": axis_prefix(s)} for s in (interface.x, interface.init, interface.w)],
        "sinks": [{"port": axis_prefix(s)} for s in (interface.y, interface.state)],
        "x": {
            "data": [int(v) for s in sequences for v in interface.pack_x(s)],
            "last": [bool(v) for v in interface.x_last(lengths)],
        },
        "y_beats": int(interface.y_beats(lengths).sum()),
        "gate_cycles": 16,
        "timeout_cycles": 20 * interface.sequence_bound(max(lengths)) * len(lengths) + 2000,
        "input_pacing": {"probability": 0.3 * pacing, "max_cycles": 3, "seed": 5},
        "output_pacing": {"probability": 0.3 * pacing, "max_cycles": 4, "seed": 6},
    }


def _check_read(read: dict, value: int) -> None:
    """A read held 3 cycles by ``rready`` low: data one cycle after the address, unchanged
    until taken, and ``arready`` low until then."""
    assert read["offered"] == {"arready": 1}
    first, *held = read["waiting"]
    assert first == {"rvalid": 0, "rdata": first["rdata"], "rresp": first["rresp"], "arready": 0}
    for cycle in held:
        assert cycle == {"rvalid": 1, "rdata": value, "rresp": OKAY, "arready": 0}
    assert read["taken"] == {"rvalid": 1, "rdata": value, "rresp": OKAY}
    assert read["after"] == {"rvalid": 0, "arready": 1}


def _check_write(write: dict, first: str) -> None:
    """The ``first`` channel is taken alone and held; the other is still ready; ``bvalid``
    follows the second handshake by 2 cycles and holds until ``bready``; both channels are
    free again after it."""
    other = "wready" if first == "aw" else "awready"
    assert write["first_ready"] == {"awready": 1, "wready": 1}
    for cycle in write["held"]:
        assert cycle == {f"{first}ready": 0, other: 1, "bvalid": 0}
    assert write["second_ready"][other] == 1
    first_wait, *held = write["waiting"]
    assert first_wait["bvalid"] == 0
    for cycle in held:
        assert cycle == {"bvalid": 1, "bresp": OKAY, "awready": 0, "wready": 0}
    assert write["taken"] == {"bvalid": 1, "bresp": OKAY}
    assert write["after"] == {"bvalid": 0, "awready": 1, "wready": 1}


def _expected_y(model, sequences, output: str, h0=None, c0=None):
    """The ``y`` beats of ``sequences`` streamed back to back, the saturation counts and the
    final state ``(h_n, c_n)`` of the last sequence (``(L*D, 1, H)`` each)."""
    lengths = [len(s) for s in sequences]
    ref = run_reference(model, padded(sequences), h0, c0, lengths=lengths, head_on=output)
    parts = []
    for b, n in enumerate(lengths):
        if model.head is not None:
            parts.append(ref.head[b] if output == "last" else ref.head[:n, b])
        else:
            parts.append(ref.output[n - 1, b] if output == "last" else ref.output[:n, b])
    y = np.concatenate([np.asarray(p).reshape(-1) for p in parts])
    return y, ref.saturations, (ref.h_n[:, -1:], ref.c_n[:, -1:])


CASES = {
    # I, H, L, head, output, lanes, lengths, simulator, pacing
    "I3H5-P3-one-seq": (3, 5, 1, None, "all", 3, [4], "verilator", False),
    "I5H4-L2-head2-last-P5-paced": (5, 4, 2, 2, "last", 5, [3, 2], "verilator", True),
    "I2H3-P2-icarus": (2, 3, 1, None, "all", 2, [2, 1], "icarus", False),
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[pytest.mark.slow] if i else []) for i, c in enumerate(CASES)]
)
def test_axilite_registers_and_a_bit_exact_run(case, sim_cache, tmp_path):
    I, H, L, head, output, lanes, lengths, simulator, pacing = CASES[case]
    seed = sum(map(ord, case)) % 1000
    model = random_model(I, H, L, head=head, seed=seed, formats="tight", head_formats="tight")
    build = write_build(
        model,
        HardwareConfig(lanes=lanes, output=output),
        tmp_path / "rtl",
        memory_init="readmemh",
        control="axi-lite",
    )
    sim_build = compile_simulation(
        build.control_verilog.read_text(),
        AXI_TOP_NAME,
        simulator,
        cache_dir=sim_cache,
        data_files=build.hex_files,
    )
    interface = build.interface
    regmap = RegisterMap(interface)
    sequences = random_sequences(model, lengths, seed + 1)
    carried = random_sequences(model, [2], seed + 2)[0]
    spec = _spec(interface, sequences, pacing, carried)
    got = run_axilite_scenario(sim_build, spec, tmp_path / "run", seed=seed)
    resets = {r.name: regmap.reset_value(r) for r in REGISTERS}

    # By hand: AW and W accepted in either order; R and B held until taken.
    channels = got["channels"]
    _check_read(channels["read_reset"], register("CONTROL").reset)
    _check_write(channels["w_first"], "w")
    _check_read(channels["read_written"], CONTROL_VALUE)
    _check_write(channels["aw_first"], "aw")
    _check_read(channels["read_restored"], register("CONTROL").reset)
    # After reset: every register reads its documented value, OKAY.
    assert got["reset"] == {name: [value, OKAY] for name, value in resets.items()}
    words = got["reset"]
    hash64 = words["MODEL_HASH_HI"][0] << 32 | words["MODEL_HASH_LO"][0]
    assert hash64 == int(model_hash(model)[:16], 16)
    assert words["GEOMETRY"][0] == I | H << 16
    # Unmapped addresses: SLVERR both ways, reads return 0.
    for entry in got["unmapped"]:
        assert entry["read"] == [0, SLVERR] and entry["write"] == SLVERR, entry
    # Read-only registers: SLVERR, nothing changes.
    for name, (resp, read) in got["read_only_writes"].items():
        assert resp == SLVERR and read == [resets[name], OKAY], name
    # Writable: every field bit written reads back; WO reads 0; strobes honoured.
    for r in REGISTERS:
        if r.access is Access.RW:
            assert got["writes"][r.name] == [OKAY, [sum(f.mask for f in r.fields), OKAY]]
        elif r.access is Access.WO:
            assert got["writes"][r.name] == [OKAY, [0, OKAY]]
    assert got["strobes"] == [OKAY, [register("CONTROL").reset, OKAY]]
    # ENABLE = 0 holds x: no beat taken, no sequence started, X_OPEN low.
    gate = got["gate"]
    assert gate["accepted"] == 0 and gate["seq_started"] == [0, OKAY]
    assert gate["status"][0] & _mask("STATUS.X_OPEN") == 0

    # The run: bit-exact against the reference.
    expected, saturations, final = _expected_y(model, sequences, output)
    y = got["y"]
    np.testing.assert_array_equal(np.asarray(y["data"]), expected)
    packets = np.cumsum(interface.y_beats(lengths)) - 1
    assert np.flatnonzero(y["last"]).tolist() == packets.tolist()
    assert saturations.total > 0  # the "tight" formats saturate: the clear below matters
    after = {name: value for name, (value, resp) in got["after_run"].items()}
    assert all(resp == OKAY for _, resp in got["after_run"].values())
    for kind in SATURATION_KINDS:  # (SAT_ATTENTION too: 0, no attention pooling here)
        assert after[f"SAT_{kind.upper()}"] == getattr(saturations, kind), kind
    assert after["SEQ_STARTED"] == after["SEQ_DONE"] == len(lengths)
    status = after["STATUS"]
    assert status & _mask("STATUS.DONE") and status & _mask("STATUS.X_OPEN")
    assert not status & (_mask("STATUS.BUSY") | _mask("STATUS.OVERFLOW"))
    # LAST_CYCLES: the last sequence's first x handshake to its last y handshake.
    first_x = len(got["x_cycles"]) - lengths[-1] * interface.x_beats_per_step
    assert after["LAST_CYCLES"] == y["cycles"][-1] - got["x_cycles"][first_x]
    span = y["cycles"][-1] - got["x_cycles"][0]
    assert after["BUSY_CYCLES_HI"] == 0
    if len(lengths) == 1:  # busy from the cycle after the first x beat to the last y beat
        assert after["BUSY_CYCLES_LO"] == after["LAST_CYCLES"]
    else:
        assert after["LAST_CYCLES"] < after["BUSY_CYCLES_LO"] <= span
    for name, value in regmap.constants.items():
        assert after[name] == value, name
    # irq follows DONE once enabled; CLEAR_DONE acknowledges it.
    irq = got["irq"]
    assert (irq["before"], irq["enabled"], irq["acknowledged"]) == (0, 1, 0)
    assert irq["status"][0] & _mask("STATUS.DONE") == 0
    # CLEAR_STATUS: counters and sticky bits back to 0; LAST_CYCLES stays (core `cycles`).
    cleared = {name: value for name, (value, resp) in got["after_clear"].items()}
    for name in (*(f"SAT_{k.upper()}" for k in SATURATION_KINDS), "SEQ_STARTED", "SEQ_DONE"):
        assert cleared[name] == 0, name
    assert cleared["BUSY_CYCLES_LO"] == cleared["BUSY_CYCLES_HI"] == 0
    assert cleared["STATUS"] == resets["STATUS"]
    assert cleared["LAST_CYCLES"] == after["LAST_CYCLES"]
    # CONTROL.CARRY_STATE and READ_STATE reach the core: one more sequence starts from the
    # last one's final state, and h_n/c_n come out on m_axis_state.
    y2, _, (h_n, c_n) = _expected_y(model, [carried], output, *final)
    np.testing.assert_array_equal(np.asarray(got["state_run"]["y"]), y2)
    h, c = interface.unpack_state(got["state_run"]["state"])
    np.testing.assert_array_equal(h, h_n[:, 0].reshape(-1))
    np.testing.assert_array_equal(c, c_n[:, 0].reshape(-1))
