# `make run` / `make test` create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch is enough for everything here; set TORCH_SPEC= (empty) to keep what pip picks.
TORCH_SPEC ?= torch==2.13.0
# What `make test` installs besides the package: dev (pytest, ruff), and every optional extra so that their
# tests run too (sweeps: the joblib and submitit launchers; tune: the Optuna sweeper; neurogym: the NeuroGym
# tasks; tensorboard and mlflow: the trackers; docs/tuning.md, docs/tasks.md, docs/trackers.md; notebook: the
# executed tutorial; docs: the site's strict build).
TEST_EXTRAS ?= dev,sweeps,tune,neurogym,tensorboard,mlflow,notebook,docs
# Extras `make install` adds on demand (`make install EXTRAS=sweeps,tensorboard`); `make run` needs none.
EXTRAS ?=

.PHONY: install run test lint format bench docs clean-venv

# pip installs without compiling to bytecode (one file after another), then compileall compiles what is new on
# every core (where PYTHONDONTWRITEBYTECODE is set, nothing imported would be compiled for later runs). As
# with pip's own compile step, files written for newer Pythons (a few of torch's test helpers) are skipped.
PIP := $(PY) -m pip install --quiet --no-compile
COMPILE := $(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true

# The package and what the default experiment needs (torch, Hydra, numpy, pandas, matplotlib, seaborn).
$(VENV)/.core: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then $(PIP) "$(TORCH_SPEC)"; fi
	$(PIP) -e .
	$(COMPILE)
	touch $@

# Everything the test suite uses.
$(VENV)/.installed: $(VENV)/.core
	$(PIP) -e ".[$(TEST_EXTRAS)]"
	$(COMPILE)
	touch $@

install: $(VENV)/.core
	@if [ -n "$(EXTRAS)" ]; then $(PIP) -e ".[$(EXTRAS)]" && $(COMPILE); fi

run: $(VENV)/.core
	$(PY) main.py $(ARGS)

# The suite runs on every core (pytest-xdist; a test module stays on one worker, so its module-scoped fixtures
# run once). `make test PYTEST_WORKERS=0` runs it in this process; `make test ARGS=tests/test_cli.py` a part.
PYTEST_WORKERS ?= auto

test: $(VENV)/.installed
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope $(ARGS)

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

# The documentation site (mkdocs.yml: docs/, the README as its home page, the tutorial, the API reference)
# into site/, failing on any warning (a broken link or anchor). `$(VENV)/bin/mkdocs serve` to browse it.
$(VENV)/.docs: $(VENV)/.core
	$(PIP) -e ".[docs]"
	$(COMPILE)
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean-venv:
	rm -rf $(VENV)
