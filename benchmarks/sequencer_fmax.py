"""Fmax of the sequencer alone (schedule, job walker, element memories) on ECP5-85F speed 6.

The ``Sequencer`` of a plan is wrapped with a register on every input and output port (so
that only paths inside it count) and placed and routed out of context by the project's flow
(``lstm_fpga.hw.implement``: Yosys ``synth_ecp5``, nextpnr-ecp5 ``--85k``, CABGA381,
speed 6, seed 1). Prints Fmax, the critical path's cells with their delays, and the blocks
it crosses. The default shape is the demo model ``LSTM(5, 16) + Linear(16, 1)`` on 16 lanes
(output "last"); ``--shape I H P`` takes a one-layer model without a head instead.

    .venv/bin/python benchmarks/sequencer_fmax.py OUT_DIR            # about 4 minutes
    .venv/bin/python benchmarks/sequencer_fmax.py OUT_DIR --shape 64 64 16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Const, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring

from lstm_fpga.hw import HardwareConfig, write_build
from lstm_fpga.hw.devices import device
from lstm_fpga.hw.implement import implement
from lstm_fpga.hw.pipeline import target
from lstm_fpga.hw.sequencer import Sequencer
from lstm_fpga.testing import random_model

TOP = "sequencer_top"


class RegisteredPorts(Elaboratable):
    """``inner`` (a component) with every port behind a register; ``ports`` for Verilog."""

    def __init__(self, inner: wiring.Component):
        self._inner = inner
        self._pairs = []
        self.ports = []
        for path, member, value in inner.signature.flatten(inner):
            if isinstance(value, Const):
                continue  # e.g. the ready of an always-ready stream
            value = Value.cast(value)
            outer = Signal(len(value), name="_".join(str(p) for p in path))
            self.ports.append(outer)
            self._pairs.append((member.flow, outer, value))

    def elaborate(self, platform):
        m = Module()
        m.submodules.seq = self._inner
        for flow, outer, inner in self._pairs:
            if flow == wiring.In:
                m.d.sync += inner.eq(outer)
            else:
                registered = Signal(len(inner))
                m.d.sync += registered.eq(inner)
                m.d.comb += outer.eq(registered)
        return m


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="directory for the Verilog, netlist and logs")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("I", "H", "P"))
    parser.add_argument("--freq", type=float, default=125.0, help="target clock in MHz")
    args = parser.parse_args(argv)
    if args.shape:
        (I, H, P), head, output = args.shape, None, "all"
    else:
        (I, H, P), head, output = (5, 16, 16), 1, "last"
    model = random_model(I, H, head=head, formats="q16_even")
    with tempfile.TemporaryDirectory(prefix="lstm-seq-") as tmp:
        build = write_build(model, HardwareConfig(lanes=P, output=output), Path(tmp))
    plan = build.interface.plan
    top = RegisteredPorts(Sequencer(plan))
    args.out.mkdir(parents=True, exist_ok=True)
    source = args.out / f"{TOP}.v"
    # (with the ECP5 target, as the builds: its kept replica registers stay apart)
    platform = target("ecp5")
    text = verilog.convert(top, name=TOP, ports=top.ports, emit_src=False, platform=platform)
    source.write_text(f"{text}\n{platform.verilog_modules()}")
    result = implement(
        source, plan, device("ecp5-85"), top=TOP, freq_mhz=args.freq, workdir=args.out
    )
    pnr = result.pnr
    print(f"I={I} H={H} P={P}: sequencer alone {pnr.fmax_mhz:.1f} MHz ({pnr.path_ns:.2f} ns)")
    for step in pnr.critical_path:
        if step.delay_ns > 0:
            print(f"  {step.kind:8} {step.delay_ns:5.2f} ns  {step.cell[:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
