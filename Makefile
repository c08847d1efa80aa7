# Every target creates .venv and installs snnbench with all extras when needed (or when pyproject.toml changed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the digits grid: independent runs on both cores, one compute thread each (the committed records were made so)
GRID   := --executor pool --jobs 2

.PHONY: demo test test-all lint faults leaderboards report fmnist fmnist-report clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev,peers,ray,export]"
	$(BIN)/pip install --quiet --no-deps spikingjelly==2.0.0 neurobench==2.3.0
	touch $(STAMP)

## demo: train the default suite (digits-lowT) into the git-ignored out/ folder
demo: $(STAMP)
	$(BIN)/snnbench run --suite digits-lowT --out out $(GRID)

## test: the fast test suite (slow learning tests deselected)
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist worksteal -q

## test-all: including the slow learning tests
test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist worksteal -q -m ""

## faults: plant each fault of tools/faults.yaml in a copy of the tree; behavioural catch rate ≥ 90 %
faults: $(STAMP)
	$(BIN)/python tools/faults.py --jobs 2

lint: $(STAMP)
	$(BIN)/ruff check snnbench tests
	$(BIN)/ruff format --check snnbench tests

## leaderboards: regenerate the committed results/digits-lowT (records, leaderboard, plots)
leaderboards: $(STAMP)
	$(BIN)/snnbench run --suite digits-lowT --out results $(GRID)
	$(BIN)/python tools/readme_leaderboard.py

## report: regenerate the committed HTML report of digits-lowT and its screenshot (docs/report.png)
report: $(STAMP)
	$(BIN)/snnbench report --suite digits-lowT
	command -v chromium >/dev/null && chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
	  --window-size=1400,1500 --virtual-time-budget=10000 --screenshot=docs/report.png \
	  "file://$(CURDIR)/results/digits-lowT/site/index.html" 2>/dev/null || echo "no chromium: screenshot not updated"

## fmnist: train the real-data suite fmnist-cpu into the committed results/ (needs the real Fashion-MNIST:
## apt-get install dataset-fashion-mnist). Resumes: a finished record is never retrained, so the grid runs in
## pieces, e.g. make fmnist ARGS="--algorithms bptt,ide --timesteps 1,2"; commit results/fmnist-cpu/runs as
## records complete
fmnist: $(STAMP)
	$(BIN)/snnbench run --suite fmnist-cpu --out results $(GRID) $(ARGS)

## fmnist-report: the fmnist-cpu leaderboard, plots and HTML report from its committed records
fmnist-report: $(STAMP)
	$(BIN)/snnbench leaderboard --suite fmnist-cpu
	$(BIN)/snnbench report --suite fmnist-cpu

clean:
	rm -rf $(VENV) out .pytest_cache
