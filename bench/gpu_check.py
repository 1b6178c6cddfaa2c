"""The generator in none / int8 / int4 and the embedder, on CUDA: load time, tokens/s, memory.

Run by ``bench/gpu_check.sh`` on a lent GPU machine (the ``device`` tool), never by CI. That
machine has torch and transformers but none of our model packages, and what travels there is
capped at 64 MiB, so the weights cannot go: each model is rebuilt there from its real
``config.json`` and tokenizer (staged by ``gpu_check.sh stage``) with random weights. Speed and
memory depend on the architecture and the kernels, not on the weight values, so the figures
hold for the real models; the text the random models write is noise and is not judged. Give
``--generator-dir`` / ``--embedder-dir`` a folder with real weights to load those instead.

What it runs is docqa's own code: ``TransformersGenerator`` (bitsandbytes ``load_in_8bit`` /
NF4 with fp16 compute on CUDA, the quantized model saved to and reloaded from the cache, greedy
generation with scores and the streamer, as the service runs it) and
``SentenceTransformerEmbedder``. It prints one JSON line per measurement and a Markdown table.

    python bench/gpu_check.py --stage-dir .gpu --device cuda
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _path  # noqa: F401

log = logging.getLogger("bench.gpu_check")

PROMPT_WORDS = 350  # "wordN" is 2-3 tokens: about a five-passage prompt (~1,000 tokens)
NEW_TOKENS = 128
EMBED_TEXTS = 2048


def _unpack(staged: Path, target: Path) -> Path:
    """Copy a staged model folder (config, tokenizer; ``*.gz`` files unzipped) to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for item in staged.rglob("*"):
        if item.is_dir():
            continue
        rel = item.relative_to(staged)
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if item.suffix == ".gz":
            with gzip.open(item, "rb") as src, (out.with_suffix("")).open("wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy2(item, out)
    return target


def _random_causal_lm(folder: Path) -> None:
    """Write random fp16 weights for the config in ``folder`` (once)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (folder / "model.safetensors").exists():
        return
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float16)
    model.save_pretrained(folder)


def _random_encoder(folder: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModel

    if (folder / "model.safetensors").exists():
        return
    config = AutoConfig.from_pretrained(folder)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)


def _gpu_mem() -> dict[str, float]:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {
        "gpu_allocated_gib": round(torch.cuda.memory_allocated() / 2**30, 3),
        "gpu_peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
    }


def _reset_gpu() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def check_generator(
    folder: Path, quant: str, device: str, cache: Path, new_tokens: int = NEW_TOKENS
) -> dict[str, Any]:
    from app.generation.transformers_generator import TransformersGenerator

    results: dict[str, Any] = {"what": "generator", "quantization": quant, "device": device}
    _reset_gpu()
    # First load quantizes (and saves to the cache); the second reads the cache back.
    for attempt in ("first load", "second load"):
        gen = TransformersGenerator(
            folder, folder.name, quantization=quant, device=device, quantized_cache_dir=cache
        )
        gen.load()
        results[f"{attempt} s"] = gen.load_seconds
        results[f"{attempt} from"] = gen.load_source
        if attempt == "first load":
            del gen
            _reset_gpu()
    results["model_gib"] = round(gen._model.get_memory_footprint() / 2**30, 3)
    words = " ".join(f"word{i}" for i in range(PROMPT_WORDS))
    messages = [{"role": "user", "content": f"{words}\nWhat is said above?"}]
    gen.generate(messages, max_new_tokens=8)  # warm-up: kernels, caches
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        out = gen.generate(messages, max_new_tokens=new_tokens)
        seconds = time.perf_counter() - started
        runs.append((out.prompt_tokens, out.completion_tokens, seconds))
    results["prompt_tokens"] = runs[0][0]
    results["new_tokens"] = statistics.fmean(r[1] for r in runs)
    results["generate_s"] = round(statistics.median(r[2] for r in runs), 3)
    results["tok_per_s"] = round(
        sum(r[1] for r in runs) / sum(r[2] for r in runs),
        1,
    )
    # Prompt reading alone: one new token.
    started = time.perf_counter()
    gen.generate(messages, max_new_tokens=1)
    results["prefill_s"] = round(time.perf_counter() - started, 3)
    results.update(_gpu_mem())
    del gen
    _reset_gpu()
    return results


def check_embedder(folder: Path, device: str, count: int = EMBED_TEXTS) -> dict[str, Any]:
    from index.embedders import SentenceTransformerEmbedder

    _reset_gpu()
    emb = SentenceTransformerEmbedder(
        folder, folder.name, passage_prefix="passage: ", device=device
    )
    emb.load()
    texts = [" ".join(f"token{(i * 7 + j) % 997}" for j in range(120)) for i in range(count)]
    emb.embed_documents(texts[:64])  # warm-up
    out: dict[str, Any] = {"what": "embedder", "device": device, "texts": len(texts)}
    for batch in (32, 128, 512):
        emb.batch_size = batch
        started = time.perf_counter()
        vectors = emb.embed_documents(texts)
        seconds = time.perf_counter() - started
        out[f"texts_per_s@{batch}"] = round(len(texts) / seconds, 1)
        out["dim"] = int(vectors.shape[1])
    out.update(_gpu_mem())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--stage-dir", default=".gpu", help="Folder written by `gpu_check.sh stage`"
    )
    parser.add_argument("--generator-dir", help="A generator folder with real weights")
    parser.add_argument("--embedder-dir", help="An embedder folder with real weights")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quantizations", default="none,int8,int4")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    parser.add_argument("--embed-texts", type=int, default=EMBED_TEXTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import torch

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="docqa-gpu-"))
    stage = Path(args.stage_dir)
    header = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    try:
        import bitsandbytes

        header["bitsandbytes"] = bitsandbytes.__version__
    except ImportError as exc:
        header["bitsandbytes"] = f"missing ({exc})"
    import transformers

    header["transformers"] = transformers.__version__
    sys.stdout.write(json.dumps(header) + "\n")

    if args.generator_dir:
        generator = Path(args.generator_dir)
        weights = "real"
    else:
        generator = _unpack(stage / "generator", work / "generator")
        _random_causal_lm(generator)
        weights = "random (real config and tokenizer)"
    if args.embedder_dir:
        embedder = Path(args.embedder_dir)
    else:
        embedder = _unpack(stage / "embedder", work / "embedder")
        _random_encoder(embedder)

    rows = []
    for quant in args.quantizations.split(","):
        try:
            result = check_generator(
                generator, quant, args.device, work / "quantized", args.new_tokens
            )
        except Exception as exc:  # one failing mode must not hide the others' figures
            log.exception("generator %s failed", quant)
            result = {"what": "generator", "quantization": quant, "error": repr(exc)}
        result["weights"] = weights
        sys.stdout.write(json.dumps(result) + "\n")
        rows.append(result)
    try:
        embed = check_embedder(embedder, args.device, args.embed_texts)
    except Exception as exc:
        log.exception("embedder failed")
        embed = {"what": "embedder", "error": repr(exc)}
    sys.stdout.write(json.dumps(embed) + "\n")

    lines = [
        "| quantization | load s (quantize+save / reload) | model GiB | GPU peak GiB | "
        "prefill s | tok/s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['quantization']} | error: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {r['quantization']} | {r['first load s']} / {r['second load s']} "
            f"({r['second load from']}) | {r['model_gib']} | {r.get('gpu_peak_gib', '–')} | "
            f"{r['prefill_s']} | {r['tok_per_s']} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(f"embedder: {json.dumps(embed)}\n")


if __name__ == "__main__":
    main()
