"""The ECP5 PLL (``EHXPLLL``): dividers computed for a requested clock, and the component.

:func:`ecp5_pll` searches every legal divider triple for the output nearest the request, as
Project Trellis' ``ecppll`` does; :class:`Ecp5Pll` instantiates the primitive with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "PLL_DIVIDERS",
    "PLL_INPUT_MHZ",
    "PLL_OUTPUT_MHZ",
    "PLL_PFD_MHZ",
    "PLL_VCO_MHZ",
    "Ecp5Pll",
    "PllError",
    "PllParameters",
    "ecp5_pll",
]


class PllError(ValueError):
    """A clock the PLL cannot make (one line, names the fix)."""


#: ECP5 EHXPLLL limits in MHz (Lattice FPGA-TN-02200, sysCLOCK PLL design guide; the limits
#: Project Trellis' ecppll uses): input, phase detector, VCO, output.
PLL_INPUT_MHZ = (8, 400)
PLL_PFD_MHZ = (Fraction(3125, 1000), 400)
PLL_VCO_MHZ = (400, 800)
PLL_OUTPUT_MHZ = (10, 400)
#: Divider ranges: CLKI_DIV, CLKFB_DIV, CLKOP_DIV.
PLL_DIVIDERS = ((1, 128), (1, 80), (1, 128))


@dataclass(frozen=True)
class PllParameters:
    """EHXPLLL dividers for CLKOP fed back into CLKFB: ``output = input / clki_div *
    clkfb_div``, ``vco = output * clkop_div``."""

    input_mhz: Fraction
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def output_mhz(self) -> Fraction:
        return self.input_mhz / self.clki_div * self.clkfb_div

    @property
    def vco_mhz(self) -> Fraction:
        return self.output_mhz * self.clkop_div

    @property
    def pfd_mhz(self) -> Fraction:
        return self.input_mhz / self.clki_div

    @property
    def clkop_cphase(self) -> int:
        """Coarse phase of CLKOP for 0 degrees (as Trellis' ecppll sets it)."""
        return (self.clkop_div - 1) // 2

    def to_json_dict(self) -> dict:
        return {
            "input_mhz": float(self.input_mhz),
            "output_mhz": round(float(self.output_mhz), 6),
            "vco_mhz": round(float(self.vco_mhz), 6),
            "clki_div": self.clki_div,
            "clkfb_div": self.clkfb_div,
            "clkop_div": self.clkop_div,
        }


def ecp5_pll(input_mhz: float, output_mhz: float) -> PllParameters:
    """The EHXPLLL dividers whose output is nearest ``output_mhz`` from ``input_mhz`` (ties:
    the VCO nearest 600 MHz, then the smallest input divider), searched over every legal
    divider triple like Trellis' ecppll. Raises :class:`PllError` outside the limits."""
    fin = Fraction(input_mhz).limit_denominator(10**6)
    target = Fraction(output_mhz).limit_denominator(10**6)
    low, high = PLL_OUTPUT_MHZ
    if not low <= target <= high:
        raise PllError(
            f"--freq {float(target):g} MHz is outside the ECP5 PLL's output range "
            f"({low}-{high} MHz); choose a frequency in it"
        )
    if not PLL_INPUT_MHZ[0] <= fin <= PLL_INPUT_MHZ[1]:
        raise PllError(f"a {float(fin):g} MHz oscillator is outside the ECP5 PLL's input range")
    best, best_key = None, None
    for clki in range(PLL_DIVIDERS[0][0], PLL_DIVIDERS[0][1] + 1):
        pfd = fin / clki
        if not PLL_PFD_MHZ[0] <= pfd <= PLL_PFD_MHZ[1]:
            continue
        for clkfb in range(PLL_DIVIDERS[1][0], PLL_DIVIDERS[1][1] + 1):
            out = pfd * clkfb
            if not low <= out <= high:
                continue
            for clkop in range(PLL_DIVIDERS[2][0], PLL_DIVIDERS[2][1] + 1):
                vco = out * clkop
                if vco > PLL_VCO_MHZ[1]:
                    break
                if vco < PLL_VCO_MHZ[0]:
                    continue
                key = (abs(out - target), abs(vco - 600), clki)
                if best_key is None or key < best_key:
                    best, best_key = PllParameters(fin, clki, clkfb, clkop), key
    if best is None:
        raise PllError(f"no ECP5 PLL setting gives {float(target):g} MHz from {fin} MHz")
    return best


class Ecp5Pll(wiring.Component):
    """An ECP5 ``EHXPLLL`` with CLKOP fed back: ``clk_out`` at
    :attr:`PllParameters.output_mhz` from ``clk_in``; ``locked`` asynchronous (synchronise
    it). The instance carries the ``FREQUENCY_PIN_*`` attributes nextpnr reads and the loop
    filter settings Trellis' ecppll emits. Simulation: none (a vendor primitive)."""

    def __init__(self, parameters: PllParameters):
        self.parameters = parameters
        super().__init__({"clk_in": In(1), "clk_out": Out(1), "locked": Out(1)})

    def elaborate(self, platform):
        m = Module()
        p = self.parameters
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{float(p.input_mhz):g}",
            a_FREQUENCY_PIN_CLKOP=f"{float(p.output_mhz):.6g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p.clkop_div,
            p_CLKOP_CPHASE=p.clkop_cphase,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=0,
            i_STDBY=0,
            i_CLKI=self.clk_in,
            o_CLKOP=self.clk_out,
            i_CLKFB=self.clk_out,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_LOCK=self.locked,
        )
        return m
