# Make targets for the churn platform. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
# The model a per-model target acts on (a spec under models/<name>/): make train MODEL=next_spend
MODEL ?= churn
# Bytecode caching makes each Python start-up several times faster (feast, airflow, evidently).
export PYTHONDONTWRITEBYTECODE :=
# Airflow, MLflow and BentoML phone home by default; nothing here needs it.
export DO_NOT_TRACK := 1
export BENTOML_DO_NOT_TRACK := true
export MLFLOW_ENABLE_TELEMETRY := false

.PHONY: help venv lock demo test test-fast audit browser lint format parity bench-data bench-serving rollback deploy tune reproduce airflow airflow-stop serve mlflow-ui evidently-ui feast-config land features train monitor clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip -q
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python -q -r requirements.txt
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install the pinned lock (requirements.txt)

lock: ## Re-pin requirements.txt from pyproject.toml with uv pip compile
	@test -x $(BIN)/uv || (test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)) && $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(BIN)/uv pip compile --python-version 3.11 pyproject.toml --extra dev -o requirements.txt

demo: $(STAMP) ## Run the whole loop through the real DAGs and print a summary
	$(BIN)/churn demo

test: $(STAMP) ## Run the whole test suite (slow end-to-end tests included) on two pytest-xdist workers
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

test-fast: $(STAMP) ## Run the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

browser: ## Install Debian's Chromium for the browser test of MLflow's login (needs apt and root)
	@command -v chromium >/dev/null || (command -v apt-get >/dev/null && apt-get install -y -q chromium >/dev/null) || echo "no Chromium: the browser test will be skipped"

audit: ## Check every pin of requirements.txt against the package index's vulnerability data (.ci/audit-allowlist.toml)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m cli.audit

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

feast-config: $(STAMP) ## Render feature_repo/feature_store.yaml from settings (for the feast CLI)
	$(BIN)/churn feast-config

bench-data: $(STAMP) ## Data-path benchmarks (materialize, retrieval, validation, push) -> bench/results/data.json
	$(BIN)/python bench/data_bench.py

bench-serving: $(STAMP) ## Serving benchmark vs naive baselines, same run (~10 min) -> bench/results/serving.json
	$(BIN)/python -m bench.serving

# FILE is left unquoted: the shell splits several paths and expands a pattern (churn land
# expands one the shell left as it is, and refuses a pattern that matches nothing).
land: $(STAMP) ## Land your own batches, each file whole or refused: make land FILE='exports/*.csv' [SOURCE=orders] [DAY=YYYY-MM-DD]
	@test -n "$(FILE)" || (echo "usage: make land FILE='path/to/orders_YYYY-MM-DD.csv or a folder, a pattern, several paths' [SOURCE=name] [DAY=YYYY-MM-DD]" && exit 2)
	$(BIN)/churn land $(FILE) $(if $(SOURCE),--source $(SOURCE)) $(if $(DAY),--day $(DAY))

features: $(STAMP) ## Feature pipeline on what has landed (validate -> ingest -> features -> materialize), no Airflow
	$(BIN)/churn features

train: $(STAMP) ## Training pipeline of one model (training set -> train -> register -> gate), no Airflow [MODEL=churn]
	$(BIN)/churn train --model $(MODEL)

monitor: $(STAMP) ## Drift check of one model's logged predictions, no Airflow [MODEL=churn] (retrain: churn monitor --retrain)
	$(BIN)/churn monitor --model $(MODEL)

rollback: $(STAMP) ## Move one model's champion alias back to its previous champion (serving follows) [MODEL=churn]
	$(BIN)/churn rollback --model $(MODEL)

tune: $(STAMP) ## Hyperparameter search (Optuna, MLflow child runs), then train/register/gate the best [MODEL=churn TRIALS=20 TIMEOUT=600]
	$(BIN)/churn tune --model $(MODEL) --trials $(or $(TRIALS),20) --timeout $(or $(TIMEOUT),600)

reproduce: $(STAMP) ## Rebuild a registered version from its lineage and compare (exit 1 on mismatch) [MODEL=churn VERSION=1]
	$(BIN)/churn reproduce $(MODEL) $(or $(VERSION),1)

deploy: $(STAMP) ## Roll one model's champion out to serving and smoke-test it (helm upgrade in a cluster) [MODEL=churn]
	$(BIN)/churn deploy --model $(MODEL)

parity: $(STAMP) ## Check train/serve parity: online vs point-in-time offline features
	$(BIN)/churn parity

airflow: $(STAMP) ## Start Airflow 3 (UI on 127.0.0.1:8080) with this project's DAGs
	$(BIN)/churn airflow start

airflow-stop: $(STAMP) ## Stop every Airflow process started by `make airflow` (SIGKILL after 20 s), and report them
	$(BIN)/churn airflow stop

serve: $(STAMP) ## Serve the champion model with BentoML on 127.0.0.1:3000 (busy: CHURN_SERVE_PORT=3001 make serve)
	$(BIN)/churn serve

mlflow-ui: $(STAMP) ## Open the MLflow UI on 127.0.0.1:5000 over the project's tracking store
	$(BIN)/churn mlflow-ui

evidently-ui: $(STAMP) ## Open Evidently's UI on 127.0.0.1:8000: drift, live quality, alerts per model
	$(BIN)/churn evidently-ui

clean: ## Remove all state (.state/), caches and the virtualenv
	rm -rf .state .pytest_cache .ruff_cache feature_repo/feature_store.yaml *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
	rm -rf $(VENV)
