# Every target installs what it needs first, so `make run` and `make test` work on a fresh clone
# that has nothing but python3 (3.11+).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: bench-resilience cluster mutate install run run-mocks run-bff test lint format typecheck check clean bench screenshots

install: $(STAMP)

# Reinstalls only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The three mock services (and their fault lab), the storefront and the BFF in the foreground;
# Ctrl-C stops all of them. Run twice, the second is refused (exit 2), each program with one
# line naming the address in use. The storefront calls the BFF cross-origin as a real frontend
# does, so the BFF is given the real CORS setting for the storefront's origin (added to any
# BFF_CORS_ORIGINS already set).
STOREFRONT := http://127.0.0.1:8088
run: install
	@echo "pages: storefront $(STOREFRONT)/?id=P001"
	@echo "       fault lab  http://127.0.0.1:8089/"
	@echo "       status     http://127.0.0.1:$${BFF_ADMIN_PORT:-9090}/status"
	@$(BIN)/python -m mock_services & mocks=$$!; \
	$(BIN)/python -m storefront --bff-url http://127.0.0.1:$${BFF_PORT:-8080} & shop=$$!; \
	trap 'kill $$mocks $$shop 2>/dev/null; wait $$mocks $$shop 2>/dev/null' EXIT INT TERM; \
	BFF_CORS_ORIGINS="$${BFF_CORS_ORIGINS:+$$BFF_CORS_ORIGINS,}$(STOREFRONT)" $(BIN)/python -m bff

run-mocks: install
	$(BIN)/python -m mock_services

run-bff: install
	$(BIN)/python -m bff

# Two processes (pytest-xdist), each test file kept in one of them (its module fixtures are
# made once): most of the suite's time is waiting, not CPU. TEST_PROCESSES=0 runs it in one.
TEST_PROCESSES ?= 2
test: install
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

# The pictures of the storefront, the fault lab and the status page in README.md and
# docs/pages.md, taken in headless chromium (Debian's chromium and chromium-driver).
screenshots: install
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		$(SUDO) apt-get install -y chromium chromium-driver || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium chromium-driver)
	SCREENSHOTS_DIR=docs/images $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/browser/test_screenshots.py

# The benchmark (bench/README.md): ours vs a plain baseline, report in bench/results/; a full
# run takes ~8.5 minutes (~13 with BENCH_BEFORE). Knobs: BENCH_QUICK=1 (~3.5 min),
# BENCH_SCENARIOS=a,b, BENCH_BEFORE=<checkout with its .venv>, BENCH_PROFILE=1 (py-spy),
# BENCH_WORKERS=N, BENCH_TRACING=1.
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

# Mutation testing of every module of bff/ (groups: client, request, resilience, cache, edge,
# settings, observability, process): the table GROUPS in tools/mutate.py says which tests run
# against which module. Not part of `make test` (one to two hours); puts a dated section atop
# docs/mutation.md.
# Knobs: MUTATE_ARGS="--groups client,request --jobs 2 --group-timeout 800".
MUTATE_STAMP := $(VENV)/.mutate-stamp

$(MUTATE_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	$(BIN)/python tools/mutate.py $(MUTATE_ARGS)
