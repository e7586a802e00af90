"""Where every weight and bias lives in the weight memory banks (pure Python, no HDL).

Lane ``p`` has its own weight bank and bias bank, so all lanes read in the same cycle
without conflicts (they all read the *same* address of their own bank). With the lanes of an
:class:`~lstm_fpga.hw.plan.EnginePlan` (lane ``p`` = lane ``q`` of column group ``g``), matrix
``m`` (a :class:`~lstm_fpga.hw.plan.MatrixPlan`: a layer direction or the head) occupies:

* weight bank ``p``, address ``weight_base + pass * span + j``: the weight of row
  ``pass * row_lanes + q`` (unit-major: gate ``row % 4`` of unit ``row // 4``) at column
  ``j * groups + g`` of the matrix in walk order (its segments; layer 0 walks
  ``[W_ih | W_hh]``, with one group: address ``pass * (I+H) + column``);
* bias bank ``p``, address ``bias_base + pass``: that row's combined bias (zero in groups
  ``g > 0``).

Rows past the matrix's in the final pass and columns past its own hold zeros. The same arrays
initialise the memories in the Verilog and are written as ``.hex`` files for ``$readmemh``
flows; :func:`weight_location` / :func:`bias_location` give the write-port address of any
single parameter for run-time reloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sw.ir import LstmModel

if TYPE_CHECKING:
    from .plan import EnginePlan

__all__ = [
    "BankImages",
    "Location",
    "bank_images",
    "bias_location",
    "hex_file_name",
    "hex_lines",
    "matrix_values",
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


def matrix_values(plan: EnginePlan, m: int, model: LstmModel | None = None):
    """``(weights, bias)`` of ``plan``'s matrix ``m`` with rows in lane order (unit-major)
    and columns in walk order: ``(rows, columns)`` and ``(rows,)``, padded with zero rows."""
    from .plan import SegmentKind

    model = plan.model if model is None else model
    mp = plan.matrices[m]
    matrix = np.zeros((mp.rows, mp.columns), dtype=np.int64)
    bias = np.zeros(mp.rows, dtype=np.int64)
    if mp.is_head:
        matrix[: mp.real_rows] = model.head.weight
        bias[: mp.real_rows] = model.head.bias
        return matrix, bias
    d = model.directions[m]
    torch_rows = [mp.torch_row(r) for r in range(mp.rows)]
    parts = {SegmentKind.INPUT: d.w_ih, SegmentKind.RECURRENT: d.w_hh}
    matrix[:] = np.concatenate([parts[s.kind] for s in mp.segments], axis=1)[torch_rows]
    bias[:] = d.bias[torch_rows]
    return matrix, bias


def bank_images(plan: EnginePlan, model: LstmModel | None = None) -> BankImages:
    """Contents of every weight and bias bank of ``plan`` for ``model`` (default: the plan's
    own; another must have its shape and formats, only integer weights reload)."""
    model = plan.model if model is None else model
    plan.check_compatible(model)
    weights = np.zeros((plan.lanes, max(1, plan.bank_depth)), dtype=np.int64)
    biases = np.zeros((plan.lanes, max(1, plan.bias_depth)), dtype=np.int64)
    G, Q = plan.groups, plan.row_lanes
    for mp in plan.matrices:
        matrix, bias = matrix_values(plan, mp.index, model)
        padded = np.zeros((mp.passes * Q, mp.span * G), dtype=np.int64)
        padded[: mp.rows, : mp.columns] = matrix
        # padded[pass*Q + q, j*G + g] -> weights[g*Q + q, base + pass*span + j]
        block = (
            padded.reshape(mp.passes, Q, mp.span, G)
            .transpose(3, 1, 0, 2)
            .reshape(G * Q, mp.passes * mp.span)
        )
        weights[:, mp.weight_base : mp.weight_base + mp.words] = block
        # The bias enters once per row: in group 0.
        bias_block = np.zeros((G, mp.passes * Q), dtype=np.int64)
        bias_block[0, : mp.rows] = bias
        bias_block = bias_block.reshape(G, mp.passes, Q).transpose(0, 2, 1).reshape(-1)
        biases[:, mp.bias_base : mp.bias_base + mp.passes] = bias_block.reshape(G * Q, mp.passes)
    return BankImages(
        weight_width=plan.weight_shape.width,
        bias_width=plan.bias_shape.width,
        weights=weights,
        biases=biases,
    )


def _row_position(plan: EnginePlan, m: int, torch_row: int) -> tuple[int, int]:
    mp = plan.matrices[m]
    if not 0 <= torch_row < mp.real_rows:
        raise ValueError(f"row {torch_row} outside the {mp.real_rows} rows of {mp.name}")
    row = torch_row if mp.is_head else mp.unit_major_row(torch_row)
    return divmod(row, mp.row_lanes)


def weight_location(plan: EnginePlan, torch_row: int, column: int, matrix: int = 0) -> Location:
    """Bank and address of ``[W_ih | W_hh][torch_row, column]`` of layer direction
    ``matrix`` (PyTorch row and column order; for the head: ``weight[torch_row, column]``)."""
    mp = plan.matrices[matrix]
    pass_index, lane = _row_position(plan, matrix, torch_row)
    if not 0 <= column < mp.columns:
        raise ValueError(f"column {column} outside the {mp.columns} columns of {mp.name}")
    cycle, group = divmod(mp.walk_column(column), mp.groups)
    return Location(group * mp.row_lanes + lane, mp.weight_base + pass_index * mp.span + cycle)


def bias_location(plan: EnginePlan, torch_row: int, matrix: int = 0) -> Location:
    """Bank and address of the combined bias of ``torch_row`` of ``matrix`` (PyTorch order)."""
    pass_index, lane = _row_position(plan, matrix, torch_row)
    return Location(lane, plan.matrices[matrix].bias_base + pass_index)


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
