"""Where every weight and bias lives in the weight memory banks (pure Python, no HDL).

Lane ``p`` has its own weight bank and bias bank, so all ``P`` lanes read in the same cycle
without conflicts (they all read the *same* address of their own bank):

* weight bank ``p``, address ``pass * (I + H) + column`` holds the weight of unit-major row
  ``pass * P + p`` (gate ``row % 4`` of unit ``row // 4``) at ``column`` of ``[W_ih | W_hh]``;
* bias bank ``p``, address ``pass`` holds that row's combined bias.

Rows past ``4H`` in the final pass hold zeros. The same arrays initialise the memories in the
Verilog and are written as ``.hex`` files for ``$readmemh`` flows, and
:func:`weight_location` / :func:`bias_location` give the write-port address of any single
parameter for run-time reloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sw.ir import LayerDirection
from .config import PassGeometry
from .fixed import common_signed_shape, format_shape

__all__ = [
    "BankImages",
    "Location",
    "bank_images",
    "bias_location",
    "hex_file_name",
    "hex_lines",
    "weight_location",
]


@dataclass(frozen=True)
class Location:
    """A write-port address: ``lane`` selects the bank, ``address`` the word inside it."""

    lane: int
    address: int


@dataclass(frozen=True, eq=False)
class BankImages:
    """Initial contents of every bank: ``weights[p]`` and ``biases[p]`` for lane ``p``."""

    geometry: PassGeometry
    weight_width: int
    bias_width: int
    weights: np.ndarray  # (lanes, passes * columns)
    biases: np.ndarray  # (lanes, passes)

    def weight_hex(self, lane: int) -> str:
        return hex_lines(self.weights[lane], self.weight_width)

    def bias_hex(self, lane: int) -> str:
        return hex_lines(self.biases[lane], self.bias_width)

    def write_hex(self, directory: Path, prefix: str = "") -> list[Path]:
        """Write ``{prefix}weights_lane{p}.hex`` and ``{prefix}bias_lane{p}.hex`` files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for lane in range(self.geometry.lanes):
            for kind, text in (
                ("weights", self.weight_hex(lane)),
                ("bias", self.bias_hex(lane)),
            ):
                path = directory / f"{prefix}{hex_file_name(kind, lane, self.geometry.lanes)}"
                path.write_text(text)
                paths.append(path)
        return paths


def _check_direction(geometry: PassGeometry, direction: LayerDirection) -> None:
    if (direction.input_size, direction.hidden_size) != (
        geometry.input_size,
        geometry.hidden_size,
    ):
        raise ValueError(
            f"{direction.name} has I={direction.input_size}, H={direction.hidden_size} but the "
            f"geometry is for I={geometry.input_size}, H={geometry.hidden_size}"
        )


def bank_images(geometry: PassGeometry, direction: LayerDirection) -> BankImages:
    """The contents of all weight and bias banks for one layer direction."""
    _check_direction(geometry, direction)
    f = direction.formats
    lanes, passes, columns = geometry.lanes, geometry.passes, geometry.columns
    # Unit-major row order, padded with zero rows up to passes * lanes.
    rows = np.arange(geometry.rows)
    torch_rows = (rows % 4) * geometry.hidden_size + rows // 4
    matrix = np.concatenate([direction.w_ih, direction.w_hh], axis=1)[torch_rows]
    padded = np.zeros((passes * lanes, columns), dtype=np.int64)
    padded[: geometry.rows] = matrix
    bias = np.zeros(passes * lanes, dtype=np.int64)
    bias[: geometry.rows] = direction.bias[torch_rows]
    # padded[pass * lanes + p, col] -> weights[p, pass * columns + col]
    weights = padded.reshape(passes, lanes, columns).transpose(1, 0, 2).reshape(lanes, -1)
    biases = bias.reshape(passes, lanes).T
    return BankImages(
        geometry=geometry,
        weight_width=common_signed_shape(f.w_ih, f.w_hh).width,
        bias_width=format_shape(f.bias).width,
        weights=np.ascontiguousarray(weights),
        biases=np.ascontiguousarray(biases),
    )


def weight_location(geometry: PassGeometry, torch_row: int, column: int) -> Location:
    """Bank and address of ``[W_ih | W_hh][torch_row, column]`` (PyTorch row order)."""
    H = geometry.hidden_size
    if not 0 <= torch_row < geometry.rows:
        raise ValueError(f"row {torch_row} outside the {geometry.rows} rows of the gate matrix")
    if not 0 <= column < geometry.columns:
        raise ValueError(f"column {column} outside the {geometry.columns} columns (I + H)")
    row = (torch_row % H) * 4 + torch_row // H
    pass_index, lane = divmod(row, geometry.lanes)
    return Location(lane, pass_index * geometry.columns + column)


def bias_location(geometry: PassGeometry, torch_row: int) -> Location:
    """Bank and address of the combined bias of ``torch_row`` (PyTorch row order)."""
    H = geometry.hidden_size
    if not 0 <= torch_row < geometry.rows:
        raise ValueError(f"row {torch_row} outside the {geometry.rows} rows of the gate matrix")
    row = (torch_row % H) * 4 + torch_row // H
    pass_index, lane = divmod(row, geometry.lanes)
    return Location(lane, pass_index)


def hex_file_name(kind: str, lane: int, lanes: int) -> str:
    """``weights_lane07.hex`` / ``bias_lane07.hex`` (lane numbers padded to equal length)."""
    digits = len(str(lanes - 1))
    return f"{kind}_lane{lane:0{digits}d}.hex"


def hex_lines(values, width: int) -> str:
    """Two's complement ``width``-bit words, one per line, for ``$readmemh``."""
    values = np.asarray(values, dtype=np.int64)
    digits = (width + 3) // 4
    mask = (1 << width) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)
