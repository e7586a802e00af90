"""Talking to an ``lstm-fpga`` device over its host link (``docs/host.md``).

::

    from lstm_fpga.host import Device, virtual_device

    with virtual_device("out/build") as url, Device(url, "out/build") as device:
        y = device.predict(x)          # floats, decoded with the build's output format

:mod:`lstm_fpga.host.protocol` holds the protocol's numbers and frame coding (no
dependencies); :class:`Device` needs pyserial.
"""

from __future__ import annotations

__all__ = ["Device", "DeviceError", "LinkError", "virtual_device"]


def __getattr__(name: str):
    # Lazy: the hardware (lstm_fpga.hw.hostlink) imports lstm_fpga.host.protocol, and the
    # driver imports the hardware's interface; importing them here eagerly would be a cycle.
    if name in ("Device", "DeviceError", "LinkError"):
        from . import device

        return getattr(device, name)
    if name == "virtual_device":
        from ..sim.virtual_device import virtual_device

        return virtual_device
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
