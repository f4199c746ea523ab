# Quick start: `make examples` (set up + generate the bundled examples), `make test` (set up + run every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# checkov (the security scanner the tests run over the generated Terraform) pins versions that clash with
# dagster's, so it gets a virtualenv of its own.
CHECKOV_VENV    ?= .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: setup checkov examples golden test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet -e '.[test,dagster]'  # no setuptools notices
	touch $(STAMP)

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV_STAMP)

setup: $(STAMP) $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)

# Generate the bundled examples into examples/workspaces (the committed golden output).
examples: $(STAMP)
	cd examples && ../$(BIN)/dativo-tf generate

# --full: render every job, so a change to the generator's code (not only its templates) shows up
golden: $(STAMP)
	cd examples && ../$(BIN)/dativo-tf generate --full
	DATIVO_TF_UPDATE_GOLDEN=1 $(BIN)/python -m pytest -q tests/test_golden.py -k sample_change_report

test: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m pytest -n auto -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build *.egg-info generator/*.egg-info
