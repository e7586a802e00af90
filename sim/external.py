"""cocotb test module for external weights: the weight read master
(:class:`~lstm_fpga.hw.external.WeightFetcher`) alone, or ``lstm_top`` built with
``weights="external"``, against cocotbext-axi's AXI4 RAM model.

The host writes a spec into the run directory and runs :func:`external_scenario`, which puts
the weight image into :func:`latency_ram` (the read half of cocotbext-axi's ``AxiRam``,
``AxiRamRead``, with a pipelined random read latency per burst; cocotbext-axi pause
generators throttle ``arready`` and ``rvalid``) and then

* :func:`fetcher_scenario` (host: :func:`run_fetcher_scenario`): takes the master's words
  with a randomly paced ``word.ready``, compares each with the image's word and records the
  mismatches, every read address and the cycles;
* :func:`top_scenario` (host: :func:`run_external_scenario`, or :func:`external_run`, which
  also compiles the design and draws the sequences): streams ``x`` in and ``y`` out with
  random pacing and records ``y``, its cycles and every read burst the memory accepted.

The record goes to ``fetcher_result.json``; the host checks.
"""

from __future__ import annotations

import json
import os
import random
from collections import deque
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = [
    "SPEC_ENV",
    "external_run",
    "external_scenario",
    "fetcher_scenario",
    "latency_ram",
    "run_external_scenario",
    "run_fetcher_scenario",
]

#: Environment variable naming the spec file.
SPEC_ENV = "LSTM_FPGA_FETCHER_SPEC"
RESULT_FILE = "fetcher_result.json"


def run_fetcher_scenario(sim_build, spec: dict, run_dir, seed: int = 0) -> dict:
    """Run the scenario of ``spec`` on a compiled ``WeightFetcher`` and return its record."""
    return _run(sim_build, {**spec, "kind": "fetcher"}, run_dir, seed)


def external_run(
    model, config, lengths, latency, pacing: float, seed: int, run_dir, cache_dir=None
):
    """Compile ``lstm_top`` for ``model`` on ``config`` (``weights="external"``), put its
    image into the RAM model (read latency drawn from ``latency = (lo, hi)`` cycles per
    burst; ``pacing``: the probability of a pause on ``arready``, ``rvalid``, ``x`` and
    ``y``) and run random sequences of ``lengths``. Returns ``(interface, image, sequences,
    record)`` (:func:`run_external_scenario`'s record). With ``interleave`` B > 1
    ``lengths`` must be whole groups (``TopInterface.check_groups``): ``x`` goes out in the
    wire's interleaved order, and the record's ``y`` comes back in sequence order
    (``y_wire`` keeps the wire's order)."""
    from ..hw.external import weight_image
    from ..testing import random_sequences
    from .design import compile_model

    design = compile_model(model, config, cache_dir=cache_dir)
    interface = design.interface
    params = config.axi
    image = weight_image(interface.plan, data_width=params.data_width)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "weights.bin"
    path.write_bytes(image.data)
    interface.check_groups(lengths)
    sequences = random_sequences(model, lengths, rng=seed)
    bound = interface.sequence_bound(max(lengths))
    x_data = np.array([int(v) for s in sequences for v in interface.pack_x(s)], dtype=object)
    x_last = np.asarray(interface.x_last(lengths), dtype=bool)
    x_order = interface.x_order(lengths)  # the identity without interleaving
    spec = {
        "idle": [list(pair) for pair in interface.idle_inputs],
        "x_stream": interface.x.name,
        "y_stream": interface.y.name,
        "image": str(path.resolve()),
        "base": params.base,
        "ram_bytes": params.base + image.bytes + 4096,
        "latency": list(latency),
        "ar_pause": pacing,
        "r_pause": pacing,
        "seed": seed,
        "x": {
            "data": [int(v) for v in x_data[x_order]],
            "last": [bool(v) for v in x_last[x_order]],
        },
        "y_beats": int(interface.y_beats(lengths).sum()),
        "input_pacing": {"probability": pacing, "max_cycles": 3, "seed": seed},
        "output_pacing": {"probability": pacing, "max_cycles": 3, "seed": seed + 1},
        "timeout_cycles": 40 * (bound + image.beats * max(lengths)) * len(lengths)
        + 50 * max(latency)
        + 4000,
    }
    got = run_external_scenario(design.sim_build, spec, run_dir / "run", seed=seed)
    if interface.interleave > 1 and len(got["y"]) == spec["y_beats"]:
        got["y_wire"] = got["y"]
        y = np.zeros(len(got["y"]), dtype=object)
        y[interface.y_order(lengths)] = got["y"]
        got["y"] = [int(v) for v in y]
    return interface, image, sequences, got


