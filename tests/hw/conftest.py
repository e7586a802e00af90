"""Stream drivers for the hardware tests (random models: :mod:`lstm_fpga.testing`)."""

from __future__ import annotations


async def send_beats(ctx, port, beats, rng, idle: float = 0.0, on_beat=None):
    """Drive ``beats`` (payload values) into stream ``port`` with random idle cycles.

    Before each beat, ``valid`` stays low for a geometric number of cycles (mean
    ``idle / (1 - idle)``); the beat is held until ``ready``. ``on_beat()``, when given, is
    called right after each handshake (e.g. to record its cycle).
    """
    for beat in beats:
        while idle and rng.random() < idle:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, beat)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        if on_beat is not None:
            on_beat()
    ctx.set(port.valid, 0)


async def receive_beats(ctx, port, count: int, rng, stall: float = 0.0, fields=None):
    """Collect ``count`` beats from stream ``port`` while dropping ``ready`` at random.

    Returns the payloads (as ``{field: int}`` dicts when ``fields`` is given, else ints).
    """
    got = []
    signals = [port.payload] if fields is None else [port.payload[f] for f in fields]
    while len(got) < count:
        ready = not (stall and rng.random() < stall)
        ctx.set(port.ready, ready)
        _, _, valid, *values = await ctx.tick().sample(port.valid, *signals)
        if ready and valid:
            got.append(values[0] if fields is None else dict(zip(fields, values, strict=True)))
    ctx.set(port.ready, 0)
    return got
