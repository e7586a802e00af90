"""The shape of a stack of LSTM layers: one home for what the float model, the formats and the
IR share about it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields

__all__ = ["SHAPE_FIELDS", "CellType", "LayerStack", "LstmShape", "lstm_shape"]


class CellType(enum.Enum):
    """The recurrent cell of a stack of layers: PyTorch's ``nn.LSTM`` or ``nn.GRU``."""

    LSTM = "lstm"
    GRU = "gru"

    @property
    def gates(self) -> int:
        """Gate blocks of ``H`` rows in ``weight_ih``/``weight_hh``: 4 (i, f, g, o) for an
        LSTM, 3 (r, z, n) for a GRU."""
        return 4 if self is CellType.LSTM else 3

    @property
    def module(self) -> str:
        """The PyTorch module's name, for messages: ``nn.LSTM`` or ``nn.GRU``."""
        return "nn.LSTM" if self is CellType.LSTM else "nn.GRU"

    @classmethod
    def parse(cls, value) -> CellType:
        """A :class:`CellType` from itself or its value (``"lstm"``, ``"gru"``)."""
        if isinstance(value, CellType):
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(repr(c.value) for c in cls)
            raise ValueError(f"cell type must be one of {names}, not {value!r}") from None


class LayerStack:
    """Mixin of the descriptions of a stack of LSTM layers (the float model, the formats, the
    IR): what follows from their ``bidirectional`` field."""

    bidirectional: bool

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1


@dataclass(frozen=True, eq=False)
class LstmShape(LayerStack):
    """The first fields of the float model and the IR: an ``nn.LSTM``'s constructor
    arguments."""

    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    bias: bool
    #: ``nn.LSTM(proj_size=R)``: ``h_t = W_hr (o_t * tanh(c_t))`` has ``R`` features (0: none).
    proj_size: int = field(default=0, kw_only=True)

    @property
    def real_hidden_size(self) -> int:
        """Features of ``h_t`` (the recurrent state, ``h_n`` and each direction's output):
        ``proj_size`` when the LSTM projects, else ``hidden_size`` (PyTorch's name)."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def layer_input_size(self, layer: int) -> int:
        """Features into layer ``layer``: the model input, or both directions' hidden state of
        the layer below."""
        return self.input_size if layer == 0 else self.real_hidden_size * self.num_directions


#: An ``nn.LSTM``'s shape: its constructor arguments that the float model and the IR both hold.
SHAPE_FIELDS = tuple(f.name for f in fields(LstmShape))


def lstm_shape(model) -> dict:
    """The :data:`SHAPE_FIELDS` of ``model`` by name: to build one kind of model from another
    (``LstmModel(**lstm_shape(float_model), ...)``)."""
    return {name: getattr(model, name, 0) for name in SHAPE_FIELDS}