def run_external_scenario(sim_build, spec: dict, run_dir, seed: int = 0) -> dict:
    """Run ``spec``'s sequences through a compiled ``lstm_top`` built with external weights
    (its image in the RAM model) and return the record: ``y`` beats and their cycles, the
    ``x`` cycles, every read burst ``[address, beats]`` and the read error flag."""
    return _run(sim_build, {**spec, "kind": "top"}, run_dir, seed)


def _run(sim_build, spec: dict, run_dir, seed: int) -> dict:
    from .runner import run

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = (run_dir / "fetcher_spec.json").resolve()
    spec_path.write_text(json.dumps(spec))
    run(sim_build, __name__, run_dir, env={SPEC_ENV: str(spec_path)}, seed=seed)
    return json.loads((run_dir / RESULT_FILE).read_text())


def _pauses(probability: float, rng: random.Random):
    while True:
        yield int(rng.random() < probability)


def latency_ram(bus, clock, reset, size, latency, rng):
    """cocotbext-axi's ``AxiRamRead`` with a pipelined random read latency (built lazily)."""
    from cocotbext.axi import AxiBurstType, AxiRamRead, AxiResp

    class _Ram(AxiRamRead):
        """cocotbext-axi's ``AxiRamRead`` with a pipelined read latency: a burst's first beat
        leaves no earlier than ``latency`` cycles (drawn per burst from ``[lo, hi]``, never
        earlier than the burst before it) after its address was accepted; addresses keep
        being accepted meanwhile."""

        def __init__(self, *args, **kwargs):
            self.now = 0
            self.bursts = []  # [address, beats] of every accepted read address
            self._pending = deque()
            super().__init__(*args, **kwargs)

        async def _count(self):
            while True:
                await RisingEdge(self.clock)
                self.now += 1

        async def _accept(self):
            due = 0
            while True:
                ar = await self.ar_channel.recv()
                self.bursts.append([int(ar.araddr), int(ar.arlen) + 1])
                due = max(due, self.now + rng.randint(*latency))
                self._pending.append((due, ar))

        async def _process_read(self):
            cocotb.start_soon(self._count())
            cocotb.start_soon(self._accept())
            while True:
                while not self._pending or self.now < self._pending[0][0]:
                    await RisingEdge(self.clock)
                _, ar = self._pending.popleft()
                addr, length = int(ar.araddr), int(ar.arlen) + 1
                assert int(ar.arburst) == AxiBurstType.INCR
                assert 2 ** int(ar.arsize) == self.byte_lanes
                assert addr % self.byte_lanes == 0
                assert 0x1000 - (addr & 0xFFF) >= length * self.byte_lanes, "4 KiB crossed"
                for n in range(length):
                    r = self.r_channel._transaction_obj()
                    r.rid = int(ar.arid)
                    r.rlast = n == length - 1
                    r.rresp = AxiResp.OKAY
                    data = await self._read(addr + n * self.byte_lanes, self.byte_lanes)
                    r.rdata = int.from_bytes(data, "little")
                    await self.r_channel.send(r)

    return _Ram(bus, clock, reset, size=size)


@cocotb.test()
async def external_scenario(dut):
    spec = json.loads(Path(os.environ[SPEC_ENV]).read_text())
    if spec["kind"] == "fetcher":
        await fetcher_scenario(dut, spec)
    else:
        await top_scenario(dut, spec)


