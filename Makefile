# Zentra: `make run` runs the pipeline end to end on the bundled sample; `make test` runs the tests.
# Both create or reuse .venv and install from pyproject.toml when it changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := data/sample
HOME_DIR ?= var/home

.PHONY: run test ui sample bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip >/dev/null
	@$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

$(SAMPLE)/secrets.json: | $(STAMP)
	$(BIN)/zentra sample --out $(SAMPLE) --intents 200 --seed 7

run: $(STAMP) $(SAMPLE)/secrets.json
	$(BIN)/zentra run --landing $(SAMPLE)/landing --source-db $(SAMPLE)/source.sqlite \
	  --policies $(SAMPLE)/policies.yaml --secrets $(SAMPLE)/secrets.json --home $(HOME_DIR)

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: $(STAMP) $(SAMPLE)/secrets.json
	$(BIN)/python -c "from dagster_project.pipeline import write_instance_yaml as w; print('instance config:', w('var/dagster_home'))"
	DAGSTER_HOME=$(CURDIR)/var/dagster_home $(BIN)/dagster dev -h $${UI_HOST:-127.0.0.1} -p $${UI_PORT:-3000}

sample: $(STAMP)
	$(BIN)/zentra sample --out $(SAMPLE) --intents 200 --seed 7

lint: $(STAMP)
	$(BIN)/ruff check zentra_pipelines dagster_project tests bench
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf var bench/out
