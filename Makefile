# The two commands of the README: `make book` (the main job) and `make test`.
# Both create .venv from requirements.lock when it is missing or the lock changed.
# The notebooks run as tasks on a local Dask cluster of cores // threads worker processes;
# WORKERS=N sets the number (WORKERS=1: one after another, no cluster).
# Python caches each module it compiles (__pycache__, git-ignored). A machine that sets
# PYTHONDONTWRITEBYTECODE makes every process compile all it imports from source again: 4.5 s
# of every `import torch`, in each Dask worker, notebook runner, kernel and Sphinx render.
unexport PYTHONDONTWRITEBYTECODE
PROFILE ?= full
WORKERS ?=
CLUSTER := $(if $(WORKERS),--workers $(WORKERS))
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-lock

.PHONY: book test lint pytest quick-book clean

book: $(STAMP)
	$(BIN)/ghost-optima build --profile $(PROFILE) $(CLUSTER) $(ARGS)

test: lint pytest quick-book
	@echo "make test: lint, unit tests, quick book and its checks all passed"

# ruff; the notebooks (parameters cell, ruff); the import contracts of pyproject.toml
# (the science never imports the book, no import cycle).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m ghost_optima.book.build.check_notebooks notebooks
	$(BIN)/lint-imports

# pytest-xdist spreads the unit tests over every core (-n auto; worksteal: a worker out of tests
# takes some of the other's, so the few slow build tests do not end up on one); TEST_WORKERS=0
# runs them in one process. The built-book checks run on every core too (a browser per process;
# the determinism check reruns a notebook in a scratch folder and leaves the built book alone).
TEST_WORKERS ?= auto

pytest: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(if $(filter 0,$(TEST_WORKERS)),,--dist worksteal)

# The whole book on the fast profile: a notebook that breaks never lands.
quick-book: $(STAMP)
	$(BIN)/ghost-optima build --profile quick $(CLUSTER)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests/book --book-profile quick

# The lock pins every package, so it is installed as it is (--no-deps), by uv (15 s, where pip
# took 110 s on 2 cores); uv does not read pip's configuration, so the CPU build of torch that
# some machines keep in /opt/wheels is named for it (without it, the index's torch, as for pip).
UV := $(BIN)/python -m uv pip install -q --python $(BIN)/python --no-deps
WHEELS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels)

$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq uv==0.13.9
	$(UV) $(WHEELS) -r requirements.lock
	$(UV) -e .
	cp requirements.lock $(STAMP)

clean:
	rm -rf _build results book/_generated
