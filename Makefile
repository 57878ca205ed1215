# Every target installs what it needs first, so `make run` and `make test` work on a fresh clone
# that has nothing but python3 (3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: bench-resilience cluster install run run-mocks run-bff test lint format typecheck check clean bench

install: $(STAMP)

# Reinstalls only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The three mock services and the BFF in the foreground; Ctrl-C stops all of them. Run twice,
# the second is refused (exit 2), each program with one line naming the address in use.
run: install
	@$(BIN)/python -m mock_services & mocks=$$!; \
	trap 'kill $$mocks 2>/dev/null; wait $$mocks 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -m bff

run-mocks: install
	$(BIN)/python -m mock_services

run-bff: install
	$(BIN)/python -m bff

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# The benchmark (bench/README.md): ours vs a plain baseline, report in bench/results/.
# Knobs: BENCH_QUICK=1 (~1 min), BENCH_WORKERS=N, BENCH_TRACING=1, BENCH_SCENARIOS=a,b.
BENCH_STAMP := $(VENV)/.bench-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || $(SUDO) apt-get install -y wrk \
		|| ($(SUDO) apt-get update && $(SUDO) apt-get install -y wrk)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# Resilience figures with the default policy (completeness, call amplification, breaker timing).
bench-resilience: install
	$(BIN)/python -m bench.resilience

# Three BFF instances behind nginx sharing one redis-server, plus the mocks, on loopback
# (deploy/cluster.py); nginx listens on BFF_CLUSTER_PORT (8000). Ctrl-C stops every process.
cluster: install
	@missing=""; \
	command -v redis-server >/dev/null || missing="redis-server"; \
	command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get install -y $$missing || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y $$missing); \
	fi
	$(BIN)/python -m deploy.cluster
