# `make run` and `make test` set everything up on a fresh machine (Python 3.11+ and make).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-stamp
TEST_STAMP = $(VENV)/.test-deps-stamp
# Wheels of what the wheel tests install into fresh environments (the package's dependencies and
# the official Python clients), fetched once here so that the tests themselves need no network.
WHEELHOUSE = $(VENV)/wheelhouse
PYTEST_ARGS ?=
# `make fuzz`: schemathesis time budget (s), examples per operation and cycle, extra CLI flags.
FUZZ_TIME ?= 600
FUZZ_EXAMPLES ?= 1000
FUZZ_ARGS ?=

.PHONY: install run test lint typecheck fmt check fuzz bench bench-smoke bench-deps readme-table clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# What only the tests need: the wheelhouse, the npm client (needs Node.js and npm), and Debian's
# redis-server and nginx (the Redis store's and the load-balanced replicas' tests start their own;
# they fail, never skip, without them) and chromium (the demo page's tests drive it through
# Playwright, never a browser Playwright downloads), and wrk (the bench's smoke test). Installing
# nginx starts its service: stopped again.
$(TEST_STAMP): $(STAMP) tests/js/package-lock.json
	(command -v redis-server && (command -v nginx || test -x /usr/sbin/nginx) && \
		command -v chromium && command -v wrk) >/dev/null || \
		(export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq redis-server nginx-light chromium wrk >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq redis-server nginx-light chromium wrk >/dev/null); \
		(service nginx stop || pkill nginx || true) >/dev/null 2>&1)
	$(BIN)/python -m pip wheel --quiet -w $(WHEELHOUSE) '.[pytest]' 'replicate>=1.0,<1.1' \
		replicate-stainless packaging pytest-xdist hatchling
	rm -f $(WHEELHOUSE)/replicate_flux_emulator-*
	mkdir -p $(VENV)/js && cp tests/js/package.json tests/js/package-lock.json $(VENV)/js/ && \
		npm ci --prefix $(VENV)/js --no-audit --no-fund --loglevel=error
	touch $(TEST_STAMP)

install: $(STAMP)

run: install
	$(BIN)/mock-server --host 127.0.0.1 --port 8000

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint typecheck $(TEST_STAMP)
	$(BIN)/mock-server check
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

check: test

# The README's configuration tables, generated anew from the flags and settings (mock_server/docs.py;
# tests/test_readme.py fails while they differ).
readme-table: install
	$(BIN)/python -m mock_server.docs --write

# A longer randomised run than the suite's pinned one: a live server, every check and phase, a new
# seed each time (printed at the end: pass `FUZZ_ARGS='--seed N'` to replay a run).
fuzz: install
	@log=$$(mktemp); \
	$(BIN)/mock-server --port 0 --time-scale 0 --api-token fuzz --webhooks record >"$$log" 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; grep -v -e listening -e "Invalid HTTP request" "$$log" >&2; rm -f "$$log"' EXIT; trap 'exit 130' INT TERM; \
	for i in $$(seq 100); do grep -q listening "$$log" && break; sleep 0.1; done; \
	url=$$(grep -o 'http://[^ ]*' "$$log") || { cat "$$log"; exit 1; }; \
	$(BIN)/schemathesis run "$$url/openapi.yaml" -H 'Authorization: Bearer fuzz' \
		--exclude-tag admin --checks all --phases examples,coverage,fuzzing,stateful --workers 1 \
		--max-examples $(FUZZ_EXAMPLES) --max-time $(FUZZ_TIME) $(FUZZ_ARGS)

# `make bench`: the emulator beside a bare Starlette app (wrk), memory per prediction, first
# renders, 1k vs 1M stored; prints a table with each target met or not and writes
# bench/results/bench.json (several minutes). BENCH_ARGS: e.g. '--seconds 10 --connections 32'.
# granian is measured beside uvicorn when it installs (it is not a dependency of the project).
# `make bench-smoke`: every part for a second or so (what tests/test_bench.py runs).
BENCH_ARGS ?=

bench-deps: install
	(command -v wrk && command -v redis-server) >/dev/null || \
		(export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq wrk redis-server >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq wrk redis-server >/dev/null))

bench: bench-deps
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-smoke: bench-deps
	$(BIN)/python -m bench.run --smoke $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
