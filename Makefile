# Everything a user runs. `make demo` and `make test` work from a fresh clone with only Python installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov lives in its own environment: its pins clash with the SAM CLI's.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION := 3.3.30
ARGS ?=
# pytest-xdist workers for `make test` and `make test-fast` (auto: one per core; 0: in this process). Each test
# file stays on one worker (--dist loadfile), so a module's shared offline stack is deployed once.
WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(WORKERS) --dist loadfile
export SAM_CLI_TELEMETRY := 0

.PHONY: demo test test-fast check format lint clean venv bench bench-ranges bench-quality package-check build

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(CHECKOV_STAMP): Makefile
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $(CHECKOV_STAMP)

demo: $(STAMP)
	$(BIN)/python -m offline $(ARGS)

# Everything CI runs: the checks, then every test.
test: check
	$(PYTEST)

# Everything but the tests marked slow (whole executions with the real handlers, big inputs): under a minute.
test-fast: $(STAMP) $(CHECKOV_STAMP)
	$(PYTEST) -m "not slow"

# Lint, format and types (configured in pyproject.toml), then the template's gates.
check: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory lint

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The template's own gates on their own (make check runs them too).
lint: $(STAMP) $(CHECKOV_STAMP)
	$(BIN)/cfn-lint template.yaml -a cfn_lint_serverless.rules
	AWS_DEFAULT_REGION=us-east-1 $(BIN)/sam validate --lint
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet

# The real `sam build` (Python 3.13, arm64, no container; it fails saying how to get 3.13 when it is missing), with
# bytecode; checks the aarch64 wheels and their pins, the unzipped sizes against Lambda's limits, and times each
# handler's cold import from the build. Needs the package registry, so `make test` does not run it.
package-check: $(STAMP)
	$(BIN)/python tools/package_check.py

# What `sam deploy` ships: the same real build, with bytecode, into .aws-sam/build. Then: sam deploy.
build: $(STAMP)
	$(BIN)/python tools/package_check.py --build-only

# The data step's core against Polars, DuckDB, the seed's pandas split and a two-way copy on three files at 10 M and
# 40 M rows (cached in .cache/).
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) package-check
	$(BIN)/python tools/bench.py $(ARGS)

# The data step's worker (one range) against the single data step it replaces, and the 10 GB / 50 GB projection.
bench-ranges: $(STAMP)
	$(BIN)/python tools/bench_ranges.py $(ARGS)

# How many known anomalies the pipeline finds with its defaults, against IsolationForest and LocalOutlierFactor, on
# seven labelled data sets (tools/quality_sets.py), three seeds each; every run is the whole pipeline offline.
QUALITY_STAMP := $(VENV)/.quality-installed
$(QUALITY_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,quality]'
	touch $(QUALITY_STAMP)

bench-quality: $(QUALITY_STAMP)
	$(BIN)/python -m tools.quality_bench $(ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache demo-output .aws-sam
