"""Pipeline building blocks: register delays, replicated broadcast trees and the DSP multiplier.

Every block of the datapath is built from stages that each hold one memory read, one DSP
multiply or one short add. This module supplies the pieces that carry values between those
stages without adding logic: reset-less delay lines, a broadcast tree that replicates a
register so that no flip-flop drives more than :data:`FANOUT` loads, and :class:`Multiplier`,
a multiplier with registered inputs and a registered output.

Per-family hooks. Amaranth hands every ``elaborate`` the *platform* it generates for (the way
vendor platforms supply their memories). :class:`Target` is such a platform for Verilog
output: it keeps replicated registers from being merged by synthesis (Yosys merges flip-flops
with equal inputs even when their wires carry ``keep``; a ``keep`` on the ``always`` block of
a small Verilog module survives). :class:`ECP5Target` also instantiates the ECP5
``MULT18X18D`` with its input and output registers, which Yosys does not infer
(its ECP5 DSP mapping gives an unregistered ``MULT18X18D``). The Amaranth simulator runs
without a platform and uses the generic forms, which are the same function cycle for cycle.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, Mux, ResetSignal, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "DSP_FANOUT",
    "FAMILIES",
    "FANOUT",
    "ECP5Target",
    "Multiplier",
    "PackedMultiplier",
    "RegisteredProduct",
    "Target",
    "broadcast",
    "delay",
    "fanout_levels",
    "kept_delay",
    "replicas",
    "target",
    "tree_levels",
]

#: Most loads one register of a broadcast tree drives.
FANOUT = 16

#: Most loads one register of a tree to DSP blocks drives, at every level: DSP blocks sit in
#: rows across the device, so one register driving 16 of them reaches across the die (a 7.63
#: ns route at I=H=64 P=64 on an ECP5-85F, 121.4 MHz), and so does one driving 16 registers
#: each placed by its own DSPs (10.3 ns): every hop of the tree covers a quarter of the
#: previous one's span instead.
DSP_FANOUT = 4

#: Module name of the kept register in generated Verilog.
_KEEP_MODULE = "lstm_top_keep_reg"


def fanout_levels(consumers: int) -> int:
    """Register levels a broadcast to ``consumers`` loads needs so that no register drives
    more than :data:`FANOUT` of them (at least 1)."""
    return tree_levels(consumers, FANOUT) + 1


def delay(m: Module, value, cycles: int, name: str, *, control: bool = False) -> Value:
    """``value`` delayed by ``cycles`` registers: reset-less for data, reset for ``control``
    state (valid bits)."""
    value = Value.cast(value)
    for k in range(cycles):
        stage = Signal(value.shape(), name=f"{name}_d{k + 1}", reset_less=not control)
        m.d.sync += stage.eq(value)
        value = stage
    return value


class Target:
    """Platform of generic Verilog output: kept replicas, inferred multipliers."""

    family = "generic"

    def replica(self, m: Module, value: Value, name: str) -> Value:
        """A registered copy of ``value`` that synthesis keeps apart from its siblings."""
        out = Signal(value.shape(), name=name)
        m.submodules[f"{name}_keep"] = Instance(
            _KEEP_MODULE,
            p_WIDTH=value.shape().width,
            i_clk=ClockSignal(),
            i_d=value,
            o_q=out,
        )
        return out

    def verilog_modules(self) -> str:
        """Verilog of the modules this target's instances refer to."""
        return (
            f"module {_KEEP_MODULE}(clk, d, q);\n"
            "  parameter WIDTH = 1;\n"
            "  input clk;\n"
            "  input [WIDTH-1:0] d;\n"
            "  output reg [WIDTH-1:0] q;\n"
            "  // keep: a replica of a broadcast register, not to be merged with its siblings.\n"
            "  (* keep *) always @(posedge clk) q <= d;\n"
            "endmodule\n"
        )