def _weight_memory(dut, spec: dict, rng: random.Random):
    """The RAM model on ``dut``'s ``m_axi`` read ports, holding the weight image at the spec's
    base address, its ``arready``/``rvalid`` paused at the spec's rates."""
    from cocotbext.axi import AxiReadBus

    bus = AxiReadBus.from_prefix(dut, "m_axi")
    ram = latency_ram(bus, dut.clk, None, spec["ram_bytes"], tuple(spec["latency"]), rng)
    ram.write(spec["base"], Path(spec["image"]).read_bytes())
    ram.ar_channel.set_pause_generator(_pauses(spec["ar_pause"], random.Random(rng.random())))
    ram.r_channel.set_pause_generator(_pauses(spec["r_pause"], random.Random(rng.random())))
    return ram


async def top_scenario(dut, spec: dict) -> None:
    """``lstm_top`` with its weights in the RAM model: the ``x`` beats in, ``y`` out."""
    from .stimulus import Pacing
    from .tb import TB

    rng = random.Random(spec["seed"])
    tb = TB(dut)
    for name, value in spec["idle"]:  # every input idle (TopInterface.idle_inputs)
        getattr(dut, name).value = value
    ram = _weight_memory(dut, spec, rng)
    await tb.start()
    source = tb.source(spec["x_stream"], pacing=Pacing(**spec["input_pacing"]))
    sink = tb.sink(spec["y_stream"], pacing=Pacing(**spec["output_pacing"]), beats=spec["y_beats"])
    source.send(spec["x"]["data"], spec["x"]["last"])
    await tb.wait_done(spec["timeout_cycles"])
    await tb.wait_cycles(4)
    tb.check_empty()
    record = {
        "y": sink.data,
        "y_last": sink.lasts,
        "y_cycles": sink.cycles,
        "x_cycles": source.cycles,
        "reads": ram.bursts,
        "read_error": int(dut.weights_read_error.value),
        "cycles": int(dut.cycles.value),
    }
    Path(RESULT_FILE).write_text(json.dumps(record))


async def fetcher_scenario(dut, spec: dict) -> None:
    """The read master alone: take ``words`` words and compare each with the image's."""
    from .tb import TB

    rng = random.Random(spec["seed"])
    tb = TB(dut)
    dut.word__ready.value = 0
    _ram = _weight_memory(dut, spec, rng)  # the reads are recorded below, at the ports
    image = Path(spec["image"]).read_bytes()
    await tb.start()

    # The words the image holds, in order (bit-exact against the banks: checked by the host).
    word_bits = spec["word_bits"]
    mask = (1 << word_bits) - 1
    count = spec["image_words"]

    def word_at(a: int) -> int:
        start = a * word_bits
        chunk = image[start // 8 : (start + word_bits) // 8 + 1]
        return (int.from_bytes(chunk, "little") >> (start % 8)) & mask

    expected = [word_at(a) for a in range(count)]
    taken = 0
    mismatches = 0
    first_mismatch = None
    reads: list[list[int]] = []
    cycles = 0
    first_word = None
    ready_p = spec["ready_probability"]
    while taken < spec["words"]:
        ready = int(rng.random() < ready_p)
        dut.word__ready.value = ready
        await ReadOnly()
        if int(dut.m_axi_arvalid.value) and int(dut.m_axi_arready.value):
            reads.append([int(dut.m_axi_araddr.value), int(dut.m_axi_arlen.value) + 1])
        if ready and int(dut.word__valid.value):
            word = int(dut.word__payload.value)
            if word != expected[taken % count]:
                mismatches += 1
                if first_mismatch is None:
                    first_mismatch = [taken, f"{word:x}", f"{expected[taken % count]:x}"]
            taken += 1
            if first_word is None:
                first_word = cycles
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < spec["timeout_cycles"], f"timeout after {taken} words"
    result = {
        "words": taken,
        "mismatches": mismatches,
        "first_mismatch": first_mismatch,
        "reads": reads,
        "cycles": cycles,
        "first_word": first_word,
        "read_error": int(dut.read_error.value),
    }
    Path(RESULT_FILE).write_text(json.dumps(result))
