#!/usr/bin/env bash
# A separate virtualenv with LlamaIndex's default ingest stack, for bench/ingest.py's side-by-side
# comparison (--llamaindex-python VENV/bin/python). It is never part of docqa's dependencies:
# docqa's .venv stays as it is, and bench/_llamaindex_ingest.py (which runs here) imports no docqa.
#
#   bash bench/llamaindex_venv.sh [VENV]      # default /tmp/li-venv; a second run only re-checks
#
# torch goes in first, on its own, so that sentence-transformers finds it and pip does not fetch a
# multi-GB CUDA build. chromadb, sentence-transformers, transformers and torch are pinned to the
# versions docqa's .venv runs, so the two pipelines differ in their own code only, not in the
# libraries under it.
set -euo pipefail

VENV="${1:-/tmp/li-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
"$VENV/bin/python" -m pip install --quiet \
    llama-index-core==0.14.25 \
    llama-index-vector-stores-chroma==0.6.0 \
    llama-index-embeddings-huggingface==0.8.0 \
    chromadb==1.5.9 \
    sentence-transformers==6.2.0 \
    transformers==5.24.0
"$VENV/bin/python" -c "import llama_index.core, llama_index.vector_stores.chroma, \
llama_index.embeddings.huggingface, chromadb; print('LlamaIndex venv ready:', '$VENV')"
