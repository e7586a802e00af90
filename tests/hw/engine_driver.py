"""An Amaranth-simulator driver for :class:`LstmEngine`.

:func:`run_engine` plays a list of operations (sequences with their control bits, initial
state loads, weight reloads) through the engine's streams with random idle and
back-pressure cycles, and :func:`expected_results` computes what the integer reference
says the same operations produce; the tests compare the two with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from lstm_fpga.hw import EnginePlan, HardwareConfig, TopInterface
from lstm_fpga.hw.engine import LstmEngine
from lstm_fpga.hw.interface import SATURATION_KINDS
from lstm_fpga.hw.reload import weight_load_words
from lstm_fpga.sw.ir import LstmModel
from lstm_fpga.sw.reference import SaturationCounts, run_reference
from tests.hw.conftest import send_beats

__all__ = [
    "InitLoad",
    "Sequence",
    "WeightLoad",
    "expected_results",
    "run_engine",
    "x_payloads",
]


@dataclass(frozen=True, eq=False)
class Sequence:
    """A sequence ``x`` (``(T, I)`` integers) and the control bits sampled with its first
    beat."""

    x: np.ndarray
    carry: bool = False
    read_state: bool = False


@dataclass(frozen=True, eq=False)
class InitLoad:
    """Load ``h0`` and ``c0`` (``(L*D, H)`` integers; a GRU: ``c0=None``) through the
    ``init`` stream."""

    h0: np.ndarray
    c0: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class WeightLoad:
    """Reload every weight and bias from ``model`` through ``weight_write``."""

    model: LstmModel


@dataclass
class Expected:
    y: list = field(default_factory=list)  # one array per sequence (empty if dropped)
    states: list = field(default_factory=list)  # (h_n, c_n) per sequence with read_state
    saturations: SaturationCounts = field(default_factory=SaturationCounts)
    overflows: int = 0


def expected_results(model: LstmModel, config: HardwareConfig, operations) -> Expected:
    """What the integer reference says ``operations`` produce on ``model``."""
    L, D, H = model.num_layers, model.num_directions, model.hidden_size
    gru = model.cell_type.value == "gru"
    h0 = np.zeros((L * D, H), dtype=np.int64)
    c0 = None if gru else np.zeros((L * D, H), dtype=np.int64)
    final = None
    current = model
    result = Expected()
    head_on = config.output
    for op in operations:
        if isinstance(op, InitLoad):
            h0, c0 = np.asarray(op.h0), None if gru else np.asarray(op.c0)
            continue
        if isinstance(op, WeightLoad):
            current = op.model
            continue
        T = len(op.x)
        if model.bidirectional and T > config.max_seq_len:
            result.overflows += 1
            continue
        start = final if (op.carry and final is not None) else (h0, c0)
        c_start = None if gru else start[1][:, None, :]
        ref = run_reference(
            current, op.x[:, None, :], start[0][:, None, :], c_start, head_on=head_on
        )
        final = (ref.h_n[:, 0, :], None if gru else ref.c_n[:, 0, :])
        if model.head is not None:
            y = ref.head[:, 0, :] if head_on == "all" else ref.head[0]
        else:
            y = ref.output[:, 0, :] if head_on == "all" else ref.output[T - 1, 0, :]
        result.y.append(np.asarray(y).reshape(-1))
        if op.read_state:
            result.states.append(final)
        result.saturations = result.saturations + ref.saturations
    return result


def x_payloads(interface: TopInterface, x) -> list[dict]:
    """The engine's ``x`` payloads of one sequence ``(T, I)``: the elements of each beat as
    the interface lays them out (one element, or a list of ``input_elements``)."""
    elements = interface.x_beat_elements(x)
    last = interface.x_last([len(x)])
    return [
        {"data": int(beat[0]) if len(beat) == 1 else [int(v) for v in beat], "last": int(end)}
        for beat, end in zip(elements, last, strict=True)
    ]


def run_engine(
    model: LstmModel,
    config: HardwareConfig,
    operations,
    *,
    seed: int = 0,
    idle: float = 0.3,
    stall: float = 0.3,
    timeout_cycles: int | None = None,
    engine: LstmEngine | None = None,
):
    """Play ``operations`` through an engine for ``model``; returns a dict with ``y``
    (one array per completed sequence, split at ``last``), ``states`` (``(h_n, c_n)`` per
    state packet), ``saturations`` (dict), ``overflow``, ``busy`` and ``cycles`` (sampled a
    few cycles after the end); ``x_cycles``/``y_cycles``: the cycle of every ``x``/``y``
    handshake; ``load_cycles``: ``[cycle, "init" or "w"]`` of every load beat."""
    dut = engine if engine is not None else LstmEngine(EnginePlan(model, config))
    plan = dut.plan
    interface = TopInterface(plan)
    rng = np.random.default_rng(seed)
    LD, H = plan.state_words // model.hidden_size, model.hidden_size
    result = {"y": [], "states": [], "x_cycles": [], "y_cycles": [], "load_cycles": []}
    clock = {"now": 0}  # cycles counted by the sink, which wakes every cycle

    def dropped(op):
        return model.bidirectional and len(op.x) > config.max_seq_len

    sequences = [op for op in operations if isinstance(op, Sequence)]
    expected_sequences = sum(not dropped(op) for op in sequences)
    expected_states = sum(op.read_state and not dropped(op) for op in sequences)
    finished = {"source": False}

    def record_x_cycle():
        result["x_cycles"].append(clock["now"])

    def recorder(name):
        return lambda: result["load_cycles"].append([clock["now"], name])

    async def offer(ctx, port, beats):
        on_beat = record_x_cycle if port is dut.x else recorder("init" if port is dut.init else "w")
        await send_beats(ctx, port, beats, rng, idle, on_beat=on_beat)

    async def source(ctx):
        for op in operations:
            if isinstance(op, Sequence):
                ctx.set(dut.carry_state, int(op.carry))
                ctx.set(dut.read_state, int(op.read_state))
                await offer(ctx, dut.x, x_payloads(interface, op.x))
            elif isinstance(op, InitLoad):
                values = [int(v) for v in interface.init_values(op.h0, op.c0)]
                beats = [
                    {"data": v, "last": int(k == len(values) - 1)} for k, v in enumerate(values)
                ]
                await offer(ctx, dut.init, beats)
            elif isinstance(op, WeightLoad):
                words = weight_load_words(plan, op.model)
                beats = [
                    {"word": w.payload(plan), "last": int(k == len(words) - 1)}
                    for k, w in enumerate(words)
                ]
                await offer(ctx, dut.weight_write, beats)
        finished["source"] = True

    async def y_sink(ctx):
        current = []
        while True:
            clock["now"] += 1
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.y.ready, ready)
            ctx.set(dut.state.ready, not (stall and rng.random() < stall))
            _, _, valid, value, last, s_valid, s_ready, s_h, s_c, s_last = await ctx.tick().sample(
                dut.y.valid,
                dut.y.payload.data,
                dut.y.payload.last,
                dut.state.valid,
                dut.state.ready,
                dut.state.payload.h,
                dut.state.payload.h if plan.is_gru else dut.state.payload.c,
                dut.state.payload.last,
            )
            if ready and valid:
                current.append(value)
                result["y_cycles"].append(clock["now"])
                if last:
                    result["y"].append(np.array(current))
                    current = []
            if s_valid and s_ready:
                result.setdefault("state_beats", []).append((s_h, s_c, s_last))
            done = len(result["y"]) >= expected_sequences
            states_done = len(result.get("state_beats", [])) >= expected_states * LD * H
            if finished["source"] and done and states_done:
                break
        ctx.set(dut.y.ready, 0)
        ctx.set(dut.state.ready, 0)
        await ctx.tick().repeat(4)
        result["busy"] = ctx.get(dut.busy)
        result["overflow"] = ctx.get(dut.overflow)
        result["cycles"] = ctx.get(dut.cycles)
        result["saturations"] = {
            kind: ctx.get(getattr(dut.saturations, kind)) for kind in SATURATION_KINDS
        }

    async def watchdog(ctx):
        limit = timeout_cycles or 2_000_000
        await ctx.delay(limit * 1e-8)
        raise AssertionError(f"the engine did not finish within {limit} cycles: {result}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source)
    sim.add_testbench(y_sink)
    sim.add_testbench(watchdog, background=True)
    sim.run()
    beats = result.pop("state_beats", [])
    for k in range(0, len(beats), LD * H):
        block = beats[k : k + LD * H]
        h = np.array([b[0] for b in block]).reshape(LD, H)
        c = None if plan.is_gru else np.array([b[1] for b in block]).reshape(LD, H)
        assert [b[2] for b in block] == [0] * (LD * H - 1) + [1], "state tlast misplaced"
        result["states"].append((h, c))
    return result
