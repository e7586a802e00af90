"""The end-to-end demo: forecast Microsoft's next-day close on generated hardware.

``lstm-fpga demo [-o OUT]`` (also ``make demo``) runs, offline and on the CPU:

1. data: MSFT daily OHLCV 1986-2017 shipped with pmdarima (see :mod:`lstm_fpga.stock_data`);
2. training: ``nn.LSTM(5, 16)`` + ``nn.Linear(16, 1)`` on 20-day windows, fixed seed;
3. quantisation: calibration on the training windows, 16-bit formats, report;
4. hardware: Verilog for the LSTM and its head, simulated with cocotb on Verilator on every
   test window, compared bit-exactly with the integer reference;
5. report: ``OUT/report.md`` with plots, an error table (float, fixed-point reference,
   hardware and the naive "tomorrow = today" forecast), bit-exactness, cycles and latency,
   resources, and the quantisation report.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .outdir import check_output_dir, record_generated

__all__ = ["DemoResult", "implement_demo", "run_demo"]

#: What the demo writes into its build directory besides the build (and ``synth/``, see
#: :func:`implement_demo`).
_REPORT_FILES = ("report.md", "forecast.png", "forecast_last60.png", "demo.json")

#: Where the demo measures its clock: the part common ECP5 boards carry, out of context.
DEMO_DEVICE, DEMO_SPEED, DEMO_FREQ_MHZ = "ecp5-85", 6, 100.0
#: The demo's Verilog is for the part it places and routes on: ECP5 (``build --family ecp5``:
#: the lanes' ``MULT18X18D``s with their input and output registers, which Yosys does not
#: infer; the generic Verilog leaves them unregistered, 122.0 MHz against ~134).
DEMO_FAMILY = "ecp5"


@dataclass(frozen=True)
class ErrorRow:
    name: str
    rmse: float
    mae: float


@dataclass(frozen=True, eq=False)
class DemoResult:
    directory: Path
    report: Path
    bit_exact: bool
    errors: tuple[ErrorRow, ...]
    cycles_per_prediction: float
    seconds: float


def _errors(name: str, predicted, actual) -> ErrorRow:
    e = np.asarray(predicted) - np.asarray(actual)
    return ErrorRow(name, float(np.sqrt(np.mean(e**2))), float(np.mean(np.abs(e))))


def _plot(path: Path, dates, actual, series: dict[str, np.ndarray], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    ax.plot(dates, actual, color="black", linewidth=1.6, label="actual close")
    styles = {
        "float PyTorch": dict(color="tab:blue", linewidth=1.0),
        "fixed-point reference": dict(color="tab:orange", linewidth=1.0, linestyle="--"),
        "hardware (simulated)": dict(color="tab:red", linewidth=0.8, linestyle=":"),
        "naive (tomorrow = today)": dict(color="tab:gray", linewidth=0.8, alpha=0.7),
    }
    for name, values in series.items():
        ax.plot(dates, values, label=name, **styles.get(name, {}))
    ax.set_title(title)
    ax.set_ylabel("MSFT close (USD)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_demo(
    out: Path | str = "demo_out",
    *,
    lanes: int = 16,
    hidden_size: int = 16,
    epochs: int = 15,
    simulator: str = "verilator",
    synth: bool = True,
    log=print,
    progress: bool = True,
) -> DemoResult:
    """Run the whole demo and write its report into ``out``: a new or empty directory, or
    an earlier demo's (replaced); anything else is refused (:mod:`lstm_fpga.outdir`).
    ``progress`` shows bars with an ETA for training and simulation (on a terminal)."""
    started = time.perf_counter()
    out = Path(out)
    # Refused before minutes of training when OUT is not a directory the demo may replace.
    check_output_dir(out, force=True)
    with tempfile.TemporaryDirectory(prefix="lstm-fpga-demo-") as work:
        options = dict(lanes=lanes, hidden_size=hidden_size, epochs=epochs, synth=synth)
        return _run_demo(out, Path(work), simulator, log, started, progress, **options)


#: Test windows per simulator run: the progress bar advances per run.
SIMULATION_CHUNK = 200


@dataclass(frozen=True, eq=False)
class _Simulated:
    head: np.ndarray  # (B, 1) integers
    cycles: np.ndarray  # per window: first input beat to its forecast (latency)
    run_cycles: int  # summed over the runs: first input beat to last output beat
    steps: int


def _simulate_windows(design, x_int, progress: bool) -> _Simulated:
    """Simulate every window, in runs of :data:`SIMULATION_CHUNK` (a bar with the ETA)."""
    from .progress import progress_bar
    from .sim import simulate
    from .sim.compare import cycle_report

    starts = range(0, len(x_int), SIMULATION_CHUNK)
    heads, cycles, run_cycles, steps = [], [], 0, 0
    bar = progress_bar(total=len(x_int), desc="simulating", unit="window", enabled=progress)
    with bar:
        for start in starts:
            part = simulate(design, x_int[start : start + SIMULATION_CHUNK], batch_first=True)
            report = cycle_report(part)
            heads.append(part.head)
            cycles.append(part.cycles)
            run_cycles += report.run_cycles
            steps += report.steps
            bar.update(len(part.cycles))
    return _Simulated(np.concatenate(heads), np.concatenate(cycles), run_cycles, steps)


def implement_demo(project, progress=None):
    """Synthesize, place and route the demo's build for :data:`DEMO_DEVICE`; the netlists,
    reports and logs go to ``OUT/synth`` (the build directory, not a temporary one:
    ``demo.json`` and the report point at them)."""
    from .hw import TOP_NAME, EnginePlan
    from .hw.devices import DEVICES
    from .hw.implement import implement

    record_generated(project.directory, "synth")  # a later demo may replace it
    return implement(
        project.verilog,
        EnginePlan(project.model, project.config),
        DEVICES[DEMO_DEVICE],
        top=TOP_NAME,
        speed=DEMO_SPEED,
        freq_mhz=DEMO_FREQ_MHZ,
        verilog_family=project.family,
        workdir=project.directory / "synth",
        progress=progress,
    )


def _run_demo(out, work, simulator, log, started, progress, *, lanes, hidden_size, epochs, synth):
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from .eda.tools import ToolFailedError
    from .progress import ToolBars
    from .project import sim_cache_for, write_project
    from .sim import compile_build_directory
    from .sim.runner import default_cache_dir
    from .stock_data import load_stock_data, train_forecaster
    from .sw.numerics import dequantize
    from .sw.reference import quantize_input, run_reference

    log("1/5 data: MSFT daily OHLCV 1986-2017 (pmdarima.datasets.load_msft)")
    data = load_stock_data(window=20)
    log(
        f"    {len(data.x_train)} training windows, {len(data.x_test)} test windows "
        f"({data.test_dates[0]} .. {data.test_dates[-1]})"
    )

    log(f"2/5 training nn.LSTM(5, {hidden_size}) + nn.Linear({hidden_size}, 1), {epochs} epochs")
    net = train_forecaster(data, hidden_size=hidden_size, epochs=epochs, seed=0, progress=progress)
    torch.save(net.state_dict(), work / "forecaster.pt")
    with torch.no_grad():
        float_pred = net(torch.tensor(data.x_test, dtype=torch.float32)).numpy()[:, 0]

    log("3/5 quantising (calibration on the training windows) and generating Verilog")
    project = write_project(
        work / "forecaster.pt",
        out,
        lanes=lanes,
        output="last",
        calibration=data.x_train,
        batch_first=True,
        force=True,
        progress=progress,
        family=DEMO_FAMILY,
    )
    record_generated(out, *_REPORT_FILES)
    model = project.model
    # Place and route (minutes) runs beside the simulation: two cores, half the wall time.
    background = ThreadPoolExecutor(max_workers=1)
    implementation = bars = None
    if synth:
        log(f"    placing and routing for {DEMO_DEVICE} speed {DEMO_SPEED} in the background")
        bars = ToolBars("place & route", log, enabled=progress)
        implementation = background.submit(implement_demo, project, bars)
    x_int = quantize_input(model, data.x_test)
    reference = run_reference(model, x_int, batch_first=True, head_on="last")

    log(f"4/5 simulating {len(x_int)} test windows on {simulator} ({lanes} lanes)")
    cache = sim_cache_for(default_cache_dir())  # GNU Make (Verilator) cannot build in spaces
    design = compile_build_directory(project.rtl, model, project.config, simulator, cache_dir=cache)
    hardware = _simulate_windows(design, x_int, progress)
    bit_exact = bool(np.array_equal(hardware.head, reference.head))
    fmt = model.head.formats.output
    ref_pred = dequantize(reference.head, fmt)[:, 0]
    hw_pred = dequantize(hardware.head, fmt)[:, 0]

    price = data.price
    actual = data.close_test
    series = {
        "float PyTorch": price(float_pred),
        "fixed-point reference": price(ref_pred),
        "hardware (simulated)": price(hw_pred),
        "naive (tomorrow = today)": data.last_close_test,
    }
    errors = tuple(_errors(name, values, actual) for name, values in series.items())

    timing = None
    if implementation is not None:
        log("5/5 waiting for place and route (yosys + nextpnr), then the report")
        try:
            timing = implementation.result()
        except ToolFailedError as error:
            log(f"    place and route failed, no clock measured: {error}")
        finally:
            bars.close()
    else:
        log("5/5 report")
    background.shutdown()
    _plot(out / "forecast.png", data.test_dates, actual, series, "MSFT next-day close, test period")
    zoom = slice(-60, None)
    _plot(
        out / "forecast_last60.png",
        data.test_dates[zoom],
        actual[zoom],
        {k: v[zoom] for k, v in series.items()},
        "last 60 test days",
    )
    cycles = float(np.mean(hardware.cycles))
    report = _write_report(out, data, model, project, errors, bit_exact, hardware, cycles, timing)
    seconds = time.perf_counter() - started
    summary = {
        "bit_exact": bit_exact,
        "errors": [e.__dict__ for e in errors],
        "cycles_per_prediction": cycles,
        "cycles_per_step": hardware.run_cycles / hardware.steps,
        "cycle_bound_per_step": design.cycle_bound,
        "implementation": None if timing is None else timing.to_json_dict(),
        "fmax_mhz": None if timing is None else timing.fmax_mhz,
        "latency_us_at_fmax": None if timing is None else cycles / timing.fmax_mhz,
        "seconds": seconds,
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"done in {seconds:.0f} s: {report}")
    return DemoResult(out, report, bit_exact, errors, cycles, seconds)


def _speed_lines(cycles, timing) -> str:
    if timing is None:
        return "- latency: not measured (run without --no-synth, or `lstm-fpga synth OUT`)"
    from .hw.implement import critical_chain

    chain = " → ".join(critical_chain(timing.pnr.critical_path))
    return (
        f"- measured clock of this build: **{timing.fmax_mhz:.1f} MHz** on {timing.device.part} "
        f"speed grade {timing.speed} (yosys synth_ecp5, nextpnr-ecp5 out of context, seed 1)\n"
        f"- latency per prediction at {timing.fmax_mhz:.1f} MHz: "
        f"**{cycles / timing.fmax_mhz:.1f} µs**\n"
        f"- critical path ({timing.pnr.path_ns:.1f} ns): {chain}"
    )


def _write_report(out, data, model, project, errors, bit_exact, hardware, cycles, timing):
    resources = None
    if timing is not None:
        resources = {r: f"{n} / {timing.fit.available[r]}" for r, n in timing.fit.needed.items()}
    rows = "\n".join(f"| {e.name} | {e.rmse:.3f} | {e.mae:.3f} |" for e in errors)
    resource_rows = (
        "\n".join(f"| {k} | {v} |" for k, v in resources.items())
        if resources
        else "| (skipped) | |"
    )
    text = f"""# lstm-fpga demo: MSFT next-day close on generated hardware

