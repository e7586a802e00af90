"""The digits data and training loop that the digit examples share.

scikit-learn's ``load_digits`` (1,797 8x8 images, shipped with the package) read row by row:
8 time steps of 8 pixels, split 80/20 with a fixed seed. :func:`train` fits a classifier
built by ``make_net`` with Adam and cross-entropy on CPU, seeded, so every run gives the same
weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.datasets import load_digits

__all__ = ["load_sequences", "train"]


def load_sequences(seed: int = 0):
    """``(x_train, y_train, x_test, y_test)``: ``x`` of shape (N, 8 steps, 8 pixels) in [0, 1]."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


def train(
    make_net: Callable[[], torch.nn.Module], x, y, epochs: int = 40, seed: int = 0
) -> torch.nn.Module:
    """A network from ``make_net`` (built after seeding torch) trained on ``(x, y)``."""
    torch.manual_seed(seed)
    net = make_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            optimizer.step()
    return net.eval()
