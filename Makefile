# `make run` / `make test` create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch is enough for everything here; set TORCH_SPEC= (empty) to keep what pip picks.
TORCH_SPEC ?= torch==2.13.0
# tune: the Optuna sweeper, neurogym: the NeuroGym tasks, tensorboard and mlflow: the trackers, so that their
# tests run too (docs/tuning.md, docs/tasks.md, docs/trackers.md).
EXTRAS ?= dev,sweeps,tune,neurogym,tensorboard,mlflow

.PHONY: run test lint format bench clean-venv

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then $(PY) -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) main.py $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest -q $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Training-step benchmark (fast vs naive per-neuron loop) and time to 0.99 accuracy; see docs/performance.md.
# `make bench ARGS=--quick` for a short run.
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_training.py $(ARGS)
	$(PY) benchmarks/time_to_accuracy.py

clean-venv:
	rm -rf $(VENV)
