"""A small real design for checking the simulation flow: an AXI-stream FIFO in Amaranth.

:class:`AxiStreamFifo` has the same stream port naming as the LSTM top (``x__tdata``,
``x__tvalid``, ``x__tready``, ``x__tlast`` in, ``y__...`` out), so the drivers, harness and
runner that verify the LSTM are exercised end to end on it (tests, benchmarks, and
:func:`check_simulator` to confirm an installation works).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from ..hw.engine import axi_stream_signature

__all__ = ["AxiStreamFifo", "check_simulator", "fifo_verilog"]


class AxiStreamFifo(wiring.Component):
    """A synchronous FIFO between AXI4-Stream ports ``x`` (in) and ``y`` (out).

    Contract: every beat accepted on ``x`` (``tdata``, ``tlast``) leaves on ``y`` unchanged and
    in order. ``x__tready`` is high while the FIFO has room and, when ``accept_period`` > 1,
    only in one cycle out of ``accept_period`` (a deliberately slow consumer, so drivers see
    ready-low stretches). Latency: one cycle from ``x`` to ``y`` (buffered FIFO read port);
    throughput one beat per cycle (``accept_period`` = 1).
    """

    def __init__(self, width: int, depth: int = 4, accept_period: int = 1):
        if width < 2 or depth < 1 or accept_period < 1:
            raise ValueError("width >= 2, depth >= 1 and accept_period >= 1 are required")
        self._width = width
        self._depth = depth
        self._accept_period = accept_period
        super().__init__(
            {
                "x": In(axi_stream_signature(signed(width))),
                "y": Out(axi_stream_signature(signed(width))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        beat = data.StructLayout({"tdata": signed(self._width), "tlast": 1})
        m.submodules.buffer = buffer = fifo.SyncFIFOBuffered(width=beat.size, depth=self._depth)
        w_beat = data.View(beat, buffer.w_data)
        r_beat = data.View(beat, buffer.r_data)
        accept = Signal(init=1)
        if self._accept_period > 1:
            phase = Signal(range(self._accept_period))
            m.d.sync += phase.eq(phase + 1)
            with m.If(phase == self._accept_period - 1):
                m.d.sync += phase.eq(0)
            m.d.comb += accept.eq(phase == 0)
        m.d.comb += [
            w_beat.tdata.eq(self.x.tdata),
            w_beat.tlast.eq(self.x.tlast),
            self.x.tready.eq(buffer.w_rdy & accept),
            buffer.w_en.eq(self.x.tvalid & accept),
            self.y.tdata.eq(r_beat.tdata),
            self.y.tlast.eq(r_beat.tlast),
            self.y.tvalid.eq(buffer.r_rdy),
            buffer.r_en.eq(self.y.tready),
        ]
        return m


def fifo_verilog(width: int, depth: int = 4, accept_period: int = 1, name: str = "fifo_top"):
    """Verilog text of an :class:`AxiStreamFifo` with top module ``name``."""
    from amaranth.back import verilog

    component = AxiStreamFifo(width, depth, accept_period)
    return verilog.convert(component, name=name, emit_src=False)


def check_simulator(
    simulator: str = "verilator", cache_dir: Path | str | None = None, seed: int = 0
) -> int:
    """Build the FIFO, stream random packets through it with stalls; return beats checked.

    Raises :class:`~lstm_fpga.sim.runner.SimulatorNotFoundError` or
    :class:`~lstm_fpga.sim.runner.SimulationError` when the simulator does not work.
    """
    from .compilation import compile_simulation
    from .stimulus import Pacing, Plan, SinkSpec, SourceSpec, run_plan

    width = 12
    sim_build = compile_simulation(fifo_verilog(width), "fifo_top", simulator, cache_dir=cache_dir)
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 20, size=8)
    beats = int(lengths.sum())
    values = rng.integers(-(1 << (width - 1)), 1 << (width - 1), size=beats)
    last = np.zeros(beats, dtype=bool)
    last[np.cumsum(lengths) - 1] = True
    pacing = Pacing(probability=0.3, max_cycles=5, seed=seed)
    plan = Plan.single(
        sources=(SourceSpec("x", values, last, pacing),),
        sinks=(SinkSpec("y", packets=len(lengths), pacing=pacing),),
    )
    result = run_plan(sim_build, plan)
    captured = result.phases[0].sink("y")
    if not (np.array_equal(captured.data, values) and np.array_equal(captured.last, last)):
        raise AssertionError(f"the FIFO on {simulator} did not return its input unchanged")
    return beats
