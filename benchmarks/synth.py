"""LUT/FF/DSP/BRAM counts of a generated build with yosys synth_ecp5 and synth_xilinx.

.venv/bin/python benchmarks/synth.py                      # I = H = 16, P = 3 and P = 16
.venv/bin/python benchmarks/synth.py --json benchmarks/results/synth.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from cycles import random_model

from lstm_fpga.hw import HardwareConfig, PassGeometry, write_build
from lstm_fpga.hw.tools import synthesize

CONFIGS = ((16, 16, 3), (16, 16, 16), (32, 32, 8))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the counts as JSON")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="lstm-synth-") as tmp:
        for I, H, P in CONFIGS:
            build = write_build(random_model(I, H), HardwareConfig(lanes=P), Path(tmp) / f"p{P}")
            g = PassGeometry(I, H, P)
            for family in ("ecp5", "xilinx"):
                report = synthesize(build.verilog, family)
                entry = {"I": I, "H": H, "P": P, "bank_depth": g.bank_depth}
                entry.update(report.to_json_dict())
                results.append(entry)
                t, b = report.total, report.blocks
                print(
                    f"I={I} H={H} P={P} {family:>6}: DSP {t['dsp']} (lanes {b['mvu']['dsp']}, "
                    f"gate/cell {b['cell']['dsp']}), BRAM {t['bram']} (weights "
                    f"{b['weights']['bram']}), LUTRAM {t['lutram']}, LUT {t['lut']}, "
                    f"FF {t['ff']}",
                    flush=True,
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
