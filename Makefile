# The two commands a newcomer needs: `make run` and `make test`. Everything else builds on them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: run test test-reliability test-sqlite test-postgresql test-mariadb test-e2e check install install-dev bench bench-quick wrk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

# Re-installs only when the pinned requirements or the package metadata change.
$(VENV)/.installed: requirements/base.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@

$(VENV)/.installed-e2e: requirements/e2e.txt $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -r requirements/e2e.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Serve on http://$(HOST):$(PORT), on the embedded SQLite default unless DATABASE_URL is set.
run: install
	$(BIN)/userbase migrate
	$(BIN)/userbase serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

## The whole suite on SQLite, PostgreSQL and MariaDB (each run makes and drops its own database).
test: install-dev
	$(BIN)/python -m tests.run_all

## Outages, the soak and schemathesis (docs/reliability.md); private database servers for outages.
test-reliability: install-dev
	$(BIN)/python -m tests.run_all -m reliability

test-sqlite test-postgresql test-mariadb: install-dev
	$(BIN)/pytest --db=$(@:test-%=%)

## /docs, /redoc, the hosted sign-in pages and the console in real headless Chromium (Debian's,
## installed here if missing; needs root; axe-core from e2e/package.json), on each database in turn.
test-e2e: $(VENV)/.installed-e2e
	@command -v chromium >/dev/null || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	npm ci --prefix e2e --no-audit --no-fund --silent
	for db in sqlite postgresql mariadb; do $(BIN)/python -m pytest e2e --db=$$db || exit 1; done

## ruff, ruff format --check, mypy --strict, lint-imports (layers, no import circles).
check: install-dev
	scripts/check

## The benchmark of issue 6 (bench/): ~10 minutes; writes bench/results/latest.{json,png}.
## BENCH_ARGS passes flags (python -m bench.run --help); `make bench-quick` is a ~4-minute smoke run.
BENCH_ARGS ?=
# Debian 12's wrk; recorded in the results with the rest of the machine.
WRK_VERSION ?= 4.1.0-3+b2

$(VENV)/.installed-bench: bench/requirements.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r bench/requirements.txt
	touch $@

wrk:
	@command -v wrk >/dev/null || { apt-get update && \
		{ apt-get install -y wrk=$(WRK_VERSION) || apt-get install -y wrk; }; }

bench: $(VENV)/.installed-bench wrk
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-bench wrk
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache userbase.db*
