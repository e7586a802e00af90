"""The demo's data and model: next-day MSFT close from a window of daily OHLCV prices.

Data: ``pmdarima.datasets.load_msft()`` -- daily Microsoft open/high/low/close/volume,
1986-03-13 to 2017-11-10 (7,983 trading days), from the Kaggle "Huge Stock Market Dataset",
shipped inside the pmdarima package (no download at run time).

Protocol (kept honest on purpose): a chronological split (the test period comes strictly after
the training period), sliding windows of ``window`` days predicting the next day's close, and
min-max scaling fitted on the training windows only. Prices are expressed relative to the
window's last close (``price / last_close - 1``) and volume as its logarithm before scaling:
MSFT trades far above its training-period range in 2013-2017, and an LSTM fed raw price
levels would have to extrapolate. The forecast is turned back into a price with the window's
last close.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["FEATURES", "Forecaster", "StockData", "load_stock_data", "train_forecaster"]

FEATURES = ("Open", "High", "Low", "Close", "Volume")
_CLOSE = FEATURES.index("Close")
_VOLUME = FEATURES.index("Volume")


@dataclass(frozen=True, eq=False)
class StockData:
    """Windowed, scaled OHLCV series with a chronological train/test split."""

    x_train: np.ndarray  # (N_train, window, 5) scaled features
    y_train: np.ndarray  # (N_train,) scaled next-day relative close
    x_test: np.ndarray
    y_test: np.ndarray
    test_dates: np.ndarray  # (N_test,) datetime64 of the predicted days
    close_test: np.ndarray  # (N_test,) actual close of the predicted days (USD)
    last_close_test: np.ndarray  # (N_test,) close of each window's last day (naive forecast)
    target_min: float  # min-max scaling of the relative close, fitted on training windows
    target_max: float

    def price(self, scaled_forecast) -> np.ndarray:
        """Turn scaled forecasts of the test windows back into prices (USD)."""
        relative = np.asarray(scaled_forecast) * (self.target_max - self.target_min)
        return self.last_close_test * (1.0 + relative + self.target_min)


def load_stock_data(window: int = 20, test_fraction: float = 0.2, test_windows: int | None = None):
    """Load MSFT and build windows. ``test_windows`` keeps only the last N test windows."""
    from pmdarima.datasets import load_msft

    frame = load_msft()
    values = frame[list(FEATURES)].to_numpy(dtype=np.float64)
    dates = frame["Date"].to_numpy().astype("datetime64[D]")
    n_days = len(values)
    split = int(n_days * (1 - test_fraction))  # first test target day
    targets = np.arange(window, n_days)  # predict day t from days t-window .. t-1
    windows = np.stack([values[t - window : t] for t in targets])
    last_close = values[targets - 1, _CLOSE]
    features = windows.copy()
    features[..., :_VOLUME] = windows[..., :_VOLUME] / last_close[:, None, None] - 1.0
    features[..., _VOLUME] = np.log1p(windows[..., _VOLUME])
    relative_target = values[targets, _CLOSE] / last_close - 1.0
    is_test = targets >= split
    lo = features[~is_test].min(axis=(0, 1))
    hi = features[~is_test].max(axis=(0, 1))
    x = (features - lo) / (hi - lo)
    y_lo, y_hi = relative_target[~is_test].min(), relative_target[~is_test].max()
    y = (relative_target - y_lo) / (y_hi - y_lo)
    test = np.flatnonzero(is_test)
    if test_windows is not None:
        test = test[-test_windows:]
    return StockData(
        x_train=x[~is_test],
        y_train=y[~is_test],
        x_test=x[test],
        y_test=y[test],
        test_dates=dates[targets[test]],
        close_test=values[targets[test], _CLOSE],
        last_close_test=last_close[test],
        target_min=float(y_lo),
        target_max=float(y_hi),
    )


#: Training mini-batch size.
_BATCH = 128


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
    data: StockData,
    hidden_size: int = 16,
    epochs: int = 15,
    seed: int = 0,
    log=None,
    progress: bool = False,
) -> Forecaster:
    """Train on the training windows with Adam and MSE (CPU, fixed seed, deterministic);
    ``progress`` shows a bar with the ETA over every batch of every epoch."""
    from .progress import progress_bar

    torch.manual_seed(seed)
    model = Forecaster(hidden_size=hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.tensor(data.x_train, dtype=torch.float32)
    y = torch.tensor(data.y_train, dtype=torch.float32)[:, None]
    generator = torch.Generator().manual_seed(seed)
    starts = range(0, len(x), _BATCH)
    bar = progress_bar(total=epochs * len(starts), desc="training", unit="batch", enabled=progress)
    with bar:
        for epoch in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for start in starts:
                batch = order[start : start + _BATCH]
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                bar.update()
            bar.set_postfix(epoch=epoch + 1, mse=f"{total / len(x):.2e}")
            if log is not None:
                log(f"epoch {epoch + 1:3d}/{epochs}: train MSE {total / len(x):.3e}")
    model.eval()
    return model
