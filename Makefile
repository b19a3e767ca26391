# The two commands a newcomer needs: `make run` and `make test`. Each builds .venv itself.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean docs

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/herald serve

lint: $(STAMP)
	$(BIN)/ruff check bot handlers providers herald tests bench examples deploy
	$(BIN)/mypy
	$(BIN)/python -m bot.config --check
	$(BIN)/python deploy/kubernetes/generate.py --check

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.parse
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.archive
	$(BIN)/python -m bench.hostile_xml
	$(BIN)/python -m bench.http_layer
	$(BIN)/python -m bench.history
	$(BIN)/python -m bench.queue_scaling

docs: $(STAMP)
	$(BIN)/python -m bot.config --write
	$(BIN)/python deploy/kubernetes/generate.py

clean:
	rm -rf $(VENV) build *.egg-info
