"""The generated LSTM accelerator under cocotb: bit-exact against the integer reference."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from lstm_fpga.sim import Pacing, compare, compile_model, simulate
from lstm_fpga.sim.compare import CYCLE_SLACK
from lstm_fpga.sim.design import compile_build_directory
from lstm_fpga.sim.phases import Stimulus, plan_for, stimulus_phase
from lstm_fpga.sim.result import decode_phase
from lstm_fpga.sim.stimulus import run_plan
from lstm_fpga.sw.numerics import dequantize, quantize
from lstm_fpga.sw.reference import run_float, run_reference
from lstm_fpga.testing import padded, random_sequences
from tests.conftest import (
    CELL_MULTIPLIERS,
    ecp5_multipliers,
    float_from_torch,
    quantize_with,
    torch_lstm,
)


def _model(I, H, seed=0, width=16):
    lstm, _ = torch_lstm(I, H, seed=seed)
    return quantize_with(float_from_torch(lstm), width)


def _assert_bit_exact(model, sequences, result):
    lengths = [len(s) for s in sequences]
    reference = run_reference(model, padded(sequences), lengths=lengths)
    np.testing.assert_array_equal(result.outputs, reference.output)
    report = compare(result)
    assert report.bit_exact, str(report)
    return report


def _assert_cycles(report):
    c = report.cycles
    assert c.dut_counter_agrees, str(report)
    assert c.cycles_per_step <= c.bound_per_step + CYCLE_SLACK, str(report)


@pytest.fixture(scope="module")
def odd_design(sim_cache):
    """I=5, H=11 on P=3 lanes (P divides neither 4H nor I+H)."""
    return compile_model(_model(5, 11, seed=3), 3, "verilator", cache_dir=sim_cache)


@pytest.mark.parametrize("idle", [False, True], ids=["no_idle", "idle"])
@pytest.mark.parametrize("backpressure", [False, True], ids=["no_bp", "bp"])
def test_odd_sizes_variable_lengths_with_stalls(odd_design, idle, backpressure):
    seed = 2 * idle + backpressure
    sequences = random_sequences(odd_design.model, [7, 1, 12, 3], seed)
    result = simulate(
        odd_design,
        sequences,
        input_pacing=Pacing(0.3, 9, seed) if idle else Pacing(),
        output_pacing=Pacing(0.3, 9, seed + 50) if backpressure else Pacing(),
    )
    report = _assert_bit_exact(odd_design.model, sequences, result)
    assert report.cycles.dut_counter_agrees
    if not (idle or backpressure):
        _assert_cycles(report)


@pytest.mark.parametrize(
    ("I", "H", "lanes", "width", "lengths"),
    [
        (4, 6, 1, 16, (3, 2)),  # a single lane
        # More lanes than the 4H = 16 gate rows (four not built). I=40 keeps the job (44
        # cycles) longer than the gate and cell pipeline: with I=3 (a 6-cycle job) a step
        # waits on the recurrence through the pipeline (26.5 cycles/step, bound 6).
        (40, 4, 20, 12, (6,)),
        (9, 8, 8, 16, (5, 1, 4)),  # P divides 4H
    ],
    ids=["P1", "P_gt_4H", "P8"],
)
def test_shapes_lanes_and_formats(sim_cache, I, H, lanes, width, lengths):
    model = _model(I, H, seed=I + H, width=width)
    design = compile_model(model, lanes, "verilator", cache_dir=sim_cache)
    sequences = random_sequences(model, lengths, lanes)
    report = _assert_bit_exact(model, sequences, simulate(design, sequences))
    _assert_cycles(report)


@pytest.mark.parametrize("paced", [False, True], ids=["plain", "stalls"])
def test_icarus_is_bit_exact_too(sim_cache, paced):
    model = _model(5, 11, seed=3)
    design = compile_model(model, 3, "icarus", cache_dir=sim_cache)
    sequences = random_sequences(model, [4, 1, 3], 11)
    pacing = Pacing(0.4, 5, 8) if paced else Pacing()
    result = simulate(design, sequences, input_pacing=pacing, output_pacing=pacing)
    report = _assert_bit_exact(model, sequences, result)
    assert report.simulator == "icarus"
    if not paced:
        _assert_cycles(report)


def test_simulators_agree_on_cycles(sim_cache):
    model = _model(5, 11, seed=3)
    sequences = random_sequences(model, [3, 2], 12)
    runs = [
        simulate(compile_model(model, 3, sim, cache_dir=sim_cache), sequences)
        for sim in ("verilator", "icarus")
    ]
    np.testing.assert_array_equal(runs[0].outputs, runs[1].outputs)
    np.testing.assert_array_equal(runs[0].step_end_cycles, runs[1].step_end_cycles)
    np.testing.assert_array_equal(runs[0].cycles, runs[1].cycles)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_reset_in_the_middle_of_a_sequence_then_a_clean_run(sim_cache, simulator):
    model = _model(5, 11, seed=3)
    design = compile_model(model, 3, simulator, cache_dir=sim_cache)
    first_sequences = random_sequences(model, [9, 4], 40)
    second_sequences = random_sequences(model, [5, 3], 41)
    first = Stimulus.prepare(model, first_sequences)
    second = Stimulus.prepare(model, second_sequences)
    abort_at = 3 * design.cycle_bound + 7  # inside the first sequence's fourth step
    plan = plan_for(
        design,
        (
            stimulus_phase(design, first, abort_after_cycles=abort_at),
            stimulus_phase(design, second),
        ),
    )
    run = run_plan(design.sim_build, plan)
    aborted = run.phases[0].sink("y")
    H = model.hidden_size
    assert run.phases[0].aborted and 0 < aborted.data.size < 9 * H
    # What came out before the reset was right, ...
    before = run_reference(model, first_sequences[0]).output.reshape(-1)
    np.testing.assert_array_equal(aborted.data, before[: aborted.data.size])
    # ... and nothing of the interrupted sequence leaks into the next ones.
    _assert_bit_exact(model, second_sequences, decode_phase(design, second, run, 1))


def test_layouts_match_the_reference(odd_design):
    model = odd_design.model
    sequences = random_sequences(model, [4, 4], 21)
    batch = padded(sequences)  # (T, B, I)
    time_major = simulate(odd_design, batch)
    batch_first = simulate(odd_design, batch.transpose(1, 0, 2), batch_first=True)
    single = simulate(odd_design, sequences[0])
    np.testing.assert_array_equal(time_major.outputs, run_reference(model, batch).output)
    np.testing.assert_array_equal(batch_first.outputs, time_major.outputs.transpose(1, 0, 2))
    np.testing.assert_array_equal(single.outputs, run_reference(model, sequences[0]).output)
    assert single.outputs.shape == (4, model.hidden_size)


def test_one_lsb_in_a_hex_file_is_found_and_located(sim_cache, tmp_path):
    from lstm_fpga.hw import EnginePlan, hardware_config, weight_location, write_build
    from lstm_fpga.hw.banks import bank_packing, hex_file_name

    model = _model(6, 7, seed=9)
    config = hardware_config(4)
    sequences = random_sequences(model, [6, 5], 4)
    batch = padded(sequences)
    lengths = [6, 5]
    reference = run_reference(model, batch, lengths=lengths).output
    d = model.direction(0, False)
    # Find a weight whose one-LSB change is visible at the output (computed, not assumed).
    w = np.concatenate([d.w_ih, d.w_hh], axis=1)
    for row, column in sorted(np.ndindex(w.shape), key=lambda rc: -abs(int(w[rc]))):
        if w[row, column] >= d.formats.w_ih.max_int:
            continue
        corrupted = w.copy()
        corrupted[row, column] += 1
        bad_direction = replace(d, w_ih=corrupted[:, :6], w_hh=corrupted[:, 6:])
        bad_model = replace(model, directions=(bad_direction,))
        bad_reference = run_reference(bad_model, batch, lengths=lengths).output
        if not np.array_equal(bad_reference, reference):
            break
    else:
        pytest.fail("no single-LSB weight change is visible on these inputs")
    written = write_build(model, config, tmp_path / "build", memory_init="readmemh")
    plan = EnginePlan(model, config)
    location = weight_location(plan, row, column)
    packing = bank_packing(plan)
    group, slot = packing.slot(location.lane)
    hex_path = written.directory / hex_file_name("weights", group, len(packing.groups))
    lines = hex_path.read_text().splitlines()
    width = plan.weight_shape.width
    word = int(lines[location.address], 16)
    value = (word >> (slot * width)) & ((1 << width) - 1)
    word ^= (value ^ ((value + 1) & ((1 << width) - 1))) << (slot * width)
    lines[location.address] = f"{word:0{len(lines[0])}x}"
    hex_path.write_text("\n".join(lines) + "\n")

    design = compile_build_directory(
        written.directory, model, config, "verilator", cache_dir=sim_cache
    )
    result = simulate(design, sequences)
    report = compare(result)
    assert not report.bit_exact
    first = report.first_mismatch
    # The first differing value, computed from the two references, is what compare reports;
    # at that step only the corrupted row's unit can differ.
    t, b, j = _first_difference(bad_reference, reference, lengths)
    assert (first.sequence, first.step, first.unit) == (b, t, j)
    assert first.unit == row % model.hidden_size
    assert (first.hardware, first.reference) == (bad_reference[t, b, j], reference[t, b, j])
    assert (first.layer, first.direction, first.tensor) == (0, "forward", "output")
    text = str(report)
    assert "bit-exact: NO" in text and f"unit {first.unit}" in text
    assert json.loads(report.to_json())["bit_exact"] is False


def _first_difference(a, b, lengths):
    """(step, sequence, unit) of the first difference in (sequence, step, unit) order."""
    for seq, n in enumerate(lengths):
        for step in range(n):
            units = np.flatnonzero(a[step, seq] != b[step, seq])
            if units.size:
                return step, seq, int(units[0])
    raise AssertionError("no difference")


def test_float_comparison_against_pytorch(sim_cache):
    import torch

    lstm, _ = torch_lstm(4, 6, seed=5)
    model = quantize_with(float_from_torch(lstm), 16)
    design = compile_model(model, 5, "verilator", cache_dir=sim_cache)
    rng = np.random.default_rng(3)
    x_float = rng.uniform(-2, 2, (6, 2, 4))
    x_int = quantize(x_float, model.input_format)
    result = simulate(design, x_int)
    report = compare(result, float_model=lstm, float_inputs=x_float)
    assert report.bit_exact and report.float_reference == "PyTorch float weights"
    with torch.no_grad():
        torch_out = lstm(torch.tensor(x_float, dtype=torch.float32))[0].double().numpy()
    error = np.abs(dequantize(result.outputs, model.output_format) - torch_out)
    output_error = report.float_errors[0]
    assert output_error.tensor == "output"
    # h_n/c_n follow when the hardware reads its state out.
    assert [e.tensor for e in report.float_errors[1:]] in ([], ["h_n", "c_n"])
    assert output_error.max_abs == pytest.approx(error.max(), abs=1e-6)
    assert output_error.rms == pytest.approx(np.sqrt(np.mean(error**2)), abs=1e-6)
    # Default float reference: float64 math on the dequantised IR weights and inputs.
    default = compare(result)
    float_out = run_float(model, dequantize(x_int, model.input_format))[0]
    expected = np.abs(dequantize(result.outputs, model.output_format) - float_out).max()
    assert default.float_errors[0].max_abs == pytest.approx(expected, abs=1e-12)


def test_report_json_and_text(odd_design, tmp_path):
    sequences = random_sequences(odd_design.model, [3, 2], 30)
    report = compare(simulate(odd_design, sequences))
    saved = json.loads(report.save(tmp_path / "report.json").read_text())
    assert saved["bit_exact"] is True and saved["kind"] == "lstm-fpga comparison"
    assert saved["cycles"]["bound_per_step"] == report.cycles.bound_per_step
    assert saved["checks"][0]["compared"] == 5 * odd_design.model.hidden_size
    # The hardware reads h_n/c_n out, so they are checked too.
    assert saved["unchecked"] == []
    assert saved["saturations"] is not None
    text = str(report)
    assert "bit-exact: yes" in text and "cycles/step" in text and "lane utilisation" in text


def test_bad_inputs_are_explained(odd_design):
    model = odd_design.model
    good = random_sequences(model, [2])[0]
    with pytest.raises(TypeError, match="quantize_input"):
        simulate(odd_design, good.astype(float))
    with pytest.raises(ValueError, match="outside the input format"):
        simulate(odd_design, good * 0 + model.input_format.max_int + 1)
    with pytest.raises(ValueError, match="features per time step"):
        simulate(odd_design, good[:, :3])
    with pytest.raises((ValueError, NotImplementedError), match="h0"):
        simulate(odd_design, good, h0=np.ones((2, model.hidden_size), dtype=np.int64))
    with pytest.raises(ValueError, match="lanes="):
        simulate(model, good)
    with pytest.raises(ValueError, match="compile_model"):
        simulate(odd_design, good, waves=True)


def test_lstm_waveform(sim_cache, capsys):
    model = _model(3, 4, seed=1)
    design = compile_model(model, 2, "icarus", waves=True, cache_dir=sim_cache)
    result = simulate(design, random_sequences(model, [2]), waves=True)
    assert result.waves is not None and result.waves.stat().st_size > 0
    assert str(result.waves) in capsys.readouterr().err


def test_missing_hex_file_is_a_clear_error(sim_cache, tmp_path):
    from lstm_fpga.hw import write_build

    model = _model(3, 4, seed=2)
    written = write_build(model, 2, tmp_path / "b", memory_init="readmemh")
    for path in written.hex_files:
        path.unlink()
    with pytest.raises(FileNotFoundError, match=r"loads weights_group0\.hex with \$readmem"):
        compile_build_directory(written.directory, model, 2, "icarus", cache_dir=sim_cache)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("I", "H", "lanes", "lengths"),
    [(64, 64, 16, (40, 17, 25)), (128, 96, 32, (12, 20))],
    ids=["64x64_P16", "128x96_P32"],
)
def test_larger_models_on_verilator(sim_cache, I, H, lanes, lengths):
    model = _model(I, H, seed=lanes)
    design = compile_model(model, lanes, "verilator", cache_dir=sim_cache)
    sequences = random_sequences(model, lengths, H)
    report = _assert_bit_exact(model, sequences, simulate(design, sequences))
    _assert_cycles(report)
    assert report.cycles.lane_utilization > 0.9


@pytest.mark.slow
def test_medium_model_on_icarus_with_stalls(sim_cache):
    model = _model(24, 20, seed=4)
    design = compile_model(model, 7, "icarus", cache_dir=sim_cache)
    sequences = random_sequences(model, [9, 4, 13], 5)
    result = simulate(
        design, sequences, input_pacing=Pacing(0.2, 6, 1), output_pacing=Pacing(0.2, 6, 2)
    )
    _assert_bit_exact(model, sequences, result)


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
@pytest.mark.parametrize("lanes", [5, 17])  # 17: a broadcast tree level (more than FANOUT)
def test_ecp5_multiplier_primitives_are_bit_exact(sim_cache, tmp_path, simulator, lanes):
    """``family="ecp5"`` instantiates MULT18X18D (with its simulation model): same outputs
    as the reference and the same cycles as the generic build."""
    from lstm_fpga.hw import write_build

    model = _model(5, 6, seed=lanes)
    sequences = random_sequences(model, [4, 1, 3], lanes)
    reports = []
    for family in ("generic", "ecp5"):
        written = write_build(
            model, lanes, tmp_path / family, memory_init="readmemh", family=family
        )
        text = written.verilog.read_text()
        assert ("MULT18X18D #(" in text) == (family == "ecp5")
        # The cell's products (f*c, i*g and o*tanh(c)) and the activation units'
        # interpolation multiplies are primitives too, all with the output register only.
        ecp5 = family == "ecp5"
        assert text.count("MULT18X18D #(") == (ecp5_multipliers(lanes) if ecp5 else 0)
        assert text.count('.REG_INPUTA_CLK("NONE")') == (CELL_MULTIPLIERS if ecp5 else 0)
        design = compile_build_directory(
            written.directory, model, lanes, simulator, cache_dir=sim_cache
        )
        reports.append(_assert_bit_exact(model, sequences, simulate(design, sequences)))
    assert reports[0].cycles == reports[1].cycles
