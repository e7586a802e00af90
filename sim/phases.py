"""What the cocotb testbench streams through ``lstm_top``: phases of a :class:`Plan`.

:class:`Stimulus` checks and normalises input sequences as :func:`~lstm_fpga.sim.lstm.simulate`
accepts them; :func:`stimulus_phase`, :func:`init_phase`, :func:`reload_phase` and
:func:`clear_status_phase` turn sequences, initial states, weights and a status clear into
:class:`~lstm_fpga.sim.stimulus.Phase` objects, and :func:`plan_for` puts phases into a plan
with every other input idle. Every port name, beat layout and count comes from the design's
:class:`~lstm_fpga.hw.interface.TopInterface`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sw.float_model import prepare_sequences
from ..sw.ir import LstmModel
from ..sw.shape import CellType
from .design import HardwareDesign
from .stimulus import NO_PAUSES, Pacing, Phase, Plan, SinkSpec, SourceSpec

__all__ = [
    "Stimulus",
    "clear_status_phase",
    "init_phase",
    "initial_states",
    "plan_for",
    "reload_phase",
    "stimulus_phase",
]


def _sequences(model: LstmModel, inputs, lengths, batch_first):
    """Time-major ``(T, B, I)`` int64, lengths ``(B,)`` and whether the input was unbatched."""
    if isinstance(inputs, list | tuple):
        if lengths is not None:
            raise ValueError("a list of sequences carries its own lengths; drop lengths=")
        arrays = [np.asarray(seq) for seq in inputs]
        if not arrays:
            raise ValueError("the list of input sequences is empty")
        for k, seq in enumerate(arrays):
            if seq.ndim != 2 or seq.shape[1] != model.input_size or seq.shape[0] < 1:
                raise ValueError(
                    f"sequence {k} has shape {seq.shape}; each must be (T_b >= 1, "
                    f"{model.input_size})"
                )
        lengths = np.array([seq.shape[0] for seq in arrays], dtype=np.int64)
        padded = np.zeros((int(lengths.max()), len(arrays), model.input_size), dtype=np.int64)
        for k, seq in enumerate(arrays):
            _check_integer(seq)
            padded[: seq.shape[0], k] = seq
        xs, lengths, unbatched = prepare_sequences(
            padded, False, lengths, model.input_size, dtype=np.int64
        )
    else:
        _check_integer(np.asarray(inputs))
        xs, lengths, unbatched = prepare_sequences(
            inputs, batch_first, lengths, model.input_size, dtype=np.int64
        )
    fmt = model.input_format
    valid = np.arange(xs.shape[0])[:, None] < lengths[None, :]
    used = xs[valid]
    if used.size and (used.min() < fmt.min_int or used.max() > fmt.max_int):
        raise ValueError(
            f"inputs hold values in [{used.min()}, {used.max()}] outside the input format {fmt} "
            f"([{fmt.min_int}, {fmt.max_int}])"
        )
    return xs, lengths, unbatched


def _check_integer(array: np.ndarray) -> None:
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"inputs must be integers in the model's input format, got dtype {array.dtype}; "
            f"convert floats with lstm_fpga.sw.reference.quantize_input(model, x)"
        )


def initial_states(design: HardwareDesign, h0, c0, batch: int):
    """``h0``/``c0`` as ``(L*D, B, H)`` int64 arrays (``None`` when neither is given; ``c0``
    always ``None`` for a GRU, which has no cell state)."""
    if h0 is None and c0 is None:
        return None, None
    model = design.model
    gru = model.cell_type is CellType.GRU
    if gru and c0 is not None:
        raise ValueError("an nn.GRU has no cell state: give h0 only (c0 must be None)")
    LD, H = len(model.directions), model.hidden_size
    states = []
    kinds = [("h0", h0, [d.formats.hidden for d in model.directions], model.real_hidden_size)]
    if not gru:
        kinds.append(("c0", c0, list(model.cell_formats), H))
    for name, state, formats, H in kinds:
        if state is None:
            states.append(np.zeros((LD, batch, H), dtype=np.int64))
            continue
        array = np.asarray(state)
        if array.dtype.kind not in "iu":
            raise TypeError(
                f"{name} must hold integers in the state formats, got dtype {array.dtype}; "
                f"quantize it with lstm_fpga.sw.numerics.quantize"
            )
        if array.shape == (LD, H):
            array = np.repeat(array[:, None, :], batch, axis=1)
        if array.shape != (LD, batch, H):
            raise ValueError(
                f"{name} has shape {array.shape}; expected (L*D, B, H) = {(LD, batch, H)} or "
                f"{(LD, H)} (the same state for every sequence), as nn.LSTM takes it"
            )
        for k, fmt in enumerate(formats):
            if array[k].min() < fmt.min_int or array[k].max() > fmt.max_int:
                raise ValueError(
                    f"{name}[{k}] holds values outside its format {fmt} "
                    f"([{fmt.min_int}, {fmt.max_int}])"
                )
        states.append(array.astype(np.int64))
    return states[0], None if gru else states[1]


@dataclass(frozen=True, eq=False)
class Stimulus:
    """Sequences ready to stream: integer ``inputs`` time-major ``(T, B, I)``, ``lengths``
    ``(B,)`` and how the caller laid them out (to give results back the same way)."""

    inputs: np.ndarray
    lengths: np.ndarray
    unbatched: bool = False
    batch_first: bool = False

    @classmethod
    def prepare(cls, model: LstmModel, inputs, lengths=None, batch_first: bool = False):
        """Check and normalise ``inputs`` as :func:`simulate` accepts them."""
        xs, seq_lengths, unbatched = _sequences(model, inputs, lengths, batch_first)
        return cls(xs, seq_lengths, unbatched, batch_first)

    @property
    def batch(self) -> int:
        return self.inputs.shape[1]

    def subset(self, first: int, stop: int) -> Stimulus:
        """Sequences ``first .. stop-1`` (time-major, trimmed to their longest)."""
        lengths = self.lengths[first:stop]
        return Stimulus(self.inputs[: int(lengths.max()), first:stop], lengths)


def init_phase(design: HardwareDesign, h0: np.ndarray, c0: np.ndarray | None) -> Phase:
    """The plan phase that loads ``h0``/``c0`` (``(L*D, H)`` integers) through ``init``:
    ``h0`` flattened, then ``c0`` (a GRU: ``h0`` only, ``c0`` is ``None``), ``tlast`` on the
    final value. Sequences that start with
    ``carry_state`` low begin from this state."""
    interface = design.interface
    values = interface.init_values(h0, c0)
    last = np.zeros(values.size, dtype=bool)
    last[-1] = True
    return Phase(
        sources=(SourceSpec(interface.init.name, values, last),),
        timeout_cycles=100 * values.size + 1000,
        drain_cycles=4,
    )


def reload_phase(design: HardwareDesign, model: LstmModel, pacing: Pacing = NO_PAUSES) -> Phase:
    """The plan phase that loads every weight and bias of ``model`` (the generated shape and
    formats) through the ``w`` stream (words of :func:`lstm_fpga.hw.reload.weight_load_words`
    packed by the interface, ``tlast`` on the final word); sequences after it use them."""
    if not isinstance(model, LstmModel):
        raise TypeError(f"weights must be an LstmModel (the IR), not {type(model).__name__}")
    interface = design.interface
    words = interface.weight_words(model)
    last = np.zeros(len(words), dtype=bool)
    last[-1] = True
    return Phase(
        sources=(SourceSpec(interface.w.name, words, last, pacing),),
        timeout_cycles=(2 + pacing.max_cycles) * len(words) + 1000,
        drain_cycles=4,
    )


def clear_status_phase(design: HardwareDesign, cycles: int = 2) -> Phase:
    """A phase that pulses ``clear_status`` for ``cycles`` cycles: the overflow flag and the
    saturation counters restart from zero (the next :func:`stimulus_phase` drives it low)."""
    from ..hw.interface import Control

    return Phase(drive=((Control.CLEAR_STATUS.value, 1),), idle_cycles=cycles, drain_cycles=0)


def stimulus_phase(
    design: HardwareDesign,
    stimulus: Stimulus,
    *,
    input_pacing: Pacing = NO_PAUSES,
    output_pacing: Pacing = NO_PAUSES,
    timeout_cycles: int | None = None,
    abort_after_cycles: int | None = None,
    carry_state: bool = False,
    read_state: bool = False,
    clear_status: bool = False,
) -> Phase:
    """The plan phase that streams ``stimulus`` through ``x`` (sequences back to back,
    ``tlast`` on each one's final element) and collects one ``y`` packet per sequence.

    The control inputs ``carry_state`` (start each sequence from the previous one's final
    state instead of the loaded ``h0``/``c0``), ``read_state`` (emit ``h_n``/``c_n`` on
    ``state`` after each sequence) and ``clear_status`` are held for the whole phase, and the
    status outputs are sampled at its end. With ``abort_after_cycles`` the phase pulses reset
    after that many cycles instead (the hardware must then be clean for the next phase)."""
    from ..hw.interface import Control

    interface = design.interface
    xs, lengths = stimulus.inputs, stimulus.lengths
    I = design.model.input_size
    beats = np.concatenate([interface.pack_x(xs[: lengths[b], b]) for b in range(stimulus.batch)])
    last = interface.x_last(lengths)
    # Interleaved hardware: each group's B sequences time-multiplexed step by step.
    order = interface.x_order(lengths)
    beats, last = beats[order], last[order]
    y_beats = interface.y_beats(lengths)
    if timeout_cycles is None:
        # Generous: 8x the bound per step plus pauses, plus a fixed pipeline allowance.
        pauses = 1 + max(input_pacing.max_cycles, output_pacing.max_cycles)
        per_step = 8 * design.cycle_bound + pauses * (I + interface.y_features)
        state = interface.state_beats * pauses * int(read_state)
        timeout_cycles = int(lengths.sum()) * per_step + stimulus.batch * state + 10_000
    kept = int(np.count_nonzero(~interface.dropped(lengths)))
    state_beats = kept * interface.state_beats if read_state else 0
    sinks = (
        SinkSpec(
            interface.y.name,
            packets=int(np.count_nonzero(y_beats)),
            pacing=output_pacing,
            progress=True,  # one y packet per sequence
        ),
        SinkSpec(interface.state.name, beats=state_beats, pacing=output_pacing, signed=False),
    )
    controls = {
        Control.CARRY_STATE: carry_state,
        Control.READ_STATE: read_state,
        Control.CLEAR_STATUS: clear_status,
    }
    return Phase(
        sources=(SourceSpec(interface.x.name, beats, last, input_pacing),),
        sinks=sinks,
        drive=tuple((control.value, int(value)) for control, value in controls.items()),
        sample=interface.status_outputs,
        timeout_cycles=timeout_cycles,
        drain_cycles=2 * design.cycle_bound + 64,
        abort_after_cycles=abort_after_cycles,
    )


def plan_for(design: HardwareDesign, phases) -> Plan:
    """A :class:`Plan` of ``phases`` for ``design``: every input of the top but clock and
    reset is held idle from the start (no beats offered or accepted, control inputs low)."""
    return Plan(tuple(phases), initial=design.interface.idle_inputs)
