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
	@echo "make demo   - setup, then run workflows/full.py on the embedded demo corpus and predict one video"
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

# The workflow on the embedded demo, then `lssed predict` on one video of a held-out (test)
# speaker with the workflow's best run: runs/demo/predict/{timeline.csv,summary.csv,plots/}.
demo: setup
	RAY_AUTH_MODE=disabled $(PY) workflows/full.py
	RAY_AUTH_MODE=disabled $(VENV)/bin/lssed predict $$(ls runs/demo/corpus/demo-*/demo/media/spk03_*.mp4 | head -1) \
		--run runs/demo --out runs/demo/predict

bench: setup
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/train_ray.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf runs/ demo-out/ .pytest_cache
