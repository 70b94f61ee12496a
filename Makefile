# Two commands from a fresh clone: `make demo` and `make test` (both run `make setup` first).
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lssed-installed
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo bench clean help

help:
	@echo "make setup  - create/reuse .venv and install lssed with pinned deps (~3-5 min the first time)"
	@echo "make test   - setup, then run the whole test suite (what CI runs)"
	@echo "make demo   - setup, then run workflows/full.py on the embedded demo corpus"
	@echo "make bench  - setup, then run the CPU benchmarks in benchmarks/"

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade "pip>=24"
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

test: setup
	RAY_AUTH_MODE=disabled $(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	RAY_AUTH_MODE=disabled $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: setup
	RAY_AUTH_MODE=disabled $(PY) workflows/full.py

bench: setup
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/train_ray.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf runs/ demo-out/ .pytest_cache
