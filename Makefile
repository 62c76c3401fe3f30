# plantmrv: two commands do all set-up on a fresh Debian/Ubuntu machine.
#   make demo   run the whole pipeline on simulated plants
#   make test   run the test suite (unit, property and integration tests on real services)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help test demo services install bench dashboards dist clean

help:
	@echo "make demo    - run the whole pipeline on simulated plants (installs what it needs)"
	@echo "make test    - run all tests against real influxd, mosquitto and asyncua servers"
	@echo "make bench   - run the benchmarks in bench/ (prints ratios against in-run baselines)"
	@echo "make dist    - dist/: the plantmrv wheel, and dist/wheelhouse with every gateway dependency (offline Pi install)"
	@echo "make clean   - remove the virtualenv and build artefacts"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@# grafana-client -> niquests -> urllib3-future, whose wheel overwrites the `urllib3` package and
	@# restores itself at every interpreter start (a .pth file): `requests`, and with it schemathesis'
	@# own command line, then fail. Keep the two apart as urllib3-future documents (niquests uses
	@# the `urllib3_future` name), then put the real urllib3 back.
	if $(BIN)/python -m pip show -q urllib3-future 2>/dev/null; then \
	  URLLIB3_NO_OVERRIDE=1 $(BIN)/python -m pip install -q --force-reinstall --no-deps --no-binary urllib3-future urllib3-future && \
	  $(BIN)/python -c "import shutil, sysconfig; shutil.rmtree(sysconfig.get_paths()['purelib'] + '/urllib3', ignore_errors=True)" && \
	  $(BIN)/python -m pip install -q --force-reinstall --no-deps urllib3; fi
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

# The wheels are for this machine's architecture and Python: build on an arm64 (or armhf) box for a Pi.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --wheel --outdir dist .
	$(BIN)/python -m pip wheel -q --wheel-dir dist/wheelhouse dist/plantmrv-*.whl
	@echo "dist/wheelhouse: pip install --no-index --find-links dist/wheelhouse plantmrv"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
