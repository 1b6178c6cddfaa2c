#!/usr/bin/env bash
# The CUDA check of the generator (none / int8 / int4) and the embedder. CI never runs it.
#
#   bench/gpu_check.sh stage [MODELS_DIR]   here: stage configs, tokenizers and the bitsandbytes
#                                           wheel into .gpu/ (git-ignored, about 50 MiB)
#   bench/gpu_check.sh run                  on the GPU machine (the `device` tool), with `.gpu`
#                                           carried: install the wheel, run bench/gpu_check.py
#
# The device tool's call, once staged:
#   run(command="bash bench/gpu_check.sh run", carry=[".gpu"], timeout_s=540)
# Record what it prints in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
stage)
    models="${2:-.docqa/models}"
    gen="$models/qwen2.5-coder-1.5b-instruct"
    emb="$models/multilingual-e5-small"
    for need in "$gen/config.json" "$emb/config.json"; do
        [[ -f "$need" ]] || { echo "missing $need: run 'docqa models prepare --profile default'" >&2; exit 1; }
    done
    rm -rf .gpu && mkdir -p .gpu/generator .gpu/embedder .gpu/wheels
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    # Everything but the weights; the big tokenizer files travel gzipped.
    for f in config.json generation_config.json tokenizer_config.json chat_template.jinja; do
        [[ -f "$gen/$f" ]] && cp "$gen/$f" .gpu/generator/
    done
    gzip -c "$gen/tokenizer.json" > .gpu/generator/tokenizer.json.gz
    (cd "$emb" && find . -name '*.json' ! -name tokenizer.json ! -name 'docqa-model.json') |
        while read -r f; do mkdir -p ".gpu/embedder/$(dirname "$f")"; cp "$emb/$f" ".gpu/embedder/$f"; done
    gzip -c "$emb/tokenizer.json" > .gpu/embedder/tokenizer.json.gz
    version=$(.venv/bin/python -c 'import bitsandbytes; print(bitsandbytes.__version__)')
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_24_x86_64 --platform manylinux_2_28_x86_64 \
        -d .gpu/wheels "bitsandbytes==$version"
    du -sh .gpu
    ;;
run)
    [[ -d .gpu ]] || { echo ".gpu/ is missing: stage it here and carry it" >&2; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .gpu/wheels/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    python3 bench/gpu_check.py --stage-dir .gpu --device cuda 2>&1 | tee "${OUT:-/tmp}/gpu_check.log"
    ;;
*)
    echo "usage: $0 stage [MODELS_DIR] | run" >&2
    exit 2
    ;;
esac
