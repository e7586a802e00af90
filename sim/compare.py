"""Hardware against the integer reference (bit for bit) and against the float model.

:func:`compare` takes a :class:`~lstm_fpga.sim.result.SimulationResult` and returns a
:class:`ComparisonReport`:

* integer equality of every output value (and ``h_n``/``c_n`` when the hardware exposes
  them) with :func:`lstm_fpga.sw.reference.run_reference`; the first mismatch is located as
  (sequence, time step, layer, direction, unit) with both values;
* max-abs and RMS error of the dequantised hardware outputs against a float model
  (PyTorch's module or state_dict, a :class:`~lstm_fpga.sw.float_model.FloatLstm`, or by
  default the float math on the IR's dequantised weights);
* throughput and latency, reported apart: the run's cycles per time step (from the first
  input beat to the last output beat of the whole run, divided by its time steps; sequences
  overlap in the pipeline) against the bound of every matrix the lanes compute -- each layer
  direction's ``ceil(4H(I_k+H)/P)`` per step and the Linear head's ``ceil(O*F/P)`` per run --
  with the lane utilisation (useful multiply-accumulates per built lane and cycle), a
  per-matrix breakdown (:class:`JobCycles`), and each sequence's latency (its first input
  beat to its last output beat).

``report.to_json()`` is machine-readable, ``str(report)`` is for people.
"""

from __future__ import annotations

import numpy as np

from ..sw.float_model import FloatLstm
from ..sw.ir import LstmModel
from ..sw.numerics import dequantize
from ..sw.reference import (
    ReferenceResult,
    dequantized_model,
    run_reference,
)
from ..sw.shape import CellType
from .report import (
    CYCLE_SLACK,
    ComparisonReport,
    CycleReport,
    FloatError,
    JobCycles,
    Mismatch,
    SaturationCheck,
    TensorCheck,
)
from .result import SimulationResult

# The report classes are defined (and listed) in .report; importing them from here still works.
__all__ = ["compare", "cycle_report"]


def _time_major(result: SimulationResult) -> np.ndarray:
    """``result.outputs`` as ``(T, B, F)`` (mode ``"all"``) or ``(B, F)`` (mode ``"last"``)."""
    out = result.outputs
    if result.output_mode == "last":
        return out[None, :] if result.unbatched else out
    if result.unbatched:
        return out[:, None, :]
    return out.transpose(1, 0, 2) if result.batch_first else out


def _chained(
    run,
    xs,
    lengths,
    h0,
    c0,
    LD: int,
    H: int,
    interleave: int = 1,
    gru: bool = False,
    proj_size: int = 0,
):
    """Run sequences one after the other, each starting from the previous one's final state
    (the hardware's ``carry_state`` mode; with ``interleave`` B > 1 from the final state of
    the sequence B before, the same place in the previous group): ``run(x (n, 1, I), h (LD,
    1, H), c)`` returns ``(output (n, 1, F), h_n, c_n, head, saturations)``. ``gru``: no cell
    state (``c`` is ``None`` throughout, and so is the returned ``c_n``); ``proj_size``: an
    LSTMP's ``h`` has ``R`` features."""
    T, B = xs.shape[:2]
    chains = min(interleave, B)
    Hh = H if proj_size == 0 else proj_size  # h's features (an LSTMP's R)
    zero = np.zeros((LD, H), dtype=xs.dtype)
    zero_h = np.zeros((LD, Hh), dtype=xs.dtype)
    hs = [zero_h if h0 is None else h0[:, k if interleave > 1 else 0] for k in range(chains)]
    cs = [
        None if gru else zero if c0 is None else c0[:, k if interleave > 1 else 0]
        for k in range(chains)
    ]
    outputs, h_n, c_n, heads, counts = None, np.zeros((LD, B, Hh)), np.zeros((LD, B, H)), [], None
    for b in range(B):
        n = int(lengths[b])
        h, c = hs[b % chains], cs[b % chains]
        out, h_b, c_b, head, sat = run(xs[:n, b : b + 1], h[:, None], None if gru else c[:, None])
        if outputs is None:
            outputs = np.zeros((T, B, out.shape[-1]), dtype=out.dtype)
        outputs[:n, b] = out[:, 0]
        h_n[:, b] = hs[b % chains] = h_b[:, 0]
        if not gru:
            c_n[:, b] = cs[b % chains] = c_b[:, 0]
        heads.append(head)
        counts = sat if counts is None else counts + sat
    head = None
    if heads[0] is not None:
        if heads[0].ndim == 2:  # "last": (1, O) each
            head = np.concatenate(heads, axis=0)
        else:  # "all": (n, 1, O) each
            head = np.zeros((T, B, heads[0].shape[-1]), dtype=heads[0].dtype)
            for b, values in enumerate(heads):
                head[: values.shape[0], b] = values[:, 0]
    c_n = None if gru else c_n.astype(outputs.dtype)
    return outputs, h_n.astype(outputs.dtype), c_n, head, counts


