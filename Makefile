# `make demo` runs the shop offline; `make test` runs lint and every test (unit, integration,
# e2e); `make test-fast` runs lint and the tests that start no process, for the edit-run loop.
PYTHON ?= python3
PORT ?= 5000
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint fuzz contract bench screenshots clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt | $(BIN)/activate
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

demo: $(VENV)/.runtime
	$(BIN)/flask --app app run --port $(PORT)

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# Three pytest workers on two cores: the suite mostly waits (servers starting, deadlines
# running out), so a third worker fills the idle time. One test file per worker at a time.
TEST_WORKERS ?= 3
test: lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# Everything not marked `slow` (no shop, sandbox, gunicorn, nginx, PostgreSQL or browser
# process), for the edit-run loop: under a minute on two cores. These tests mostly wait
# (deadlines, loopback calls), so eight workers, each taking single tests (no per-file fixture
# is worth keeping on one worker here).
FAST_WORKERS ?= 8
test-fast: lint
	$(BIN)/pytest -n $(FAST_WORKERS) --dist load -m "not slow"

# The order lifecycle's model-based test, searching longer than `make test` does and with
# new random examples each run (make fuzz FUZZ_EXAMPLES=2000 for a longer one).
FUZZ_EXAMPLES ?= 500
fuzz: $(VENV)/.dev
	LIFECYCLE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -m model -p no:cacheprovider -rP \
		tests/integration/test_lifecycle_model.py

# The client's contract checks against the Flex API that .env names (FLEX_API_URL and the
# credentials; Flex's real sandbox when set, else a local sandbox), one line each, pass/fail;
# checks that need the local sandbox's test cards or faults say why they are skipped.
contract: $(VENV)/.dev
	FLEX_CONTRACT_ENV=1 $(BIN)/pytest tests/contract -v -rs -p no:cacheprovider

# The README's pictures: the only run of tests/e2e/test_screenshots.py (the `screenshots`
# marker keeps it out of every other run).
screenshots: $(VENV)/.dev
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest -m screenshots tests/e2e/test_screenshots.py

# Run it on a quiet machine: it rewrites docs/PERFORMANCE.md's tables, exits 1 if a goal is missed.
bench: $(VENV)/.dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache test-results
