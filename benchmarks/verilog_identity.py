"""Build a fixed set of models with ``lstm-fpga build`` and write their ``rtl/lstm_top.v``.

    python benchmarks/verilog_identity.py OUT            # OUT/<name>/rtl/lstm_top.v
    python benchmarks/verilog_identity.py OUT --compare BEFORE

Run it on two commits (into two directories) and compare: a change that must leave the
Verilog of these builds alone leaves every file byte-identical (``--compare BEFORE`` lists
each build as identical or differing, exit 1 on any difference). The builds (seeded
``torch`` models, formats from the default ``--input-range``):

* ``demo``: LSTM(5, 16) + Linear(16, 1), P = 16 (the demo's shape);
* ``gru``: GRU(3, 5, 2 layers) + Linear(5, 2), P = 7;
* ``bidirectional``: bidirectional LSTM(4, 6, 2 layers), P = 5, ``--max-seq-len 8``;
* ``layers3``: LSTM(3, 7, 3 layers), P = 3;
* ``external``: LSTM(5, 16) + Linear(16, 1), P = 8, ``--weights external --interleave 2``;
* ``lstmp``, ``lstmp_bidirectional``: LSTM(3, 5, proj_size=2), P = 4, and a bidirectional
  two-layer LSTM(4, 6, proj_size=3), P = 5 (LSTMPs: shown, not expected to stay the same
  across LSTMP changes).
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import io
import sys
from pathlib import Path

import torch

from lstm_fpga.cli import main as cli

#: name -> (module factory, head outputs or 0, extra build arguments)
BUILDS = {
    "demo": (lambda: torch.nn.LSTM(5, 16), 1, ["--lanes", "16"]),
    "gru": (lambda: torch.nn.GRU(3, 5, 2), 2, ["--lanes", "7"]),
    "bidirectional": (
        lambda: torch.nn.LSTM(4, 6, 2, bidirectional=True),
        0,
        ["--lanes", "5", "--max-seq-len", "8"],
    ),
    "layers3": (lambda: torch.nn.LSTM(3, 7, 3), 0, ["--lanes", "3"]),
    "external": (
        lambda: torch.nn.LSTM(5, 16),
        1,
        ["--lanes", "8", "--weights", "external", "--interleave", "2"],
    ),
    "lstmp": (lambda: torch.nn.LSTM(3, 5, proj_size=2), 0, ["--lanes", "4"]),
    "lstmp_bidirectional": (
        lambda: torch.nn.LSTM(4, 6, 2, bidirectional=True, proj_size=3),
        0,
        ["--lanes", "5", "--max-seq-len", "8"],
    ),
}
#: The builds whose Verilog must not change with LSTMP work.
NON_LSTMP = ("demo", "gru", "bidirectional", "layers3", "external")


def build(name: str, out: Path) -> Path:
    factory, head, extra = BUILDS[name]
    torch.manual_seed(0)
    module = factory()
    state = {f"rnn.{k}": v for k, v in module.state_dict().items()}
    if head:
        features = module.proj_size or module.hidden_size
        features *= 2 if module.bidirectional else 1
        state |= {f"fc.{k}": v for k, v in torch.nn.Linear(features, head).state_dict().items()}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.pt"
    torch.save(state, path)
    target = out / name
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(["build", str(path), "-o", str(target), "--force", *extra])
    if code != 0:
        raise SystemExit(f"{name}: lstm-fpga build exited {code}")
    return target / "rtl" / "lstm_top.v"


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--compare", type=Path, metavar="BEFORE")
    parser.add_argument("--only", nargs="*", choices=list(BUILDS), default=list(BUILDS))
    args = parser.parse_args(argv)
    differ = 0
    for name in args.only:
        verilog = build(name, args.out)
        if args.compare is None:
            print(f"{name}: {verilog}")
            continue
        before = args.compare / name / "rtl" / "lstm_top.v"
        same = filecmp.cmp(before, verilog, shallow=False)
        differ += not same and name in NON_LSTMP
        print(f"{name}: {'identical' if same else 'DIFFERS'} ({before} vs {verilog})")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