def _reference(result: SimulationResult, model: LstmModel) -> ReferenceResult:
    """The integer reference of what ``result`` ran (initial state, state mode, output
    mode), time-major."""
    mode = result.output_mode
    if not result.carry_state:
        return run_reference(
            model, result.inputs, result.h0, result.c0, lengths=result.lengths, head_on=mode
        )

    def run(x, h, c):
        r = run_reference(model, x, h, c, head_on=mode)
        return r.output, r.h_n, r.c_n, r.head, r.saturations

    LD, H = len(model.directions), model.hidden_size
    gru = model.cell_type is CellType.GRU
    output, h_n, c_n, head, counts = _chained(
        run,
        result.inputs,
        result.lengths,
        result.h0,
        result.c0,
        LD,
        H,
        result.design.interface.interleave,
        gru,
        model.proj_size,
    )
    return ReferenceResult(output, h_n, c_n, head, counts)


def _expected_y(result: SimulationResult, output: np.ndarray, head) -> np.ndarray:
    """What ``y`` should carry given the model's ``output`` (T, B, D*H) and ``head``."""
    if head is not None:
        return head
    if result.output_mode == "last":
        return output[result.lengths - 1, np.arange(result.lengths.size)]
    return output


def _mismatch(model: LstmModel, tensor: str, b: int, t: int, j: int, hw, ref) -> Mismatch:
    H = model.hidden_size
    is_head = tensor == "head"
    return Mismatch(
        tensor=tensor,
        sequence=b,
        step=t,
        layer=model.num_layers if is_head else model.num_layers - 1,
        direction="reverse" if (j >= H and not is_head) else "forward",
        unit=j if is_head else j % H,
        hardware=int(hw),
        reference=int(ref),
    )


def _check_outputs(result: SimulationResult, reference: np.ndarray) -> TensorCheck:
    model = result.model
    tensor = "head" if model.head is not None else "output"
    hw = _time_major(result)
    if result.output_mode == "last":
        differ = hw != reference  # (B, F)
        if not differ.any():
            return TensorCheck(tensor, differ.size, 0, None)
        b, j = (int(v) for v in np.argwhere(differ)[0])  # row-major: sequence, then feature
        t = int(result.lengths[b]) - 1
        first = _mismatch(model, tensor, b, t, j, hw[b, j], reference[b, j])
        return TensorCheck(tensor, differ.size, int(differ.sum()), first)
    valid = np.arange(hw.shape[0])[:, None] < result.lengths[None, :]  # (T, B)
    differ = (hw != reference) & valid[:, :, None]
    count = int(valid.sum()) * hw.shape[2]
    if not differ.any():
        return TensorCheck(tensor, count, 0, None)
    # First in (sequence, step, feature) order.
    steps, sequences, features = np.nonzero(differ)
    order = np.lexsort((features, steps, sequences))
    t, b, j = int(steps[order[0]]), int(sequences[order[0]]), int(features[order[0]])
    first = _mismatch(model, tensor, b, t, j, hw[t, b, j], reference[t, b, j])
    return TensorCheck(tensor, count, int(differ.sum()), first)


def _state_major(result: SimulationResult, state: np.ndarray) -> np.ndarray:
    return state[:, None, :] if result.unbatched else state


def _check_state(name: str, model: LstmModel, hw: np.ndarray, ref: np.ndarray) -> TensorCheck:
    differ = hw != ref  # (L*D, B, H)
    if not differ.any():
        return TensorCheck(name, differ.size, 0, None)
    rows, sequences, units = np.nonzero(differ)
    order = np.lexsort((units, rows, sequences))
    k, b, u = int(rows[order[0]]), int(sequences[order[0]]), int(units[order[0]])
    D = model.num_directions
    first = Mismatch(
        tensor=name,
        sequence=b,
        step=None,
        layer=k // D,
        direction="reverse" if k % D else "forward",
        unit=u,
        hardware=int(hw[k, b, u]),
        reference=int(ref[k, b, u]),
    )
    return TensorCheck(name, differ.size, int(differ.sum()), first)


def _float_model(model: LstmModel, float_model) -> tuple[FloatLstm, str]:
    if float_model is None:
        return dequantized_model(model), "float math on the dequantised IR weights"
    if isinstance(float_model, FloatLstm):
        return float_model, "the given float model"
    from ..sw.torch_import import ModelImportError, import_model

    fm = import_model(float_model)
    if fm.cell_type is not model.cell_type:
        raise ModelImportError(
            f"the float model is an {fm.cell_type.module} but the hardware runs an "
            f"{model.cell_type.module}; compare with the float weights of the model that was built"
        )
    return fm, "PyTorch float weights"


