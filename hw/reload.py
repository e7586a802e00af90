"""Run-time weight reload: the words that load a model into generated hardware.

The ``w`` stream of ``lstm_top`` (``LstmEngine.weight_write``) writes one word of one bank per
beat. :func:`weight_load_words` lists every word of a model of the generated shape and
formats, :func:`pack_weight_word` packs one into the ``w__tdata`` bits::

    words = weight_load_words(model, HardwareConfig(lanes=16), new_model)
    beats = [pack_weight_word(plan, w) for w in words]      # tlast on the final one

Loads are accepted only while the engine is idle (``busy`` low), so the new weights apply
from the next sequence on.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from ..sw.ir import LstmModel
from .config import HardwareConfig
from .memory import WeightTarget, write_layout
from .plan import EnginePlan

__all__ = ["WeightWord", "pack_weight_word", "weight_load_words", "weight_word_fields"]


@dataclass(frozen=True)
class WeightWord:
    """One word of the weight load: ``value`` into bank ``lane`` of ``target`` (0 weights,
    1 biases) at ``address``."""

    target: int
    lane: int
    address: int
    value: int

    def payload(self, plan: EnginePlan) -> dict:
        """The word as the Amaranth payload of ``write_layout`` (for simulation)."""
        width = _data_width(plan)
        return {
            "target": self.target,
            "lane": self.lane,
            "address": self.address,
            "data": self.value & ((1 << width) - 1),
        }


def _data_width(plan: EnginePlan) -> int:
    return max(plan.images.weight_width, plan.images.bias_width)


def _plan(plan_or_model, config) -> EnginePlan:
    if isinstance(plan_or_model, EnginePlan):
        return plan_or_model
    return EnginePlan(plan_or_model, config)


def weight_load_words(
    plan_or_model: EnginePlan | LstmModel,
    config_or_model: HardwareConfig | LstmModel,
    model: LstmModel | None = None,
) -> list[WeightWord]:
    """Every weight and bias word of ``model`` for hardware generated for a model of the same
    shape and formats.

    Call as ``weight_load_words(plan, new_model)`` or ``weight_load_words(generated_model,
    config, new_model)``. Words come lane by lane: the weight bank, then the bias bank.
    """
    if model is None:
        plan, model = _plan(plan_or_model, None), config_or_model
    else:
        plan = _plan(plan_or_model, config_or_model)
    images = plan.bank_images(model)
    words = []
    for lane in range(images.lanes):
        for address, value in enumerate(images.weights[lane][: plan.bank_depth]):
            words.append(WeightWord(WeightTarget.WEIGHT, lane, address, int(value)))
        for address, value in enumerate(images.biases[lane][: plan.bias_depth]):
            words.append(WeightWord(WeightTarget.BIAS, lane, address, int(value)))
    return words


_FIELDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def weight_word_fields(plan: EnginePlan) -> dict[str, tuple[int, int]]:
    """Bit ``(offset, width)`` of each field in ``w__tdata``."""
    fields = _FIELDS.get(plan)
    if fields is None:
        layout = write_layout(plan.images)
        fields = _FIELDS[plan] = {name: (field.offset, field.width) for name, field in layout}
    return dict(fields)


def pack_weight_word(plan: EnginePlan, word: WeightWord) -> int:
    """``w__tdata`` of ``word``: ``target``, ``lane``, ``address`` and ``data`` bit fields."""
    fields = weight_word_fields(plan)
    value = 0
    for name, raw in word.payload(plan).items():
        offset, width = fields[name]
        value |= (raw & ((1 << width) - 1)) << offset
    return value
