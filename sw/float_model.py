"""Float LSTM parameters and a float64 NumPy forward pass that can record every tensor.

:class:`FloatLstm` is what the PyTorch import produces and what calibration and quantisation
consume. Its :meth:`FloatLstm.forward` is ``nn.LSTM`` in float64 (plus the optional head) and
records the range of every intermediate tensor for calibration. The dequantised view of an
IR (:func:`lstm_fpga.sw.reference.dequantized_model`) runs through the same code, so the
"float path" of a quantised model differs from PyTorch only by weight quantisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .numerics import Activation
from .shape import CellType, LstmShape

__all__ = [
    "ATTENTION_RECORDED",
    "FloatAttention",
    "FloatDirection",
    "FloatHead",
    "FloatLstm",
    "TensorRecorder",
    "prepare_sequences",
]

#: Attention pooling's tensors recorded in a forward pass (as ``attention.<name>``).
ATTENTION_RECORDED = ("preact", "tanh", "score", "exp", "alpha", "context")


def _frozen_float(value) -> np.ndarray:
    array = np.array(value, dtype=np.float64)  # copy: the object owns its arrays
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FloatDirection:
    """Float weights of one layer direction (PyTorch gate order i, f, g, o).

    For an ``nn.GRU`` (gate order r, z, n) ``w_ih``/``w_hh`` have ``3H`` rows and ``bias``
    ``4H``: ``[b_ir + b_hr, b_iz + b_hz, b_in, b_hn]`` (``b_hn`` stays apart: PyTorch adds it
    inside the reset product).
    """

    layer: int
    reverse: bool
    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray  # b_ih + b_hh
    #: ``W_hr`` (R x H) of an ``nn.LSTM(proj_size=R)``; then ``w_hh`` is (4H x R).
    w_hr: np.ndarray | None = None

    def __post_init__(self):
        for name in ("w_ih", "w_hh", "bias"):
            object.__setattr__(self, name, _frozen_float(getattr(self, name)))
        if self.w_hr is not None:
            object.__setattr__(self, "w_hr", _frozen_float(self.w_hr))

    @property
    def name(self) -> str:
        return f"l{self.layer}{'_reverse' if self.reverse else ''}"


@dataclass(frozen=True, eq=False)
class FloatHead:
    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        for name in ("weight", "bias"):
            object.__setattr__(self, name, _frozen_float(getattr(self, name)))


@dataclass(frozen=True, eq=False)
class FloatAttention:
    """Attention pooling over time (``docs/attention.md``): ``w`` (A x F, the ``nn.Linear``
    ``attention.W``'s weight), ``bias`` (A) and ``v`` (A, from ``attention.v.weight`` of shape
    (1, A)); ``F`` is the LSTM's output features. ``e_t = v . tanh(w h_t + bias)``, ``alpha =
    softmax_t(e)``, ``context = sum_t alpha_t h_t``."""

    w: np.ndarray
    bias: np.ndarray
    v: np.ndarray

    def __post_init__(self):
        for name in ("w", "bias", "v"):
            object.__setattr__(self, name, _frozen_float(getattr(self, name)))
        A = self.w.shape[0] if self.w.ndim == 2 else None
        if A is None or A < 1 or self.bias.shape != (A,) or self.v.shape != (A,):
            raise ValueError(
                f"attention weights have shapes w {self.w.shape}, bias {self.bias.shape}, v "
                f"{self.v.shape}; expected (A, features), (A,), (A,)"
            )

    @property
    def attention_size(self) -> int:
        return self.w.shape[0]

    @property
    def features(self) -> int:
        return self.w.shape[1]

    def pool(self, output, valid, recorder: TensorRecorder | None = None) -> np.ndarray:
        """The context ``(B, F)`` of LSTM outputs ``(T, B, F)`` over the ``valid`` ``(T, B)``
        steps of each sequence (the softmax covers those only)."""
        u = output @ self.w.T + self.bias
        th = Activation.TANH(u)
        e = th @ self.v
        peak = np.where(valid, e, -np.inf).max(axis=0)
        p = np.where(valid, np.exp(np.where(valid, e - peak, 0.0)), 0.0)
        alpha = p / p.sum(axis=0)
        context = np.einsum("tb,tbf->bf", alpha, output)
        if recorder is not None:
            for name, value in (("preact", u), ("tanh", th), ("score", e), ("exp", p)):
                recorder.add(f"attention.{name}", value, valid)
            recorder.add("attention.alpha", alpha, valid)
            recorder.add("attention.context", context)
        return context


@dataclass
class TensorRecorder:
    """Collects float values of named tensors during a forward pass.

    Names: ``x`` (model input), ``{dir}.preact``, ``{dir}.gate``, ``{dir}.cell`` (LSTM only),
    ``{dir}.proj_in`` (LSTMP only: ``o * tanh(c)`` before the projection), ``{dir}.hidden``,
    ``attention.{preact,tanh,score,exp,alpha,context}`` (with attention pooling),
    ``head.output``; weights are recorded by calibration directly.
    """

    values: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, name: str, array: np.ndarray, mask: np.ndarray | None = None) -> None:
        array = np.asarray(array, dtype=np.float64)
        if mask is not None:
            array = array[mask]
        self.values.setdefault(name, []).append(array.ravel())

    def get(self, name: str) -> np.ndarray:
        parts = self.values.get(name, [])
        return np.concatenate(parts) if parts else np.zeros(0)


def prepare_sequences(x, batch_first: bool, lengths, input_size: int, dtype=np.float64):
    """Normalise an input batch to time-major ``(T, B, I)`` plus ``lengths`` (B,).

    Accepts ``(T, I)`` (one unbatched sequence, like ``nn.LSTM``) or ``(T, B, I)``
    (``(B, T, I)`` with ``batch_first``). Returns ``(x, lengths, unbatched)``.
    """
    x = np.asarray(x)
    if x.dtype.kind not in "iuf":
        raise TypeError(f"input must be numeric, got dtype {x.dtype}")
    x = x.astype(dtype, copy=False)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]
    elif x.ndim == 3:
        if batch_first:
            x = x.transpose(1, 0, 2)
    else:
        raise ValueError(
            f"input has shape {x.shape}; expected (T, {input_size}) or "
            f"{'(B, T, ' if batch_first else '(T, B, '}{input_size})"
        )
    if x.shape[2] != input_size:
        raise ValueError(
            f"input has {x.shape[2]} features per time step but the model expects {input_size}"
        )
    T, B = x.shape[0], x.shape[1]
    if T < 1:
        raise ValueError("input has no time steps")
    if lengths is None:
        lengths = np.full(B, T, dtype=np.int64)
    else:
        lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if lengths.shape != (B,):
            raise ValueError(f"lengths has {lengths.size} entries for a batch of {B}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(
                f"lengths must lie in [1, {T}], got [{lengths.min()}, {lengths.max()}]"
            )
    return x, lengths, unbatched


@dataclass(frozen=True, eq=False)
class FloatLstm(LstmShape):
    """An ``nn.LSTM`` (``proj_size`` too) or ``nn.GRU`` (``cell_type``) and optional Linear
    head as float arrays; with ``attention`` the head takes the attention-pooled context
    (one output per sequence) instead of a step's output."""

    directions: tuple[FloatDirection, ...]
    head: FloatHead | None = None
    cell_type: CellType = CellType.LSTM
    attention: FloatAttention | None = None

    def __post_init__(self):
        object.__setattr__(self, "cell_type", CellType.parse(self.cell_type))
        if self.attention is not None:
            features = self.real_hidden_size * self.num_directions
            if not isinstance(self.attention, FloatAttention):
                raise ValueError(f"attention must be a FloatAttention, not {self.attention!r}")
            if self.attention.features != features:
                raise ValueError(
                    f"attention.w has {self.attention.features} inputs but the "
                    f"{self.cell_type.module} outputs {features} features"
                )
            if self.head is None:
                raise ValueError("attention pooling needs the Linear head (fc) after it")
        R = self.proj_size
        if not isinstance(R, int) or isinstance(R, bool) or not 0 <= R < self.hidden_size:
            raise ValueError(
                f"proj_size must be an int from 0 to hidden_size - 1 = {self.hidden_size - 1} "
                f"(as nn.LSTM requires), not {R!r}"
            )
        if R and self.cell_type is not CellType.LSTM:
            module = self.cell_type.module
            raise ValueError(f"proj_size is an nn.LSTM argument; an {module} has none")
        for d in self.directions:
            shape = None if d.w_hr is None else d.w_hr.shape
            if shape != ((R, self.hidden_size) if R else None):
                raise ValueError(
                    f"{d.name}.w_hr has shape {shape}, expected "
                    f"{(R, self.hidden_size) if R else None} for proj_size={R}"
                )

    def direction(self, layer: int, reverse: bool) -> FloatDirection:
        return self.directions[layer * self.num_directions + int(reverse)]

    def save(self, path) -> Path:
        """Save as one ``.npz`` (arrays plus a JSON description of the shape)."""
        path = Path(path)
        meta = {
            "kind": "lstm-fpga float model",
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "bias": self.bias,
            "head": self.head is not None,
            "cell_type": self.cell_type.value,
            "proj_size": self.proj_size,
            "attention": self.attention is not None,
        }
        arrays = {"meta": np.array(json.dumps(meta))}
        if self.attention is not None:
            a = self.attention
            arrays |= {"attention.w": a.w, "attention.bias": a.bias, "attention.v": a.v}
        for d in self.directions:
            arrays |= {f"{d.name}.w_ih": d.w_ih, f"{d.name}.w_hh": d.w_hh, f"{d.name}.bias": d.bias}
            if d.w_hr is not None:
                arrays[f"{d.name}.w_hr"] = d.w_hr
        if self.head is not None:
            arrays |= {"head.weight": self.head.weight, "head.bias": self.head.bias}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(f, **arrays)
        return path

    @classmethod
    def load(cls, path) -> FloatLstm:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
            meta = json.loads(str(arrays["meta"]))
            D = 2 if meta["bidirectional"] else 1
            proj_size = meta.get("proj_size", 0)
            directions = []
            for layer in range(meta["num_layers"]):
                for reverse in (False, True)[:D]:
                    name = f"l{layer}{'_reverse' if reverse else ''}"
                    directions.append(
                        FloatDirection(
                            layer,
                            reverse,
                            arrays[f"{name}.w_ih"],
                            arrays[f"{name}.w_hh"],
                            arrays[f"{name}.bias"],
                            arrays[f"{name}.w_hr"] if proj_size else None,
                        )
                    )
            head = None
            if meta["head"]:
                head = FloatHead(arrays["head.weight"], arrays["head.bias"])
            attention = None
            if meta.get("attention"):
                attention = FloatAttention(
                    arrays["attention.w"], arrays["attention.bias"], arrays["attention.v"]
                )
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"{path}: not a float model saved by lstm-fpga ({error})") from None
        return cls(
            meta["input_size"],
            meta["hidden_size"],
            meta["num_layers"],
            meta["bidirectional"],
            meta["bias"],
            tuple(directions),
            head,
            CellType.parse(meta.get("cell_type", "lstm")),
            attention,
            proj_size=proj_size,
        )

    def forward(
        self,
        x,
        h0=None,
        c0=None,
        *,
        batch_first: bool = False,
        lengths=None,
        head_on: str = "last",
        recorder: TensorRecorder | None = None,
    ):
        """Run the model in float64. Returns ``(output, (h_n, c_n), head_output)``.

        Shapes follow ``nn.LSTM``: ``output`` is ``(T, B, D*H)`` (``(B, T, D*H)`` with
        ``batch_first``; unbatched input gives unbatched output), ``h_n``/``c_n`` are
        ``(L*D, B, H)`` (an LSTMP's ``h0``/``h_n`` ``(L*D, B, proj_size)``, its ``output``
        ``D*proj_size`` features). Steps past a sequence's length output zeros and leave its
        state alone.
        ``head_output`` is ``None`` without a head, ``(B, O)`` for ``head_on="last"`` (the head
        on each sequence's last valid output) and shaped like ``output`` for ``"all"``. With
        attention pooling it is ``(B, O)``: the head on each sequence's context (pooled over
        its valid steps); ``head_on`` must then be ``"last"`` (one result per sequence).
        A GRU (``nn.GRU``) has no cell state: ``c0`` must be ``None`` and ``c_n`` is ``None``.
        """
        xs, lengths, unbatched = prepare_sequences(x, batch_first, lengths, self.input_size)
        T, B = xs.shape[:2]
        H, D = self.hidden_size, self.num_directions
        gru = self.cell_type is CellType.GRU
        if gru and c0 is not None:
            raise ValueError("an nn.GRU has no cell state: give h0 only (c0 must be None)")
        Hr = self.real_hidden_size
        h0 = _initial_state(h0, self.num_layers * D, B, Hr, unbatched, "h0")
        c0 = _initial_state(c0, self.num_layers * D, B, H, unbatched, "c0")
        run = _float_gru_direction if gru else _float_direction
        valid = np.arange(T)[:, None] < lengths[None, :]  # (T, B)
        if recorder is not None:
            recorder.add("x", xs, valid)
        layer_in = xs
        h_n, c_n = np.zeros((self.num_layers * D, B, Hr)), np.zeros((self.num_layers * D, B, H))
        for layer in range(self.num_layers):
            outs = []
            for reverse in (False, True)[:D]:
                k = layer * D + int(reverse)
                d = self.direction(layer, reverse)
                out, h_n[k], c_n[k] = run(d, layer_in, h0[k], c0[k], valid, recorder)
                outs.append(out)
            layer_in = np.concatenate(outs, axis=2)
        output = layer_in
        head_out = None
        if self.attention is not None:
            check_attention_head_on(head_on)
            context = self.attention.pool(output, valid, recorder)
            head_out = context @ self.head.weight.T + self.head.bias
            if recorder is not None:
                recorder.add("head.output", head_out)
        elif self.head is not None:
            if head_on == "last":
                last = output[lengths - 1, np.arange(B)]
                head_out = last @ self.head.weight.T + self.head.bias
                if recorder is not None:
                    recorder.add("head.output", head_out)
            elif head_on == "all":
                head_out = (output @ self.head.weight.T + self.head.bias) * valid[:, :, None]
                if recorder is not None:
                    recorder.add("head.output", head_out, valid)
            else:
                raise ValueError(f"head_on must be 'last' or 'all', not {head_on!r}")
        c_n = None if gru else c_n
        return _finish(output, h_n, c_n, head_out, head_on, batch_first, unbatched)


