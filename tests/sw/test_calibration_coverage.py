"""What calibration covers and refuses: initial states h0/c0, a declared input range with no
data, empty samples, and widths that cannot be computed exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstm_fpga.sw.calibrate import (
    MAX_WIDTH,
    MIN_WIDTH,
    CalibrationError,
    CalibrationFormatWidthError,
    QuantizationReport,
    calibrate,
    calibrate_from_range,
    quantization_report,
    quantize_from_torch,
    quantize_model,
)
from lstm_fpga.sw.numerics import quantize
from lstm_fpga.sw.reference import quantize_input, run_reference
from lstm_fpga.sw.torch_import import from_module

I, H = 4, 6


def torch_model(num_layers=1, bidirectional=False, head=0, seed=0):
    torch.manual_seed(seed)
    lstm = nn.LSTM(I, H, num_layers, bidirectional=bidirectional).double()
    linear = nn.Linear(H * (2 if bidirectional else 1), head).double() if head else None
    return lstm, linear


def states(lstm, batch, scale, seed=3):
    rng = np.random.default_rng(seed)
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    return (
        rng.uniform(-0.9, 0.9, (rows, batch, H)),
        rng.uniform(-scale, scale, (rows, batch, H)),
    )


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_initial_states_are_calibrated_and_reported(num_layers, bidirectional):
    """Large c0 samples widen the cell formats; the report says the states were sampled and
    its saturation counts are the reference's on the same quantised states."""
    lstm, _ = torch_model(num_layers, bidirectional)
    fm = from_module(lstm)
    x = np.random.default_rng(1).normal(size=(5, 3, I))
    h0, c0 = states(lstm, 3, scale=20.0)
    zero = calibrate(fm, x)
    sampled = calibrate(fm, x, h0=h0, c0=c0)
    for k, d in enumerate(fm.directions):
        cell = f"{d.name}.cell"
        assert sampled.range(cell).min <= c0[k].min() and sampled.range(cell).max >= c0[k].max()
        assert sampled.formats[cell].int_bits > zero.formats[cell].int_bits
    model = quantize_model(fm, sampled)
    report = quantization_report(fm, model, x, h0=h0, c0=c0)
    assert report.initial_states == "sampled" and report.data_seen
    assert "from sampled initial states" in report.table().splitlines()[0]
    h0q = np.stack([quantize(h0[k], d.formats.hidden) for k, d in enumerate(model.directions)])
    c0q = np.stack([quantize(c0[k], d.formats.cell) for k, d in enumerate(model.directions)])
    reference = run_reference(model, quantize_input(model, x), h0q, c0q)
    for d in model.directions:
        counts = reference.direction_saturations[d.name]
        assert report.tensor(f"{d.name}.preact").saturations == counts.preact
    assert QuantizationReport.from_json(report.to_json()) == report
    # The one-call flow takes the same states.
    _, one_call = quantize_from_torch(lstm, x, h0=h0, c0=c0)
    assert one_call == report


def test_clamped_initial_states_are_counted():
    lstm, _ = torch_model()
    fm = from_module(lstm)
    x = np.random.default_rng(2).normal(size=(4, 2, I))
    h0, c0 = states(lstm, 2, scale=1.0)
    h0[0, 0, :2] = 3.0  # outside the hidden format (-1, 1): two clamps
    model = quantize_model(fm, calibrate(fm, x))
    with_states = quantization_report(fm, model, x, h0=h0, c0=c0)
    h0q = quantize(h0[0], model.directions[0].formats.hidden)
    c0q = quantize(c0[0], model.directions[0].formats.cell)
    reference = run_reference(model, quantize_input(model, x), h0q[None], c0q[None])
    expected = reference.direction_saturations["l0"].hidden + 2
    assert with_states.tensor("l0.hidden").saturations == expected


