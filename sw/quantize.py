"""Quantisation: float weights and a model's formats to the integer IR, and back to formats."""

from __future__ import annotations

import numpy as np

from .float_model import FloatLstm
from .formats import Calibration, CalibrationError, ModelFormats
from .ir import AttentionPooling, LayerDirection, LinearHead, LstmModel
from .numerics import FixedFormat, Overflow, Rounding, quantize
from .shape import lstm_shape

__all__ = ["model_formats", "quantize_model"]


def _weights(values, fmt: FixedFormat) -> np.ndarray:
    # Weights are quantised offline: always round to nearest and saturate.
    return quantize(values, fmt, Rounding.HALF_UP, Overflow.SATURATE)


def quantize_model(
    float_model: FloatLstm,
    formats: ModelFormats | Calibration,
    *,
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> LstmModel:
    """Quantise ``float_model``'s weights to ``formats``: the IR.

    Weights and biases (``b_ih + b_hh``) are rounded to nearest and saturated whatever
    ``rounding``/``overflow`` say; those two govern the hardware's run-time rescaling.
    """
    if isinstance(formats, Calibration):
        formats = formats.formats
    fm = float_model
    if (formats.num_layers, formats.bidirectional, formats.head is not None) != (
        fm.num_layers,
        fm.bidirectional,
        fm.head is not None,
    ):
        raise CalibrationError(
            f"the formats are for num_layers={formats.num_layers}, bidirectional="
            f"{formats.bidirectional}, head={formats.head is not None} but the model has "
            f"num_layers={fm.num_layers}, bidirectional={fm.bidirectional}, "
            f"head={fm.head is not None}"
        )
    if formats.cell_type is not fm.cell_type:
        raise CalibrationError(
            f"the formats are for an {formats.cell_type.module} but the model is an "
            f"{fm.cell_type.module}; calibrate this model for its formats"
        )
    if formats.projected != (fm.proj_size > 0):
        raise CalibrationError(
            f"the formats are for an nn.LSTM {'with' if formats.projected else 'without'} "
            f"proj_size but the model has proj_size={fm.proj_size}; calibrate this model for "
            f"its formats"
        )
    if (formats.attention is not None) != (fm.attention is not None):
        raise CalibrationError(
            f"the formats are for a model {'with' if formats.attention else 'without'} "
            f"attention pooling but the model has {'it' if fm.attention else 'none'}; "
            f"calibrate this model for its formats"
        )
    directions = tuple(
        LayerDirection(
            layer=d.layer,
            reverse=d.reverse,
            w_ih=_weights(d.w_ih, f.w_ih),
            w_hh=_weights(d.w_hh, f.w_hh),
            bias=_weights(d.bias, f.bias),
            formats=f,
            w_hr=None if d.w_hr is None else _weights(d.w_hr, f.w_hr),
        )
        for d, f in zip(fm.directions, formats.directions, strict=True)
    )
    head = None
    if fm.head is not None:
        f = formats.head
        head = LinearHead(_weights(fm.head.weight, f.weight), _weights(fm.head.bias, f.bias), f)
    attention = None
    if fm.attention is not None:
        a, f = fm.attention, formats.attention
        attention = AttentionPooling(
            _weights(a.w, f.w), _weights(a.bias, f.bias), _weights(a.v, f.v), f
        )
    return LstmModel(
        **lstm_shape(fm),
        directions=directions,
        head=head,
        rounding=rounding,
        overflow=overflow,
        cell_type=fm.cell_type,
        attention=attention,
    )  # proj_size comes with lstm_shape


def model_formats(model: LstmModel) -> ModelFormats:
    """The formats of an IR as :class:`ModelFormats` (what :func:`quantize_model` took)."""
    return ModelFormats(
        model.num_layers,
        model.bidirectional,
        tuple(d.formats for d in model.directions),
        None if model.head is None else model.head.formats,
        None if model.attention is None else model.attention.formats,
    )