def check_attention_head_on(head_on: str) -> None:
    """With attention pooling the head runs once per sequence on the context: only
    ``head_on="last"`` (the default) means that."""
    if head_on != "last":
        raise ValueError(
            f"head_on={head_on!r}: with attention pooling the head runs once per sequence, on "
            f"the context; use head_on='last' (output='last' on the command line)"
        )


def _initial_state(state, rows, B, H, unbatched, name):
    if state is None:
        return np.zeros((rows, B, H))
    state = np.asarray(state, dtype=np.float64)
    if unbatched and state.ndim == 2:
        state = state[:, None, :]
    if state.shape != (rows, B, H):
        raise ValueError(f"{name} has shape {state.shape}, expected {(rows, B, H)}")
    return state


def _finish(output, h_n, c_n, head_out, head_on, batch_first, unbatched):
    """Put time-major results into nn.LSTM's layout (shared by the float and integer paths)."""
    if head_out is not None and head_on == "all" and batch_first:
        head_out = head_out.transpose(1, 0, 2)
    if batch_first:
        output = output.transpose(1, 0, 2)
    if unbatched:
        output = output[:, 0] if not batch_first else output[0]
        h_n = h_n[:, 0]
        c_n = None if c_n is None else c_n[:, 0]
        if head_out is not None:
            head_out = head_out[0] if head_on == "last" else head_out[:, 0]
    return output, (h_n, c_n), head_out


