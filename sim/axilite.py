"""cocotb test module for ``lstm_axi``: one scenario through its AXI4-Lite slave and streams.

The host (:func:`run_axilite_scenario`) writes a spec (the register table with its reset
values, unmapped addresses, the ``x`` beats of a run and the ``y`` beats expected) into the run
directory; :func:`axilite_scenario` drives it with cocotbext-axi's ``AxiLiteMaster`` and this
package's stream drivers and records what it saw in ``axilite_result.json``; the host checks.

Scenario: by hand, a read held by ``rready`` low and writes with W before AW and AW before
W, held by ``bready`` low; then with the master: read every register; read and write unmapped
addresses; write every read-only register (``SLVERR``, unchanged); write/read back the
writable ones (strobes too); hold ``x`` with ``CONTROL.ENABLE = 0``, then open it and run the
sequences; read every register when the core is idle; set ``IRQ_ENABLE`` and acknowledge
with ``CLEAR_DONE``; ``CLEAR_STATUS``; read every register again; run one more sequence with
``CARRY_STATE`` and ``READ_STATE`` set.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from .stimulus import Pacing, StreamFields
from .tb import TB

__all__ = ["AXIS_FIELDS", "SPEC_ENV", "axilite_scenario", "run_axilite_scenario"]

#: Environment variable naming the spec file.
SPEC_ENV = "LSTM_FPGA_AXILITE_SPEC"
RESULT_FILE = "axilite_result.json"
#: ``lstm_axi``'s stream ports: ``s_axis_x`` + ``_tdata`` ...
AXIS_FIELDS = StreamFields(separator="_")
_WORD = 4


def run_axilite_scenario(sim_build, spec: dict, run_dir, seed: int = 0) -> dict:
    """Run the scenario of ``spec`` on a compiled ``lstm_axi`` and return its record."""
    from .runner import run

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = (run_dir / "axilite_spec.json").resolve()
    spec_path.write_text(json.dumps(spec))
    run(sim_build, __name__, run_dir, env={SPEC_ENV: str(spec_path)}, seed=seed)
    return json.loads((run_dir / RESULT_FILE).read_text())


class _Bus:
    """Word reads and writes recording ``(data, resp)``."""

    def __init__(self, dut):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster

        logging.getLogger("cocotb.lstm_axi").setLevel(logging.WARNING)
        self.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
        self.master.write_if.log.setLevel(logging.WARNING)
        self.master.read_if.log.setLevel(logging.WARNING)

    async def read(self, address: int) -> list[int]:
        got = await self.master.read(address, _WORD)
        return [int.from_bytes(got.data, "little"), int(got.resp)]

    async def write(self, address: int, value: int, size: int = _WORD) -> int:
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        return int((await self.master.write(address, data)).resp)

    async def read_all(self, registers) -> dict:
        return {r["name"]: await self.read(r["offset"]) for r in registers}


class _Pins:
    """The slave's channels driven by hand, one cycle at a time (before the master exists):
    the orders and stalls a master may choose."""

    def __init__(self, dut):
        self.dut = dut
        self.edge = RisingEdge(dut.clk)

    def set(self, **values) -> None:
        for name, value in values.items():
            getattr(self.dut, f"s_axi_{name}").value = value

    async def sample(self, *names) -> dict:
        """Outputs as the next rising edge sees them; returns after that edge."""
        await ReadOnly()
        values = {n: int(getattr(self.dut, f"s_axi_{n}").value) for n in names}
        await self.edge
        return values

    async def read(self, address: int, stall: int = 3) -> dict:
        """A read whose R channel is held ``stall`` cycles by ``rready`` low."""
        self.set(araddr=address, arvalid=1)
        offered = await self.sample("arready")
        self.set(arvalid=0)
        waiting = [await self.sample("rvalid", "rdata", "rresp", "arready") for _ in range(stall)]
        self.set(rready=1)
        taken = await self.sample("rvalid", "rdata", "rresp")
        self.set(rready=0)
        after = await self.sample("rvalid", "arready")
        return {"offered": offered, "waiting": waiting, "taken": taken, "after": after}

    async def write(self, address: int, value: int, first: str, gap: int = 3) -> dict:
        """A write whose ``first`` channel (``aw`` or ``w``) comes ``gap`` cycles before the
        other, and whose B channel is held 3 cycles by ``bready`` low."""

        def offer(channel, on):
            if channel == "aw":
                self.set(awaddr=address, awvalid=on)
            else:
                self.set(wdata=value, wstrb=(1 << _WORD) - 1, wvalid=on)

        second = "w" if first == "aw" else "aw"
        offer(first, 1)
        first_ready = await self.sample("awready", "wready")
        offer(first, 0)
        held = [await self.sample("awready", "wready", "bvalid") for _ in range(gap)]
        offer(second, 1)
        second_ready = await self.sample("awready", "wready")
        offer(second, 0)
        waiting = [await self.sample("bvalid", "bresp", "awready", "wready") for _ in range(4)]
        self.set(bready=1)
        taken = await self.sample("bvalid", "bresp")
        self.set(bready=0)
        after = await self.sample("bvalid", "awready", "wready")
        return {
            "first_ready": first_ready,
            "held": held,
            "second_ready": second_ready,
            "waiting": waiting,
            "taken": taken,
            "after": after,
        }


def _offset(spec, name: str) -> int:
    return next(r["offset"] for r in spec["registers"] if r["name"] == name)


@cocotb.test()
async def axilite_scenario(dut):
    spec_path = Path(os.environ[SPEC_ENV])
    spec = json.loads(spec_path.read_text())
    registers = spec["registers"]
    fields = spec["fields"]
    record: dict = {}
    tb = TB(dut)
    sources = [s["port"] for s in spec["sources"]]
    sinks = [s["port"] for s in spec["sinks"]]
    tb.idle_streams(
        tuple((p, AXIS_FIELDS) for p in sources), tuple((p, AXIS_FIELDS) for p in sinks)
    )
    for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
        getattr(dut, f"s_axi_{name}").value = 0
    await tb.start()
    control, command, status = (_offset(spec, n) for n in ("CONTROL", "COMMAND", "STATUS"))
    pins = _Pins(dut)
    record["channels"] = {
        "read_reset": await pins.read(control),
        "w_first": await pins.write(control, spec["control_value"], "w"),
        "read_written": await pins.read(control),
        "aw_first": await pins.write(control, spec["control_reset"], "aw"),
        "read_restored": await pins.read(control),
    }
    bus = _Bus(dut)

    record["reset"] = await bus.read_all(registers)
    record["unmapped"] = [
        {"address": a, "read": await bus.read(a), "write": await bus.write(a, 0xFFFFFFFF)}
        for a in spec["unmapped"]
    ]
    record["read_only_writes"] = {}
    for r in registers:
        if r["access"] == "RO":
            resp = await bus.write(r["offset"], ~r["reset"])
            record["read_only_writes"][r["name"]] = [resp, await bus.read(r["offset"])]
    record["writes"] = {}
    for r in registers:
        if r["access"] != "RO":
            resp = await bus.write(r["offset"], 0xFFFFFFFF)
            record["writes"][r["name"]] = [resp, await bus.read(r["offset"])]
    # Byte strobes: bytes 1-3 only leave CONTROL's fields (byte 0) alone.
    await bus.write(control, spec["control_reset"])
    strobed = await bus.write(control + 1, 0xFFFFFF, size=_WORD - 1)
    record["strobes"] = [strobed, await bus.read(control)]
    await bus.write(control, spec["control_reset"])

    # x held closed, then opened: the run.
    await bus.write(control, 0)
    source = tb.source(sources[0], AXIS_FIELDS, Pacing(**spec["input_pacing"]))
    sink = tb.sink(sinks[0], AXIS_FIELDS, Pacing(**spec["output_pacing"]), beats=spec["y_beats"])
    source.send(spec["x"]["data"], spec["x"]["last"])
    await tb.wait_cycles(spec["gate_cycles"])
    record["gate"] = {
        "accepted": len(source.cycles),
        "status": await bus.read(status),
        "seq_started": await bus.read(_offset(spec, "SEQ_STARTED")),
    }
    await bus.write(control, fields["CONTROL.ENABLE"])
    await tb.wait_done(spec["timeout_cycles"])
    record["x_cycles"] = source.cycles
    record["y"] = {"data": sink.data, "last": sink.lasts, "cycles": sink.cycles}
    for _ in range(spec["timeout_cycles"] // 4):
        value, _resp = await bus.read(status)
        if not value & fields["STATUS.BUSY"]:
            break
    record["after_run"] = await bus.read_all(registers)

    # irq: STATUS.DONE while IRQ_ENABLE; CLEAR_DONE acknowledges.
    irq = {"before": int(dut.irq.value)}
    await bus.write(control, fields["CONTROL.ENABLE"] | fields["CONTROL.IRQ_ENABLE"])
    await tb.wait_cycles(2)
    irq["enabled"] = int(dut.irq.value)
    await bus.write(command, fields["COMMAND.CLEAR_DONE"])
    await tb.wait_cycles(2)
    irq["acknowledged"] = int(dut.irq.value)
    irq["status"] = await bus.read(status)
    record["irq"] = irq
    await bus.write(control, spec["control_reset"])

    await bus.write(command, fields["COMMAND.CLEAR_STATUS"])
    record["after_clear"] = await bus.read_all(registers)
    tb.check_empty()
    tb.stop_drivers()

    # The mode bits reach the core: a sequence from the last final state, h_n/c_n read out.
    run = spec["state_run"]
    await bus.write(control, run["control"])
    source = tb.source(sources[0], AXIS_FIELDS)
    y_sink = tb.sink(sinks[0], AXIS_FIELDS, beats=run["y_beats"])
    state_sink = tb.sink(sinks[1], AXIS_FIELDS, beats=run["state_beats"], signed=False)
    source.send(run["x"]["data"], run["x"]["last"])
    await tb.wait_done(spec["timeout_cycles"])
    await tb.wait_cycles(spec["gate_cycles"])
    tb.check_empty()
    record["state_run"] = {"y": y_sink.data, "state": state_sink.data}
    (spec_path.parent / RESULT_FILE).write_text(json.dumps(record))
