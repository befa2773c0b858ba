# Manifold: `make run` starts the platform on embedded defaults, `make test` runs every test,
# `make check` runs the static checks. The same targets run locally and in CI (.ci/run).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
MANAGE := $(PY) manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
# xdist workers for the main suite; `make test XDIST=0` runs it in one process.
XDIST ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help run setup install install-dev node static migrate seed test test-main \
        test-fast test-browser browser-deps check clean

help:
	@echo "make run    - install, migrate, seed the demo, start web + worker + beat on $(HOST):$(PORT)"
	@echo "             and the demo edge runner (:1880) running examples/motor-anomaly.json"
	@echo "make test   - install test dependencies, run the suite, then the browser tests"
	@echo "make test-fast - the inner loop: unit tests only (no browser, slow, soak)"
	@echo "make check  - ruff, ruff format --check, mypy, import-linter, migrations, conventions"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps make a second `make run` skip pip unless the pins changed. The `demo` extra brings
# the model generator of the demo runner's motor-anomaly flow (dev has the same pins).
$(VENV)/.installed-run: pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements.lock | $(PY)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

node:
	@if [ -f package.json ]; then \
	  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	    npm ci --no-audit --no-fund; \
	  fi; \
	fi

static: install node
	$(MANAGE) collectstatic --noinput -v 0

migrate: install
	$(MANAGE) migrate --noinput -v 1

seed: migrate
	@if $(MANAGE) help seed_demo >/dev/null 2>&1; then \
	  $(MANAGE) seed_demo; \
	else \
	  echo "seed_demo is not available yet: create an account with 'manage.py createsuperuser'"; \
	fi

setup: install node static migrate seed

# RUN_ARGS passes supervisor options, e.g. RUN_ARGS="--runner-port 1881 --motor-port 5021".
run: setup
	$(PY) -m config.run --host $(HOST) --port $(PORT) $(RUN_ARGS)

browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; \
	fi

# Browser tests run in their own pytest process: Playwright's event loop and tests that call
# asyncio.run() cannot share one (see ../shared/STACK.md).
test: install-dev node browser-deps
	@status=0; \
	$(MAKE) --no-print-directory test-main || status=1; \
	$(MAKE) --no-print-directory test-browser || status=1; \
	exit $$status

test-main:
	$(PY) -m pytest $(if $(filter 0,$(XDIST)),,-n $(XDIST)) -m "not browser" \
	  --ignore=tests/browser $(PYTEST_ARGS)

# The inner loop: everything not marked browser, slow (real peers, subprocesses, fuzz, the
# route x method enumerators) or soak. No install step, so it starts at once.
test-fast:
	$(PY) -m pytest -q $(if $(filter 0,$(XDIST)),,-n $(XDIST)) \
	  -m "not browser and not slow and not soak" --ignore=tests/browser $(PYTEST_ARGS)

# No browser test files yet is fine; files that collect nothing (pytest exit 5) are a failure.
test-browser:
	@if compgen -G "tests/browser/**/test_*.py" >/dev/null || compgen -G "tests/browser/test_*.py" >/dev/null; then \
	  DJANGO_ALLOW_ASYNC_UNSAFE=true $(PY) -m pytest tests/browser -m browser $(PYTEST_ARGS); \
	else \
	  echo "no browser tests yet (tests/browser/test_*.py)"; \
	fi

# Every check runs even after one fails, so one run reports all problems; any failure fails.
check: install-dev
	@status=0; \
	for step in "$(PY) -m ruff check ." \
	            "$(PY) -m ruff format --check ." \
	            "$(PY) -m mypy ." \
	            "$(VENV)/bin/lint-imports" \
	            "env DJANGO_SETTINGS_MODULE=config.settings.test $(MANAGE) makemigrations --check --dry-run" \
	            "$(PY) tools/check_conventions.py" \
	            "$(if $(wildcard edge_runner/catalog.py),$(PY) -m edge_runner.catalog --check,true)"; do \
	  echo "==> $$step"; \
	  $$step || { echo "FAILED: $$step"; status=1; }; \
	done; \
	exit $$status

clean:
	rm -rf staticfiles .pytest_cache .mypy_cache .ruff_cache
