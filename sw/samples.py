"""Calibration samples: input sequences and initial states, chunked, and running statistics.

Shared by calibration (ranges) and the quantisation report (errors): both run the float model
(and the report the integer reference) over the same chunks of :data:`CHUNK_SEQUENCES`
sequences, which bounds the memory of the recorded intermediates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .float_model import (
    ATTENTION_RECORDED,
    FloatLstm,
    TensorRecorder,
    _initial_state,
    prepare_sequences,
)
from .formats import CalibrationError, TensorRange, tensor_names
from .shape import CellType

__all__ = [
    "CHUNK_SEQUENCES",
    "RECORDED",
    "CalibrationData",
    "Statistics",
    "chunks",
    "is_recorded",
    "observe_ranges",
    "prepare_samples",
    "record_float",
    "weight_statistics",
    "weight_values",
]

#: Sequences per float/integer pass: bounds the memory of recorded intermediates.
CHUNK_SEQUENCES = 256
#: Per-direction tensors recorded at every time step (the others are weights and biases).
RECORDED = ("preact", "gate", "cell", "proj_in", "hidden")


@dataclass(frozen=True, eq=False)
class CalibrationData:
    """Time-major samples ``xs`` ``(T, B, I)``, ``lengths`` ``(B,)`` and the initial states
    ``h0``/``c0`` ``(L*D, B, H)`` (``None``: zeros, as ``nn.LSTM``)."""

    xs: np.ndarray
    lengths: np.ndarray
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None

    @property
    def sequences(self) -> int:
        return int(self.xs.shape[1])

    @property
    def time_steps(self) -> int:
        return int(self.lengths.sum())


def prepare_samples(
    fm: FloatLstm, samples, batch_first: bool, lengths, h0=None, c0=None
) -> CalibrationData:
    """Samples as time-major float64 ``(T, B, I)`` with ``lengths`` and initial states.

    ``samples`` is an array ``(T, I)``, ``(T, B, I)`` (``(B, T, I)`` with ``batch_first``)
    or a list of ``(T_b, I)`` sequences of different lengths; ``h0``/``c0`` are float
    ``(L*D, B, H)`` (``(L*D, H)`` for one unbatched sequence) or ``None`` for zeros.
    """
    if hasattr(samples, "detach"):  # a torch tensor
        samples = samples.detach().cpu().numpy()
    if isinstance(samples, list | tuple) and samples and np.ndim(samples[0]) == 2:
        if lengths is not None:
            raise CalibrationError("give lengths only with a padded array, not with a list")
        seqs = [np.asarray(s, dtype=np.float64) for s in samples]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        if any(s.shape[1:] != (fm.input_size,) for s in seqs):
            shapes = [s.shape for s in seqs]
            raise CalibrationError(
                f"sample sequences must each be (T, {fm.input_size}), got shapes {shapes}"
            )
        if lengths.min() < 1:
            raise CalibrationError("a sample sequence has no time steps")
        padded = np.zeros((int(lengths.max()), len(seqs), fm.input_size))
        for b, s in enumerate(seqs):
            padded[: len(s), b] = s
        samples, batch_first = padded, False
    try:
        xs, lengths, unbatched = prepare_sequences(samples, batch_first, lengths, fm.input_size)
    except (TypeError, ValueError) as error:
        raise CalibrationError(f"calibration samples: {error}") from None
    if xs.shape[1] == 0:
        raise CalibrationError(
            "calibration samples hold no sequences (batch size 0); give at least one sequence "
            "of at least one time step"
        )
    if c0 is not None and fm.cell_type is CellType.GRU:
        raise CalibrationError(
            "calibration c0 is given but an nn.GRU has no cell state: give h0 only"
        )
    states = []
    for name, state in (("h0", h0), ("c0", c0)):
        if state is not None:
            if hasattr(state, "detach"):
                state = state.detach().cpu().numpy()
            rows = fm.num_layers * fm.num_directions
            try:
                size = fm.real_hidden_size if name == "h0" else fm.hidden_size
                state = _initial_state(state, rows, xs.shape[1], size, unbatched, name)
            except ValueError as error:
                raise CalibrationError(f"calibration {error}") from None
            if not np.all(np.isfinite(state)):
                raise CalibrationError(f"calibration {name} contains NaN or infinite values")
        states.append(state)
    xs = np.ascontiguousarray(xs)  # numpy's matmul leaves BLAS for transposed batches
    valid = np.arange(xs.shape[0])[:, None] < lengths[None, :]
    if not np.all(np.isfinite(xs[valid])):
        raise CalibrationError("calibration samples contain NaN or infinite values")
    return CalibrationData(xs, lengths, *states)


def chunks(data: CalibrationData, progress: str | None = None):
    """The batch in slices of :data:`CHUNK_SEQUENCES` sequences, trimmed to their length.

    ``progress`` names a bar (sequences done, ETA; :mod:`lstm_fpga.progress`) shown on a
    terminal while the chunks are consumed; ``None`` shows none."""
    from ..progress import progress_bar

    bar = progress_bar(
        total=data.sequences, desc=progress or "", unit="seq", enabled=progress is not None
    )
    with bar:
        for start in range(0, data.sequences, CHUNK_SEQUENCES):
            part = slice(start, start + CHUNK_SEQUENCES)
            lengths = data.lengths[part]
            yield CalibrationData(
                np.ascontiguousarray(data.xs[: lengths.max(), part]),
                lengths,
                None if data.h0 is None else data.h0[:, part],
                None if data.c0 is None else data.c0[:, part],
            )
            bar.update(len(lengths))


def weight_statistics(fm: FloatLstm) -> dict[str, Statistics]:
    """A :class:`Statistics` per tensor of ``fm`` (:func:`tensor_names` order), the weights'
    and biases' values already in; the activations' are empty."""
    names = tensor_names(
        fm.num_layers,
        fm.bidirectional,
        fm.head is not None,
        fm.cell_type,
        fm.proj_size > 0,
        fm.attention is not None,
    )
    stats = {name: Statistics() for name in names}
    for name in names:
        if not is_recorded(name):
            stats[name].add(name, weight_values(fm, name))
    return stats


def observe_ranges(
    fm: FloatLstm, data: CalibrationData, head_on: str, progress: bool = False
) -> tuple[TensorRange, ...]:
    """Range of every tensor: weights from their values, activations from the float run on
    ``data`` (and the initial states from their samples); ``progress`` shows a bar."""
    stats = weight_statistics(fm)
    for k, d in enumerate(fm.directions):
        for state, tensor in ((data.h0, "hidden"), (data.c0, "cell")):
            if state is not None:
                stats[f"{d.name}.{tensor}"].add(f"{d.name}.{tensor}", state[k].ravel())
    for part in chunks(data, "calibrating" if progress else None):
        recorder = record_float(fm, part, head_on)
        for name in filter(is_recorded, stats):
            stats[name].add(name, recorder.get(name))
    return tuple(stats[name].range(name) for name in stats)


def record_float(fm: FloatLstm, data: CalibrationData, head_on: str) -> TensorRecorder:
    """Every tensor of the float run on ``data`` (see :meth:`FloatLstm.forward`)."""
    recorder = TensorRecorder()
    fm.forward(data.xs, data.h0, data.c0, lengths=data.lengths, head_on=head_on, recorder=recorder)
    return recorder


def is_recorded(name: str) -> bool:
    """Activations (recorded per step) as opposed to weights and biases."""
    owner, _, tensor = name.partition(".")
    if owner == "attention":
        return tensor in ATTENTION_RECORDED
    return name in ("x", "head.output") or tensor in RECORDED


def weight_values(fm: FloatLstm, name: str) -> np.ndarray:
    owner, _, tensor = name.partition(".")
    if owner in ("head", "attention"):
        return getattr(getattr(fm, owner), tensor).ravel()
    for d in fm.directions:
        if d.name == owner:
            return getattr(d, tensor).ravel()
    raise KeyError(name)


@dataclass
class Statistics:
    """Running statistics of one tensor over the chunks of a batch."""

    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    signal: float = 0.0
    noise: float = 0.0
    max_error: float = 0.0
    saturations: int = 0

    def add(self, name: str, exact: np.ndarray, approx=None, saturations: int = 0) -> None:
        self.saturations += int(saturations)
        if not exact.size:
            return
        self.count += exact.size
        self.min = min(self.min, float(exact.min()))
        self.max = max(self.max, float(exact.max()))
        if approx is None:
            return
        if approx.shape != exact.shape:  # the float and integer runs must record alike
            raise RuntimeError(
                f"internal error: {name} has {approx.size} quantised values but {exact.size} "
                f"float values"
            )
        error = exact - approx
        self.signal += float(np.dot(exact, exact))
        self.noise += float(np.dot(error, error))
        self.max_error = max(self.max_error, float(np.abs(error).max()))

    def range(self, name: str) -> TensorRange:
        if not self.count:
            return TensorRange(name, 0.0, 0.0, 0)
        return TensorRange(name, self.min, self.max, self.count)

    @property
    def sqnr_db(self) -> float:
        if self.noise == 0.0:
            return math.inf
        if self.signal == 0.0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)
