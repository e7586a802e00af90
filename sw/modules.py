"""PyTorch modules of the documented model layouts lstm-fpga imports beyond a bare ``nn.LSTM``.

:class:`AttentionClassifier` is the attention-pooling sequence classifier of
``docs/attention.md``: children ``lstm`` (``nn.LSTM``, any layers, either direction count,
``proj_size`` allowed; an ``nn.GRU`` too), ``attention`` (:class:`AttentionPooling`: ``W`` an
``nn.Linear(F, A)`` with bias, ``v`` an ``nn.Linear(A, 1, bias=False)``) and ``fc`` (an
``nn.Linear(F, O)``), ``F`` the LSTM's output features. Its state_dict keys are
``lstm.weight_ih_l0``..., ``attention.W.weight``, ``attention.W.bias``, ``attention.v.weight``,
``fc.weight``, ``fc.bias``. Any module with these children (and only dropout or
``nn.Identity`` beside them) imports the same way; the import does not run ``forward()``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = ["AttentionClassifier", "AttentionPooling"]


class AttentionPooling(nn.Module):
    """``e_t = v . tanh(W h_t + b)``, ``alpha = softmax_t(e)`` over each sequence's valid
    steps, ``context = sum_t alpha_t h_t``."""

    def __init__(self, features: int, attention_size: int):
        super().__init__()
        self.W = nn.Linear(features, attention_size)
        self.v = nn.Linear(attention_size, 1, bias=False)

    def forward(self, output: torch.Tensor, mask: torch.Tensor | None = None):
        """``output`` (B, T, F) and ``mask`` (B, T; ``True`` on valid steps, ``None``: all) to
        ``(context (B, F), alpha (B, T))``."""
        scores = self.v(torch.tanh(self.W(output))).squeeze(-1)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        alpha = torch.softmax(scores, dim=1)
        return (alpha.unsqueeze(-1) * output).sum(dim=1), alpha


class AttentionClassifier(nn.Module):
    """An LSTM, attention pooling over time and a Linear classifier (``docs/attention.md``).

    ``forward(x, lengths=None)`` takes ``x`` (B, T, I) with ``batch_first=True`` (else
    (T, B, I)) and optional ``lengths`` (B): padded steps take no part (the LSTM runs on
    the packed sequence, the softmax covers each sequence's valid steps). Returns the logits
    (B, O).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        attention_size: int,
        out_features: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        proj_size: int = 0,
        batch_first: bool = True,
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size,
            hidden_size,
            num_layers,
            batch_first=batch_first,
            bidirectional=bidirectional,
            proj_size=proj_size,
        )
        features = (2 if bidirectional else 1) * (proj_size or hidden_size)
        self.attention = AttentionPooling(features, attention_size)
        self.fc = nn.Linear(features, out_features)

    def forward(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        return self.fc(self.pool(x, lengths)[0])

    def pool(self, x: torch.Tensor, lengths=None):
        """``(context (B, F), alpha (B, T))`` of ``x`` (as :meth:`forward`)."""
        batch_first = self.lstm.batch_first
        steps = x.shape[1 if batch_first else 0]
        if lengths is None:
            output, _ = self.lstm(x)
            mask = None
        else:
            lengths = torch.as_tensor(lengths, dtype=torch.int64).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first, enforce_sorted=False)
            output, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first, total_length=steps)
            mask = torch.arange(steps)[None, :] < lengths[:, None]
        if not batch_first:
            output = output.transpose(0, 1)
        return self.attention(output, None if mask is None else mask.to(output.device))
