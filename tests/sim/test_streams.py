"""The testbench machinery (runner, plans, drivers, TB) on small real Amaranth designs."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from lstm_fpga.hw.engine import axi_stream_signature
from lstm_fpga.sim.compilation import compile_simulation
from lstm_fpga.sim.runner import SimulationError
from lstm_fpga.sim.selftest import check_simulator, fifo_verilog
from lstm_fpga.sim.stimulus import NO_PAUSES, Pacing, Phase, Plan, SinkSpec, SourceSpec, run_plan

SIMULATORS = ("verilator", "icarus")
WIDTH = 12


def _packets(rng, count, max_length):
    lengths = rng.integers(1, max_length + 1, size=count)
    data = rng.integers(-(1 << (WIDTH - 1)), 1 << (WIDTH - 1), size=int(lengths.sum()))
    last = np.zeros(data.size, dtype=bool)
    last[np.cumsum(lengths) - 1] = True
    return data, last


@pytest.fixture(scope="module")
def fifo_builds(sim_cache):
    """FIFO builds per (simulator, accept_period), made on first use."""
    made = {}

    def get(simulator, accept_period=1, depth=4, waves=False):
        key = (simulator, accept_period, depth, waves)
        if key not in made:
            verilog = fifo_verilog(WIDTH, depth, accept_period)
            made[key] = compile_simulation(
                verilog, "fifo_top", simulator, waves=waves, cache_dir=sim_cache
            )
        return made[key]

    return get


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("idle", [False, True], ids=["no_idle", "idle"])
@pytest.mark.parametrize("backpressure", [False, True], ids=["no_bp", "bp"])
@pytest.mark.parametrize("accept_period", [1, 3])
def test_fifo_passes_every_beat_once_in_order(
    fifo_builds, simulator, idle, backpressure, accept_period
):
    seed = 10 * accept_period + 2 * idle + backpressure
    rng = np.random.default_rng(seed)
    data, last = _packets(rng, 12, 9)
    source_pacing = Pacing(0.4, 6, seed) if idle else NO_PAUSES
    sink_pacing = Pacing(0.4, 7, seed + 100) if backpressure else NO_PAUSES
    plan = Plan.single(
        sources=(SourceSpec("x", data, last, source_pacing),),
        sinks=(SinkSpec("y", packets=int(last.sum()), pacing=sink_pacing),),
    )
    result = run_plan(fifo_builds(simulator, accept_period), plan)
    phase = result.phases[0]
    y = phase.sink("y")
    np.testing.assert_array_equal(y.data, data)
    np.testing.assert_array_equal(y.last, last)
    assert y.extra == 0
    sent = phase.source("x").cycle
    assert sent.size == data.size
    # A beat leaves the FIFO at least one cycle after it entered, and handshakes are ordered.
    assert np.all(y.cycle > sent)
    assert np.all(np.diff(sent) >= 1) and np.all(np.diff(y.cycle) >= 1)
    if accept_period > 1:
        assert np.all(np.diff(sent) >= accept_period)
    if not (idle or backpressure or accept_period > 1):
        # Full throughput: one beat per cycle in and out.
        assert np.all(np.diff(sent) == 1) and np.all(np.diff(y.cycle) == 1)
    # Python woke per beat, not per clock.
    assert result.wakes < 8 * data.size + 64


def test_simulators_agree_cycle_for_cycle(fifo_builds):
    rng = np.random.default_rng(7)
    data, last = _packets(rng, 6, 10)
    plan = Plan.single(
        sources=(SourceSpec("x", data, last, Pacing(0.3, 5, 1)),),
        sinks=(SinkSpec("y", packets=6, pacing=Pacing(0.3, 5, 2)),),
    )
    runs = [run_plan(fifo_builds(sim, accept_period=3), plan) for sim in SIMULATORS]
    a, b = (run.phases[0] for run in runs)
    np.testing.assert_array_equal(a.source("x").cycle, b.source("x").cycle)
    np.testing.assert_array_equal(a.sink("y").cycle, b.sink("y").cycle)
    assert runs[0].total_cycles == runs[1].total_cycles


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_extra_beats_after_the_expected_packets_fail(fifo_builds, simulator):
    data, last = _packets(np.random.default_rng(3), 3, 4)
    plan = Plan.single(sources=(SourceSpec("x", data, last),), sinks=(SinkSpec("y", packets=2),))
    with pytest.raises(SimulationError, match=r"sink y: \d+ beats beyond the expected 2"):
        run_plan(fifo_builds(simulator), plan)


def test_timeout_reports_progress(fifo_builds):
    data, last = _packets(np.random.default_rng(4), 1, 5)
    plan = Plan.single(
        sources=(SourceSpec("x", data, last),),
        sinks=(SinkSpec("y", packets=2),),
        timeout_cycles=300,
    )
    with pytest.raises(SimulationError, match=r"did not finish.*sink y: \d+ beats / 1 packets"):
        run_plan(fifo_builds("verilator"), plan)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_reset_mid_stream_then_clean_run(fifo_builds, simulator):
    rng = np.random.default_rng(5)
    first, first_last = _packets(rng, 4, 8)
    second, second_last = _packets(rng, 3, 6)
    plan = Plan(
        (
            Phase(
                sources=(SourceSpec("x", first, first_last),),
                sinks=(SinkSpec("y", pacing=Pacing(0.5, 4, 9)),),
                abort_after_cycles=9,
            ),
            Phase(
                sources=(SourceSpec("x", second, second_last),),
                sinks=(SinkSpec("y", packets=3),),
            ),
        )
    )
    result = run_plan(fifo_builds(simulator), plan)
    aborted, clean = result.phases
    assert aborted.aborted and aborted.source("x").cycle.size < first.size
    np.testing.assert_array_equal(aborted.sink("y").data, first[: aborted.sink("y").data.size])
    # Nothing of the aborted stream survives the reset.
    np.testing.assert_array_equal(clean.sink("y").data, second)
    np.testing.assert_array_equal(clean.sink("y").last, second_last)
    assert clean.start_cycle > aborted.end_cycle - 1


class _ImpatientStage(wiring.Component):
    """A buggy register stage: it offers each beat for one cycle only, ready or not (an
    AXI4-Stream violation the sink's backpressure check must catch)."""

    def __init__(self):
        super().__init__(
            {
                "x": In(axi_stream_signature(signed(WIDTH))),
                "y": Out(axi_stream_signature(signed(WIDTH))),
            }
        )

    def elaborate(self, platform):
        m = Module()
        valid = Signal()
        m.d.comb += [self.x.tready.eq(1), self.y.tvalid.eq(valid)]
        m.d.sync += [
            valid.eq(self.x.tvalid),
            self.y.tdata.eq(self.x.tdata),
            self.y.tlast.eq(self.x.tlast),
        ]
        return m


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_withdrawn_beat_is_a_protocol_error(sim_cache, simulator):
    from amaranth.back import verilog

    text = verilog.convert(_ImpatientStage(), name="impatient", emit_src=False)
    sim_build = compile_simulation(text, "impatient", simulator, cache_dir=sim_cache)
    data = np.arange(40) - 20
    plan = Plan.single(
        sources=(SourceSpec("x", data),),
        sinks=(SinkSpec("y", beats=40, pacing=Pacing(1.0, 3, 0)),),
        timeout_cycles=2000,
    )
    with pytest.raises(SimulationError, match="withdrew or changed a beat while tready was low"):
        run_plan(sim_build, plan)


def test_signed_beats_round_trip_at_the_format_limits(fifo_builds):
    data = np.array([-(1 << (WIDTH - 1)), -1, 0, 1, (1 << (WIDTH - 1)) - 1])
    plan = Plan.single(sources=(SourceSpec("x", data),), sinks=(SinkSpec("y", beats=5),))
    y = run_plan(fifo_builds("icarus"), plan).phases[0].sink("y")
    np.testing.assert_array_equal(y.data, data)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_waveforms_on_request(fifo_builds, simulator, tmp_path, capsys):
    data, last = _packets(np.random.default_rng(6), 2, 5)
    plan = Plan.single(sources=(SourceSpec("x", data, last),), sinks=(SinkSpec("y", packets=2),))
    sim_build = fifo_builds(simulator, waves=True)
    result = run_plan(sim_build, plan, tmp_path / "run", waves=True)
    assert result.waves == tmp_path / "run" / f"waves.{sim_build.wave_format}"
    assert result.waves.stat().st_size > 0
    if sim_build.wave_format == "vcd":
        assert "$enddefinitions" in result.waves.read_text()
    assert str(result.waves) in capsys.readouterr().err


def test_waves_need_a_waves_build(fifo_builds, tmp_path):
    plan = Plan.single(idle_cycles=4)
    with pytest.raises(ValueError, match="build"):
        run_plan(fifo_builds("verilator"), plan, tmp_path, waves=True)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_check_simulator(sim_cache, simulator):
    assert check_simulator(simulator, cache_dir=sim_cache) > 0


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_ports_wider_than_64_bits(sim_cache, simulator):
    width = 100
    sim_build = compile_simulation(
        fifo_verilog(width, name="wide_fifo"), "wide_fifo", simulator, cache_dir=sim_cache
    )
    top = 1 << (width - 1)
    data = np.array([-top, top - 1, -1, 0, 12345678901234567890123, -(3**60)], dtype=object)
    plan = Plan.single(sources=(SourceSpec("x", data),), sinks=(SinkSpec("y", beats=data.size),))
    y = run_plan(sim_build, plan).phases[0].sink("y")
    assert y.data.dtype == object
    assert [int(v) for v in y.data] == [int(v) for v in data]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_progress_counts_packets_of_marked_sinks_while_running(fifo_builds, simulator):
    rng = np.random.default_rng(5)
    counted, ignored = _packets(rng, 7, 5), _packets(rng, 4, 5)
    plan = Plan(
        tuple(
            Phase(
                (SourceSpec("x", data, last),),
                (SinkSpec("y", packets=int(last.sum()), progress=marked),),
            )
            for (data, last), marked in ((counted, True), (ignored, False), (counted, True))
        )
    )
    reports = []
    result = run_plan(fifo_builds(simulator), plan, progress=reports.append)
    assert reports[-1] == 2 * 7  # the unmarked sink's 4 packets are not counted
    assert reports == sorted(reports)
    assert [p.sink("y").packet_ends.size for p in result.phases] == [7, 4, 7]
    # Without a callback nothing is counted: the file is not even created.
    assert not (run_plan(fifo_builds(simulator), plan).run_dir / "progress").exists()
