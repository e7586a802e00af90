"""Seeded random models, inputs and states, and the format sets tests and benchmarks share.

One builder, :func:`random_model`, makes every random IR model of the test suite and the
benchmarks: weights drawn uniformly from ``±scale/sqrt(fan)`` (PyTorch's ``nn.LSTM``
initialisation for ``scale=1``; larger scales drive gates into saturation), biases from
``±1``, quantised into a named set of :data:`FORMAT_SETS` per layer. The same seed always
gives the same model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .sw.float_model import FloatDirection, FloatHead, FloatLstm
from .sw.ir import LayerDirection, LinearHead, LstmModel
from .sw.numerics import FixedFormat, GruFormats, HeadFormats, LstmFormats, quantize
from .sw.shape import CellType, lstm_shape

__all__ = [
    "FORMAT_SETS",
    "HEAD_FORMAT_SETS",
    "Q",
    "gru_formats",
    "padded",
    "quantize_float_model",
    "random_float_model",
    "random_input",
    "random_lstmp_model",
    "random_model",
    "random_sequences",
    "random_state",
    "width_formats",
]

Q = FixedFormat.parse


def _layer(*formats: str) -> LstmFormats:
    """:class:`LstmFormats` from its eight formats in field order."""
    return LstmFormats(*map(Q, formats))


#: Layer format sets: 16-bit with differently scaled W_ih/W_hh (two product alignment
#: shifts), the same with equal weight formats, a narrow 12-bit set, 8-bit inputs/W_ih next
#: to 16-bit state, and "tight" ranges (pre-activation ±4, cell ±2, hidden ±0.5) where every
#: rescale saturates. A layer above the first replaces ``x`` with the hidden format below.
FORMAT_SETS = {
    #           x        w_ih     w_hh     bias     preact   gate     cell     hidden
    "q16": _layer("Q3.12", "Q1.14", "Q0.15", "Q3.12", "Q4.11", "Q0.15", "Q4.11", "Q0.15"),
    "q16_even": _layer("Q3.12", "Q1.14", "Q1.14", "Q3.12", "Q4.11", "Q0.15", "Q4.11", "Q0.15"),
    "q12": _layer("Q2.9", "Q1.10", "Q1.10", "Q2.9", "Q3.8", "Q0.11", "Q3.8", "Q0.11"),
    "mixed": _layer("Q3.4", "Q1.6", "Q1.14", "Q3.12", "Q4.11", "Q0.15", "Q4.11", "Q0.15"),
    "tight": _layer("Q3.12", "Q1.14", "Q1.14", "Q3.12", "Q2.9", "Q0.11", "Q1.10", "Q-1.13"),
}
#: Head format sets (``weight``, ``bias``, ``output``; ``x`` is the last hidden format).
HEAD_FORMAT_SETS = {
    "q16": dict(weight=Q("Q1.14"), bias=Q("Q3.12"), output=Q("Q4.11")),
    "tight": dict(weight=Q("Q1.14"), bias=Q("Q3.12"), output=Q("Q1.6")),
}


def width_formats(width: int = 16) -> tuple[LstmFormats, dict[str, FixedFormat]]:
    """Formats of ``width`` bits for PyTorch-initialised weights (|w| < 1) and inputs in
    [-4, 4): the layer formats and the head's ``weight``/``bias``/``output``."""
    w, bias = FixedFormat(width, width - 2), FixedFormat(width, width - 3)
    data, unit = FixedFormat(width, width - 4), FixedFormat(width, width - 1)
    layer = LstmFormats(
        x=data, w_ih=w, w_hh=w, bias=bias, preact=data, gate=unit, cell=data, hidden=unit
    )
    return layer, dict(weight=w, bias=bias, output=data)


def gru_formats(formats: LstmFormats | GruFormats) -> GruFormats:
    """The :class:`GruFormats` of a format set: the LSTM set's formats without ``cell``."""
    if isinstance(formats, GruFormats):
        return formats
    return GruFormats(**{k: v for k, v in formats.items() if k != "cell"})


def _layer_formats(formats, layer: int) -> LstmFormats:
    """Layer ``layer``'s formats from a name, an :class:`LstmFormats` or a sequence of them
    (used round-robin over the layers)."""
    if isinstance(formats, str | LstmFormats):
        formats = (formats,)
    chosen = formats[layer % len(formats)]
    return FORMAT_SETS[chosen] if isinstance(chosen, str) else chosen


def quantize_float_model(fm: FloatLstm, formats="q16", head_formats="q16") -> LstmModel:
    """Quantise ``fm`` (round to nearest, saturate) into fixed formats, no calibration.

    ``formats`` as in :func:`random_model`; every layer's ``x`` becomes what feeds it (the
    first layer's ``x``, then the hidden format below). ``head_formats`` is a name of
    :data:`HEAD_FORMAT_SETS` or a dict of ``weight``, ``bias`` and ``output`` formats.
    """
    directions = []
    gru = fm.cell_type is CellType.GRU
    for d in fm.directions:
        f = _layer_formats(formats, d.layer)
        if d.layer > 0:
            f = replace(f, x=_layer_formats(formats, d.layer - 1).hidden)
        if gru:
            f = gru_formats(f)
        directions.append(
            LayerDirection(
                d.layer,
                d.reverse,
                quantize(d.w_ih, f.w_ih),
                quantize(d.w_hh, f.w_hh),
                quantize(d.bias, f.bias),
                f,
            )
        )
    head = None
    if fm.head is not None:
        chosen = HEAD_FORMAT_SETS[head_formats] if isinstance(head_formats, str) else head_formats
        hf = HeadFormats(x=directions[-1].formats.hidden, **chosen)
        head = LinearHead(quantize(fm.head.weight, hf.weight), quantize(fm.head.bias, hf.bias), hf)
    return LstmModel(
        **lstm_shape(fm), directions=tuple(directions), head=head, cell_type=fm.cell_type
    )


