"""The demo's synthesis and place-and-route files stay in its output directory: the log
paths ``demo.json`` records point at files that exist after the demo ends."""

import json

import numpy as np
import pytest

from lstm_fpga.demo import implement_demo
from lstm_fpga.outdir import check_output_dir
from lstm_fpga.project import write_project


@pytest.mark.slow
@pytest.mark.synth
def test_demo_synthesis_logs_live_in_the_demo_directory(files):
    out = files / "demo"
    project = write_project(
        files / "model.pt", out, lanes=2, calibration=np.load(files / "cal.npy")
    )
    summary = json.loads(json.dumps(implement_demo(project).to_json_dict()))  # as demo.json
    paths = [summary["synthesis"]["log"], summary["synthesis"]["netlist"]]
    paths += [summary["place_and_route"]["log"]]
    for path in map(type(out), paths):
        assert path.is_file() and path.resolve().is_relative_to((out / "synth").resolve()), path
    check_output_dir(out, force=True)  # a later demo may replace them: they are lstm-fpga's
