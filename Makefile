# veil — every target builds its own virtual environment (.venv) from pinned versions.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench bench-quick fmt protos clean test-etcd test-deploy test-tensorflow fuzz soak ha-demo bench-render

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3 || $(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/veil demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests examples bench scripts
	$(BIN)/ruff format --check src tests examples bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests examples bench scripts
	$(BIN)/ruff check --fix src tests examples bench scripts

bench: $(STAMP)
	$(BIN)/python bench/run.py

bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

# redraw BENCHMARKS.md and the plots from bench/results/latest.json without measuring
bench-render: $(STAMP)
	$(BIN)/python bench/run.py --render

protos: $(STAMP)
	bash scripts/gen-protos.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

test-etcd: $(STAMP)
	bash scripts/install-etcd.sh
	VEIL_REQUIRE_ETCD=1 $(BIN)/python -m pytest -q tests/integration/test_etcd_store.py tests/integration/test_ha.py

test-deploy: $(STAMP)
	bash scripts/install-deploy-tools.sh
	VEIL_REQUIRE_DEPLOY_TOOLS=1 $(BIN)/python -m pytest -q tests/deploy

VENV_TF := .venv-tf
TF_STAMP := $(VENV_TF)/.installed-stamp

$(TF_STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV_TF)
	$(VENV_TF)/bin/python -m pip install --quiet --upgrade pip==26.3 || $(VENV_TF)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TF)/bin/python -m pip install --quiet -c constraints.txt -e '.[dev,tensorflow]'
	$(VENV_TF)/bin/python -m pip install --quiet --no-deps tensorflow-serving-api==2.21.0
	touch $(TF_STAMP)

# TF Serving's own SavedModels and the tensorflow-serving-api stubs against veil (own venv: TF is big).
test-tensorflow: $(TF_STAMP)
	$(VENV_TF)/bin/python -m pytest -q -p no:cacheprovider tests/tensorflow

FUZZ_BUDGET ?= 40
SOAK_SECONDS ?= 600

# schemathesis against the coordinator's and the server's OpenAPI documents (seconds of budget).
fuzz: $(STAMP)
	$(BIN)/python scripts/fuzz.py --budget $(FUZZ_BUDGET)

# coordinator + marble server under steady load; pass = 0 errors and RSS growth < 5 %.
soak: $(STAMP)
	$(BIN)/python scripts/soak.py --seconds $(SOAK_SECONDS)

# 3 etcd members, 3 coordinators, 2 inference replicas, a client; kills a coordinator and an etcd
# member mid-traffic and shows that nothing failed.
ha-demo: $(STAMP)
	bash scripts/install-etcd.sh
	$(BIN)/python scripts/ha_demo.py