def test_calibration_from_an_input_range_sees_no_data():
    lstm, head = torch_model(2, True, head=2)
    fm = from_module(lstm, head=head)
    calibration = calibrate_from_range(fm, (-2.0, 3.0))
    assert calibration.range("x").min == -2.0 and calibration.range("x").max == 3.0
    assert calibration.formats["x"].min_value <= -2.0 and calibration.formats["x"].max_value >= 3
    for d in fm.directions:
        assert calibration.range(f"{d.name}.preact").count == 0
    model, report = quantize_from_torch(nn.Sequential(lstm, head), input_range=(-2, 3))
    assert model == quantize_model(fm, calibration)
    assert not report.data_seen and report.sequences == 0 and report.time_steps == 0
    assert report.table().splitlines()[0] == (
        "quantization report: no data seen (formats from the declared input range [-2, 3]), "
        "0 saturation(s)"
    )
    assert report.tensor("l0.preact").count == 0 and report.tensor("l0.w_ih").count > 0
    assert QuantizationReport.from_json(report.to_json()) == report
    # The bounds hold on data inside the range: no pre-activation or cell state clamps.
    x = np.random.default_rng(4).uniform(-2, 3, (20, 8, I))
    assert quantization_report(fm, model, x).total_saturations == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "give calibration samples or an input range (input_range=(low, high)), not neither"),
        (
            {"calibration_samples": np.zeros((2, I)), "input_range": (0, 1)},
            "give calibration samples or an input range (input_range=(low, high)), not both",
        ),
        ({"input_range": (1, 1)}, "input_range must be finite with low < high, not (1.0, 1.0)"),
        ({"input_range": "a"}, "input_range must be two numbers (low, high), not 'a'"),
        (
            {"input_range": (0, 1), "h0": np.zeros((1, H))},
            "h0/c0 calibrate with samples; an input range takes none",
        ),
    ],
)
def test_calibration_source_errors(kwargs, message):
    lstm, _ = torch_model()
    with pytest.raises(CalibrationError) as info:
        quantize_from_torch(lstm, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "samples, message",
    [
        (np.zeros((0, 3, I)), "calibration samples: input has no time steps"),
        (np.zeros((0, I)), "calibration samples: input has no time steps"),
        (
            np.zeros((5, 0, I)),
            "calibration samples hold no sequences (batch size 0); give at least one sequence "
            "of at least one time step",
        ),
        ([np.zeros((3, I)), np.zeros((0, I))], "a sample sequence has no time steps"),
    ],
)
def test_empty_calibration_is_refused(samples, message):
    fm = from_module(torch_model()[0])
    with pytest.raises(CalibrationError) as info:
        calibrate(fm, samples)
    assert str(info.value) == message


def test_initial_state_shape_errors():
    fm = from_module(torch_model()[0])
    x = np.zeros((3, 2, I))
    with pytest.raises(CalibrationError) as info:
        calibrate(fm, x, h0=np.zeros((1, 3, H)))
    assert str(info.value) == f"calibration h0 has shape (1, 3, {H}), expected (1, 2, {H})"
    with pytest.raises(CalibrationError) as info:
        calibrate(fm, x, c0=np.full((1, 2, H), np.nan))
    assert str(info.value) == "calibration c0 contains NaN or infinite values"


def test_every_accepted_width_works_or_names_the_widest_that_does():
    """Validation accepts MIN_WIDTH..MAX_WIDTH; a width too wide for a model's sums is
    refused naming the widest that works, and that width (and every narrower one) works."""
    lstm, head = torch_model(2, False, head=1)
    fm = from_module(lstm, head=head)
    x = np.random.default_rng(5).normal(size=(6, 4, I))
    widest = None
    for width in range(MAX_WIDTH, MIN_WIDTH - 1, -1):
        try:
            calibration = calibrate(fm, x, width=width)
        except CalibrationFormatWidthError as error:
            assert widest is None, "a narrower width failed after a wider one worked"
            assert "more than 62" in str(error) and f"width {width} is too wide" in str(error)
            named = int(str(error).split("narrower width: ")[1].split(" bits")[0])
            assert named < width
            continue
        if widest is None:
            widest = width
        model = quantize_model(fm, calibration)
        run_reference(model, quantize_input(model, x))
    assert widest is not None and widest >= 16
    with pytest.raises(CalibrationFormatWidthError) as info:
        calibrate(fm, x, width=widest + 1)
    assert f"narrower width: {widest} bits is the widest that works" in str(info.value)


@pytest.mark.parametrize("width, seed", [(8, 0), (8, 1), (16, 2)])
def test_report_saturations_are_the_references_under_heavy_saturation(width, seed):
    """Issue 15: 8- and 16-bit models with large weights made the report's own recount
    disagree with the reference ("internal error: preact saturations per direction sum to
    0"). The report now takes the reference's per-direction counts."""
    lstm, head = torch_model(2, True, head=2, seed=seed)
    with torch.no_grad():
        for parameter in lstm.parameters():
            parameter.mul_(6.0)
    fm = from_module(lstm, head=head)
    x = np.random.default_rng(seed).normal(size=(12, 5, I)) * 3
    narrow = {"l0.preact": "Q1.6", "l1.cell": "Q0.7"} if width == 8 else {"l0.cell": "Q0.15"}
    model = quantize_model(fm, calibrate(fm, x[:3], width=width, overrides=narrow))
    report = quantization_report(fm, model, x)
    reference = run_reference(model, quantize_input(model, x))
    assert reference.saturations.preact > 0 and reference.saturations.cell > 0
    for d in model.directions:
        counts = reference.direction_saturations[d.name]
        for kind in ("preact", "cell", "hidden"):
            assert report.tensor(f"{d.name}.{kind}").saturations == getattr(counts, kind)
    assert report.tensor("head.output").saturations == reference.saturations.head
