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

## Install everything the tests need (Chromium included) and run the whole suite.
test: $(VENV)/.dev
	scripts/install-test-deps.sh
	$(VENV)/bin/ruff check tornado_petitions tests bench
	$(VENV)/bin/ruff format --check tornado_petitions tests bench
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check tornado_petitions tests bench
	$(VENV)/bin/ruff format --check tornado_petitions tests bench
	$(VENV)/bin/ruff format --check tornado_petitions tests bench

bench: $(VENV)/.dev
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) test-output .pytest_cache
