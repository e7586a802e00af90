"""Where every weight and bias lives in the weight memory banks (pure Python, no HDL).

Lane ``p`` has its own weight bank and bias bank, so all lanes read in the same cycle
without conflicts (they all read the *same* address of their own bank). With the lanes of
:class:`~lstm_fpga.hw.config.PassGeometry` (lane ``p`` = lane ``q`` of column group ``g``):

* weight bank ``p``, address ``pass * span + j`` holds the weight of unit-major row
  ``pass * row_lanes + q`` (gate ``row % 4`` of unit ``row // 4``) at column
  ``j * groups + g`` of ``[W_ih | W_hh]`` (with one group: address ``pass * (I+H) + column``);
* bias bank ``p``, address ``pass`` holds that row's combined bias (zero in groups ``g > 0``).

Rows past ``4H`` in the final pass and columns past ``I + H`` hold zeros. The same arrays
initialise the memories in the Verilog and are written as ``.hex`` files for ``$readmemh``
flows, and
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
    """Initial contents of every bank: ``weights[p]`` and ``biases[p]`` for lane ``p``.

    ``geometry`` is the one layer direction's :class:`PassGeometry` the images were made for,
    or ``None`` for the images of a whole engine plan (:meth:`EnginePlan.bank_images`).
    """

    geometry: PassGeometry | None
    weight_width: int
    bias_width: int
    weights: np.ndarray  # (lanes, bank depth)
    biases: np.ndarray  # (lanes, bias bank depth)

    @property
    def lanes(self) -> int:
        return self.weights.shape[0]

    @property
    def depth(self) -> int:
        """Words of every weight bank."""
        return self.weights.shape[1]

    @property
    def bias_depth(self) -> int:
        """Words of every bias bank."""
        return self.biases.shape[1]

    def weight_hex(self, lane: int) -> str:
        return hex_lines(self.weights[lane], self.weight_width)

    def bias_hex(self, lane: int) -> str:
        return hex_lines(self.biases[lane], self.bias_width)

    def write_hex(self, directory: Path, prefix: str = "") -> list[Path]:
        """Write ``{prefix}weights_lane{p}.hex`` and ``{prefix}bias_lane{p}.hex`` files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for lane in range(self.lanes):
            for kind, text in (
                ("weights", self.weight_hex(lane)),
                ("bias", self.bias_hex(lane)),
            ):
                path = directory / f"{prefix}{hex_file_name(kind, lane, self.lanes)}"
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
    g = geometry
    groups, row_lanes, passes, span = g.groups, g.row_lanes, g.passes, g.span
    # Unit-major rows, padded with zero rows up to passes * row_lanes and with zero columns
    # up to span * groups.
    rows = np.arange(g.rows)
    torch_rows = (rows % 4) * g.hidden_size + rows // 4
    matrix = np.zeros((passes * row_lanes, span * groups), dtype=np.int64)
    matrix[: g.rows, : g.columns] = np.concatenate([direction.w_ih, direction.w_hh], axis=1)[
        torch_rows
    ]
    # matrix[pass * row_lanes + q, j * groups + grp] -> weights[grp * row_lanes + q,
    # pass * span + j]
    weights = (
        matrix.reshape(passes, row_lanes, span, groups)
        .transpose(3, 1, 0, 2)
        .reshape(groups * row_lanes, passes * span)
    )
    # The bias enters once per row: in group 0.
    bias = np.zeros((groups, passes * row_lanes), dtype=np.int64)
    bias[0, : g.rows] = direction.bias[torch_rows]
    biases = bias.reshape(groups, passes, row_lanes).transpose(0, 2, 1).reshape(-1, passes)
    return BankImages(
        geometry=geometry,
        weight_width=common_signed_shape(f.w_ih, f.w_hh).width,
        bias_width=format_shape(f.bias).width,
        weights=np.ascontiguousarray(weights),
        biases=np.ascontiguousarray(biases),
    )


def _row_position(geometry: PassGeometry, torch_row: int) -> tuple[int, int]:
    H = geometry.hidden_size
    if not 0 <= torch_row < geometry.rows:
        raise ValueError(f"row {torch_row} outside the {geometry.rows} rows of the gate matrix")
    row = (torch_row % H) * 4 + torch_row // H
    return divmod(row, geometry.row_lanes)


def weight_location(geometry: PassGeometry, torch_row: int, column: int) -> Location:
    """Bank and address of ``[W_ih | W_hh][torch_row, column]`` (PyTorch row order)."""
    pass_index, lane = _row_position(geometry, torch_row)
    if not 0 <= column < geometry.columns:
        raise ValueError(f"column {column} outside the {geometry.columns} columns (I + H)")
    cycle, group = divmod(column, geometry.groups)
    return Location(group * geometry.row_lanes + lane, pass_index * geometry.span + cycle)


def bias_location(geometry: PassGeometry, torch_row: int) -> Location:
    """Bank and address of the combined bias of ``torch_row`` (PyTorch row order)."""
    pass_index, lane = _row_position(geometry, torch_row)
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
