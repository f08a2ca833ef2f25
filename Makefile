# Quick start: `make demo` (compile + RTL-simulate the shipped digits model), `make test` (all tests).
# Both create .venv and install the pinned versions from constraints.txt on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow bench bench-cnv bench-finn clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/python examples/digits_demo.py

test: setup
	$(BIN)/python -m pytest -n 2

test-slow: setup
	$(BIN)/python -m pytest -n 2 -m slow

bench: setup
	$(BIN)/python bench/golden_throughput.py

bench-cnv: setup   # FINN's CNV W1A1 with FINN's folding: lint, Verilator, synth_ecp5 (tens of minutes)
	$(BIN)/python bench/cnv_finn_folding.py --frames 3 --synth --json docs/cnv_w1a1.json

bench-finn: setup  # FINN's TFC/SFC/LFC/CNV W1A1: Yosys on three families, nextpnr, simulation (about an hour on 2 cores)
	$(BIN)/python bench/finn_suite.py --pnr --json docs/finn_suite.json --markdown docs/benchmarks.md

clean:
	rm -rf build sim_build .pytest_cache
