# Every target bootstraps its own virtualenv: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000
PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

ISO    := .venv-isolation
# Reliability profiles (tests/reliability, RELIABILITY.md): `make test` runs the fast one;
# `make soak` sets RAPPORT_SOAK=1 (more examples, longer phases, a longer atheris run).
# SOAK_SCALE multiplies every count of the chosen profile (e.g. SOAK_SCALE=0.5).
SOAK_SCALE ?= 1
FUZZ_SECONDS ?= 300

.PHONY: test-isolation serve test check lint typecheck test-sqlite test-postgres fmt demo bench clean openapi spec soak fuzz

$(STAMP): protocol/pyproject.toml server/pyproject.toml clients/python/pyproject.toml requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ./protocol -e ./clients/python -e ./server -r requirements-dev.txt
	touch $(STAMP)

serve: $(STAMP)  ## Start the server on the embedded SQLite default.
	$(BIN)/rapport serve --host $(HOST) --port $(PORT)

test: check test-isolation test-sqlite test-postgres  ## Lint, types, every test leg (SQLite, PostgreSQL).

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy protocol/rapport_protocol server/rapport_server server/rapport_cli clients/python/rapport_client

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-isolation:  ## The protocol and the SDK install alone (no FastAPI/SQLAlchemy/uvicorn).
	rm -rf $(ISO)-protocol $(ISO)-client
	$(PYTHON) -m venv $(ISO)-protocol
	$(ISO)-protocol/bin/python -m pip install -q ./protocol pytest hypothesis
	cd /tmp && $(CURDIR)/$(ISO)-protocol/bin/python $(CURDIR)/scripts/check_isolation.py rapport_protocol
	$(ISO)-protocol/bin/python -m pytest -q -p no:cacheprovider --confcutdir=tests/protocol tests/protocol
	$(PYTHON) -m venv $(ISO)-client
	$(ISO)-client/bin/python -m pip install -q ./protocol ./clients/python
	cd /tmp && $(CURDIR)/$(ISO)-client/bin/python $(CURDIR)/scripts/check_isolation.py rapport_client
	rm -rf $(ISO)-protocol $(ISO)-client

test-sqlite: $(STAMP)
	RAPPORT_TEST_DB=sqlite $(BIN)/pytest

test-postgres: $(STAMP)
	@if $(BIN)/python scripts/pg_reachable.py "$(PG_URL)"; then \
		RAPPORT_TEST_DB=postgres RAPPORT_TEST_PG_URL="$(PG_URL)" $(BIN)/pytest; \
	elif [ "$$CI" = "true" ]; then \
		echo "PostgreSQL at $(PG_URL) is not reachable and CI=true: failing." >&2; exit 1; \
	else \
		echo "PostgreSQL at $(PG_URL) is not reachable: skipping the PostgreSQL leg (it is required under CI=true)."; \
	fi

soak: $(STAMP)  ## The reliability suite's long profile on SQLite and PostgreSQL (figures in var/reliability/).
	RAPPORT_SOAK=1 RAPPORT_RELIABILITY_SCALE=$(SOAK_SCALE) RAPPORT_TEST_DB=sqlite $(BIN)/pytest tests/reliability
	@if $(BIN)/python scripts/pg_reachable.py "$(PG_URL)"; then \
		RAPPORT_SOAK=1 RAPPORT_RELIABILITY_SCALE=$(SOAK_SCALE) RAPPORT_TEST_DB=postgres RAPPORT_TEST_PG_URL="$(PG_URL)" $(BIN)/pytest tests/reliability; \
	else \
		echo "PostgreSQL at $(PG_URL) is not reachable: soak ran on SQLite only."; \
	fi

fuzz: $(STAMP)  ## atheris on the strict JSON parser for FUZZ_SECONDS (new inputs in var/fuzz/).
	mkdir -p var/fuzz/strict_json
	$(BIN)/python fuzz/strict_json_fuzz.py -max_total_time=$(FUZZ_SECONDS) var/fuzz/strict_json fuzz/corpus

openapi: $(STAMP)  ## Regenerate spec/openapi.json from the app.
	$(BIN)/python scripts/write_openapi.py

spec: $(STAMP)  ## Regenerate spec/protocol.md tables, spec/schemas and spec/vectors.
	$(BIN)/python scripts/generate_spec.py

demo: $(STAMP)
	$(BIN)/rapport demo

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