def _float_inputs(result: SimulationResult, float_inputs) -> np.ndarray:
    """Float inputs time-major ``(T, B, I)``: given ones (the layout passed to simulate), or
    the dequantised integer inputs the hardware saw."""
    T, B, I = result.inputs.shape
    if float_inputs is None:
        return dequantize(result.inputs, result.model.input_format)
    if isinstance(float_inputs, list | tuple):
        padded = np.zeros((T, B, I))
        for b, seq in enumerate(float_inputs):
            seq = np.asarray(seq, dtype=np.float64)
            padded[: seq.shape[0], b] = seq
        return padded
    x = np.asarray(float_inputs, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    elif result.batch_first:
        x = x.transpose(1, 0, 2)
    if x.shape != (T, B, I):
        raise ValueError(f"float_inputs have shape {x.shape} (time-major), expected {(T, B, I)}")
    return x


def _float_state(state, formats):
    if state is None:
        return None
    return np.stack([dequantize(s, f) for s, f in zip(state, formats, strict=True)])


def _float_initial(given, state, unbatched: bool, formats):
    """The float model's initial state: the given float one (unclamped, ``(L*D, B, H)`` or
    ``(L*D, H)`` for an unbatched run), else the run's integer one dequantised."""
    if given is None:
        return _float_state(state, formats)
    array = np.asarray(given, dtype=np.float64)
    return array[:, None, :] if unbatched and array.ndim == 2 else array


def _float_run(
    result: SimulationResult,
    model: LstmModel,
    fm: FloatLstm,
    xs: np.ndarray,
    float_h0=None,
    float_c0=None,
):
    """The float model on ``xs`` with the run's initial state (or the given float one) and
    state mode: ``(output, h_n, c_n, head)`` time-major."""
    mode = result.output_mode
    hidden = [d.formats.hidden for d in model.directions]
    h0 = _float_initial(float_h0, result.h0, result.unbatched, hidden)
    gru = model.cell_type is CellType.GRU
    c0 = None if gru else _float_initial(float_c0, result.c0, result.unbatched, model.cell_formats)
    if not result.carry_state:
        out, (h_n, c_n), head = fm.forward(xs, h0, c0, lengths=result.lengths, head_on=mode)
        return out, h_n, c_n, head

    def run(x, h, c):
        out, (h_n, c_n), head = fm.forward(x, h, c, head_on=mode)
        return out, h_n, c_n, head, None

    LD, H = len(model.directions), model.hidden_size
    interleave = result.design.interface.interleave
    out, h_n, c_n, head, _ = _chained(
        run, xs, result.lengths, h0, c0, LD, H, interleave, gru, model.proj_size
    )
    return out, h_n, c_n, head


def compare(
    result: SimulationResult,
    model: LstmModel | None = None,
    *,
    float_model=None,
    float_inputs=None,
    float_h0=None,
    float_c0=None,
) -> ComparisonReport:
    """Compare ``result`` with the integer reference of ``model`` (default: the model the
    hardware was generated from) and with a float model.

    The reference runs what the hardware ran: the same initial state (``result.h0``/``c0``),
    state mode (``result.carry_state``: each sequence continues from the previous one) and
    output mode (every step, or each sequence's last; the Linear head when the model has
    one). ``float_model`` is an ``nn.Module``/state_dict/file PyTorch import accepts or a
    :class:`~lstm_fpga.sw.float_model.FloatLstm`; by default the IR's dequantised weights in
    float64. ``float_inputs`` are the unquantised inputs in the layout given to
    :func:`~lstm_fpga.sim.lstm.simulate` (default: the dequantised integer inputs);
    ``float_h0``/``float_c0`` the unquantised initial states (default: the run's dequantised
    ones). Give the float data the integers were quantised from, so that the error against
    float includes what quantising the inputs clamped.
    """
    model = result.model if model is None else model
    result.design.interface.check_same_shape(model)
    reference = _reference(result, model)
    checks = [_check_outputs(result, _expected_y(result, reference.output, reference.head))]
    unchecked = []
    states = [("h_n", result.h_n, reference.h_n), ("c_n", result.c_n, reference.c_n)]
    if model.cell_type is CellType.GRU:
        states = states[:1]  # no cell state
    for name, hw, ref in states:
        if hw is None:
            unchecked.append(name)
        else:
            checks.append(_check_state(name, model, _state_major(result, hw), ref))
    fm, float_name = _float_model(model, float_model)
    xs = _float_inputs(result, float_inputs)
    f_out, f_h, f_c, f_head = _float_run(result, model, fm, xs, float_h0, float_c0)
    y_float = _expected_y(result, f_out, f_head)
    hw_y = dequantize(_time_major(result), result.output_format)
    y_name = checks[0].tensor
    if result.output_mode == "last":
        errors = [_float_error(y_name, hw_y, y_float, result.output_format.lsb)]
    else:
        valid = np.arange(xs.shape[0])[:, None] < result.lengths[None, :]
        errors = [_float_error(y_name, hw_y[valid], y_float[valid], result.output_format.lsb)]
    if result.h_n is not None:
        h_lsb = min(d.formats.hidden.lsb for d in model.directions)
        errors.append(_float_error("h_n", _state_major(result, result.h_n_float), f_h, h_lsb))
    if result.c_n is not None:
        lsb = min(f.lsb for f in model.cell_formats)
        errors.append(_float_error("c_n", _state_major(result, result.c_n_float), f_c, lsb))
    saturations = None
    if result.saturations is not None:
        saturations = SaturationCheck(result.saturations, reference.saturations)
    cycles = cycle_report(result)
    exact = all(check.mismatches == 0 for check in checks)
    exact = exact and (saturations is None or saturations.agrees) and not result.overflow
    return ComparisonReport(
        simulator=result.design.simulator,
        bit_exact=exact,
        checks=tuple(checks),
        unchecked=tuple(unchecked),
        float_reference=float_name,
        float_errors=tuple(errors),
        cycles=cycles,
        output_mode=result.output_mode,
        saturations=saturations,
        overflow=result.overflow,
    )


def _jobs(result: SimulationResult, kept: np.ndarray) -> tuple[int, tuple[JobCycles, ...]]:
    """The lanes built and every matrix's evaluations in ``result``'s run."""
    plan = result.design.plan
    steps = int(result.lengths[kept].sum())
    sequences = int(kept.sum())
    jobs = []
    for m in plan.matrices:
        runs = steps
        # (with attention pooling the lanes' head job is the score matrix: every step)
        if m.is_head and result.output_mode == "last" and plan.attention is None:
            runs = sequences
        # A GRU's useful rows are 3H (its xn and hn rows are zero over one segment each).
        rows = m.useful_rows
        bound = -(-rows * m.columns // result.design.lanes)
        jobs.append(JobCycles(m.name, rows, m.columns, runs, bound, m.mac_cycles))
    return plan.lanes, tuple(jobs)


def cycle_report(result: SimulationResult) -> CycleReport:
    """Throughput, latency and the per-matrix breakdown of ``result`` (no comparison)."""
    lengths = result.lengths
    kept = result.cycles > 0  # refused sequences (longer than max_seq_len) produce nothing
    steps = int(lengths[kept].sum())
    lanes, jobs = _jobs(result, kept)
    run_cycles = 0
    if kept.any():
        rows = np.flatnonzero(kept)
        ends = result.step_end_cycles[rows].max(axis=1)
        starts = ends - result.cycles[rows]  # each sequence's first input beat
        run_cycles = int(ends.max() - starts.min())
    latencies = result.cycles[kept]
    bound_cycles = sum(j.bound * j.runs for j in jobs)
    useful = sum(j.rows * j.columns * j.runs for j in jobs)
    return CycleReport(
        lanes=lanes,
        bound_per_step=result.design.cycle_bound,
        cycles_per_step=run_cycles / steps if steps else 0.0,
        lane_utilization=useful / (lanes * run_cycles) if run_cycles else 0.0,
        within_bound=run_cycles <= bound_cycles + CYCLE_SLACK * steps,
        sequence_lengths=tuple(int(n) for n in lengths),
        sequence_cycles=tuple(int(c) for c in result.cycles),
        dut_cycles=int(result.dut_cycles),
        dut_counter_agrees=int(result.dut_cycles) == int(result.cycles[-1]),
        paced=result.paced,
        lanes_requested=result.design.lanes,
        steps=steps,
        run_cycles=run_cycles,
        bound_cycles=bound_cycles,
        latency_min=int(latencies.min()) if latencies.size else 0,
        latency_mean=float(latencies.mean()) if latencies.size else 0.0,
        latency_max=int(latencies.max()) if latencies.size else 0,
        jobs=jobs,
    )


def _float_error(name: str, hw: np.ndarray, ref: np.ndarray, lsb: float) -> FloatError:
    diff = np.abs(np.asarray(hw, dtype=np.float64) - np.asarray(ref, dtype=np.float64))
    if diff.size == 0:
        return FloatError(name, 0.0, 0.0, lsb, 0)
    return FloatError(
        name, float(diff.max()), float(np.sqrt(np.mean(diff**2))), float(lsb), int(diff.size)
    )
