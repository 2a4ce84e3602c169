# Two commands a fresh machine needs: `make run` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check -q

.PHONY: run test lint bench clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps --no-build-isolation -e . || $(PIP) install --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	touch $@

## Install and serve on port 8000 with an embedded SQLite file (petitions.db).
run: $(VENV)/.runtime
	$(PY) -m tornado_petitions serve

# The suite waits on sockets, processes and browsers more than on the CPU: on 2 cores
# 4 workers (pytest-xdist) finish sooner than 2. TEST_WORKERS=0 runs it in one process;
# PYTEST_ARGS adds to the command (a file, -k, -x, --durations=20 ...).
TEST_WORKERS ?= 4
PYTEST_ARGS ?=

## Install everything the tests need (Chromium, nginx and systemd-analyze included) and run the whole suite, in parallel.
test: $(VENV)/.dev
	scripts/install-test-deps.sh
	$(VENV)/bin/ruff check tornado_petitions tests bench
	$(VENV)/bin/ruff format --check tornado_petitions tests bench
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check tornado_petitions tests bench
	$(VENV)/bin/ruff format --check tornado_petitions tests bench

bench: $(VENV)/.dev
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) test-output .pytest_cache
