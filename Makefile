# plantmrv: two commands do all set-up on a fresh Debian/Ubuntu machine.
#   make demo   run the whole pipeline on simulated plants
#   make test   run the test suite (unit, property and integration tests on real services)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help test demo services install bench dashboards clean

help:
	@echo "make demo    - run the whole pipeline on simulated plants (installs what it needs)"
	@echo "make test    - run all tests against real influxd, mosquitto and asyncua servers"
	@echo "make bench   - run the benchmarks in bench/ (prints ratios against in-run baselines)"
	@echo "make clean   - remove the virtualenv and build artefacts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	@scripts/ensure-services.sh

test: $(STAMP) services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) services
	$(BIN)/plantmrv demo run

bench: $(STAMP) services
	$(BIN)/python -m pip install -q -e '.[bench]'
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
