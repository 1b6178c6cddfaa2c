"""Answer-service latency, generation throughput and memory, per profile, engine and quantization.

For each profile (``test``: SmolLM2-135M + all-MiniLM-L6-v2; ``default``: Qwen2.5-Coder-1.5B +
multilingual-e5-small) and each variant (``llamacpp``: the GGUF on llama.cpp, the CPU default;
``transformers/QUANT[/DTYPE]``: transformers with ``none``, ``int8`` or ``int4`` and, for
``none``, a forced CPU dtype ``bfloat16`` or ``float32``), one fresh worker process (so its peak
memory is its own):

1. builds the real app (``create_app(settings, Services.build_for_serving)``) and enters it with
   FastAPI's ``TestClient`` (real HTTP semantics, in-process ASGI), which loads the models in the
   lifespan; the XQuAD-en contexts (240 ``.txt`` files) are ingested into a collection once per
   profile (later workers find the files unchanged);
2. after one warm-up question, asks a seeded sample of XQuAD-en questions through
   ``POST /v1/retrieve`` and ``POST /v1/ask`` (top_k 5), recording the client's wall time and the
   response's ``timings_ms`` per stage;
3. for every question the service answered with the LLM, builds the same prompt again
   (``AnswerService.plan``: the same retrieval, hence the same passages) and times the bare
   engine on it: transformers' ``model.generate`` (greedy, the same token budget and stop tokens,
   no scores, no streamer, no deadline), or llama-cpp-python's ``create_chat_completion`` on the
   same GGUF with its KV cache reset (the anchor: the service's model time, the answerability
   check's prompt read plus the generate stage, must take at most its time, and the service's
   time to first token at most its cold prompt read); for llama.cpp
   also our generator's time to first token cold and after another question's prompt (the
   prefix-cache gain);
4. reports its peak RSS (``ru_maxrss``) and the model's own footprint.

A quantized model is saved once in the model cache (``<models>/quantized``); a worker run first
in a separate process fills that cache, so the measured worker loads it the way a later
``docqa serve`` does and its peak memory excludes the one-time quantization.

    .venv/bin/python bench/ask.py --models-dir /tmp/dq1/models
    .venv/bin/python bench/ask.py --profiles test --variants llamacpp --questions-test 10
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _path  # noqa: F401

from bench._common import DATA_ROOT, DEFAULT_MODELS_DIR, Dataset, load_dataset
from bench._host import command_line, contention_note, load_average, machine, machine_lines, now
from bench._report import DEFAULT_OUT, bench_logging, markdown_table, replace_section
from eval.collection import stage
from eval.metrics import nearest_rank_percentile
from eval.selection import draw

log = logging.getLogger("bench.ask")

SECTION = "bench/ask.py"
COLLECTION = "xquad-en"
TOP_K = 5
STAGES = ("embed", "retrieve", "rerank", "answerable", "generate", "total")
QUANTIZATIONS = ("none", "int8", "int4")
VARIANTS = ("llamacpp", "transformers/none/float32", "transformers/none/bfloat16")
TARGET_RATIO = 0.9


# ---------------------------------------------------------------------------------- statistics
def p50_p95(values: list[float]) -> dict[str, float]:
    """Nearest-rank p50 and p95 (``eval.metrics.nearest_rank_percentile``); 0.0 for no values."""
    return {f"p{q}": round(nearest_rank_percentile(values, q) or 0.0, 1) for q in (50, 95)}


# --------------------------------------------------------------------------------------- worker
def parse_variant(variant: str) -> tuple[str, str | None, str]:
    """``llamacpp`` or ``transformers/QUANT[/DTYPE]`` -> (engine, quantization, cpu dtype).

    >>> parse_variant("llamacpp"), parse_variant("transformers/none/bfloat16")
    (('llamacpp', None, 'auto'), ('transformers', 'none', 'bfloat16'))
    """
    engine, *rest = variant.split("/")
    if engine == "llamacpp" and not rest:
        return engine, None, "auto"
    if engine == "transformers" and rest and rest[0] in QUANTIZATIONS and len(rest) <= 2:
        dtype = rest[1] if len(rest) == 2 else "auto"
        if dtype in ("auto", "bfloat16", "float32"):
            return engine, rest[0], dtype
    raise ValueError(f"unknown variant {variant!r}: llamacpp or transformers/QUANT[/DTYPE]")


def _settings(args: argparse.Namespace, variant: str) -> Any:
    from config.settings import Settings

    engine, quantization, dtype = parse_variant(variant)
    return Settings(
        data_dir=Path(args.work_dir) / args.profile,
        models_dir=Path(args.models_dir),
        profile=args.profile,
        llm_engine=engine,
        llm_quantization=quantization,
        llm_cpu_dtype=dtype,
        rerank=False,
        # Latency is what is measured here: no request may be cut short or turned extractive.
        generation_timeout_s=1800.0,
        request_timeout_s=3600.0,
        review_sample=0.0,
    )


def _questions(ds: Dataset, args: argparse.Namespace) -> list[tuple[str, str]]:
    n = args.questions_test if args.profile == "test" else args.questions_default
    picked = draw(ds.questions, n, args.seed)  # asked in the order drawn, not file order
    return [(q.id, q.text) for q in picked]


def _prepare_only(args: argparse.Namespace) -> None:
    """Load the generator once so a quantized model lands in the model cache, then exit."""
    from wiring.compose import build_generator

    settings = _settings(args, args.variant)
    generator = build_generator(settings).load()
    log.info("generator ready (%s, loaded from %s)", args.variant, generator.load_source)


def _raw_generate(generator: Any, messages: Any, max_new_tokens: int) -> tuple[int, float]:
    """The bare ``model.generate`` on the prompt the service used: (new tokens, seconds)."""
    import torch

    config = generator._generation_config(max_new_tokens)
    config.output_scores = False
    config.return_dict_in_generate = False
    tokenizer = generator.tokenizer
    inputs = tokenizer(
        generator.render_chat(messages), return_tensors="pt", add_special_tokens=False
    )
    inputs = inputs.to(generator._model.device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = generator._model.generate(**inputs, generation_config=config)
    seconds = time.perf_counter() - started
    eos = config.eos_token_id
    eos_ids = set(eos) if isinstance(eos, list) else {eos}
    new = out[0, inputs["input_ids"].shape[1] :].tolist()
    for i, token in enumerate(new):  # count like the service: up to and including the stop token
        if token in eos_ids:
            new = new[: i + 1]
            break
    return len(new), seconds


class BareLlama:
    """The anchor for llama.cpp: llama-cpp-python's own ``create_chat_completion`` on the same
    GGUF, context and threads, greedy, its KV cache reset before every call (cold)."""

    def __init__(self, generator: Any) -> None:
        from llama_cpp import Llama

        self.llm = Llama(
            model_path=str(generator.path),
            n_ctx=int(generator._llm.n_ctx()),
            n_threads=generator.threads,
            n_threads_batch=generator.threads,
            verbose=False,
        )

    def complete(self, messages: Any, max_tokens: int) -> tuple[int, float]:
        self.llm.reset()
        started = time.perf_counter()
        out = self.llm.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=1
        )
        return int(out["usage"]["completion_tokens"]), time.perf_counter() - started

    def prefill_s(self, messages: Any) -> float:
        """The cold prompt read and one token: the bare time to first token."""
        return self.complete(messages, 1)[1]


def _prefix_gain(generator: Any, previous: Any, messages: Any) -> dict[str, float]:
    """Our generator's time to first token on ``messages``, cold (KV cache reset) and warm (after
    ``previous``, another question's prompt: only the shared prefix is reused)."""
    generator._llm.reset()
    cold = generator.generate(messages, 1)
    generator.generate(previous, 1)
    warm = generator.generate(messages, 1)
    return {
        "cold_first_token_s": cold.first_token_s or 0.0,
        "warm_first_token_s": warm.first_token_s or 0.0,
        "cached_tokens": warm.cached_prompt_tokens,
        "prompt_tokens": warm.prompt_tokens,
    }


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from app.main import create_app
    from wiring.compose import Services

    settings = _settings(args, args.variant)
    built: dict[str, Services] = {}

    def factory(s: Any) -> Services:
        services = Services.build_for_serving(s)
        built["services"] = services
        return services

    ds = load_dataset("xquad-en", Path(args.data_root))
    questions = _questions(ds, args)
    corpus = Path(args.work_dir) / "corpus-xquad-en"
    stage(ds.documents.values(), corpus)

    started = time.perf_counter()
    app = create_app(settings, factory)
    with TestClient(app) as client:
        while (ready := client.get("/readyz")).status_code != 200:
            reason = ready.json().get("reason", "")
            if reason != "loading models":  # the load failed: say why instead of waiting forever
                raise RuntimeError(f"the service did not become ready: {reason}")
            time.sleep(0.2)
        ready_s = time.perf_counter() - started
        services = built["services"]
        generator = services.answers.generator
        report = services.ingestor(COLLECTION).ingest([corpus])
        log.info("ingest: %s", report.summary())

        def ask(question: str) -> tuple[float, dict[str, Any]]:
            cpu["ask"] = time.process_time()
            t0 = time.perf_counter()
            r = client.post(
                "/v1/ask", json={"question": question, "collection": COLLECTION, "top_k": TOP_K}
            )
            ms = (time.perf_counter() - t0) * 1000.0
            cpu["ask"] = time.process_time() - cpu["ask"]
            if r.status_code != 200:
                raise RuntimeError(f"/v1/ask answered {r.status_code}: {r.text}")
            return ms, r.json()

        # CPU seconds of this process (all its threads): other people's jobs stretch wall time
        # far more than CPU time, so the service/bare ratio is also given by CPU time.
        cpu: dict[str, float] = {}
        ask("What is this collection about?")  # warm-up: first-call costs are not latency
        rows: list[dict[str, Any]] = []
        for qid, question in questions:
            t0 = time.perf_counter()
            r = client.post(
                "/v1/retrieve",
                json={"question": question, "collection": COLLECTION, "top_k": TOP_K},
            )
            retrieve_ms = (time.perf_counter() - t0) * 1000.0
            if r.status_code != 200:
                raise RuntimeError(f"/v1/retrieve answered {r.status_code}: {r.text}")
            ask_ms, body = ask(question)
            row: dict[str, Any] = {
                "id": qid,
                "retrieve_http_ms": retrieve_ms,
                "ask_http_ms": ask_ms,
                "timings_ms": body["timings_ms"],
                "completion_tokens": body["usage"]["completion_tokens"],
                "prompt_tokens": body["usage"]["prompt_tokens"],
                "ask_cpu_s": cpu["ask"],
                "declined": body["declined"],
                "degraded": body["degraded"],
            }
            if body["timings_ms"]["generate"] > 0 and body["usage"]["completion_tokens"] > 0:
                plan = services.answers.plan(services.retriever(COLLECTION), question, TOP_K, None)
                if plan.prompt is not None:
                    row["messages"] = plan.prompt.messages
            rows.append(row)
            log.info(
                "%s: ask %.0f ms (generate %.0f ms, %d tokens)%s",
                qid,
                ask_ms,
                body["timings_ms"]["generate"],
                row["completion_tokens"],
                f", raw {row['raw_tokens']} tokens in {row['raw_s'] * 1000:.0f} ms"
                if "raw_s" in row
                else "",
            )
        # The service's own peak, before a second model is loaded for the bare anchor.
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if generator.engine == "llamacpp":
            footprint = int(generator._llm._model.size())
            load_source = "gguf"
        else:
            footprint = int(generator._model.get_memory_footprint())
            load_source = generator.load_source
        load_seconds = generator.load_seconds
        _bare_rows(generator, rows, settings.answer_max_tokens)
    return {
        "profile": args.profile,
        "variant": args.variant,
        "engine": generator.engine,
        "quantization": generator.quantization,
        "generator": generator.model_id,
        "embedder": services.embedder.model_id,
        "ready_s": round(ready_s, 1),
        "load_source": load_source,
        "load_s": load_seconds,
        "model_bytes": footprint,
        "peak_rss_bytes": peak_kb * 1024,
        "rows": rows,
    }


