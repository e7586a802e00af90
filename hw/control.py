"""``lstm_axi``: ``lstm_top`` behind an AXI4-Lite control/status slave (``--control axi-lite``).

:class:`LstmAxi` wraps :class:`~lstm_fpga.hw.engine.LstmTop`; the register map is the table
:data:`~lstm_fpga.hw.regmap.REGISTERS` (``docs/axi-lite.md``, ``lstm_regs.h``). Its streams
keep AXI4-Stream names so block-design tools infer them: a stream ``s`` the core consumes is
``s_axis_<s>_tdata/_tvalid/_tready/_tlast``, one it produces ``m_axis_<s>_...``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .engine import LstmTop
from .interface import (
    AXI_MEMBERS,
    SEPARATOR,
    Control,
    Direction,
    SaturationKind,
    StreamPorts,
)
from .plan import EnginePlan
from .regmap import (
    ADDRESS_WIDTH,
    DATA_WIDTH,
    PROT_WIDTH,
    REGISTERS,
    RESP_WIDTH,
    Access,
    RegisterMap,
    Resp,
    register,
)

__all__ = [
    "AXI_LITE_PREFIX",
    "AXI_TOP_NAME",
    "CONTROL_MODES",
    "IRQ",
    "LstmAxi",
    "axi_lite_ports",
    "axis_port",
    "axis_prefix",
]

#: ``build --control`` choices: the bare core (``lstm_top``) or the AXI4-Lite top.
CONTROL_MODES = ("stream", "axi-lite")
#: Module name (and Verilog file stem) of the AXI4-Lite top.
AXI_TOP_NAME = "lstm_axi"
#: Prefix of the AXI4-Lite slave's ports (``s_axi_awaddr`` ...).
AXI_LITE_PREFIX = "s_axi"
#: Interrupt output: STATUS.DONE while CONTROL.IRQ_ENABLE (level, active high).
IRQ = "irq"
_STROBES = DATA_WIDTH // 8
#: Bits of the BUSY_CYCLES counter (``_LO`` and ``_HI``).
BUSY_CYCLES_WIDTH = 2 * DATA_WIDTH


def axi_lite_ports() -> tuple[tuple[str, Direction, int], ...]:
    """The slave's channel members (AXI4 names, without prefix), direction seen from the
    slave, and width, in channel order AW, W, B, AR, R."""
    i, o = Direction.IN, Direction.OUT
    return (
        ("awaddr", i, ADDRESS_WIDTH),
        ("awprot", i, PROT_WIDTH),
        ("awvalid", i, 1),
        ("awready", o, 1),
        ("wdata", i, DATA_WIDTH),
        ("wstrb", i, _STROBES),
        ("wvalid", i, 1),
        ("wready", o, 1),
        ("bresp", o, RESP_WIDTH),
        ("bvalid", o, 1),
        ("bready", i, 1),
        ("araddr", i, ADDRESS_WIDTH),
        ("arprot", i, PROT_WIDTH),
        ("arvalid", i, 1),
        ("arready", o, 1),
        ("rdata", o, DATA_WIDTH),
        ("rresp", o, RESP_WIDTH),
        ("rvalid", o, 1),
        ("rready", i, 1),
    )


def axis_prefix(stream: StreamPorts) -> str:
    """``s_axis_<name>`` for a stream the core consumes, ``m_axis_<name>`` for one it drives."""
    side = "s" if stream.direction is Direction.IN else "m"
    return f"{side}_axis_{stream.name}"


def axis_port(stream: StreamPorts, member: str) -> str:
    """Port name of ``member`` (``tdata`` ...) of ``stream`` on ``lstm_axi``."""
    return f"{axis_prefix(stream)}_{member}"


def _flow(direction: Direction):
    return In if direction is Direction.IN else Out


class LstmAxi(wiring.Component):
    """``lstm_top`` with an AXI4-Lite slave for control and status (top ``lstm_axi``).

    Ports: ``clk``, ``rst`` (synchronous, active high: resets the control state and the
    core); ``s_axi_*`` (AXI4-Lite slave, :data:`~lstm_fpga.hw.regmap.DATA_WIDTH`-bit data,
    :data:`~lstm_fpga.hw.regmap.ADDRESS_WIDTH`-bit byte addresses, ``*prot`` ignored); the
    core's streams as ``s_axis_x``, ``m_axis_y``, ``m_axis_state``, ``s_axis_init``,
    ``s_axis_w`` (``_tdata/_tvalid/_tready/_tlast``, formats and layouts of
    :class:`~lstm_fpga.hw.interface.TopInterface`); ``irq``.

    Protocol: AW and W are accepted independently (each into its own holding register,
    ``awready``/``wready`` high while empty); the write happens the cycle after both are held,
    then ``bvalid`` until ``bready``, then both accept again. A read address is taken while
    ``arready`` is high; the data follows with ``rvalid`` one cycle later and is held until
    ``rready``. Responses: ``OKAY``; ``SLVERR`` for an unmapped address (read data 0) or a
    write to a read-only register (nothing changes). Address bits 1:0 are ignored; byte
    strobes select the bytes written. Latency: ``bvalid`` rises 2 cycles after the later of
    the AW and W handshakes, ``rvalid`` 2 cycles after the AR handshake; throughput one write
    and one read per 3 cycles. Every AXI4-Lite output and ``irq`` is a register; only the control
    state resets (addresses, write data and read data do not).

    The ``x`` stream passes through a gate that follows ``CONTROL.ENABLE`` at beat boundaries
    (a beat offered to the core stays offered until taken); the other streams and the
    status connect straight to the core.
    """

    def __init__(self, plan: EnginePlan, *, verilog_banks: str | None = None):
        self._core = LstmTop(plan, verilog_banks=verilog_banks)
        self._regmap = RegisterMap(self._core.interface)
        self._regmap.constants  # noqa: B018 (raises now if the model outgrows a field)
        members = {
            f"{AXI_LITE_PREFIX}_{name}": _flow(direction)(width)
            for name, direction, width in axi_lite_ports()
        }
        for stream in self.interface.streams:
            for port in stream.ports:
                member = port.name.removeprefix(stream.name + SEPARATOR)  # the AXI member
                shape = Shape(port.width, signed=port.signed)
                members[axis_port(stream, member)] = _flow(port.direction)(shape)
        members[IRQ] = Out(1)
        super().__init__(members)

    @property
    def core(self) -> LstmTop:
        return self._core

    @property
    def engine(self):
        return self._core.engine

    @property
    def interface(self):
        return self._core.interface

    @property
    def regmap(self) -> RegisterMap:
        return self._regmap

    def _axi(self, name: str) -> Signal:
        return getattr(self, f"{AXI_LITE_PREFIX}_{name}")

    def _streams(self, m: Module, x_open: Signal) -> None:
        core = self._core
        for stream in self.interface.streams:
            inner = getattr(core, stream.name)
            names = (AXI_MEMBERS.data, AXI_MEMBERS.valid, AXI_MEMBERS.ready, AXI_MEMBERS.last)
            data, valid, ready, last = (getattr(inner, n) for n in names)
            o_data, o_valid, o_ready, o_last = (getattr(self, axis_port(stream, n)) for n in names)
            if stream.direction is Direction.IN:
                gate = x_open if stream is self.interface.x else Const(1)
                m.d.comb += [
                    data.eq(o_data),
                    last.eq(o_last),
                    valid.eq(o_valid & gate),
                    o_ready.eq(ready & gate),
                ]
            else:
                m.d.comb += [o_data.eq(data), o_last.eq(last), o_valid.eq(valid), ready.eq(o_ready)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        axi = self._axi

        # -- control registers (RW fields) and command pulses (WO fields) --------------------
        fields = {}
        for r in REGISTERS:
            if r.access is Access.RW:
                for f in r.fields:
                    fields[r.name, f.name] = Signal(
                        f.width, init=f.reset, name=f"{r.name}_{f.name}"
                    )
        pulses = {
            f.name: Signal(f.width, name=f"command_{f.name.lower()}")
            for f in register("COMMAND").fields
        }
        m.d.sync += [p.eq(0) for p in pulses.values()]
        clear = pulses["CLEAR_STATUS"]
        control = {f: fields["CONTROL", f] for r, f in fields if r == "CONTROL"}

        # -- the x gate ------------------------------------------------------------------------
        status_x_open = register("STATUS").field("X_OPEN")
        x_open = Signal(init=status_x_open.reset)
        self._streams(m, x_open)
        x = core.x
        waiting = getattr(x, AXI_MEMBERS.valid) & ~getattr(x, AXI_MEMBERS.ready)
        with m.If(~waiting):
            m.d.sync += x_open.eq(control["ENABLE"])

        m.d.comb += [
            core.carry_state.eq(control["CARRY_STATE"]),
            core.read_state.eq(control["READ_STATE"]),
            core.clear_status.eq(clear),
        ]
        if set(Control) != {Control.CARRY_STATE, Control.READ_STATE, Control.CLEAR_STATUS}:
            raise AssertionError("a core control input has no register: extend REGISTERS")

        # -- status and counters ---------------------------------------------------------------
        done = Signal()
        with m.If(core.done):
            m.d.sync += done.eq(1)
        with m.Elif(clear | pulses["CLEAR_DONE"]):
            m.d.sync += done.eq(0)
        started_count = Signal(DATA_WIDTH)
        done_count = Signal(DATA_WIDTH)
        for count, event in ((started_count, core.started), (done_count, core.done)):
            full = count == (1 << DATA_WIDTH) - 1
            with m.If(clear):
                m.d.sync += count.eq(event)
            with m.Elif(event & ~full):
                m.d.sync += count.eq(count + 1)
        busy_cycles = Signal(BUSY_CYCLES_WIDTH)
        m.d.sync += busy_cycles.eq(busy_cycles + core.busy)
        with m.If(clear):
            m.d.sync += busy_cycles.eq(core.busy)
        busy_high = Signal(DATA_WIDTH)  # BUSY_CYCLES_HI as latched by a _LO read
        m.d.sync += getattr(self, IRQ).eq(control["IRQ_ENABLE"] & done)

        values = {
            "STATUS": {
                "BUSY": core.busy,
                "DONE": done,
                "OVERFLOW": core.overflow,
                "X_OPEN": x_open,
            },
            "SEQ_STARTED": started_count,
            "SEQ_DONE": done_count,
            "LAST_CYCLES": core.cycles,
            "BUSY_CYCLES_LO": busy_cycles[:DATA_WIDTH],
            "BUSY_CYCLES_HI": busy_high,
            **{k.port.upper(): getattr(core, k.port) for k in SaturationKind},
        }
        for name, value in self._regmap.constants.items():
            values[name] = Const(value, DATA_WIDTH)

        def word(r):
            """The 32-bit read value of ``r``."""
            if r.access is Access.WO:
                return Const(0, DATA_WIDTH)
            if r.access is Access.RW:
                parts = {f.name: fields[r.name, f.name] for f in r.fields}
            else:
                parts = values[r.name]
            if not isinstance(parts, dict):
                if len(parts) > DATA_WIDTH:
                    raise AssertionError(f"{r.name} is wider than a register")
                return parts.as_unsigned()
            value = Const(0, DATA_WIDTH)
            for f in r.fields:
                value = value | (parts[f.name].as_unsigned()[: f.width] << f.lsb)
            return value[:DATA_WIDTH]

        # -- write channel ---------------------------------------------------------------------
        aw_idle = Signal(init=1)
        w_idle = Signal(init=1)
        bvalid = Signal()
        aw_addr = Signal(ADDRESS_WIDTH, reset_less=True)
        w_data = Signal(DATA_WIDTH, reset_less=True)
        w_strb = Signal(_STROBES, reset_less=True)
        bresp = Signal(RESP_WIDTH, reset_less=True)
        m.d.comb += [
            axi("awready").eq(aw_idle),
            axi("wready").eq(w_idle),
            axi("bvalid").eq(bvalid),
            axi("bresp").eq(bresp),
        ]
        with m.If(axi("awvalid") & aw_idle):
            m.d.sync += [aw_addr.eq(axi("awaddr")), aw_idle.eq(0)]
        with m.If(axi("wvalid") & w_idle):
            m.d.sync += [w_data.eq(axi("wdata")), w_strb.eq(axi("wstrb")), w_idle.eq(0)]
        with m.If(bvalid & axi("bready")):
            m.d.sync += [bvalid.eq(0), aw_idle.eq(1), w_idle.eq(1)]
        strobe_mask = Cat(*(b.replicate(8) for b in w_strb))
        with m.If(~aw_idle & ~w_idle & ~bvalid):
            m.d.sync += [bvalid.eq(1), bresp.eq(Resp.SLVERR)]
            with m.Switch(aw_addr[2:]):
                for r in REGISTERS:
                    if r.access is Access.RO:
                        continue
                    with m.Case(r.offset >> 2):
                        m.d.sync += bresp.eq(Resp.OKAY)
                        merged = (word(r) & ~strobe_mask) | (w_data & strobe_mask)
                        for f in r.fields:
                            target = (
                                fields[r.name, f.name] if r.access is Access.RW else pulses[f.name]
                            )
                            m.d.sync += target.eq(merged[f.lsb : f.lsb + f.width])

        # -- read channel ----------------------------------------------------------------------
        ar_idle = Signal(init=1)
        rvalid = Signal()
        ar_addr = Signal(ADDRESS_WIDTH, reset_less=True)
        rdata = Signal(DATA_WIDTH, reset_less=True)
        rresp = Signal(RESP_WIDTH, reset_less=True)
        m.d.comb += [
            axi("arready").eq(ar_idle),
            axi("rvalid").eq(rvalid),
            axi("rdata").eq(rdata),
            axi("rresp").eq(rresp),
        ]
        with m.If(axi("arvalid") & ar_idle):
            m.d.sync += [ar_addr.eq(axi("araddr")), ar_idle.eq(0)]
        with m.If(rvalid & axi("rready")):
            m.d.sync += [rvalid.eq(0), ar_idle.eq(1)]
        with m.If(~ar_idle & ~rvalid):
            m.d.sync += [rvalid.eq(1), rdata.eq(0), rresp.eq(Resp.SLVERR)]
            with m.Switch(ar_addr[2:]):
                for r in REGISTERS:
                    with m.Case(r.offset >> 2):
                        m.d.sync += [rdata.eq(word(r)), rresp.eq(Resp.OKAY)]
                        if r.name == "BUSY_CYCLES_LO":
                            m.d.sync += busy_high.eq(busy_cycles[DATA_WIDTH:])
        return m