def _float_direction(d: FloatDirection, xs, h, c, valid, recorder):
    T, B = xs.shape[:2]
    out = np.zeros((T, B, d.w_hh.shape[1]))  # h_t: H features, R with a projection
    x_part = xs @ d.w_ih.T + d.bias  # (T, B, 4H): the input part has no recurrence
    sigmoid, tanh = Activation.SIGMOID, Activation.TANH
    for t in range(T - 1, -1, -1) if d.reverse else range(T):
        preact = x_part[t] + h @ d.w_hh.T
        i, f, g, o = np.split(preact, 4, axis=1)
        i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        c_new = f * c + i * g
        tanh_c = tanh(c_new)
        h_new = o * tanh_c
        if recorder is not None and d.w_hr is not None:
            recorder.add(f"{d.name}.proj_in", h_new, valid[t])
        if d.w_hr is not None:  # LSTMP: h_t = W_hr (o * tanh(c_t))
            h_new = h_new @ d.w_hr.T
        m = valid[t][:, None]
        if recorder is not None:
            mask = valid[t]
            recorder.add(f"{d.name}.preact", preact, mask)
            recorder.add(f"{d.name}.gate", np.concatenate([i, f, g, o, tanh_c], axis=1), mask)
            recorder.add(f"{d.name}.cell", c_new, mask)
            recorder.add(f"{d.name}.hidden", h_new, mask)
        c = np.where(m, c_new, c)
        h = np.where(m, h_new, h)
        out[t] = np.where(m, h_new, 0.0)
    return out, h, c