def _bare_rows(generator: Any, rows: list[dict[str, Any]], max_tokens: int) -> None:
    """The bare engine on each prompt the service answered with the LLM; llama.cpp also gets
    the bare time to first token and our prefix-cache gain."""
    bare = BareLlama(generator) if generator.engine == "llamacpp" else None
    previous = None
    for row in rows:
        messages = row.pop("messages", None)
        if messages is None:
            continue
        cpu0 = time.process_time()
        if bare is None:
            tokens, seconds = _raw_generate(generator, messages, max_tokens)
        else:
            tokens, seconds = bare.complete(messages, max_tokens)
        row["raw_cpu_s"] = time.process_time() - cpu0
        row["raw_tokens"] = tokens
        row["raw_s"] = seconds
        if bare is not None:
            row["bare_prefill_s"] = bare.prefill_s(messages)
            if previous is not None:
                row["prefix"] = _prefix_gain(generator, previous, messages)
            previous = messages
        log.info("bare: %d tokens in %.0f ms", tokens, seconds * 1000)


# ------------------------------------------------------------------------------------- summary
def model_ms(row: dict[str, Any]) -> float:
    """The model's time on a question: the answerability check, when the profile runs it, reads
    the prompt (and leaves it in the KV cache, so ``generate`` only writes the answer), then the
    answer. Against the bare call, which reads and writes in one, both count."""
    timings = row["timings_ms"]
    return float(timings["generate"]) + float(timings.get("answerable", 0.0))


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    stages = {s: p50_p95([r["timings_ms"].get(s, 0.0) for r in rows]) for s in STAGES}
    generated = [r for r in rows if r["timings_ms"]["generate"] > 0 and r["completion_tokens"]]
    compared = [r for r in generated if "raw_s" in r]
    service_tps = (
        sum(r["completion_tokens"] for r in compared)
        / (sum(model_ms(r) for r in compared) / 1000.0)
        if compared
        else 0.0
    )
    raw_tps = (
        sum(r["raw_tokens"] for r in compared) / sum(r["raw_s"] for r in compared)
        if compared
        else 0.0
    )
    timed = [r for r in compared if "raw_cpu_s" in r and "ask_cpu_s" in r]
    cpu_ratio = (
        (sum(r["completion_tokens"] for r in timed) / sum(r["ask_cpu_s"] for r in timed))
        / (sum(r["raw_tokens"] for r in timed) / sum(r["raw_cpu_s"] for r in timed))
        if timed
        else None
    )
    bare_time = sum(r["raw_s"] for r in compared)
    first = [r["timings_ms"]["first_token"] for r in rows if "first_token" in r["timings_ms"]]
    prefill = [r["bare_prefill_s"] * 1000.0 for r in rows if "bare_prefill_s" in r]
    prefix = [r["prefix"] for r in rows if "prefix" in r]
    return {
        # The service's model time against the bare engine on the same prompts (target <= 1).
        "time_ratio": round(sum(model_ms(r) for r in compared) / (bare_time * 1000.0), 3)
        if bare_time
        else None,
        "first_token": p50_p95(first),
        "bare_prefill": p50_p95(prefill),
        "prefix_cold_ms": round(statistics.fmean(x["cold_first_token_s"] for x in prefix) * 1e3)
        if prefix
        else None,
        "prefix_warm_ms": round(statistics.fmean(x["warm_first_token_s"] for x in prefix) * 1e3)
        if prefix
        else None,
        "prefix_cached_share": round(
            sum(x["cached_tokens"] for x in prefix) / sum(x["prompt_tokens"] for x in prefix), 3
        )
        if prefix
        else None,
        "cpu_ratio": None if cpu_ratio is None else round(cpu_ratio, 3),
        "questions": len(rows),
        "answered_by_llm": len(generated),
        "declined": sum(r["declined"] for r in rows),
        "degraded": sum(r["degraded"] for r in rows),
        "retrieve_http": p50_p95([r["retrieve_http_ms"] for r in rows]),
        "ask_http": p50_p95([r["ask_http_ms"] for r in rows]),
        "stages": stages,
        "prompt_tokens_mean": round(statistics.fmean(r["prompt_tokens"] for r in rows), 0)
        if rows
        else 0,
        "completion_tokens_mean": round(
            statistics.fmean(r["completion_tokens"] for r in generated), 1
        )
        if generated
        else 0,
        "service_tps": round(service_tps, 2),
        "raw_tps": round(raw_tps, 2),
        "ratio": round(service_tps / raw_tps, 3) if raw_tps else None,
        "compared": len(compared),
        "same_tokens": sum(r["raw_tokens"] == r["completion_tokens"] for r in compared),
    }


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def write_report(
    results: list[dict[str, Any]], host: dict[str, str], args: argparse.Namespace
) -> str:
    lat_rows, tps_rows, mem_rows, engine_rows = [], [], [], []
    for res in results:
        s = summarize(res)
        name = f"{res['profile']} / {res.get('variant', res['quantization'])}"
        if res.get("engine") == "llamacpp":
            ratio_t = s["time_ratio"]
            ttft, prefill = s["first_token"], s["bare_prefill"]
            engine_rows.append(
                [
                    name,
                    res["quantization"],
                    "–" if ratio_t is None else f"{ratio_t:.3f} ({_met(ratio_t <= 1.0)})",
                    f"{ttft['p50']:.0f} / {ttft['p95']:.0f}",
                    f"{prefill['p50']:.0f} / {prefill['p95']:.0f}"
                    f" ({_met(ttft['p50'] <= prefill['p50'])})",
                    f"{s['prefix_cold_ms']} → {s['prefix_warm_ms']}"
                    if s["prefix_cold_ms"] is not None
                    else "–",
                    "–" if s["prefix_cached_share"] is None else f"{s['prefix_cached_share']:.0%}",
                    f"{_gib(res['peak_rss_bytes'])} ({_met(res['peak_rss_bytes'] < 2 * 2**30)})",
                ]
            )
        st = s["stages"]
        lat_rows.append(
            [
                name,
                str(s["questions"]),
                f"{s['retrieve_http']['p50']:.0f}",
                f"{s['retrieve_http']['p95']:.0f}",
                f"{s['ask_http']['p50']:.0f}",
                f"{s['ask_http']['p95']:.0f}",
                *(f"{st[k]['p50']:.0f} / {st[k]['p95']:.0f}" for k in STAGES),
            ]
        )
        ratio = s["ratio"]
        verdict = "–" if ratio is None else ("met" if ratio >= TARGET_RATIO else "missed")
        tps_rows.append(
            [
                name,
                f"{s['compared']}",
                f"{s['prompt_tokens_mean']:.0f}",
                f"{s['completion_tokens_mean']}",
                f"{s['service_tps']:.2f}",
                f"{s['raw_tps']:.2f}",
                "–" if ratio is None else f"{ratio:.3f} ({verdict})",
                "–" if s["cpu_ratio"] is None else f"{s['cpu_ratio']:.3f}",
                f"{s['same_tokens']}/{s['compared']}",
            ]
        )
        mem_rows.append(
            [
                name,
                res["generator"],
                _gib(res["model_bytes"]),
                _gib(res["peak_rss_bytes"]),
                f"{res['load_s']}",
                res["load_source"],
                f"{s['answered_by_llm']}/{s['declined']}/{s['degraded']}",
            ]
        )
    lines = [
        "## Answer service: latency, tokens/s, memory (`bench/ask.py`)",
        "",
        f"Measured {now()}. Machine:",
        "",
        *machine_lines(host),
        "",
        "Commands (each row below names the run that measured it):",
        "",
        "```sh",
        *sorted({r.get("command", command_line()) for r in results}),
        "```",
        "",
        f"XQuAD-en: the 240 contexts ingested as `.txt` files into one collection; a seeded "
        f"sample (seed {args.seed}; the same first questions in every row, as many as the "
        "row's `questions`) asked through `POST /v1/retrieve` and "
        f"`POST /v1/ask` (top_k {TOP_K}, reranking off as on CPU by default) of the real app "
        "under FastAPI's TestClient, one fresh process per profile and quantization, after one "
        "warm-up question. Times in ms: the client's wall time per endpoint, and the response's "
        "`timings_ms` per stage (p50 / p95).",
        "",
        markdown_table(
            [
                "profile / variant",
                "questions",
                "retrieve p50",
                "retrieve p95",
                "ask p50",
                "ask p95",
                *(f"{k} p50 / p95" for k in STAGES),
            ],
            lat_rows,
        ),
        "",
        "llama.cpp (the CPU engine) against bare llama-cpp-python "
        "(`Llama.create_chat_completion` on the same GGUF, context and threads, greedy, its KV "
        "cache reset before each call) on the same prompts. `service / bare time`: the "
        "service's model time (the `answerable` stage, which reads the prompt when the "
        "profile runs the answerability check, plus `generate`) over the bare call's time, summed "
        "over the prompts (target ≤ 1.0). `first token`: the response's "
        "`timings_ms.first_token`, from the request's start (retrieval included), against "
        "the bare time to first token (the cold prompt "
        "read plus one token; target: p50 ≤ it). `prefix cache`: our generator's time to first "
        "token on a prompt read cold (KV cache reset) → right after another question's prompt "
        "(the shared fixed instructions reused), mean ms; `reused`: share of prompt tokens not "
        "read again. Peak RSS: the service process before the bare model loads (target < 2 GiB "
        "for the 1.5B).",
        "",
        markdown_table(
            [
                "profile / variant",
                "quantization (GGUF)",
                "service / bare time",
                "first token p50 / p95",
                "bare first token p50 / p95",
                "prefix cache: cold → warm ms",
                "reused",
                "peak RSS GiB",
            ],
            engine_rows,
        )
        if engine_rows
        else "(no llama.cpp row in this run)",
        "",
        "Generation throughput: completion tokens over the model time (`answerable` plus "
        "`generate`: prompt reading included), for the service, and for the bare "
        "`model.generate` on the same prompts (greedy, same budget and stop tokens; no "
        "scores, no streamer, no deadline; "
        "for llama.cpp the bare call above). "
        f"Target: service / bare ≥ {TARGET_RATIO}. `same tokens`: questions where both produced "
        "the same number of tokens. `by CPU time`: the same ratio with this process's CPU seconds "
        "(the whole `/v1/ask` call against the bare call) instead of wall time, which other "
        "jobs on a shared machine stretch unevenly.",
        "",
        markdown_table(
            [
                "profile / variant",
                "prompts",
                "prompt tokens (mean)",
                "answer tokens (mean)",
                "service tok/s",
                "bare tok/s",
                "service / bare",
                "by CPU time",
                "same tokens",
            ],
            tps_rows,
        ),
        "",
        "Memory: the generator's own footprint (`get_memory_footprint()`), and the worker "
        "process's peak RSS (embedder, Chroma and the app included). Quantized models were "
        "saved to the model cache by an earlier process, so `load s` is a reload from that "
        "cache. Outcomes: answered by the LLM / declined before it / degraded.",
        "",
        markdown_table(
            [
                "profile / variant",
                "generator",
                "model GiB",
                "peak RSS GiB",
                "load s",
                "loaded from",
                "answered / declined / degraded",
            ],
            mem_rows,
        ),
        "",
        *contention_note(host),
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main
def _worker_command(args: argparse.Namespace, profile: str, variant: str, out: Path) -> list[str]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--profile",
        profile,
        "--variant",
        variant,
        "--result",
        str(out),
        "--models-dir",
        str(args.models_dir),
        "--work-dir",
        str(args.work_dir),
        "--data-root",
        str(args.data_root),
        "--seed",
        str(args.seed),
        "--questions-test",
        str(args.questions_test),
        "--questions-default",
        str(args.questions_default),
    ]
    return cmd


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--profiles", default="test,default")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="llamacpp and/or transformers/QUANT[/DTYPE], comma-separated",
    )
    parser.add_argument("--questions-test", type=int, default=30)
    parser.add_argument("--questions-default", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--models-dir", default=str(DEFAULT_MODELS_DIR))
    parser.add_argument("--work-dir", default="/tmp/docqa-bench-ask")
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--no-write", action="store_true", help="Print, do not touch the doc.")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="Write the section from the result files of earlier runs in --work-dir.",
    )
    # Internal: one (profile, variant) in this process.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    with bench_logging(args.verbose):
        if args.worker:
            if args.prepare_only:
                _prepare_only(args)
                return
            result = run_worker(args)
            Path(args.result).write_text(json.dumps(result), encoding="utf-8")
            return

        host = machine()
        results: list[dict[str, Any]] = []
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        for profile in args.profiles.split(","):
            for variant in args.variants.split(","):
                parse_variant(variant)  # fail before any work on a typo
                slug = variant.replace("/", "-")
                out = work / f"result-{profile}-{slug}.json"
                if args.render_only:
                    results.append(json.loads(out.read_text(encoding="utf-8")))
                    continue
                base = _worker_command(args, profile, variant, out)
                if parse_variant(variant)[1] not in (None, "none"):
                    log.info("%s / %s: filling the quantized-model cache", profile, variant)
                    subprocess.run([*base, "--prepare-only"], check=True)
                log.info("%s / %s: measuring", profile, variant)
                subprocess.run(base, check=True)
                result = json.loads(out.read_text(encoding="utf-8"))
                result["command"] = command_line()
                result["load_during"] = [host["load at start"], load_average()]
                out.write_text(json.dumps(result), encoding="utf-8")
                results.append(result)
                log.info("%s / %s: %s", profile, variant, json.dumps(summarize(result)))
        host["load at end"] = load_average()
        body = write_report(results, host, args)
        if args.no_write:
            sys.stdout.write(body + "\n")
        else:
            replace_section(Path(args.out), SECTION, body)


if __name__ == "__main__":
    main()
