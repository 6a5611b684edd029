# The two commands of the README: `make run` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSTEM_PACKAGES := redis-server dovecot-imapd chromium postgresql wrk hey
HOST ?= 127.0.0.1
PORT ?= 8311

.PHONY: run test bench lint install system-deps translations clean

run: install
	$(BIN)/gateway serve --host $(HOST) --port $(PORT)

# Every test on SQLite (with the PostgreSQL ones), then again on PostgreSQL, production's database.
test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -q
	$(BIN)/pytest -q --database postgresql --ignore=tests/faults --ignore=tests/browser

# Figures, not tests: `make bench` (full, ~25 min) or `make bench BENCH_ARGS="--quick --only intake"`.
BENCH_ARGS ?=
bench: install system-deps
	$(BIN)/python -m tests.bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

install: $(STAMP) translations

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

translations: $(STAMP)
	$(BIN)/pybabel compile -d gateway/translations 2>/dev/null

# System packages the tests start for real (Redis, Dovecot, Chromium, PostgreSQL, wrk).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v dovecot >/dev/null || missing="$$missing dovecot-imapd"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v wrk >/dev/null || missing="$$missing wrk"; \
	command -v hey >/dev/null || missing="$$missing hey"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache
