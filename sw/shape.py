"""The shape of a stack of LSTM layers: one home for what the float model, the formats and the
IR share about it."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["SHAPE_FIELDS", "LayerStack", "LstmShape", "lstm_shape"]


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

    def layer_input_size(self, layer: int) -> int:
        """Features into layer ``layer``: the model input, or both directions' hidden state of
        the layer below."""
        return self.input_size if layer == 0 else self.hidden_size * self.num_directions


#: An ``nn.LSTM``'s shape: its constructor arguments that the float model and the IR both hold.
SHAPE_FIELDS = tuple(f.name for f in fields(LstmShape))


def lstm_shape(model) -> dict:
    """The :data:`SHAPE_FIELDS` of ``model`` by name: to build one kind of model from another
    (``LstmModel(**lstm_shape(float_model), ...)``)."""
    return {name: getattr(model, name) for name in SHAPE_FIELDS}
