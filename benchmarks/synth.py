"""LUT/FF/DSP/BRAM counts of a generated build with yosys synth_ecp5 and synth_xilinx.

.venv/bin/python benchmarks/synth.py                      # I = H = 16, P = 3 and P = 16, ...
.venv/bin/python benchmarks/synth.py --json benchmarks/results/synth.json
.venv/bin/python benchmarks/synth.py --packed             # two multiplies per DSP, xc7

Also whole models (2 layers with a head; 2 bidirectional layers) to show that layers,
directions and the head share the lanes: the DSP count stays ``P`` + the gate/cell pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from lstm_fpga.eda import synthesize
from lstm_fpga.hw import TOP_NAME, HardwareConfig, write_build
from lstm_fpga.testing import random_model, width_formats

#: (I, H, layers, bidirectional, head outputs, P)
CONFIGS = (
    (16, 16, 1, False, None, 3),
    (16, 16, 1, False, None, 16),
    (32, 32, 1, False, None, 8),
    (16, 16, 2, False, 4, 8),
    (16, 16, 2, True, None, 8),
)


#: Two multiplies per DSP (``--dsp-packing 2``), 8-bit weights and elements, synth_xilinx:
#: (I, H, P, packing): unpacked P lanes next to packed 2P lanes at the same DSP count.
PACKED_CONFIGS = ((16, 16, 4, 1), (16, 16, 8, 2), (16, 16, 5, 2))


def packed(args) -> int:
    """DSP counts of packed and unpacked lanes (``synth_xilinx``, 8-bit formats)."""
    layer, head = width_formats(8)
    results = []
    with tempfile.TemporaryDirectory(prefix="lstm-synth-") as tmp:
        for k, (I, H, P, packing) in enumerate(PACKED_CONFIGS):
            model = random_model(I, H, seed=0, formats=layer, head_formats=head)
            config = HardwareConfig(lanes=P, dsp_packing=packing)
            build = write_build(model, config, Path(tmp) / f"packed{k}")
            report = synthesize(build.verilog, "xilinx", top=TOP_NAME)
            entry = {"I": I, "H": H, "P": P, "dsp_packing": packing}
            entry.update(report.to_json_dict())
            results.append(entry)
            t, b = report.total, report.blocks
            print(
                f"I={I} H={H} P={P} dsp_packing={packing} xilinx: DSP {t['dsp']} (lanes "
                f"{b['engine.mvu']['dsp']}, gate/cell {b['engine.cell']['dsp']}), DSP registers "
                f"{report.dsp_registers}, LUT {t['lut']}, FF {t['ff']}, CARRY4 {t.get('carry')}",
                flush=True,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the counts as JSON")
    parser.add_argument(
        "--packed", action="store_true", help="two multiplies per DSP (xc7 DSP counts) only"
    )
    args = parser.parse_args(argv)
    if args.packed:
        return packed(args)
    results = []
    with tempfile.TemporaryDirectory(prefix="lstm-synth-") as tmp:
        for k, (I, H, L, bidirectional, head, P) in enumerate(CONFIGS):
            model = random_model(I, H, L, bidirectional, head=head, formats="q16_even")
            config = HardwareConfig(lanes=P, max_seq_len=16 if bidirectional else None)
            build = write_build(model, config, Path(tmp) / f"config{k}")
            plan = build.interface.plan
            for family in ("ecp5", "xilinx"):
                report = synthesize(build.verilog, family, top=TOP_NAME)
                entry = {
                    "I": I,
                    "H": H,
                    "layers": L,
                    "bidirectional": bidirectional,
                    "head": head,
                    "P": P,
                    "bank_depth": plan.bank_depth,
                }
                entry.update(report.to_json_dict())
                results.append(entry)
                t, b = report.total, report.blocks
                print(
                    f"I={I} H={H} L={L}{' bi' if bidirectional else ''}"
                    f"{f' head={head}' if head else ''} P={P} {family:>6}: "
                    f"DSP {t['dsp']} (lanes {b['engine.mvu']['dsp']}, "
                    f"gate/cell {b['engine.cell']['dsp']}), BRAM {t['bram']} (weights "
                    f"{b['engine.weights']['bram']}), LUTRAM {t['lutram']}, LUT {t['lut']}, "
                    f"FF {t['ff']}",
                    flush=True,
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