def _float_gru_direction(d: FloatDirection, xs, h, c, valid, recorder):
    """``nn.GRU``'s step: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h' = (1 - z) * n + z * h``. ``c`` passes through (a GRU has none)."""
    T, B = xs.shape[:2]
    H = d.w_hh.shape[1]
    out = np.zeros((T, B, H))
    b_rzn, b_hn = d.bias[: 3 * H], d.bias[3 * H :]
    x_part = xs @ d.w_ih.T + b_rzn  # (T, B, 3H)
    sigmoid, tanh = Activation.SIGMOID, Activation.TANH
    for t in range(T - 1, -1, -1) if d.reverse else range(T):
        h_part = h @ d.w_hh.T
        rz_pre = x_part[t, :, : 2 * H] + h_part[:, : 2 * H]
        r, z = np.split(sigmoid(rz_pre), 2, axis=1)
        xn = x_part[t, :, 2 * H :]
        hn = h_part[:, 2 * H :] + b_hn
        n_pre = xn + r * hn
        n = tanh(n_pre)
        h_new = (1.0 - z) * n + z * h
        m = valid[t][:, None]
        if recorder is not None:
            mask = valid[t]
            preact = np.concatenate([rz_pre, xn, hn, n_pre], axis=1)
            recorder.add(f"{d.name}.preact", preact, mask)
            recorder.add(f"{d.name}.gate", np.concatenate([r, z, n], axis=1), mask)
            recorder.add(f"{d.name}.hidden", h_new, mask)
        h = np.where(m, h_new, h)
        out[t] = np.where(m, h_new, 0.0)
    return out, h, c
