"""ActivationUnit: every input of each table equals ``ActivationTable.evaluate``."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from lstm_fpga.hw.activation import ActivationUnit
from lstm_fpga.sw.numerics import (
    Activation,
    FixedFormat,
    LstmDatapath,
    Rounding,
    activation_table,
)
from lstm_fpga.testing import FORMAT_SETS


def _run(table, inputs, selects=None):
    """Outputs of an ``ActivationUnit(table)`` fed ``inputs`` back to back (and ``selects``,
    the table of each input, when the unit holds several tables)."""
    dut = ActivationUnit(table)
    outputs = []

    async def bench(ctx):
        latency = ActivationUnit.LATENCY
        for k in range(len(inputs) + latency):
            if k < len(inputs):
                ctx.set(dut.input, int(inputs[k]))
                if selects is not None:
                    ctx.set(dut.select, int(selects[k]))
            await ctx.tick()
            if k >= latency - 1 and len(outputs) < len(inputs):
                outputs.append(ctx.get(dut.output))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return outputs


@pytest.mark.parametrize("formats", ["q12", "tight"])
@pytest.mark.parametrize("kind", ["sigmoid", "tanh_gate", "tanh_cell"])
def test_every_input_matches_the_table(formats, kind):
    dp = LstmDatapath(FORMAT_SETS[formats], 3, 2)
    table = getattr(dp, kind)
    fmt = table.input
    # Every representable input, in a shuffled order so consecutive lookups differ.
    inputs = np.random.default_rng(0).permutation(np.arange(fmt.min_int, fmt.max_int + 1))
    np.testing.assert_array_equal(_run(table, inputs), table.evaluate(inputs))


@pytest.mark.parametrize(
    "function, input_format, output_format, rounding",
    [
        (Activation.SIGMOID, "Q4.11", "Q0.15", Rounding.HALF_UP),
        (Activation.TANH, "Q4.11", "Q0.15", Rounding.FLOOR),
        (Activation.TANH, "Q5.2", "Q0.7", Rounding.HALF_UP),  # segment_shift 0: no interpolation
        (Activation.SIGMOID, "UQ4.8", "UQ0.10", Rounding.HALF_UP),  # unsigned formats
    ],
)
def test_sampled_inputs_of_16_bit_and_odd_tables(function, input_format, output_format, rounding):
    table = activation_table(
        function, FixedFormat.parse(input_format), FixedFormat.parse(output_format), rounding
    )
    fmt = table.input
    rng = np.random.default_rng(1)
    edges = [fmt.min_int, fmt.max_int, table.low, table.high, table.low - 1, table.high + 1, 0]
    edges = [v for v in edges if fmt.min_int <= v <= fmt.max_int]
    inputs = np.concatenate([edges, rng.integers(fmt.min_int, fmt.max_int + 1, 1500)])
    np.testing.assert_array_equal(_run(table, inputs), table.evaluate(inputs))


def test_several_tables_in_one_unit_select_per_input():
    """Layer directions with different formats share one unit: ``select`` picks the table of
    each input (different clamps, segment shifts, output formats, one without interpolation)."""
    Q = FixedFormat.parse
    tables = [
        activation_table(Activation.SIGMOID, Q("Q4.11"), Q("Q0.15")),
        activation_table(Activation.SIGMOID, Q("Q2.9"), Q("Q0.11"), Rounding.FLOOR),
        activation_table(Activation.TANH, Q("Q5.2"), Q("Q0.7")),  # segment_shift 0
        activation_table(Activation.TANH, Q("Q3.8"), Q("Q0.11")),
    ]
    rng = np.random.default_rng(3)
    selects = rng.integers(0, len(tables), 3000)
    inputs = [
        int(rng.integers(tables[k].input.min_int, tables[k].input.max_int + 1)) for k in selects
    ]
    outputs = _run(tables, inputs, selects)
    expected = [
        int(tables[k].evaluate(np.array([v]))[0]) for k, v in zip(selects, inputs, strict=True)
    ]
    assert outputs == expected
