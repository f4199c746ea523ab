# Quick start: `make examples` (set up + generate the bundled examples), `make test` (set up + run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup examples golden test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dagster]'
	touch $(STAMP)

setup: $(STAMP)

# Generate the bundled examples into examples/workspaces (the committed golden output).
examples: $(STAMP)
	cd examples && ../$(BIN)/dativo-tf generate

# --full: render every job, so a change to the generator's code (not only its templates) shows up
golden: $(STAMP)
	cd examples && ../$(BIN)/dativo-tf generate --full
	DATIVO_TF_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py -k sample_change_report

test: $(STAMP)
	$(BIN)/python -m pytest -n auto -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) build *.egg-info generator/*.egg-info
