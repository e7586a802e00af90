"""Wiring some same-named members of two interfaces (``wiring.connect`` joins whole ones)."""

from __future__ import annotations

from amaranth.hdl import Module, Value
from amaranth.lib.wiring import Flow

__all__ = ["connect_members"]


def _check_flow(interface, name: str, flow: Flow, role: str) -> None:
    signature = getattr(interface, "signature", None)
    if signature is None:  # a plain struct view: any field may be read or driven
        return
    if signature.members[name].flow is not flow:
        raise TypeError(
            f"member {name!r} is not {role} (pass a component's own ports flipped, as to "
            "wiring.connect)"
        )


def connect_members(m: Module, source, sink, *names: str) -> None:
    """Drives ``sink.name`` from ``source.name``, combinationally, for each of ``names``.

    For a subset of the members of two interfaces (components, streams, or struct views).
    As with :func:`amaranth.lib.wiring.connect`, a component's own ports are passed flipped
    (``wiring.flipped(self)``): where a side has a signature, each member is an output of
    ``source`` and an input of ``sink``. The two members have the same width (``eq`` would
    truncate or extend silently).
    """
    for name in names:
        _check_flow(source, name, Flow.Out, "an output of the source")
        _check_flow(sink, name, Flow.In, "an input of the sink")
        driver, driven = getattr(source, name), getattr(sink, name)
        width, driven_width = Value.cast(driver).shape().width, Value.cast(driven).shape().width
        if width != driven_width:
            raise TypeError(
                f"member {name!r}: the source has {width} bits, the sink {driven_width}"
            )
        m.d.comb += driven.eq(driver)
