# Every target creates .venv and installs snnbench with all extras when needed (or when pyproject.toml changed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint leaderboards clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev,peers,ray,export]"
	$(BIN)/pip install --quiet --no-deps spikingjelly==2.0.0 neurobench==2.3.0
	touch $(STAMP)

## demo: train the default suite (digits-lowT) into the git-ignored out/ folder
demo: $(STAMP)
	$(BIN)/snnbench run --suite digits-lowT --out out

## test: the fast test suite (slow learning tests deselected)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

## test-all: including the slow learning tests
test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q -m ""

lint: $(STAMP)
	$(BIN)/ruff check snnbench tests
	$(BIN)/ruff format --check snnbench tests

## leaderboards: regenerate the committed results/digits-lowT (records, leaderboard, plots)
leaderboards: $(STAMP)
	$(BIN)/snnbench run --suite digits-lowT --out results
	$(BIN)/python tools/readme_leaderboard.py

clean:
	rm -rf $(VENV) out .pytest_cache
