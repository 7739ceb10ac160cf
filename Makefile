# Cohort: `make run` starts the hub on the embedded default; `make test` runs every test.
# Both install what they need first (Python virtualenv, npm packages, the web build).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WEB_SOURCES := $(shell find web/src web/index.html web/api-docs.html web/vite.config.ts web/tsconfig.json -type f 2>/dev/null)
PYTEST_WORKERS ?= 2

.PHONY: install web run test test-fast check format migrate clean

install: $(STAMP) web

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	@touch $@

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npm run build --silent

web: web/dist/index.html

migrate: $(STAMP)
	$(BIN)/cohort migrate

run: install
	@scripts/system-deps --runtime || echo "make run: without bubblewrap, project kernels cannot start" >&2
	$(BIN)/cohort serve --migrate --demo

test: install
	@scripts/system-deps
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not browser"

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy hub rooms ide media catalog payments
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) web/node_modules web/dist
