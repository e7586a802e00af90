"""The demo's data and model: next-day MSFT close from a window of daily OHLCV prices.

Data: ``pmdarima.datasets.load_msft()`` -- daily Microsoft open/high/low/close/volume,
1986-03-13 to 2017-11-10 (7,983 trading days), from the Kaggle "Huge Stock Market Dataset",
shipped inside the pmdarima package (no download at run time).

Protocol (kept honest on purpose): a chronological split (the test period comes strictly after
the training period), min-max scaling fitted on the training part only, sliding windows of
``window`` days predicting the next day's close. Test prices exceed the training range
(MSFT trades higher in 2013-2017 than ever before), so scaled test inputs reach ~1.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FEATURES", "Forecaster", "StockData", "load_stock_data", "train_forecaster"]

FEATURES = ("Open", "High", "Low", "Close", "Volume")
_CLOSE = FEATURES.index("Close")


@dataclass(frozen=True, eq=False)
class StockData:
    """Windowed, scaled OHLCV series with a chronological train/test split."""

    dates: np.ndarray  # (N,) datetime64 of every target day
    x_train: np.ndarray  # (N_train, window, 5) scaled
    y_train: np.ndarray  # (N_train,) scaled next-day close
    x_test: np.ndarray
    y_test: np.ndarray
    test_dates: np.ndarray
    scale_min: np.ndarray  # (5,) fitted on the training days only
    scale_max: np.ndarray
    last_close_test: np.ndarray  # (N_test,) close of the last window day (naive forecast)

    def close_to_price(self, scaled) -> np.ndarray:
        """Undo the min-max scaling of the close column."""
        span = self.scale_max[_CLOSE] - self.scale_min[_CLOSE]
        return np.asarray(scaled) * span + self.scale_min[_CLOSE]


def load_stock_data(window: int = 20, test_fraction: float = 0.2, test_windows: int | None = None):
    """Load MSFT and build windows. ``test_windows`` keeps only the last N test windows."""
    from pmdarima.datasets import load_msft

    frame = load_msft()
    values = frame[list(FEATURES)].to_numpy(dtype=np.float64)
    dates = frame["Date"].to_numpy().astype("datetime64[D]")
    n_days = len(values)
    split = int(n_days * (1 - test_fraction))  # first test target day
    train_days = values[:split]
    lo, hi = train_days.min(axis=0), train_days.max(axis=0)
    scaled = (values - lo) / (hi - lo)
    targets = np.arange(window, n_days)  # predict day t from days t-window .. t-1
    x = np.stack([scaled[t - window : t] for t in targets])
    y = scaled[targets, _CLOSE]
    is_test = targets >= split
    x_test, y_test, test_targets = x[is_test], y[is_test], targets[is_test]
    if test_windows is not None:
        x_test, y_test, test_targets = (
            x_test[-test_windows:],
            y_test[-test_windows:],
            test_targets[-test_windows:],
        )
    return StockData(
        dates=dates[targets],
        x_train=x[~is_test],
        y_train=y[~is_test],
        x_test=x_test,
        y_test=y_test,
        test_dates=dates[test_targets],
        scale_min=lo,
        scale_max=hi,
        last_close_test=scaled[test_targets - 1, _CLOSE],
    )


class Forecaster(torch.nn.Module):
    """``nn.LSTM`` followed by ``nn.Linear`` on the last time step (batch_first)."""

    def __init__(self, input_size: int = len(FEATURES), hidden_size: int = 16, outputs: int = 1):
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, outputs)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def train_forecaster(
    data: StockData, hidden_size: int = 16, epochs: int = 30, seed: int = 0, log=None
) -> Forecaster:
    """Train on the training windows with Adam and MSE (CPU, fixed seed, deterministic)."""
    torch.manual_seed(seed)
    model = Forecaster(hidden_size=hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.tensor(data.x_train, dtype=torch.float32)
    y = torch.tensor(data.y_train, dtype=torch.float32)[:, None]
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        if log is not None:
            log(f"epoch {epoch + 1:3d}/{epochs}: train MSE {total / len(x):.3e}")
    model.eval()
    return model
