"""Where every weight and bias lives in the weight memory banks (pure Python, no HDL).

Lane ``p`` has its own (logical) weight bank and bias bank, so all lanes read in the same
cycle without conflicts (they all read the *same* address of their own bank). Physically the
weight banks are *packed* (:func:`bank_packing`): consecutive lanes share one wide memory,
lane ``p`` in bits ``[slot * W, (slot + 1) * W)`` of its group's words. With the lanes of an
:class:`~lstm_fpga.hw.plan.EnginePlan` (lane ``p`` = lane ``q`` of column group ``g``), matrix
``m`` (a :class:`~lstm_fpga.hw.plan.MatrixPlan`: a layer direction or the head) occupies:

* weight bank ``p``, address ``weight_base + pass * span + j``: the weight of row
  ``pass * row_lanes + q`` (unit-major: gate ``row % k`` of unit ``row // k``, ``k`` = 4, a
  GRU's 3) at column
  ``j * groups + g`` of the matrix in walk order (its segments; layer 0 walks
  ``[W_ih | W_hh]``, with one group: address ``pass * (I+H) + column``);
* bias bank ``p``, address ``bias_base + pass``: that row's combined bias (zero in groups
  ``g > 0``). A GRU's bias banks have a second half (:attr:`BankImages.split_biases`):
  address ``bias_depth + bias_base + pass`` holds ``b_hn`` of an ``n`` row (the start of
  its recurrent sum), 0 for the other rows.

Rows past the matrix's in the final pass and columns past its own hold zeros. The same arrays
initialise the memories in the Verilog and are written as ``.hex`` files for ``$readmemh``
flows; :func:`weight_location` / :func:`bias_location` give the write-port address of any
single parameter for run-time reloads.

Packing (:class:`BankPacking`): a group of lanes stores only the words below its ``depth``,
the end of the last matrix in which one of its lanes holds a real row and a real column
(the head's one row lives in lane 0 only); every word at or past it is a structural zero,
read as 0 and never written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..sw.ir import LstmModel

if TYPE_CHECKING:
    from .plan import EnginePlan

__all__ = [
    "PACKING_FAMILY",
    "BankGroup",
    "BankImages",
    "BankPacking",
    "Location",
    "bank_images",
    "bank_packing",
    "bias_location",
    "block_ram_primitives",
    "gru_hn_biases",
    "hex_file_name",
    "hex_lines",
    "live_depths",
    "matrix_values",
    "weight_location",
]


#: The device family whose block-RAM geometry (:data:`~lstm_fpga.hw.devices.FAMILIES`) the
#: generated Verilog's weight banks are packed for. ECP5's DP16KD has the shapes and the
#: 9-bit byte enables of AMD 7-series / UltraScale+ RAMB18, so one packing serves both.
PACKING_FAMILY = "ecp5"


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
    #: A GRU's bias banks: words ``[0, D)`` start each row's sum, words ``[D, 2D)`` (``D`` =
    #: :attr:`bias_read_depth`) the ``n`` rows' recurrent sums (``b_hn``).
    split_biases: bool = False

    @property
    def bias_read_depth(self) -> int:
        """Words of each bias bank the walk addresses (half of :attr:`bias_depth` with
        :attr:`split_biases`)."""
        return self.bias_depth // 2 if self.split_biases else self.bias_depth

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

    def group_words(self, packing: BankPacking, group: int) -> list[int]:
        """The words of ``packing``'s weight memory ``group``: lane ``first + s`` in bits
        ``[s * W, (s + 1) * W)`` (two's complement), the group's ``depth`` words."""
        g = packing.groups[group]
        mask = (1 << self.weight_width) - 1
        lanes = self.weights[g.first : g.first + g.lanes, : g.depth]
        return [
            sum((int(v) & mask) << (s * self.weight_width) for s, v in enumerate(lanes[:, a]))
            for a in range(g.depth)
        ]

    def group_hex(self, packing: BankPacking, group: int) -> str:
        """:meth:`group_words` as ``$readmemh`` lines."""
        width = packing.groups[group].lanes * self.weight_width
        digits = (width + 3) // 4
        return "".join(f"{w:0{digits}x}\n" for w in self.group_words(packing, group))

    def write_hex(
        self, directory: Path, prefix: str = "", packing: BankPacking | None = None
    ) -> list[Path]:
        """Write ``{prefix}weights_group{g}.hex`` (one per packed weight memory of
        ``packing``, default one lane per memory) and ``{prefix}bias_lane{p}.hex`` files:
        the weight files first, then the bias files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        packing = BankPacking.unpacked(self) if packing is None else packing
        groups = len(packing.groups)
        paths = []
        for g in range(groups):
            path = directory / f"{prefix}{hex_file_name('weights', g, groups)}"
            path.write_text(self.group_hex(packing, g))
            paths.append(path)
        for lane in range(self.lanes):
            path = directory / f"{prefix}{hex_file_name('bias', lane, self.lanes)}"
            path.write_text(self.bias_hex(lane))
            paths.append(path)
        return paths


@dataclass(frozen=True)
class BankGroup:
    """Lanes ``first .. first + lanes - 1`` sharing one weight memory of ``lanes * W`` bits x
    ``depth`` words (lane ``first + s`` in slot ``s``); ``block``: block RAM (else LUT RAM);
    ``primitives``: the block RAMs it takes in block RAM (by :func:`block_ram_primitives`)."""

    index: int
    first: int
    lanes: int
    depth: int
    block: bool
    primitives: int


@dataclass(frozen=True)
class BankPacking:
    """How the lanes' weight banks share memories (:func:`bank_packing`).

    ``minimum`` is ``ceil(weight bits / block-RAM bits)`` of the family (the bits of the
    words the groups store), the fewest block RAMs any packing could use."""

    family: str
    weight_width: int
    bank_depth: int
    groups: tuple[BankGroup, ...]
    minimum: int

    @classmethod
    def unpacked(cls, images: BankImages) -> BankPacking:
        """One lane per memory, every bank ``images.depth`` words (no family geometry)."""
        groups = tuple(BankGroup(p, p, 1, images.depth, True, 0) for p in range(images.lanes))
        return cls("none", images.weight_width, images.depth, groups, 0)

    @property
    def lanes(self) -> int:
        return sum(g.lanes for g in self.groups)

    @property
    def lanes_per_group(self) -> int:
        return self.groups[0].lanes

    def group_of(self, lane: int) -> BankGroup:
        if not 0 <= lane < self.lanes:
            raise ValueError(f"lane {lane} outside the {self.lanes} lanes")
        return next(g for g in self.groups if g.first <= lane < g.first + g.lanes)

    def slot(self, lane: int) -> tuple[int, int]:
        """``(group, slot)`` of ``lane``: its bits are ``[slot * W, (slot + 1) * W)``."""
        group = self.group_of(lane)
        return group.index, lane - group.first

    def stores(self, lane: int, address: int) -> bool:
        """Whether ``lane``'s word ``address`` has storage (else it is a structural zero)."""
        return 0 <= address < self.group_of(lane).depth

    @property
    def block_rams(self) -> int:
        """Block RAMs of the groups in block RAM."""
        return sum(g.primitives for g in self.groups if g.block)

    @property
    def lutram_lanes(self) -> int:
        return sum(g.lanes for g in self.groups if not g.block)

    @property
    def stored_bits(self) -> int:
        return sum(g.lanes * g.depth for g in self.groups) * self.weight_width

    def to_json_dict(self) -> dict:
        return {
            "family": self.family,
            "lanes_per_group": self.lanes_per_group,
            "groups": len(self.groups),
            "weight_bits": self.stored_bits,
            "block_rams": self.block_rams,
            "block_rams_minimum": self.minimum,
            "lutram_lanes": self.lutram_lanes,
            "memories": [
                {
                    "group": g.index,
                    "lanes": [g.first, g.first + g.lanes - 1],
                    "width": g.lanes * self.weight_width,
                    "depth": g.depth,
                    "kind": "block" if g.block else "lutram",
                    "primitives": g.primitives if g.block else 0,
                }
                for g in self.groups
            ],
        }


def live_depths(plan: EnginePlan) -> list[int]:
    """Per lane: the end of the last matrix in which the lane holds a real row (``q <
    real_rows``) and a real column (``g < columns``); its words from there on are zero."""
    depths = []
    for lane in range(plan.lanes):
        g, q = divmod(lane, plan.row_lanes)
        ends = [
            mp.weight_base + mp.words for mp in plan.matrices if q < mp.real_rows and g < mp.columns
        ]
        depths.append(max(ends, default=0))
    return depths


def block_ram_primitives(family, width: int, lanes: int, depth: int) -> int:
    """Block RAMs of one memory of ``lanes`` lane slots of ``width`` bits x ``depth`` words
    with a write enable per lane, as Yosys maps it onto ``family`` (a
    :class:`~lstm_fpga.hw.devices.Family`): the cheapest aspect ratio, where shapes wider than
    the family's byte keep each lane in whole bytes (the byte enables) and narrower ones (one
    write enable) hold one lane's bits each."""
    byte = family.bram_byte
    best = None
    for w, d in family.bram_shapes:
        rows = math.ceil(max(depth, 1) / d)
        if lanes == 1:
            columns = math.ceil(width / w)
        elif w > byte:
            columns = math.ceil(lanes * math.ceil(width / byte) * byte / w)
        else:
            columns = lanes * math.ceil(width / w)
        cost = rows * columns
        best = cost if best is None else min(best, cost)
    return best


def bank_packing(plan: EnginePlan, family: str = PACKING_FAMILY) -> BankPacking:
    """Group the lanes' weight banks into shared memories for ``family``'s block RAM
    (:data:`~lstm_fpga.hw.devices.FAMILIES`: shapes, byte-enable width, LUT-RAM depth).

    Every lane reads the same address each cycle, so consecutive lanes can share one wide
    word. The group size is the one with the fewest block RAMs over all groups (each group
    ``depth`` words: the deepest :func:`live_depths` of its lanes), the smallest on a tie.
    A block RAM reads one word per cycle, so a shallow bank cannot fill it: groups no deeper
    than the family's ``lutram_max_depth`` go to block RAM only while the block RAMs stay
    within ``minimum`` (``ceil(weight bits / block-RAM bits)``), the others to LUT RAM.
    """
    from .devices import FAMILIES

    fam = FAMILIES[family]
    width = plan.weight_shape.width
    depths = live_depths(plan)
    lanes = len(depths)

    def chunks(k: int):
        for first in range(0, lanes, k):
            n = min(k, lanes - first)
            yield first, n, max(1, max(depths[first : first + n]))

    def cost(k: int) -> int:
        return sum(block_ram_primitives(fam, width, n, d) for _f, n, d in chunks(k))

    k = min(range(1, lanes + 1), key=lambda k: (cost(k), k))
    minimum = math.ceil(sum(depths) * width / fam.bram_bits)
    shallow = [d <= fam.lutram_max_depth for _f, _n, d in chunks(k)]
    deep_cost = sum(
        block_ram_primitives(fam, width, n, d)
        for (_f, n, d), s in zip(chunks(k), shallow, strict=True)
        if not s
    )
    budget = minimum - deep_cost
    groups = []
    for index, ((first, n, depth), is_shallow) in enumerate(zip(chunks(k), shallow, strict=True)):
        primitives = block_ram_primitives(fam, width, n, depth)
        block = not is_shallow or primitives <= budget
        if is_shallow and block:
            budget -= primitives
        groups.append(BankGroup(index, first, n, depth, block, primitives))
    return BankPacking(family, width, plan.bank_depth, tuple(groups), minimum)


def matrix_values(plan: EnginePlan, m: int, model: LstmModel | None = None):
    """``(weights, bias)`` of ``plan``'s matrix ``m`` with rows in lane order (unit-major)
    and columns in walk order: ``(rows, columns)`` and ``(rows,)``, padded with zero rows."""
    from .plan import SegmentKind, lane_head

    model = plan.model if model is None else model
    mp = plan.matrices[m]
    matrix = np.zeros((mp.rows, mp.columns), dtype=np.int64)
    bias = np.zeros(mp.rows, dtype=np.int64)
    if mp.is_head:
        head = lane_head(model)  # (with attention pooling: its score matrix)
        matrix[: mp.real_rows] = head.weight
        bias[: mp.real_rows] = head.bias
        return matrix, bias
    if mp.is_projection:  # W_hr, rows in order, no bias
        matrix[: mp.real_rows] = model.directions[mp.projects].w_hr
        return matrix, bias
    d = model.directions[m]
    torch_rows = [mp.torch_row(r) for r in range(mp.rows)]
    parts = {SegmentKind.INPUT: d.w_ih, SegmentKind.RECURRENT: d.w_hh}
    matrix[:] = np.concatenate([parts[s.kind] for s in mp.segments], axis=1)[torch_rows]
    # (a GRU's 3H rows start from b_ir + b_hr, b_iz + b_hz, b_in: gru_hn_biases has b_hn)
    bias[:] = d.bias[torch_rows]
    return matrix, bias


def gru_hn_biases(plan: EnginePlan, m: int, model: LstmModel | None = None) -> np.ndarray:
    """The second bias of every row of GRU layer direction ``m`` in lane order: ``b_hn`` of
    unit ``u`` at its ``n`` row ``3u + 2`` (where its recurrent sum starts), 0 elsewhere."""
    model = plan.model if model is None else model
    mp = plan.matrices[m]
    H = plan.hidden_size
    second = np.zeros(mp.rows, dtype=np.int64)
    if mp.split_n:
        second[2 :: mp.unit_rows] = model.directions[m].bias[3 * H :]
    return second


def bank_images(plan: EnginePlan, model: LstmModel | None = None) -> BankImages:
    """Contents of every weight and bias bank of ``plan`` for ``model`` (default: the plan's
    own; another must have its shape and formats, only integer weights reload)."""
    model = plan.model if model is None else model
    plan.check_compatible(model)
    weights = np.zeros((plan.lanes, max(1, plan.bank_depth)), dtype=np.int64)
    halves = 2 if plan.is_gru else 1
    biases = np.zeros((plan.lanes, halves * max(1, plan.bias_depth)), dtype=np.int64)
    G, Q = plan.groups, plan.row_lanes
    for mp in plan.matrices:
        matrix, bias = matrix_values(plan, mp.index, model)
        if plan.is_gru:
            # The second half of the bias banks: the n rows' b_hn (zero for the head).
            block = _bias_block(plan, mp, gru_hn_biases(plan, mp.index, model))
            start = max(1, plan.bias_depth) + mp.bias_base
            biases[:, start : start + mp.passes] = block
        padded = np.zeros((mp.passes * Q, mp.span * G), dtype=np.int64)
        padded[: mp.rows, : mp.columns] = matrix
        # padded[pass*Q + q, j*G + g] -> weights[g*Q + q, base + pass*span + j]
        block = (
            padded.reshape(mp.passes, Q, mp.span, G)
            .transpose(3, 1, 0, 2)
            .reshape(G * Q, mp.passes * mp.span)
        )
        weights[:, mp.weight_base : mp.weight_base + mp.words] = block
        biases[:, mp.bias_base : mp.bias_base + mp.passes] = _bias_block(plan, mp, bias)
    return BankImages(
        weight_width=plan.weight_shape.width,
        bias_width=plan.bias_shape.width,
        weights=weights,
        biases=biases,
        split_biases=plan.is_gru,
    )


def _bias_block(plan: EnginePlan, mp, bias: np.ndarray) -> np.ndarray:
    """``(lanes, passes)``: lane ``p``'s bias word of each pass of ``mp`` for the lane-order
    row biases ``bias``; the bias enters once per row, in group 0."""
    G, Q = plan.groups, plan.row_lanes
    bias_block = np.zeros((G, mp.passes * Q), dtype=np.int64)
    bias_block[0, : mp.rows] = bias
    bias_block = bias_block.reshape(G, mp.passes, Q).transpose(0, 2, 1).reshape(-1)
    return bias_block.reshape(G * Q, mp.passes)


def _row_position(plan: EnginePlan, m: int, torch_row: int) -> tuple[int, int]:
    mp = plan.matrices[m]
    if not 0 <= torch_row < mp.real_rows:
        raise ValueError(f"row {torch_row} outside the {mp.real_rows} rows of {mp.name}")
    row = mp.unit_major_row(torch_row)
    return divmod(row, mp.row_lanes)


def weight_location(plan: EnginePlan, torch_row: int, column: int, matrix: int = 0) -> Location:
    """Bank and address of ``[W_ih | W_hh][torch_row, column]`` of layer direction
    ``matrix`` (PyTorch row and column order; for the head: ``weight[torch_row, column]``).
    A GRU's rows are its ``3H`` (gates r, z, n)."""
    mp = plan.matrices[matrix]
    pass_index, lane = _row_position(plan, matrix, torch_row)
    if not 0 <= column < mp.columns:
        raise ValueError(f"column {column} outside the {mp.columns} columns of {mp.name}")
    cycle, group = divmod(mp.walk_column(column), mp.groups)
    return Location(group * mp.row_lanes + lane, mp.weight_base + pass_index * mp.span + cycle)


def bias_location(plan: EnginePlan, torch_row: int, matrix: int = 0) -> Location:
    """Bank and address of the combined bias of ``torch_row`` of ``matrix`` (PyTorch order;
    a GRU's ``4H`` biases in the IR's order ``b_ir + b_hr, b_iz + b_hz, b_in, b_hn``: ``b_hn``
    of unit ``u``, row ``3H + u``, is in the second half of the bank of its ``n`` row)."""
    mp = plan.matrices[matrix]
    second = 0
    if mp.split_n and 3 * plan.hidden_size <= torch_row < 4 * plan.hidden_size:
        torch_row -= plan.hidden_size
        second = max(1, plan.bias_depth)
    pass_index, lane = _row_position(plan, matrix, torch_row)
    return Location(lane, second + mp.bias_base + pass_index)


def hex_file_name(kind: str, index: int, count: int) -> str:
    """``weights_group07.hex`` (packed weight memory ``index`` of ``count``) /
    ``bias_lane07.hex`` (bias bank of lane ``index`` of ``count``), numbers padded to equal
    length."""
    digits = len(str(count - 1))
    unit = "group" if kind == "weights" else "lane"
    return f"{kind}_{unit}{index:0{digits}d}.hex"


def hex_lines(values, width: int) -> str:
    """Two's complement ``width``-bit words, one per line, for ``$readmemh``."""
    values = np.asarray(values, dtype=np.int64)
    digits = (width + 3) // 4
    mask = (1 << width) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)