def random_float_model(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    bias: bool = True,
    head: int | None = None,
    seed: int = 0,
    scale: float = 1.0,
    cell_type: CellType | str = CellType.LSTM,
) -> FloatLstm:
    """Random float weights (see the module docstring); ``head`` outputs, ``None`` for none.

    Draw order: per layer and direction ``W_ih``, ``W_hh``, bias (drawn even when ``bias``
    is false, then zeroed, so the weights do not depend on it); then the head.
    ``cell_type="gru"`` draws an ``nn.GRU``'s ``3H`` rows and ``4H`` biases
    (``[b_r, b_z, b_in, b_hn]``).
    """
    rng = np.random.default_rng(seed)
    cell_type = CellType.parse(cell_type)
    H, D, G = hidden_size, 2 if bidirectional else 1, cell_type.gates
    limit = scale / np.sqrt(H)
    directions = []
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else D * H
        for reverse in (False, True)[:D]:
            w_ih = rng.uniform(-limit, limit, (G * H, in_size))
            w_hh = rng.uniform(-limit, limit, (G * H, H))
            b = rng.uniform(-1.0, 1.0, 4 * H) * bias
            directions.append(FloatDirection(layer, reverse, w_ih, w_hh, b))
    linear = None
    if head is not None:
        limit = scale / np.sqrt(D * H)
        weight = rng.uniform(-limit, limit, (head, D * H))
        linear = FloatHead(weight, rng.uniform(-1.0, 1.0, head) * bias)
    return FloatLstm(
        input_size, H, num_layers, bidirectional, bias, tuple(directions), linear, cell_type
    )


def random_model(*shape, formats="q16", head_formats="q16", **options) -> LstmModel:
    """A seeded random IR model: :func:`random_float_model` quantised by
    :func:`quantize_float_model`.

    ``shape`` and ``options`` are :func:`random_float_model`'s arguments (``input_size``,
    ``hidden_size``, ``num_layers``, ``bidirectional``, ``bias``, ``head``, ``seed``,
    ``scale``, ``cell_type``; a GRU takes each format set without its ``cell``).
    ``formats`` is a name of :data:`FORMAT_SETS`, an :class:`LstmFormats`, or a
    sequence of them used round-robin over the layers; ``head_formats`` as in
    :func:`quantize_float_model`.
    """
    return quantize_float_model(random_float_model(*shape, **options), formats, head_formats)


def random_lstmp_model(
    input_size: int,
    hidden_size: int,
    proj_size: int,
    num_layers: int = 1,
    head: int = 0,
    seed: int = 0,
    bidirectional: bool = False,
) -> tuple[LstmModel, np.ndarray]:
    """A seeded ``nn.LSTM(proj_size=R)`` (and an ``nn.Linear`` head of ``head`` outputs if
    ``head``), in PyTorch's own initialisation, calibrated by
    :func:`~lstm_fpga.sw.calibrate.quantize_from_torch` on seeded inputs: the IR and those
    inputs (time-major ``(8, 4, input_size)``, uniform in ``±2``)."""
    import torch

    from .sw.calibrate import quantize_from_torch

    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(
        input_size, hidden_size, num_layers, proj_size=proj_size, bidirectional=bidirectional
    ).double()
    source = lstm.state_dict()
    if head:
        linear = torch.nn.Linear(proj_size * (1 + bidirectional), head).double()
        source = {**source, **{f"fc.{k}": v for k, v in linear.state_dict().items()}}
    x = np.random.default_rng(seed).uniform(-2, 2, (8, 4, input_size))
    model, _ = quantize_from_torch(source, x)
    return model, x


def random_input(model: LstmModel, steps: int, rng=1) -> np.ndarray:
    """Integer inputs ``(steps, I)`` spanning 90 % of the input format; ``rng`` is a seed or
    a ``numpy.random.Generator`` (which advances)."""
    rng = np.random.default_rng(rng)
    fmt = model.input_format
    return quantize(rng.uniform(-0.9, 0.9, (steps, model.input_size)) * fmt.max_value, fmt)


def random_sequences(model: LstmModel, lengths, rng=1) -> list[np.ndarray]:
    """One :func:`random_input` per entry of ``lengths``, drawn in order from one ``rng``."""
    rng = np.random.default_rng(rng)
    return [random_input(model, n, rng) for n in lengths]


def padded(sequences) -> np.ndarray:
    """Sequences of different lengths as one zero-padded time-major ``(T, B, I)`` array."""
    T = max(len(s) for s in sequences)
    return np.stack([np.pad(s, ((0, T - len(s)), (0, 0))) for s in sequences], axis=1)


def random_state(model: LstmModel, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Random integer ``(h0, c0)`` of shape ``(L*D, H)`` spanning each direction's formats
    (a GRU's ``c0`` is ``None``: it has no cell state)."""
    rng = np.random.default_rng(rng)
    H = model.hidden_size
    h0 = [
        quantize(rng.uniform(-1, 1, H) * d.formats.hidden.max_value, d.formats.hidden)
        for d in model.directions
    ]
    if model.cell_type is CellType.GRU:
        return np.array(h0), None
    c0 = [
        quantize(rng.uniform(-1, 1, H) * d.formats.cell.max_value, d.formats.cell)
        for d in model.directions
    ]
    return np.array(h0), np.array(c0)
