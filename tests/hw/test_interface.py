"""The ``lstm_top`` contract object: one home for port names, layouts, packing and the bound."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from lstm_fpga.hw import EnginePlan, HardwareConfig, HardwareConfigError, TopInterface
from lstm_fpga.hw.cell import EXTRA_STAGES, GateCellPipeline
from lstm_fpga.hw.interface import CLOCK, RESET, SATURATION_KINDS, Direction, sign_extend
from lstm_fpga.hw.mvu import pass_latency
from lstm_fpga.hw.sequencer import Sequencer
from lstm_fpga.sim.stimulus import AXI_STREAM
from lstm_fpga.sw.reference import SaturationCounts
from lstm_fpga.testing import random_input, random_model, random_state

ROOT = Path(__file__).resolve().parents[2]
#: A flattened stream port of lstm_top (stream, separator, member) or Verilator's C++ name for one.
PORT_NAME = re.compile(r"\b(x|y|state|init|w)(__|___05F)t(data|valid|ready|last)\b")
#: The one module that names them, and the self-test FIFO, whose own ports (not lstm_top's)
#: follow the same AXI4-Stream naming.
OWNERS = {"hw/interface.py", "sim/selftest.py", "benchmarks/simulate.py"}


def _interface(model, **config) -> TopInterface:
    return TopInterface(EnginePlan(model, HardwareConfig(**config)))


def test_no_port_name_of_lstm_top_outside_the_interface():
    offenders = []
    for path in sorted(ROOT.rglob("*.py")) + sorted(ROOT.rglob("*.cpp")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".venv/", "build/")) or relative in OWNERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PORT_NAME.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "port names typed outside hw/interface.py:\n" + "\n".join(offenders)


@pytest.mark.parametrize("elements", [1, 2, 4])
@pytest.mark.parametrize("input_size", [1, 5, 8])
def test_x_beats_pack_and_unpack(elements, input_size):
    model = random_model(input_size, 3, formats="mixed", seed=input_size, scale=2.0)
    interface = _interface(model, lanes=3, input_elements=elements)
    x = random_input(model, 4, np.random.default_rng(elements))
    beats = interface.pack_x(x)
    per_step = -(-input_size // elements)
    assert len(beats) == 4 * per_step == interface.x_beats_per_step * 4
    unpacked = np.stack([f.extract(beats) for f in interface.x.fields], axis=1)
    padded = np.zeros((4, per_step * elements), dtype=np.int64)
    padded[:, :input_size] = x
    np.testing.assert_array_equal(unpacked.reshape(4, -1), padded)
    assert all(0 <= int(b) < 1 << interface.x.width for b in beats) or elements == 1
    last = interface.x_last([4, 1])
    assert np.flatnonzero(last).tolist() == [4 * per_step - 1, 5 * per_step - 1]


def test_state_words_unpack_into_h_and_c():
    model = random_model(3, 4, 2, bidirectional=True, formats=("q16", "tight"), seed=2)
    interface = _interface(model, lanes=5, max_seq_len=3)
    h0, c0 = random_state(model, np.random.default_rng(1))
    h, c = interface.state.field("h"), interface.state.field("c")
    assert (h.offset, c.offset) == (0, h.width)
    words = [
        ((int(a) & ((1 << h.width) - 1)) | ((int(b) & ((1 << c.width) - 1)) << h.width))
        for a, b in zip(h0.reshape(-1), c0.reshape(-1), strict=True)
    ]
    got_h, got_c = interface.unpack_state(words)
    np.testing.assert_array_equal(got_h, h0.reshape(-1))
    np.testing.assert_array_equal(got_c, c0.reshape(-1))
    values = interface.init_values(h0, c0)
    assert len(values) == 2 * interface.state_beats == 2 * h0.size


def test_idle_inputs_cover_every_input_but_clock_and_reset():
    model = random_model(3, 2, head=2)
    interface = _interface(model, lanes=2)
    inputs = {p.name for p in interface.ports if p.direction is Direction.IN}
    assert {name for name, _ in interface.idle_inputs} == inputs - {CLOCK, RESET}
    assert all(value == 0 for _, value in interface.idle_inputs)


def test_the_testbench_drivers_name_ports_like_the_interface():
    interface = _interface(random_model(3, 2), lanes=2)
    for s in interface.streams:
        fields = AXI_STREAM
        names = [fields.data, fields.valid, fields.ready, fields.last]
        assert [fields.port(s.name, n) for n in names] == [s.data, s.valid, s.ready, s.last]


def test_y_beats_drop_sequences_longer_than_the_buffer():
    model = random_model(3, 2, 1, bidirectional=True, head=3)
    every = _interface(model, lanes=2, max_seq_len=4)
    last = _interface(model, lanes=2, max_seq_len=4, output="last")
    lengths = [2, 5, 4]
    assert every.y_beats(lengths).tolist() == [2 * 3, 0, 4 * 3]
    assert last.y_beats(lengths).tolist() == [3, 0, 3]
    assert every.dropped(lengths).tolist() == [False, True, False]
    assert sign_extend([0x7, 0x8, 0xF], 4).tolist() == [7, -8, -1]


def test_compatibility_is_shape_and_formats():
    model = random_model(3, 2, 2, head=2, seed=1)
    interface = _interface(model, lanes=3)
    interface.check_compatible(random_model(3, 2, 2, head=2, seed=5))
    other_formats = random_model(3, 2, 2, head=2, formats=("q12",))
    interface.check_same_shape(other_formats)
    with pytest.raises(HardwareConfigError, match="formats differ"):
        interface.check_compatible(other_formats)
    with pytest.raises(HardwareConfigError, match="shape"):
        interface.check_same_shape(random_model(3, 2, 1, head=2))
    assert (
        interface.step_bound
        == interface.plan.step_bound()
        == sum(-(-4 * 2 * (i + 2) // 3) for i in (3, 2))
    )


def test_saturation_kinds_are_the_references_counts():
    assert SATURATION_KINDS == tuple(f.name for f in dataclasses.fields(SaturationCounts))


@pytest.mark.parametrize(
    "input_size, hidden_size, layers, bidirectional, lanes",
    [(32, 32, 1, False, 16), (5, 16, 1, False, 16), (8, 8, 2, False, 7), (6, 8, 2, True, 64)],
)
def test_recurrence_bound_comes_from_the_blocks_latencies(
    input_size, hidden_size, layers, bidirectional, lanes
):
    model = random_model(input_size, hidden_size, layers, bidirectional, seed=lanes)
    interface = TopInterface(EnginePlan(model, HardwareConfig(lanes=lanes, max_seq_len=8)))
    loop = interface.loop_latencies
    assert loop.to_drain == Sequencer.COLUMN_LATENCY + pass_latency(interface.plan)
    extra = EXTRA_STAGES * interface.cell_extra_stages
    assert loop.to_read == GateCellPipeline.LATENCY + extra - Sequencer.ANNOUNCE + 1
    plan = interface.plan
    busy = sum(m.mac_cycles for m in plan.lstm_matrices)
    # Never below the lanes' bound or their busy cycles; a step is no longer than the
    # busy cycles plus a whole loop per layer direction.
    assert interface.step_bound <= busy <= interface.recurrence_step_bound
    assert interface.recurrence_step_bound <= busy + loop.loop * plan.num_directions_total
    assert interface.recurrence_sequence_bound(8) >= interface.sequence_bound(8)
    if (input_size, lanes) == (32, 16):  # a long job hides the loop: the lane bound
        assert interface.recurrence_step_bound == interface.step_bound
        assert extra  # and the cell's extra stages with it
    if (input_size, lanes) == (5, 16):  # the demo's LSTM: the loop shows
        assert interface.recurrence_step_bound > interface.step_bound
        assert not extra  # and would grow with the extra stages


@pytest.mark.parametrize(
    "input_size, hidden_size, layers, bidirectional, head, lanes, expected",
    [
        # long jobs (a step's columns outlast the loop): the stages are hidden
        (32, 32, 1, False, None, 16, True),
        (64, 64, 1, False, None, 64, True),
        (13, 9, 1, True, None, 5, True),
        # short jobs (the demo's LSTM, small layers on many lanes): the loop shows
        (5, 16, 1, False, 1, 16, False),
        (8, 8, 2, False, None, 7, False),
        (6, 8, 2, True, 3, 64, False),
    ],
)
def test_cell_extra_stages_only_where_the_schedule_hides_them(
    input_size, hidden_size, layers, bidirectional, head, lanes, expected
):
    """The cell's extra stages are chosen exactly where they cost no cycle: the recurrence
    bounds with their loop equal those without (and where they are left out, their loop
    would cost cycles); ``expected``: the choice for these shapes."""
    from lstm_fpga.hw.interface import _loop_latencies
    from lstm_fpga.hw.recurrence import recurrence_sequence_bound, recurrence_step_bound

    model = random_model(input_size, hidden_size, layers, bidirectional, head=head, seed=lanes)
    plan = EnginePlan(model, HardwareConfig(lanes=lanes, max_seq_len=8))
    interface = TopInterface(plan)
    without, with_stages = _loop_latencies(plan, False), _loop_latencies(plan, True)
    assert with_stages.to_read == without.to_read + EXTRA_STAGES
    assert with_stages.to_drain == without.to_drain
    bounds = [
        (recurrence_step_bound(plan, loop), recurrence_sequence_bound(plan, 8, loop))
        for loop in (without, with_stages)
    ]
    assert interface.cell_extra_stages == (bounds[0] == bounds[1]) == expected
    chosen = with_stages if interface.cell_extra_stages else without
    assert interface.loop_latencies == chosen
    assert interface.recurrence_step_bound == bounds[0][0]
