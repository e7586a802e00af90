"""The Python driver of a device running an ``lstm-fpga`` build behind its host link."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import serial

from ..hw.interface import SATURATION_KINDS, TopInterface
from ..hw.plan import EnginePlan
from ..project import Project
from ..sw.ir import LstmModel
from ..sw.numerics import dequantize, quantize, scaled_integers
from . import protocol as P

__all__ = ["DEFAULT_TIMEOUT", "Device", "DeviceError", "LinkError", "Status"]

#: Seconds to wait for an answer.
DEFAULT_TIMEOUT = 5.0


class LinkError(RuntimeError):
    """No answer, or an answer that is not what the request needed (timeout, malformed frame,
    wrong type or sequence number, outputs out of step)."""


class DeviceError(RuntimeError):
    """The device answered with an ``ERROR`` frame: ``code`` (:class:`~protocol.ErrorCode`)
    and ``detail``."""

    def __init__(self, code, detail: int, request: str):
        self.code, self.detail = code, detail
        name = code.name if isinstance(code, P.ErrorCode) else f"code {code}"
        super().__init__(f"the device refused {request}: {name} (detail {detail})")


@dataclass(frozen=True)
class Status:
    """The device's status (``READ_STATUS``): the core's cycle counter and flags, the output
    queues' levels, the saturation counters and the link's dropped bytes."""

    cycles: int
    busy: bool
    started: bool
    done: bool
    overflow: bool
    y_level: int
    state_level: int
    saturations: dict[str, int]
    dropped: int


def _chunks(values: list[bytes], per_frame: int):
    for start in range(0, len(values), per_frame):
        yield values[start : start + per_frame], start + per_frame >= len(values)


class Device:
    """A device running the build in ``build_dir``, reached at ``port_or_url`` (a serial port
    such as ``/dev/ttyUSB0`` or any pyserial URL, e.g. ``socket://127.0.0.1:PORT`` of
    :func:`~lstm_fpga.host.virtual_device`).

    Opening it asks the device for its geometry (``INFO``) and checks that its beats have the
    build's sizes. Requests are stop-and-wait; an ``ERROR`` answer raises :class:`DeviceError`
    and a missing or malformed one :class:`LinkError`.
    """

    def __init__(
        self, port_or_url: str, build_dir, *, baudrate: int = 115_200, timeout=DEFAULT_TIMEOUT
    ):
        project = Project.load(build_dir)
        self.model: LstmModel = project.model
        self.batch_first = project.batch_first
        self.interface = TopInterface(EnginePlan(project.model, project.config))
        self.timeout = timeout
        self._serial = serial.serial_for_url(port_or_url, baudrate=baudrate, timeout=timeout)
        self._seq = 0
        try:
            self.info = self._info()
        except Exception:
            self._serial.close()
            raise

    # -- session -----------------------------------------------------------------------------
    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _info(self) -> dict[str, int]:
        answer = self.request(P.FrameType.INFO)
        info = P.info_values(answer)
        i = self.interface
        expected = {
            "x_bytes": P.beat_bytes(i.x.width),
            "y_bytes": P.beat_bytes(i.y.width + 1),
            "state_bytes": P.beat_bytes(i.state.width + 1),
            "init_bytes": P.beat_bytes(i.init.width),
            "w_bytes": P.beat_bytes(i.w.width),
            "state_depth": i.state_beats,
        }
        wrong = {k: (info[k], v) for k, v in expected.items() if info[k] != v}
        if wrong:
            raise LinkError(
                f"the device does not run this build (device vs build: {wrong}); program it "
                "with this build's bitstream or pass the build directory it runs"
            )
        return info

    def resync(self, attempts: int = 5) -> None:
        """Drop whatever the device sent, start a new session (``INFO``) and empty the output
        queues (beats left over from an interrupted run). A frame the device is still
        receiving may swallow the first ``INFO`` (its error comes back): up to ``attempts``."""
        for _ in range(attempts):
            time.sleep(0.05)
            self._serial.reset_input_buffer()
            try:
                self.info = self._info()
                break
            except (DeviceError, LinkError):
                continue
        else:
            raise LinkError(f"no INFO answer in {attempts} attempts: is the device running?")
        status = self.status()
        for type_, size, level in (
            (P.FrameType.READ_OUTPUTS, self.info["y_bytes"], status.y_level),
            (P.FrameType.READ_STATE, self.info["state_bytes"], status.state_level),
        ):
            self._read_queue(type_, size, level, level)

    # -- frames ------------------------------------------------------------------------------
    def send_raw(self, data: bytes) -> P.Frame:
        """Write ``data`` as is and return the next frame the device sends (diagnostics)."""
        self._serial.write(bytes(data))
        self._serial.flush()
        return self._read_frame()

    def _read_frame(self) -> P.Frame:
        try:
            return P.read_frame(self._serial.read)
        except TimeoutError as error:
            raise LinkError(
                f"no answer from the device within {self.timeout} s ({error})"
            ) from None
        except P.FrameError as error:
            raise LinkError(f"malformed answer from the device: {error}") from None

    def request(self, type_: P.FrameType, payload: bytes = b"") -> bytes:
        """Send one request, return its answer's payload."""
        seq = self._seq
        self._serial.write(P.encode_frame(P.Frame(int(type_), seq, bytes(payload))))
        self._serial.flush()
        answer = self._read_frame()
        name = f"{P.FrameType(type_).name} (seq {seq})"
        if answer.type == P.FrameType.ERROR:
            code, detail = answer.error or (answer.payload[:1], 0)
            raise DeviceError(code, detail, name)
        if answer.type != (type_ | P.RESPONSE_BIT) or answer.seq != seq:
            raise LinkError(
                f"answer of type {answer.type:#04x} seq {answer.seq} to {name}; expected type "
                f"{type_ | P.RESPONSE_BIT:#04x}"
            )
        self._seq = (seq + 1) % P.SEQ_MODULUS
        return answer.payload

    def _load(self, type_: P.FrameType, beats: list[bytes], flags: int = 0) -> None:
        """Stream ``beats`` in frames; ``LAST`` on the final one."""
        size = len(beats[0])
        per_frame = (self.info["max_payload"] - 1) // size
        for chunk, final in _chunks(beats, per_frame):
            frame_flags = flags | (P.LoadFlags.LAST if final else 0)
            self.request(type_, bytes([frame_flags]) + b"".join(chunk))

    # -- loads -------------------------------------------------------------------------------
    def load_weights(self, model: LstmModel) -> None:
        """Reload the weights and biases of ``model`` (same shape and formats as the build)."""
        self.interface.check_compatible(model)
        size = self.info["w_bytes"]
        words = [P.to_le(int(w), size) for w in self.interface.weight_words(model)]
        self._load(P.FrameType.LOAD_WEIGHTS, words)
        self.model = model

    def load_state(self, h0, c0) -> None:
        """Load the initial state: integer ``h0`` (hidden formats) and ``c0`` (cell formats),
        ``(L*D, H)`` each, as the integer reference takes them."""
        for name, value in (("h0", h0), ("c0", c0)):
            if not np.issubdtype(np.asarray(value).dtype, np.integer):
                raise TypeError(f"{name} must be integers in the model's formats")
        size = self.info["init_bytes"]
        values = self.interface.init_values(h0, c0)
        self._load(P.FrameType.LOAD_STATE, [P.to_le(int(v), size) for v in values])

    # -- running -----------------------------------------------------------------------------
    def _read_queue(self, type_: P.FrameType, size: int, count: int, wanted: int) -> list[int]:
        """``count`` beats of a queue (polling until they are there)."""
        got: list[int] = []
        deadline = time.monotonic() + self.timeout
        while len(got) < count:
            payload = self.request(type_, P.to_le(min(count - len(got), wanted), P.ARG_BYTES))
            if len(payload) % size:
                raise LinkError(f"{type_.name} answer of {len(payload)} bytes, beats of {size}")
            got += [P.from_le(payload[k : k + size]) for k in range(0, len(payload), size)]
            if payload:
                deadline = time.monotonic() + self.timeout
            elif time.monotonic() > deadline:
                raise LinkError(
                    f"{type_.name}: the device produced {len(got)} of {count} beats within "
                    f"{self.timeout} s"
                )
        return got

    def run(self, x, *, carry_state: bool = False, read_state: bool = False):
        """Run one sequence of integer inputs ``x`` (``(T, I)``, the input format). Returns the
        raw ``y`` integers ``(vectors, F)`` and, with ``read_state``, the integer
        ``(h_n, c_n)`` (``(L*D, H)`` each), else ``None``."""
        i = self.interface
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"x must be (steps, {i.plan.input_size}) integers, not {x.shape}")
        steps = x.shape[0]
        beats = [P.to_le(int(v), self.info["x_bytes"]) for v in i.pack_x(x)]
        total = int(i.y_beats([steps])[0])
        features = i.y_features
        per_step = i.x_beats_per_step
        depth, y_size = self.info["y_depth"], self.info["y_bytes"]
        if features > depth:
            raise LinkError(f"a step's {features} outputs exceed the device's y queue ({depth})")

        def outputs_after(sent: int) -> int:
            if i.output_mode == "all":
                return min(total, sent // per_step * features)
            return total if sent == len(beats) else 0

        flags = (P.InputFlags.CARRY_STATE if carry_state else 0) | (
            P.InputFlags.READ_STATE if read_state else 0
        )
        words: list[int] = []
        per_frame = (self.info["max_payload"] - 1) // len(beats[0])
        sent = 0
        while sent < len(beats):
            # Send no more than the y queue can hold outputs for (or the core would stall on
            # y while the link waits for it to take x).
            n = min(per_frame, len(beats) - sent)
            while n > 0 and outputs_after(sent + n) - len(words) > depth:
                n -= 1
            if n == 0:
                want = min(outputs_after(sent) - len(words), depth)
                words += self._read_queue(P.FrameType.READ_OUTPUTS, y_size, want, depth)
                continue
            final = sent + n == len(beats)
            frame_flags = flags | (P.InputFlags.LAST if final else 0)
            self.request(P.FrameType.INPUT, bytes([frame_flags]) + b"".join(beats[sent : sent + n]))
            sent += n
        words += self._read_queue(P.FrameType.READ_OUTPUTS, y_size, total - len(words), depth)
        data_mask = (1 << i.y.width) - 1
        lasts = [w >> i.y.width for w in words]
        if total and (lasts[-1] != 1 or any(lasts[:-1])):
            raise LinkError("y tlast is not on the sequence's final output: outputs out of step")
        y = i.unpack_y([w & data_mask for w in words]).reshape(-1, features)
        state = None
        if read_state:
            count = i.state_beats
            size = self.info["state_bytes"]
            raw = self._read_queue(P.FrameType.READ_STATE, size, count, count)
            mask = (1 << i.state.width) - 1
            h, c = i.unpack_state([w & mask for w in raw])
            shape = (len(self.model.directions), self.model.hidden_size)
            state = (h.reshape(shape), c.reshape(shape))
        return y, state

    def predict(self, x):
        """Float outputs of float inputs ``x``: one sequence ``(T, I)`` gives ``(T, F)``
        (output ``"all"``) or ``(F,)`` (``"last"``); a batch ``(B, T, I)`` (``(T, B, I)``
        unless the build is ``batch_first``) gives them stacked on the batch axis the same
        way. Inputs are quantised to the model's input format (a warning counts values
        outside it); outputs are decoded with the build's ``y`` format."""
        x = np.asarray(x, dtype=np.float64)
        fmt = self.model.input_format
        scaled = scaled_integers(x, fmt, self.model.rounding)
        outside = int(np.count_nonzero((scaled < fmt.min_int) | (scaled > fmt.max_int)))
        if outside:
            warnings.warn(
                f"{outside} of {x.size} inputs lie outside the input format {fmt} and were clamped",
                stacklevel=2,
            )
        ints = quantize(x, fmt, self.model.rounding, self.model.overflow)
        y_format = self.interface.y_format
        last = self.interface.output_mode == "last"
        if ints.ndim == 2:
            y, _ = self.run(ints)
            return dequantize(y[0] if last else y, y_format)
        if ints.ndim != 3:
            raise ValueError(f"x must be (T, I) or a batch of them, not shape {x.shape}")
        sequences = ints if self.batch_first else ints.transpose(1, 0, 2)
        results = [self.run(seq)[0] for seq in sequences]
        outputs = np.stack([r[0] if last else r for r in results])
        if not last and not self.batch_first:
            outputs = outputs.transpose(1, 0, 2)
        return dequantize(outputs, y_format)

    def status(self, *, clear: bool = False) -> Status:
        """The device's status; ``clear`` then clears the core's overflow flag and saturation
        counters and the link's dropped-bytes count."""
        payload = self.request(
            P.FrameType.READ_STATUS, bytes([P.StatusFlags.CLEAR if clear else 0])
        )
        i = self.interface
        layout = P.status_layout(
            i.port("cycles").width, i.port("sat_preact").width, SATURATION_KINDS
        )
        values, offset = {}, 0
        for name, size in layout:
            values[name] = P.from_le(payload[offset : offset + size])
            offset += size
        if offset != len(payload):
            raise LinkError(f"status answer of {len(payload)} bytes, expected {offset}")
        flags = {name: bool(values["flags"] >> k & 1) for k, name in enumerate(P.STATUS_FLAG_NAMES)}
        return Status(
            cycles=values["cycles"],
            **flags,
            y_level=values["y_level"],
            state_level=values["state_level"],
            saturations={k: values[f"sat_{k}"] for k in SATURATION_KINDS},
            dropped=values["dropped"],
        )