def _replica(m: Module, platform, value: Value, name: str) -> Value:
    if isinstance(platform, Target):
        return platform.replica(m, value, name)
    register = Signal(value.shape(), name=name, reset_less=True)
    m.d.sync += register.eq(value)
    return register


def replicas(m: Module, platform, value, count: int, name: str) -> list:
    """``count`` registered copies of ``value`` (one cycle later) that synthesis keeps apart,
    so that each drives its own share of a wide enable's loads (reset-less: a copy holds the
    registered value of the cycle before)."""
    value = Value.cast(value)
    return [_replica(m, platform, value, f"{name}{k}") for k in range(count)]


def kept_delay(
    m: Module, platform, value, cycles: int, name: str, *, control: bool = False
) -> Value:
    """``value`` delayed by ``cycles`` registers that synthesis keeps (:func:`replicas`):
    a consumer's own chain, not merged with the identical chains of its siblings (merged,
    one flip-flop would drive them all, wherever they sit). With ``control`` every register
    holds 0 in the cycle after a reset, as a reset register would."""
    value = Value.cast(value)
    for k in range(cycles):
        source = Mux(ResetSignal(), 0, value) if control else value
        value = _replica(m, platform, source, f"{name}_k{k + 1}")
    return value


def broadcast(
    m: Module,
    platform,
    value,
    consumers: int,
    levels: int,
    name: str,
    *,
    leaf_fanout: int = FANOUT,
) -> list:
    """``value`` delayed by ``levels`` registers, for each of ``consumers`` loads.

    The registers form a balanced tree: the last level has ``ceil(consumers /
    leaf_fanout)`` copies (each drives at most ``leaf_fanout`` consumers) and every level
    before it fans out by the same factor ``b``, the least with ``b**levels`` at least the
    last level's copies, so that each register sits between its parent and its share of the
    consumers. Every register drives at most :data:`FANOUT` others once ``levels >=
    fanout_levels(consumers)``. A smaller ``leaf_fanout`` suits consumers spread over the
    device (DSP blocks sit in rows across it). Returns the value seen by consumer ``c`` (0 ..
    ``consumers - 1``); with ``levels == 0``, ``value`` itself.
    """
    if not 1 <= leaf_fanout <= FANOUT:
        raise ValueError(f"leaf_fanout must be 1 .. {FANOUT}, not {leaf_fanout}")
    value = Value.cast(value)
    copies = [value]
    if levels == 0:
        return copies * consumers
    leaves = -(-consumers // leaf_fanout)
    branch = 1
    while branch**levels < leaves:
        branch += 1
    for k in range(1, levels + 1):
        count = -(-leaves // branch ** (levels - k))
        parents = copies
        copies = [
            _replica(m, platform, parents[j * len(parents) // count], f"{name}_l{k}_{j}")
            for j in range(count)
        ]
    return [copies[c * len(copies) // consumers] for c in range(consumers)]


def tree_levels(consumers: int, fanout: int) -> int:
    """Registers in front of ``consumers`` loads so that a register (and the value the tree
    starts from) drives at most ``fanout`` of them: 0 up to ``fanout`` consumers."""
    levels, reach = 0, fanout
    while reach < consumers:
        levels += 1
        reach *= fanout
    return levels


class RegisteredProduct(wiring.Component):
    """``product = a * b`` (signed or unsigned operands) whose result register, and with
    ``input_registers`` its operand registers, are the ones a pipeline stage already has:
    the DSP block's output and input registers, so a product between two registers of a
    pipeline costs no cycle more than the inferred multiply between them.

    With ``input_registers``, ``a`` and ``b`` are the values the operand registers load (one
    stage before the multiply) and :attr:`latency` is 2; without, they are the operands
    themselves (registers of the enclosing pipeline) and :attr:`latency` is 1. Throughput
    one product per cycle; no enable, no reset. A platform with
    ``get_registered_product(product)`` (:class:`ECP5Target`) may return the family's
    primitive with those registers (and no pipeline register); the inferred form is the same
    function cycle for cycle. An operand register that also feeds other logic stays a fabric
    register beside it (the caller keeps its own copy).
    """

    def __init__(self, a_shape, b_shape, *, input_registers: bool = True):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        self._input_registers = input_registers
        product = (Signal(a_shape) * Signal(b_shape)).shape()
        super().__init__({"a": In(a_shape), "b": In(b_shape), "product": Out(product)})

    @property
    def input_registers(self) -> bool:
        return self._input_registers

    @property
    def latency(self) -> int:
        """Cycles from ``a`` and ``b`` to ``product``."""
        return 1 + self._input_registers

    def elaborate(self, platform):
        hook = getattr(platform, "get_registered_product", None)
        if hook is not None:
            primitive = hook(self)
            if primitive is not None:
                return primitive
        m = Module()
        a = delay(m, self.a, int(self._input_registers), "a")
        b = self.b
        if self._input_registers:
            # Kept apart (a :meth:`Target.replica`): the lanes' ``b`` registers load the same
            # broadcast element, and merged into one they would drive every lane's multiply.
            b = _replica(m, platform, b, "b_d1")
        m.d.comb += self.product.eq(delay(m, a * b, 1, "p"))
        return m


class Multiplier(RegisteredProduct):
    """``product = a * b`` (signed or unsigned operands) with registered inputs and a
    registered output: the DSP block's own registers (Xilinx DSP48 ``AREG``/``BREG`` and
    ``PREG``; ECP5 ``MULT18X18D`` input and output registers).

    No pipeline register between them (DSP48 ``MREG``, the ``MULT18X18D`` ``PIPELINE``
    register): the multiply alone fits a cycle (the 18 x 18 multiply of an ECP5 at speed 6
    takes about 3.9 ns between its input and output registers, under the 8 ns of 125 MHz),
    and the recurrence (a step's ``h`` feeds the next step's columns) is a cycle shorter
    without it.

    Latency :attr:`LATENCY` cycles (operands present in cycle ``t`` give the product in cycle
    ``t + LATENCY``); throughput one product per cycle; no enable, no reset (the enclosing
    pipeline carries its own valid bits). It is a :class:`RegisteredProduct` with its own
    input registers, so a platform's ``get_registered_product`` (:class:`ECP5Target`) may
    return the family's primitive instead of the inferred form, with the same registers.
    """

    #: Input registers, output register.
    LATENCY = 2

    def __init__(self, a_shape, b_shape):
        super().__init__(a_shape, b_shape, input_registers=True)


class PackedMultiplier(wiring.Component):
    """Two products sharing an operand in one DSP multiply: ``even = a_even * b`` and ``odd =
    a_odd * b`` (signed), by the scheme of :class:`lstm_fpga.sw.numerics.PackedProduct`
    (``packed``: the widths, the shift ``S`` and the split with its borrow correction).

    A :class:`Multiplier`-like :class:`RegisteredProduct` with input registers (the DSP's
    input and output registers: one DSP multiply, inferred, so that synthesis maps it to one
    DSP48) multiplies ``A * b``. Its operand register takes the packed ``A = (a_even << S) +
    a_odd``: the *pack* add is the one short add of the stage that loads the DSP's input
    registers (``a_even``/``a_odd`` should come from registers: the weight banks' output
    registers). The *split* is combinational behind the output register, for the stage of
    the consumer's register: ``odd`` = the product's low ``S`` bits (signed, no logic) and
    ``even`` = its high bits plus the borrow bit ``p[S-1]`` (one short add, in front of the
    consumer's alignment multiplexer).

    Latency :attr:`LATENCY` cycles, :class:`Multiplier`'s (operands in cycle ``t``, both
    products in ``t + LATENCY``); throughput two products per cycle; no enable, no reset.
    ``a_even``/``a_odd`` are signed ``packed.weight_bits``, ``b`` signed
    ``packed.element_bits``, the products signed ``packed.result_bits`` (the shape of
    :class:`Multiplier`'s product of the same operands).
    """

    #: The DSP's input registers and output register, as :class:`Multiplier`.
    LATENCY = Multiplier.LATENCY

    def __init__(self, packed):
        self._packed = packed
        w, e, r = packed.weight_bits, packed.element_bits, packed.result_bits
        super().__init__(
            {
                "a_even": In(Shape(w, signed=True)),
                "a_odd": In(Shape(w, signed=True)),
                "b": In(Shape(e, signed=True)),
                "even": Out(Shape(r, signed=True)),
                "odd": Out(Shape(r, signed=True)),
            }
        )

    @property
    def packed(self):
        return self._packed

    def elaborate(self, platform):
        m = Module()
        packed = self._packed
        S, r = packed.shift, packed.result_bits
        a = Signal(Shape(packed.packed_bits, signed=True), name="packed")
        m.d.comb += a.eq((self.a_even << S) + self.a_odd)
        m.submodules.product = product = RegisteredProduct(a.shape(), self.b.shape())
        m.d.comb += [product.a.eq(a), product.b.eq(self.b)]
        p = product.product
        high = p[S:].as_signed() + p[S - 1]
        m.d.comb += [self.odd.eq(p[:S].as_signed()), self.even.eq(high[:r].as_signed())]
        return m


#: ECP5 ``MULT18X18D`` operand width (signed).
_ECP5_OPERAND_BITS = 18
#: Module name of the ``MULT18X18D`` simulation model.
_ECP5_MULT = "MULT18X18D"


class ECP5Target(Target):
    """Lattice ECP5: a :class:`RegisteredProduct` (and so a :class:`Multiplier`) becomes a
    ``MULT18X18D`` with the same registers (the ``PIPELINE`` register bypassed).

    The primitive is used when both operands fit 18 signed bits (wider products keep the
    inferred form). Generated Verilog carries a behavioural model of the primitive, for
    simulators only (inside ``ifndef SYNTHESIS``, which Yosys defines when it reads Verilog,
    so synthesis sees its own ``MULT18X18D`` cell).
    """

    family = "ecp5"

    def get_registered_product(self, product: RegisteredProduct):
        """A ``MULT18X18D`` with its output register, and its input registers when
        ``product.input_registers``; ``None`` when an operand does not fit 18 signed bits."""
        if not _fits_mult18(product.a.shape(), product.b.shape()):
            return None
        registers = ("INPUTA", "INPUTB", "OUTPUT") if product.input_registers else ("OUTPUT",)
        m = Module()
        _mult18x18d(m, product.a, product.b, product.product, registers)
        return m

    def verilog_modules(self) -> str:
        return super().verilog_modules() + _mult18x18d_model()


def _fits_mult18(*shapes) -> bool:
    """Every shape sign- or zero-extends exactly to a signed ``MULT18X18D`` operand."""
    return all(s.width + (0 if s.signed else 1) <= _ECP5_OPERAND_BITS for s in shapes)


def _mult18x18d(m: Module, a: Value, b: Value, product: Value, registers) -> None:
    """``product = a * b`` by a ``MULT18X18D`` clocked by the sync domain, with the named
    ``registers`` (of ``INPUTA``, ``INPUTB``, ``PIPELINE``, ``OUTPUT``) and the others
    bypassed."""
    bits = _ECP5_OPERAND_BITS
    a18 = Signal(Shape(bits, signed=True), name="a18")
    b18 = Signal(Shape(bits, signed=True), name="b18")
    p36 = Signal(2 * bits, name="p36")
    m.d.comb += [a18.eq(a), b18.eq(b)]
    ports = {f"i_A{k}": a18[k] for k in range(bits)}
    ports |= {f"i_B{k}": b18[k] for k in range(bits)}
    ports |= {f"i_C{k}": 0 for k in range(bits)}
    ports |= {f"o_P{k}": p36[k] for k in range(2 * bits)}
    params = {"p_GSR": "DISABLED", "p_RESETMODE": "SYNC"}
    for register in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
        params[f"p_REG_{register}_CLK"] = "CLK0" if register in registers else "NONE"
        params[f"p_REG_{register}_CE"] = "CE0"
        params[f"p_REG_{register}_RST"] = "RST0"
    m.submodules.mult = Instance(
        _ECP5_MULT,
        **params,
        **ports,
        i_SIGNEDA=1,
        i_SIGNEDB=1,
        i_SOURCEA=0,
        i_SOURCEB=0,
        i_CLK0=ClockSignal(),
        i_CE0=1,
        i_RST0=0,
    )
    m.d.comb += product.eq(p36.as_signed()[: product.shape().width])


def _mult18x18d_model() -> str:
    """Behavioural ``MULT18X18D`` for simulation: signed 18 x 18 with the four register
    stages each present when its ``REG_*_CLK`` is not ``"NONE"`` (clock ``CLK0``, enable
    ``CE0``, synchronous reset ``RST0``); :class:`ECP5Target` uses the input and output
    registers."""
    a = ", ".join(f"A{k}" for k in range(18))
    b = ", ".join(f"B{k}" for k in range(18))
    c = ", ".join(f"C{k}" for k in range(18))
    p = ", ".join(f"P{k}" for k in range(36))
    bus_a = ", ".join(f"A{k}" for k in reversed(range(18)))
    bus_b = ", ".join(f"B{k}" for k in reversed(range(18)))
    bus_p = ", ".join(f"P{k}" for k in reversed(range(36)))
    stages = []
    for name, source, width in (
        ("INPUTA", "a_in", 18),
        ("INPUTB", "b_in", 18),
        ("PIPELINE", "m_in", 36),
        ("OUTPUT", "p_in", 36),
    ):
        reg = f"{name.lower()}_q"
        stages.append(
            f"  reg signed [{width - 1}:0] {reg};\n"
            f"  always @(posedge CLK0) if (RST0) {reg} <= 0; else if (CE0) {reg} <= {source};\n"
        )
    return (
        "`ifndef SYNTHESIS\n"
        "// Simulation model of the ECP5 MULT18X18D (lstm_fpga.hw.pipeline.ECP5Target).\n"
        f"module {_ECP5_MULT}({a}, {b}, {c}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,\n"
        f"    CLK0, CE0, RST0, {p});\n"
        f"  input {a}, {b}, {c};\n"
        "  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0;\n"
        f"  output {p};\n"
        + "".join(
            f'  parameter REG_{r}_CLK = "NONE";\n'
            f'  parameter REG_{r}_CE = "CE0";\n'
            f'  parameter REG_{r}_RST = "RST0";\n'
            for r in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT")
        )
        + '  parameter GSR = "ENABLED";\n'
        '  parameter RESETMODE = "SYNC";\n'
        "  wire signed [17:0] a_in = {" + bus_a + "};\n"
        "  wire signed [17:0] b_in = {"
        + bus_b
        + "};\n"
        + stages[0]
        + stages[1]
        + '  wire signed [17:0] a_r = REG_INPUTA_CLK == "NONE" ? a_in : inputa_q;\n'
        + '  wire signed [17:0] b_r = REG_INPUTB_CLK == "NONE" ? b_in : inputb_q;\n'
        + "  wire signed [35:0] m_in = a_r * b_r;\n"
        + stages[2]
        + '  wire signed [35:0] p_in = REG_PIPELINE_CLK == "NONE" ? m_in : pipeline_q;\n'
        + stages[3]
        + '  wire [35:0] p_out = REG_OUTPUT_CLK == "NONE" ? p_in : output_q;\n'
        + "  assign {"
        + bus_p
        + "} = p_out;\n"
        "endmodule\n"
        "`endif\n"
    )


#: Target names accepted by :func:`target`.
FAMILIES = {"generic": Target, "ecp5": ECP5Target}


def target(family: str | None) -> Target:
    """The Verilog-output platform of ``family`` (``"generic"`` or ``"ecp5"``; ``None`` is
    generic)."""
    family = family or "generic"
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    return FAMILIES[family]()
