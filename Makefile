# The two commands of the README: `make book` (the main job) and `make test`.
# Both create .venv from requirements.lock when it is missing or the lock changed.
# The notebooks run as tasks on a local Dask cluster of cores // threads worker processes;
# WORKERS=N sets the number (WORKERS=1: one after another, no cluster).
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

pytest: $(STAMP)
	$(BIN)/python -m pytest

# The whole book on the fast profile: a notebook that breaks never lands.
quick-book: $(STAMP)
	$(BIN)/ghost-optima build --profile quick $(CLUSTER)
	$(BIN)/python -m pytest tests/book --book-profile quick

$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq -r requirements.lock
	$(BIN)/python -m pip install -qq --no-deps -e .
	cp requirements.lock $(STAMP)

clean:
	rm -rf _build results book/_generated
