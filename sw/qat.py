"""Quantisation-aware fine-tuning: train a float ``nn.LSTM`` (+ Linear head) through the
integers the hardware computes.

:class:`QatLstm` wraps a float64 copy of the model's ``nn.LSTM`` and ``nn.Linear`` head with
fixed formats (a :class:`~lstm_fpga.sw.formats.ModelFormats`, usually from post-training
calibration). Its forward pass computes **exactly** the integers of
:func:`~lstm_fpga.sw.reference.run_reference` on :meth:`QatLstm.export`'s model: weights are
quantised like :func:`~lstm_fpga.sw.quantize.quantize_model`, and every rescale, rounding,
saturation (or wrap-around), accumulator alignment and interpolated activation table of
:class:`~lstm_fpga.sw.numerics.LstmDatapath` is applied, in the same order.

Why it is exact: every tensor of the forward pass is a float64 tensor holding integers; the
formats are refused unless every intermediate value the datapath derives
(:meth:`LstmDatapath.intermediate_widths`: accumulators, shifted values, interpolation
products) fits :data:`EXACT_FLOAT_BITS` bits, so sums, products and multiplications by powers
of two are exact in float64 whatever the summation order, and the rounding shifts split a
value into quotient and remainder exactly (:func:`_shift_round`). The test suite checks the
equality on random models (``tests/sw/test_qat.py``).

Gradients use the straight-through estimator: weight quantisation and rescaling pass the
gradient through (scaled by the power of two they apply; zero where the value saturated),
and an activation table passes the derivative of the exact sigmoid/tanh at its input.

Typical use (see ``docs/precision.md``)::

    qat = prepare_qat(net, x_train, batch_first=True, weight_bits=8)  # PTQ formats
    finetune(qat, x_train, y_train, loss="mse", epochs=3)
    model = qat.export()             # the IR: model.save("m") -> lstm-fpga build m.json
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .calibrate import calibrate
from .float_model import FloatLstm
from .formats import CalibrationError, ModelFormats
from .ir import LstmModel
from .numerics import (
    DEFAULT_WIDTH,
    Activation,
    ActivationTable,
    FixedFormat,
    Overflow,
    Rounding,
    quantize,
)
from .quantize import quantize_model
from .shape import CellType, lstm_shape
from .torch_import import from_module, import_model, lstm_batch_first

__all__ = [
    "EXACT_FLOAT_BITS",
    "FinetuneHistory",
    "QatError",
    "QatLstm",
    "finetune",
    "modules_from_float",
    "prepare_qat",
]

#: Widest signed integer every float64 holds exactly (53-bit significand).
EXACT_FLOAT_BITS = 53


class QatError(CalibrationError):
    """Fine-tuning cannot reproduce the integer reference (formats too wide) or bad input."""


# -- exact integer steps with straight-through gradients ---------------------------------------
def _shift_round(values: torch.Tensor, shift: int, rounding: Rounding) -> torch.Tensor:
    """:func:`~lstm_fpga.sw.numerics.shift_round` on integer-valued float64 tensors, exactly:
    ``values = q * 2**shift + r`` with ``0 <= r < 2**shift`` (both exact in float64)."""
    if shift <= 0:
        return values * 2.0**-shift
    quotient = torch.floor(values * 2.0**-shift)
    if rounding is Rounding.FLOOR:
        return quotient
    remainder = values - quotient * 2.0**shift
    return quotient + (remainder >= 2.0 ** (shift - 1)).to(values.dtype)


def _fit(values: torch.Tensor, fmt: FixedFormat, overflow: Overflow) -> torch.Tensor:
    """:func:`~lstm_fpga.sw.numerics.clamp`: saturate, or keep the low ``width`` bits."""
    if overflow is Overflow.SATURATE:
        return values.clamp(fmt.min_int, fmt.max_int)
    span = 2.0**fmt.width
    return torch.remainder(values - fmt.min_int, span) + fmt.min_int


class _Rescale(torch.autograd.Function):
    """``rescale(values, from_frac, fmt)``; the gradient passes scaled by ``2**-shift``."""

    @staticmethod
    def forward(ctx, values, shift, fmt, rounding, overflow):
        shifted = _shift_round(values, shift, rounding)
        result = _fit(shifted, fmt, overflow)
        if overflow is Overflow.SATURATE:
            ctx.save_for_backward((shifted >= fmt.min_int) & (shifted <= fmt.max_int))
        else:
            ctx.save_for_backward(None)
        ctx.scale = 2.0**-shift
        return result

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        grad = grad * ctx.scale
        return (grad if inside is None else grad * inside), None, None, None, None


class _QuantizeWeight(torch.autograd.Function):
    """:func:`~lstm_fpga.sw.numerics.quantize` (half up, saturating): float to integers."""

    @staticmethod
    def forward(ctx, values, fmt):
        scaled = values * 2.0**fmt.frac
        rounded = torch.where(scaled.abs() < 2.0**52, torch.floor(scaled + 0.5), scaled)
        ctx.save_for_backward((rounded >= fmt.min_int) & (rounded <= fmt.max_int))
        ctx.scale = 2.0**fmt.frac
        return rounded.clamp(fmt.min_int, fmt.max_int)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * ctx.scale * inside, None


class _Table(torch.autograd.Function):
    """:meth:`ActivationTable.evaluate`; the gradient is the exact function's derivative."""

    @staticmethod
    def forward(ctx, values, table: ActivationTable, entries: torch.Tensor):
        p = values.clamp(table.low, table.high)
        offset = p - table.low
        index = torch.floor(offset * 2.0**-table.segment_shift)
        y0 = entries[index.long()]
        if table.segment_shift:
            weight = offset - index * 2.0**table.segment_shift
            last = len(table.values) - 1
            y1 = entries[(index.long() + 1).clamp(max=last)]
            y0 = y0 + _shift_round((y1 - y0) * weight, table.segment_shift, table.rounding)
        ctx.save_for_backward(values)
        ctx.table = table
        return y0

    @staticmethod
    def backward(ctx, grad):
        (values,) = ctx.saved_tensors
        table = ctx.table
        x = values * 2.0**-table.input.frac
        if table.function is Activation.SIGMOID:
            s = torch.sigmoid(x)
            slope = s * (1.0 - s)
        else:
            slope = 1.0 - torch.tanh(x) ** 2
        inside = (values >= table.low) & (values <= table.high)
        scale = 2.0 ** (table.output.frac - table.input.frac)
        return grad * slope * scale * inside, None, None