Data: daily Microsoft OHLCV prices 1986-03-13 .. 2017-11-10 from the Kaggle "Huge Stock Market
Dataset", shipped inside `pmdarima` (`pmdarima.datasets.load_msft()`). Windows of 20 days of
(open, high, low, close, volume) predict the next day's close. Chronological split: the last
20 % of days are the test period ({data.test_dates[0]} .. {data.test_dates[-1]},
{len(data.x_test)} windows). Prices enter relative to the window's last close, volume as its
logarithm, min-max scaled with ranges fitted on the training windows only; the forecast is a
relative change turned back into a price with the window's last close.

Model: `nn.LSTM(5, {model.hidden_size})` + `nn.Linear({model.hidden_size}, 1)` on the last
step, trained on CPU with a fixed seed. Hardware: {project.config.lanes} MAC lanes,
16-bit fixed point, calibrated on the training windows.

## Hardware vs reference

**Bit-exact: {"yes" if bit_exact else "NO"}** — all {len(data.x_test)} hardware forecasts
{"equal" if bit_exact else "do not all equal"} the integer reference's.

## Forecast error (test period, USD)

| forecast | RMSE | MAE |
|---|---|---|
{rows}

LSTM forecasts of a price level tend to lag the series; the naive "tomorrow = today" forecast
is the honest baseline. The fixed-point rows show what quantisation costs on top of the float
model.

![forecast](forecast.png)

![last 60 days](forecast_last60.png)

## Speed

- latency per prediction (20 time steps + head, first input beat to the forecast): {cycles:.0f}
  cycles on average
- throughput: {hardware.run_cycles / hardware.steps:.1f} cycles per time step (all windows
  streamed back to back in runs of {SIMULATION_CHUNK}, first input beat to last forecast)
  (bound ⌈4H(I+H)/P⌉ = {project.cycle_bound})
{_speed_lines(cycles, timing)}

## Resources ({"nextpnr, " + timing.device.part if timing else "skipped"})

| resource | count |
|---|---|
{resource_rows}

## Quantisation report (calibration data)

```
{project.report.table() if project.report else "(none)"}
```
"""
    path = out / "report.md"
    path.write_text(text)
    return path
