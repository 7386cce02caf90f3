# Two commands for a fresh machine: `make run` (service + demo data) and `make test` (all tests).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres test-faketime install translations i18n lint format bench mutation

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP) translations

translations: $(STAMP)
	$(BIN)/python scripts/i18n.py compile

i18n: $(STAMP)
	$(BIN)/python scripts/i18n.py update

run: install
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app demo
	$(BIN)/python scripts/run_dev.py

test: install
	$(BIN)/python scripts/ensure_browser.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite with the system clock moved by libfaketime (Debian's `faketime`): the app reads time
# only through app.clock and the tests fix it, so any date must pass. FAKETIME_AT is a GNU date
# string; give its zone (default: 23:30 in Nanjing on the eve of the 2027 Spring Festival).
# Monotonic clocks stay real (timeouts, thread waits; scripts/faketime/sitecustomize.py mends
# time.sleep for that under libfaketime 0.9.10). Without e2e: chromium hangs under
# libfaketime (page loads time out), and a browser left on real time would drop the session
# cookies the moved server sets (their Expires is in the server's time). FAKETIME_TESTS narrows it.
FAKETIME_AT ?= 2027-02-05 15:30:00 UTC
FAKETIME_TESTS ?= tests --ignore=tests/e2e
test-faketime: install
	@command -v faketime >/dev/null || { echo "faketime is missing: apt-get install -y faketime" >&2; exit 1; }
	FAKETIME_DONT_FAKE_MONOTONIC=1 faketime '$(FAKETIME_AT)' \
		$(BIN)/python -c 'import datetime as d; print("faketime: system clock at", d.datetime.now(d.UTC))'
	PYTHONPATH=$(CURDIR)/scripts/faketime FAKETIME_DONT_FAKE_MONOTONIC=1 faketime '$(FAKETIME_AT)' \
		$(BIN)/python -m pytest $(FAKETIME_TESTS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Mutation testing (mutmut) of the safety-critical modules: per-group score and surviving mutants.
# Slow (see README): not part of `make test` or CI's every run. MUTATION_GROUPS narrows it, e.g.
# `make mutation MUTATION_GROUPS="triage webhook-signature"`; scores live in docs/testing.md.
MUTATION_GROUPS ?=
MUTATION_CHILDREN ?= 2
# Every benchmark of the README's table, one after the other, logs in bench-results/ (idle machine).
bench: install
	bench/run_all.sh

mutation: install
	$(BIN)/python scripts/mutation.py run --max-children $(MUTATION_CHILDREN) $(MUTATION_GROUPS)