# -- the model ---------------------------------------------------------------------------------
def _check_float_exact(name: str, datapath) -> None:
    for item in datapath.intermediate_widths():
        if item.width > EXACT_FLOAT_BITS:
            raise QatError(
                f"{name}: the {item.what} ({item.operands}) needs {item.width} bits; "
                f"quantisation-aware training reproduces the integers exactly in float64 only "
                f"up to {EXACT_FLOAT_BITS} bits: {item.fix} (or use narrower formats)"
            )


def _refuse_gru(module: nn.Module) -> None:
    """Quantisation-aware training covers ``nn.LSTM`` only: refuse an ``nn.GRU`` clearly."""
    if any(isinstance(m, nn.GRU) for m in module.modules()):
        raise QatError(_GRU_REFUSED)
    if any(isinstance(m, nn.LSTM) and m.proj_size > 0 for m in module.modules()):
        raise QatError(_PROJ_REFUSED)
    if any(name == "attention" for name, _ in module.named_children()):
        raise QatError(_ATTENTION_REFUSED)


_GRU_REFUSED = (
    "quantisation-aware fine-tuning supports nn.LSTM models only, not nn.GRU; quantise a GRU "
    "with post-training calibration (lstm_fpga.sw.calibrate.quantize_from_torch)"
)


