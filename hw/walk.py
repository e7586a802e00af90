"""The job walker: issues a job's columns pass by pass, under the scoreboards."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import index_shape
from .jobs import JobKind, Source, address_shape, descriptor_layout, outstanding_limit
from .mvu import job_layout
from .plan import EnginePlan

__all__ = ["JobWalker", "beat_meta_layout", "read_layout"]


def read_layout(plan: EnginePlan) -> data.StructLayout:
    """One lane group's element read: ``address`` in the vector or state memory,
    ``x_address`` in the ``x`` banks and ``x_bank`` (which of the ``input_elements`` banks),
    ``source`` and ``beyond`` (past the matrix's last column: the element is 0)."""
    k_bits = plan.input_elements.bit_length() - 1
    return data.StructLayout(
        {
            "address": address_shape(plan),
            "x_address": address_shape(plan),
            "x_bank": unsigned(max(1, k_bits)),
            "source": Source,
            "beyond": unsigned(1),
        }
    )


def beat_meta_layout(plan: EnginePlan) -> data.StructLayout:
    """A column beat without its elements (see :func:`~lstm_fpga.hw.mvu.beat_layout`)."""
    return data.StructLayout(
        {
            "valid": unsigned(1),
            "segments": unsigned(plan.groups),
            "first": unsigned(1),
            "last": unsigned(1),
            "final_pass": unsigned(1),
            "job": job_layout(plan),
        }
    )


class JobWalker(wiring.Component):
    """Walks the offered job: ``pass = 0 .. passes-1``, ``cycle = 0 .. span-1``, one column
    per lane group per cycle, while the scoreboards allow it.

    Scoreboards (judged on the highest column read this cycle, so each segment is checked up
    to its highest column so far): an ``x`` column waits until its beat has arrived
    (``x_beats``); a vector column waits until ``lag + index < distance``, where ``lag`` is
    the count of units of earlier jobs not completed yet (the pipeline completes units in
    order, so it tells which producers are done). A pass's last column waits until the drain
    is free and the previous pass has landed in it.

    Ports
    -----
    job : In, :func:`~lstm_fpga.hw.jobs.descriptor_layout`
        The job to walk (held until ``job_end``).
    x_beats : In
        Input beats buffered for the oldest step not yet consumed (streaming schedule).
    completed : In(1)
        A unit left the gate and cell pipeline (``hidden_write``).
    drain_free, loaded : In(1)
        From the matrix-vector unit (see its protocol).
    issue, job_start, job_end : Out(1)
        A column is issued this cycle; the walk is at the job's first column; the job's last
        column is issued this cycle.
    outstanding : Out
        Units of started layer-direction jobs not completed yet.
    weight_address, bias_address : Out
        Weight-bank and bias-bank words of this cycle's column.
    reads : Out, array of :func:`read_layout` per lane group
        This cycle's element reads (their data arrive one cycle later).
    beat : Out, :func:`beat_meta_layout`
        The column beat to send one cycle later (``valid``: a column is issued).

    Latency: combinational from ``job`` and the scoreboards to ``issue``.
    """

    def __init__(self, plan: EnginePlan):
        self._plan = plan
        self._limit = outstanding_limit(plan)
        B = plan.x_beats_per_step
        super().__init__(
            {
                "job": In(descriptor_layout(plan)),
                "x_beats": In(range(2 * B + 1)),
                "completed": In(1),
                "drain_free": In(1),
                "loaded": In(1),
                "issue": Out(1),
                "job_start": Out(1),
                "job_end": Out(1),
                "outstanding": Out(range(self._limit)),
                "weight_address": Out(index_shape(plan.bank_depth)),
                "bias_address": Out(index_shape(plan.bias_depth)),
                "reads": Out(data.ArrayLayout(read_layout(plan), plan.groups)),
                "beat": Out(beat_meta_layout(plan)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        G = plan.groups
        k_bits = plan.input_elements.bit_length() - 1
        H = plan.hidden_size
        matrices = plan.matrices
        desc = self.job

        max_span = max(mp.span for mp in matrices)
        cycle = Signal(range(max_span))
        column = Signal(range(max_span * G))  # the column of group 0 this cycle
        pass_index = Signal(range(max(mp.passes for mp in matrices)))
        offset = Signal(index_shape(plan.bank_depth + 1))  # word within the matrix's region
        load_pending = Signal()

        def per_matrix(value):
            return Array([value(mp) for mp in matrices])[desc.matrix]

        span = per_matrix(lambda mp: mp.span)
        job_passes = per_matrix(lambda mp: mp.passes)
        job_columns = per_matrix(lambda mp: mp.columns)
        a_length = per_matrix(lambda mp: mp.segments[0].length)
        at_job_start = (pass_index == 0) & (cycle == 0)
        is_last_cycle = cycle == span - 1
        is_last_pass = pass_index == job_passes - 1
        m.d.comb += [
            self.job_start.eq(at_job_start),
            self.weight_address.eq(per_matrix(lambda mp: mp.weight_base) + offset),
            self.bias_address.eq(per_matrix(lambda mp: mp.bias_base) + pass_index),
        ]

        # -- lag: units of earlier jobs not completed yet ----------------------------------------
        outstanding = self.outstanding
        prior = Signal(range(self._limit))
        lag = Mux(at_job_start, outstanding, prior)
        completed = self.completed

        # The highest column read this cycle decides the scoreboards.
        top = Signal.like(column)
        m.d.comb += top.eq(Mux(column + (G - 1) < job_columns, column + (G - 1), job_columns - 1))
        a_index = Mux(top < a_length, top, a_length - 1)
        b_index = top - a_length
        a_ok = Mux(
            desc.a_x,
            (self.x_beats << k_bits) > a_index,
            ~desc.a_lag | (lag + a_index < desc.a_distance),
        )
        b_ok = (top < a_length) | (lag + b_index < desc.b_distance)

        drain_ok = ~is_last_cycle | (self.drain_free & ~load_pending)
        issue = self.issue
        m.d.comb += [
            issue.eq(desc.valid & a_ok & b_ok & drain_ok),
            self.job_end.eq(issue & is_last_cycle & is_last_pass),
        ]
        with m.If(issue):
            with m.If(is_last_cycle):
                m.d.sync += [cycle.eq(0), column.eq(0)]
                with m.If(is_last_pass):
                    m.d.sync += [pass_index.eq(0), offset.eq(0)]
                with m.Else():
                    m.d.sync += [pass_index.eq(pass_index + 1), offset.eq(offset + 1)]
            with m.Else():
                m.d.sync += [cycle.eq(cycle + 1), column.eq(column + G), offset.eq(offset + 1)]
        with m.If(self.loaded):
            m.d.sync += load_pending.eq(0)
        with m.If(issue & is_last_cycle):
            m.d.sync += load_pending.eq(1)

        lstm_start = issue & at_job_start & (desc.kind == JobKind.LSTM)
        m.d.sync += outstanding.eq(outstanding + Mux(lstm_start, H, 0) - completed)
        with m.If(issue & at_job_start):
            m.d.sync += prior.eq(outstanding - completed)
        with m.Elif(completed & (prior != 0)):
            m.d.sync += prior.eq(prior - 1)

        # -- element reads of this cycle's columns --------------------------------------------
        b_base_rel = desc.b_base - a_length
        for g, read in enumerate(self.reads):
            c = column + g
            in_a = c < a_length
            m.d.comb += [
                read.address.eq(Mux(in_a, desc.a_base, b_base_rel) + c),
                read.x_address.eq(desc.a_base + (c >> k_bits)),
                read.source.eq(Mux(in_a, desc.a_source, desc.b_source)),
                read.beyond.eq(c >= job_columns),
                self.beat.segments[g].eq(~in_a),
            ]
            if k_bits:
                m.d.comb += read.x_bank.eq(c[:k_bits])
        m.d.comb += [
            self.beat.valid.eq(issue),
            self.beat.first.eq(cycle == 0),
            self.beat.last.eq(is_last_cycle),
            self.beat.final_pass.eq(is_last_pass),
            self.beat.job.eq(desc.job),
        ]
        return m
