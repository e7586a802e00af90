"""Run-time weight reload: the words that load a model into generated hardware.

The ``w`` stream of ``lstm_top`` (``LstmEngine.weight_write``) writes one word of one bank per
beat. :func:`weight_load_words` lists every word of a model of the generated shape and
formats; :meth:`TopInterface.pack_weight_word <lstm_fpga.hw.interface.TopInterface>` packs
one into the ``w`` stream's data::

    words = weight_load_words(plan, new_model)
    beats = [interface.pack_weight_word(w) for w in words]      # tlast on the final one

Loads are accepted only while the engine is idle (``busy`` low), so the new weights apply
from the next sequence on.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sw.ir import LstmModel
from .banks import bank_packing
from .config import HardwareConfig
from .memory import WeightTarget
from .plan import EnginePlan

__all__ = ["WeightWord", "weight_load_words"]


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
    config, new_model)``. Words come lane by lane: the weight bank, then the bias bank. A
    lane's weight words stop at its packed memory's ``depth``
    (:func:`~lstm_fpga.hw.banks.bank_packing`): the words past it are structural zeros with
    no storage. With ``weights="external"`` there are no weight banks: only the bias words
    (write the new model's :func:`~lstm_fpga.hw.external.weight_image` into the memory
    instead, with ``lstm_top`` held in reset, ``docs/external.md``).
    """
    if model is None:
        plan, model = _plan(plan_or_model, None), config_or_model
    else:
        plan = _plan(plan_or_model, config_or_model)
    images = plan.bank_images(model)
    packing = bank_packing(plan)
    words = []
    for lane in range(images.lanes):
        stored = 0 if plan.config.weights == "external" else packing.group_of(lane).depth
        for address, value in enumerate(images.weights[lane][:stored]):
            words.append(WeightWord(WeightTarget.WEIGHT, lane, address, int(value)))
        # (a GRU's bias banks have a second half, the n rows' b_hn: images.split_biases)
        halves = 2 if images.split_biases else 1
        for half in range(halves):
            base = half * images.bias_read_depth
            for address, value in enumerate(images.biases[lane][base : base + plan.bias_depth]):
                words.append(WeightWord(WeightTarget.BIAS, lane, base + address, int(value)))
    return words
