"""Layouts and enums shared by the sequencer's parts; job descriptors above all.

A *job* is one evaluation of a matrix of the plan (a layer direction's gates or the head). Its
columns come in two segments (:attr:`~lstm_fpga.hw.plan.MatrixPlan.segments`); the descriptor
says where each segment's elements are read from (:class:`Source` and base address) and which
scoreboard applies to it. Also the input beat and the writes into the element memories. Pure
layouts and enums, no logic.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Signal, Value, unsigned
from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from .config import index_shape
from .mvu import job_layout
from .plan import EnginePlan

__all__ = [
    "Fields",
    "JobKind",
    "Source",
    "address_shape",
    "descriptor_layout",
    "distance_shape",
    "h0_write_layout",
    "input_layout",
    "outstanding_limit",
    "schedule_ports",
    "x_write_layout",
]


class Source(enum.Enum, shape=2):
    """Memory a segment's elements are read from."""

    #: The input buffer (``x_t``).
    X = 0
    #: The vector memory (every layer's ``h_t``).
    VECTOR = 1
    #: The state memory (``h0`` and the final states of the previous sequence).
    STATE = 2


class JobKind(enum.Enum, shape=1):
    """What a job's units are: gates of a layer direction or rows of the head."""

    LSTM = 0
    HEAD = 1


def input_layout(plan: EnginePlan) -> data.StructLayout:
    """An input beat: ``data`` is one element of ``x_t`` (an array of ``input_elements``
    elements when that is more than 1); ``last`` ends the sequence."""
    shape = plan.input_shape
    if plan.input_elements > 1:
        shape = data.ArrayLayout(shape, plan.input_elements)
    return data.StructLayout({"data": shape, "last": unsigned(1)})


def h0_write_layout(plan: EnginePlan) -> data.StructLayout:
    """A write of ``h0[k][u]`` (of interleaved sequence ``b``) at ``address = b * L * D * H +
    k * H + u``."""
    return data.StructLayout(
        {"address": index_shape(plan.state_group_words), "value": plan.state_shape}
    )


def x_write_layout(plan: EnginePlan) -> data.StructLayout:
    """A write of one input beat (``input_elements`` elements, one per ``x`` bank)."""
    return data.StructLayout(
        {
            "address": index_shape(x_buffer_words(plan)),
            "elements": data.ArrayLayout(plan.input_shape, plan.input_elements),
            "enable": unsigned(1),
        }
    )


def x_buffer_words(plan: EnginePlan) -> int:
    """Words of each bank of the ``x`` buffer (at least 2: no zero-width address)."""
    return max(2, plan.x_slots * plan.x_slot_beats)


def state_memory_words(plan: EnginePlan) -> int:
    """Words of the state memory: ``h0`` and two final-state regions of ``B*L*D*H`` each."""
    return max(2, 3 * plan.state_group_words)


def address_shape(plan: EnginePlan):
    """Shape of a segment's base address: any word of the ``x``, vector or state memory."""
    return index_shape(
        max(x_buffer_words(plan), max(2, plan.vector_depth), state_memory_words(plan))
    )


def distance_shape(plan: EnginePlan):
    """Shape of a scoreboard distance: units completed between a producer and its reader
    (at most ``B*L*H`` in the streaming schedule, ``2H`` in the buffered one; ``H + R``
    for ``H`` with an LSTMP's projections)."""
    H = plan.hidden_size
    if plan.projected:  # (an LSTMP's layers complete H + R units per step)
        H = H + plan.proj_size
    return index_shape(max(plan.interleave * plan.num_layers * H, 2 * H) + 1)


def outstanding_limit(plan: EnginePlan) -> int:
    """An upper bound (exclusive) on units issued but not completed at any time: the jobs the
    lanes, the drain and the cell pipeline can hold, with margin."""
    H = plan.hidden_size
    jobs = 4 * (len(plan.matrices) + 2) * plan.interleave
    return jobs * H * max(1, plan.num_directions) + 64


def descriptor_layout(plan: EnginePlan) -> data.StructLayout:
    """The job a schedule offers the walker.

    ``valid``: there is a job; ``kind``, ``matrix``: what it computes. Segment ``a`` (the
    matrix's first columns) and ``b`` (the rest): ``*_source`` and ``*_base`` (word of column
    0 of the segment; ``b_base`` is the word of the first ``b`` column); ``a_x``: ``a`` reads
    ``x`` and waits for the input beats; ``a_lag``: ``a`` reads units produced by earlier
    jobs and waits until ``lag + index < a_distance``; ``b`` always waits that way
    (``b_distance``). ``job``: the fields that ride along with the job's beats.
    """
    return data.StructLayout(
        {
            "valid": unsigned(1),
            "kind": JobKind,
            "matrix": index_shape(len(plan.matrices)),
            "a_source": Source,
            "a_base": address_shape(plan),
            "a_lag": unsigned(1),
            "a_x": unsigned(1),
            "a_distance": distance_shape(plan),
            "b_source": Source,
            "b_base": address_shape(plan),
            "b_distance": distance_shape(plan),
            "job": job_layout(plan),
        }
    )


def schedule_ports(plan: EnginePlan) -> dict:
    """Ports every schedule has (see :class:`~lstm_fpga.hw.streaming.StreamingSchedule`)."""
    return {
        "x": In(stream.Signature(input_layout(plan))),
        "x_write": Out(x_write_layout(plan)),
        "job": Out(descriptor_layout(plan)),
        "next_job": Out(descriptor_layout(plan)),
        "issue": In(1),
        "job_start": In(1),
        "job_end": In(1),
        "carry_state": In(1),
        "read_state": In(1),
        "may_start_next": In(1),
        "hold": In(1),
        "open": Out(1),
        "started": Out(1),
        "admitted": Out(1),
    }


class Fields:
    """The fields of a :class:`~amaranth.lib.data.StructLayout` as separate signals (nested
    layouts as nested :class:`Fields`), assigned to a port of that layout in one piece.

    A schedule drives some descriptor fields with constants and others under conditions.
    Driven as parts of one vector, Yosys writes each constant part as an ``always @*`` block
    that reads nothing, which Verilator and Icarus never run (the bits stay 0); separate
    signals become plain ``assign`` statements.
    """

    def __init__(self, layout: data.StructLayout, prefix: str = ""):
        self._layout = layout
        for name, field in layout:
            if isinstance(field.shape, data.StructLayout):
                value = Fields(field.shape, f"{prefix}{name}_")
            else:
                value = Signal(field.shape, name=f"{prefix}{name}")
            setattr(self, name, value)

    def as_value(self) -> Value:
        """All fields packed as the layout packs them."""
        parts = []
        for name, _ in self._layout:
            field = getattr(self, name)
            parts.append(field.as_value() if isinstance(field, Fields) else Value.cast(field))
        return Cat(*parts)