_ATTENTION_REFUSED = (
    "quantisation-aware fine-tuning supports nn.LSTM models with an optional Linear head, not "
    "attention pooling; quantise an attention classifier with post-training calibration "
    "(lstm_fpga.sw.calibrate.quantize_from_torch; docs/attention.md)"
)


_PROJ_REFUSED = (
    "quantisation-aware fine-tuning supports nn.LSTM without proj_size only; quantise an "
    "nn.LSTM with proj_size with post-training calibration "
    "(lstm_fpga.sw.calibrate.quantize_from_torch)"
)


def _split_module(module: nn.Module, head: nn.Linear | None) -> tuple[nn.LSTM, nn.Linear | None]:
    """The nn.LSTM and head of ``module`` (validated by the importer first)."""
    _refuse_gru(module)
    if isinstance(module, nn.LSTM):
        return module, head
    import_model(module)  # refuses what the importer refuses, with its message
    lstm = next(m for m in module.modules() if isinstance(m, nn.LSTM))
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return lstm, (linears[0] if linears else None)


class QatLstm(nn.Module):
    """A float64 ``nn.LSTM`` (+ ``nn.Linear`` head) whose forward pass is the integer
    reference of its quantised weights under fixed ``formats``.

    ``lstm`` and ``head`` are copied (as float64); their parameters are what
    :func:`finetune` trains. ``batch_first`` describes inputs as in ``nn.LSTM``; ``head_on``
    is ``"last"`` (the head on each sequence's last valid step) or ``"all"``.
    ``rounding``/``overflow`` are the model's run-time rescaling modes (:class:`LstmModel`).
    """

    def __init__(
        self,
        lstm: nn.LSTM,
        head: nn.Linear | None,
        formats: ModelFormats,
        *,
        batch_first: bool = False,
        head_on: str = "last",
        rounding: Rounding = Rounding.HALF_UP,
        overflow: Overflow = Overflow.SATURATE,
    ):
        super().__init__()
        if not isinstance(formats, ModelFormats):
            raise QatError(f"formats must be ModelFormats, not {type(formats).__name__}")
        if head_on not in ("last", "all"):
            raise QatError(f"head_on must be 'last' or 'all', not {head_on!r}")
        if isinstance(lstm, nn.Module):
            _refuse_gru(lstm)
        self.lstm = copy.deepcopy(lstm).double()
        self.head = None if head is None else copy.deepcopy(head).double()
        self.formats = formats
        self.batch_first = batch_first
        self.head_on = head_on
        self.rounding = rounding
        self.overflow = overflow
        fm = from_module(self.lstm, head=self.head)
        quantize_model(fm, formats)  # refuses formats of another shape, with its message
        arithmetic = {"rounding": rounding, "overflow": overflow}
        self._datapaths = []
        for d, f in zip(fm.directions, formats.directions, strict=True):
            dp = f.datapath(fm.layer_input_size(d.layer), fm.hidden_size, **arithmetic)
            _check_float_exact(d.name, dp)
            tables = [dp.sigmoid, dp.tanh_gate, dp.tanh_cell]
            entries = [torch.tensor(t.values, dtype=torch.float64) for t in tables]
            self._datapaths.append(
                (d.layer, d.reverse, d.name, dp, list(zip(tables, entries, strict=True)))
            )
        self._head_datapath = None
        if formats.head is not None:
            features = fm.hidden_size * fm.num_directions
            self._head_datapath = formats.head.datapath(features, **arithmetic)
            _check_float_exact("head", self._head_datapath)

    # -- weights -------------------------------------------------------------------------------
    def _direction_weights(self, layer: int, reverse: bool, f):
        suffix = f"_l{layer}{'_reverse' if reverse else ''}"
        w_ih = _QuantizeWeight.apply(getattr(self.lstm, "weight_ih" + suffix), f.w_ih)
        w_hh = _QuantizeWeight.apply(getattr(self.lstm, "weight_hh" + suffix), f.w_hh)
        if self.lstm.bias:
            bias = getattr(self.lstm, "bias_ih" + suffix) + getattr(self.lstm, "bias_hh" + suffix)
            bias = _QuantizeWeight.apply(bias, f.bias)
        else:
            bias = torch.zeros(w_hh.shape[0], dtype=torch.float64)
        return w_ih, w_hh, bias

    def export(self) -> LstmModel:
        """The IR of the current weights and formats (what ``lstm-fpga build`` consumes once
        saved: ``export().save("model")`` then ``lstm-fpga build model.json``)."""
        fm = from_module(self.lstm, head=self.head)
        return quantize_model(fm, self.formats, rounding=self.rounding, overflow=self.overflow)

    # -- forward -------------------------------------------------------------------------------
    def quantize_input(self, x) -> torch.Tensor:
        """Float input to integers of the input format (as a float64 tensor), like
        :func:`~lstm_fpga.sw.reference.quantize_input`."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        fmt = self.formats.directions[0].x
        return torch.from_numpy(quantize(x, fmt, self.rounding, self.overflow)).double()

    def forward(self, x, lengths=None, h0=None, c0=None):
        """Integer forward pass on integer input ``x`` (``(B, T, I)`` with ``batch_first``,
        else ``(T, B, I)``; a float64 or integer tensor). Returns ``(output, head)``: the LSTM
        output in the hidden format (layout of ``x``) and the head's output (``None`` without
        a head), integer-valued float64 tensors equal to ``run_reference``'s. ``lengths``
        (B,) marks padded sequences; ``h0``/``c0`` are integer ``(L*D, B, H)`` states."""
        x = torch.as_tensor(x).double()
        if x.ndim != 3:
            raise QatError(f"input must be 3-D (a batch of sequences), not shape {tuple(x.shape)}")
        xs = x.transpose(0, 1) if self.batch_first else x
        T, B = xs.shape[:2]
        lengths = torch.full((B,), T) if lengths is None else torch.as_tensor(lengths).long()
        valid = (torch.arange(T)[:, None] < lengths[None, :])[:, :, None]
        H = self.lstm.hidden_size
        D = 2 if self.lstm.bidirectional else 1
        zeros = torch.zeros((self.lstm.num_layers * D, B, H), dtype=torch.float64)
        h0 = zeros if h0 is None else torch.as_tensor(h0).double()
        c0 = zeros if c0 is None else torch.as_tensor(c0).double()
        layer_in, outs = xs, []
        for k, (layer, reverse, _, dp, tables) in enumerate(self._datapaths):
            w_ih, w_hh, bias = self._direction_weights(layer, reverse, dp.formats)
            weights = (w_ih, w_hh, bias)
            out = self._direction(dp, tables, weights, reverse, layer_in, h0[k], c0[k], valid)
            outs.append(out)
            if reverse or not self.lstm.bidirectional:
                layer_in = torch.cat(outs, dim=2)
                outs = []
        output = layer_in
        head_out = None
        if self.head is not None:
            weight = _QuantizeWeight.apply(self.head.weight, self.formats.head.weight)
            head_bias = self.head.bias
            if head_bias is None:
                head_bias = torch.zeros(weight.shape[0], dtype=torch.float64)
            else:
                head_bias = _QuantizeWeight.apply(head_bias, self.formats.head.bias)
            if self.head_on == "last":
                features = output[lengths - 1, torch.arange(B)]
                head_out = self._head(weight, head_bias, features)
            else:
                head_out = self._head(weight, head_bias, output) * valid
                head_out = head_out.transpose(0, 1) if self.batch_first else head_out
        output = output.transpose(0, 1) if self.batch_first else output
        return output, head_out

    def _rescale(self, values, from_frac: int, fmt: FixedFormat):
        return _Rescale.apply(values, from_frac - fmt.frac, fmt, self.rounding, self.overflow)

    def _direction(self, dp, tables, weights, reverse, xs, h, c, valid):
        f, acc_plan, cell_plan = dp.formats, dp.gate_acc, dp.cell_acc
        w_ih, w_hh, bias = weights
        (sigmoid, sigmoid_entries), (tanh, tanh_entries), (tanh_cell, cell_entries) = tables
        x_shift, h_shift = (2.0**s for s in acc_plan.shifts)
        x_part = (xs @ w_ih.T) * x_shift + bias * 2.0**acc_plan.bias_shift
        fc_shift, ig_shift = (2.0**s for s in cell_plan.shifts)
        steps = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
        out = [None] * xs.shape[0]
        for t in steps:
            acc = x_part[t] + (h @ w_hh.T) * h_shift
            preact = self._rescale(acc, acc_plan.frac, f.preact)
            i, fg, g, o = preact.chunk(4, dim=-1)
            i = _Table.apply(i, sigmoid, sigmoid_entries)
            fg = _Table.apply(fg, sigmoid, sigmoid_entries)
            o = _Table.apply(o, sigmoid, sigmoid_entries)
            g = _Table.apply(g, tanh, tanh_entries)
            cell_acc = (fg * c) * fc_shift + (i * g) * ig_shift
            c_new = self._rescale(cell_acc, cell_plan.frac, f.cell)
            tanh_c = _Table.apply(c_new, tanh_cell, cell_entries)
            h_new = self._rescale(o * tanh_c, dp.hidden_product_frac, f.hidden)
            c = torch.where(valid[t], c_new, c)
            h = torch.where(valid[t], h_new, h)
            out[t] = torch.where(valid[t], h_new, torch.zeros_like(h_new))
        return torch.stack(out)

    def _head(self, weight, bias, features):
        plan = self._head_datapath.acc
        acc = (features @ weight.T) * 2.0 ** plan.shifts[0] + bias * 2.0**plan.bias_shift
        return self._rescale(acc, plan.frac, self.formats.head.output)

    def predict(self, x) -> torch.Tensor:
        """Float input to the dequantised result the loss sees: the head output (or the LSTM
        output without a head), differentiable with respect to the weights."""
        return self._dequantized(*self(self.quantize_input(x)))

    def _dequantized(self, output, head) -> torch.Tensor:
        if head is not None:
            return head * self.formats.head.output.lsb
        return output * self.formats.directions[-1].hidden.lsb


def modules_from_float(fm: FloatLstm) -> tuple[nn.LSTM, nn.Linear | None]:
    """An ``nn.LSTM`` (float64) and head holding ``fm``'s weights, to fine-tune a model known
    only by its state_dict. The combined bias goes to ``bias_ih`` (``bias_hh`` is zero), so
    the import of the result gives ``fm`` back exactly."""
    if fm.cell_type is not CellType.LSTM:
        raise QatError(_GRU_REFUSED)
    if fm.proj_size:
        raise QatError(_PROJ_REFUSED)
    if fm.attention is not None:
        raise QatError(_ATTENTION_REFUSED)
    lstm = nn.LSTM(**lstm_shape(fm), dtype=torch.float64)
    with torch.no_grad():
        for d in fm.directions:
            suffix = f"_l{d.layer}{'_reverse' if d.reverse else ''}"
            getattr(lstm, "weight_ih" + suffix).copy_(torch.tensor(d.w_ih))
            getattr(lstm, "weight_hh" + suffix).copy_(torch.tensor(d.w_hh))
            if fm.bias:
                getattr(lstm, "bias_ih" + suffix).copy_(torch.tensor(d.bias))
                getattr(lstm, "bias_hh" + suffix).zero_()
    head = None
    if fm.head is not None:
        out, features = fm.head.weight.shape
        head = nn.Linear(features, out, dtype=torch.float64)
        with torch.no_grad():
            head.weight.copy_(torch.tensor(fm.head.weight))
            head.bias.copy_(torch.tensor(fm.head.bias))
    return lstm, head


def prepare_qat(
    module: nn.Module,
    calibration_samples,
    *,
    head: nn.Linear | None = None,
    batch_first: bool | None = None,
    width: int = DEFAULT_WIDTH,
    weight_bits: int | None = None,
    overrides=None,
    headroom_bits: int = 0,
    head_on: str = "last",
    rounding: Rounding = Rounding.HALF_UP,
    overflow: Overflow = Overflow.SATURATE,
) -> QatLstm:
    """Calibrate ``module`` (an ``nn.LSTM`` with optional ``head``, or a module holding one
    LSTM and one Linear head) on float samples as :func:`~lstm_fpga.sw.calibrate.calibrate`
    does (``width``, ``weight_bits``, ``overrides``, ``headroom_bits``) and wrap it for
    fine-tuning with those formats. ``batch_first=None`` takes the module's."""
    if batch_first is None:
        batch_first = lstm_batch_first(module)
    lstm, head = _split_module(module, head)
    fm = from_module(lstm, head=head)
    samples = calibration_samples
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    calibration = calibrate(
        fm,
        samples,
        batch_first=batch_first,
        width=width,
        weight_bits=weight_bits,
        overrides=overrides,
        headroom_bits=headroom_bits,
        head_on=head_on,
    )
    return QatLstm(
        lstm,
        head,
        calibration.formats,
        batch_first=batch_first,
        head_on=head_on,
        rounding=rounding,
        overflow=overflow,
    )


@dataclass(frozen=True)
class FinetuneHistory:
    """Mean training loss of every epoch of :func:`finetune`."""

    losses: tuple[float, ...]


_LOSSES: dict[str, Callable] = {
    "mse": lambda predicted, target: nn.functional.mse_loss(predicted, target.double()),
    "cross_entropy": lambda predicted, target: nn.functional.cross_entropy(
        predicted, target.long()
    ),
}


def finetune(
    qat: QatLstm,
    x,
    y,
    *,
    loss: str | Callable = "mse",
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> FinetuneHistory:
    """Fine-tune ``qat``'s weights on float inputs ``x`` (laid out as ``qat.batch_first``
    says) and targets ``y`` with Adam: ``loss`` is ``"mse"`` (``y`` shaped like the output),
    ``"cross_entropy"`` (``y`` class indices) or ``callable(predicted, target)``. The forward
    pass is the integer reference's (:meth:`QatLstm.predict`); seeded and deterministic."""
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise QatError(f"loss must be one of {', '.join(_LOSSES)} or a callable, not {loss!r}")
        loss = _LOSSES[loss]
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise QatError(f"{name} must be a positive int, not {value!r}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise QatError(f"lr must be a positive number, not {lr!r}")
    x_int = qat.quantize_input(x)
    y = torch.as_tensor(np.asarray(y))
    count = x_int.shape[0 if qat.batch_first else 1]
    if len(y) != count:
        raise QatError(f"x holds {count} sequences but y has {len(y)} targets")
    optimizer = torch.optim.Adam(qat.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    qat.train()
    for epoch in range(epochs):
        order = torch.randperm(count, generator=generator)
        total = 0.0
        for start in range(0, count, batch_size):
            batch = order[start : start + batch_size]
            xb = x_int[batch] if qat.batch_first else x_int[:, batch]
            predicted = qat._dequantized(*qat(xb))
            optimizer.zero_grad()
            value = loss(predicted, y[batch])
            value.backward()
            optimizer.step()
            total += value.item() * len(batch)
        losses.append(total / count)
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}: training loss {losses[-1]:.4g}")
    qat.eval()
    return FinetuneHistory(tuple(losses))
