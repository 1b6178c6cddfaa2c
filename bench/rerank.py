"""The LLM reranker on a CPU: what it gains in ranking, and what it costs per question.

For each data set the passages are ingested with the real pipeline (as ``bench/fusion.py``
does); each sampled question is retrieved once with the shipped hybrid fusion (top 10 passages),
then the same 10 hits are reranked by ``index.reranker.LLMReranker`` on the profile's generator
(llama.cpp on a CPU; ``--profile fast``: Qwen2.5-Coder-0.5B), exactly as the service would with
``DOCQA_RERANK=true``. Reported per set: MRR@10, hit@1 and hit@5 before and after (passages
deduped at their first rank, ``eval.metrics``), and the rerank's wall and CPU seconds per
question (process CPU time, which other jobs on a shared machine stretch less than wall time).

    .venv/bin/python bench/rerank.py --sets xquad-en,cmrc --questions 30 --profile fast \
        --models-dir .docqa-test/models --work-dir /tmp/dq-rerank
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import _path  # noqa: F401

from bench._common import (
    add_run_args,
    ingest_with_progress,
    load_dataset,
    passage_ranking,
    sample_questions,
)
from bench._host import emit_report, machine, run_header
from config.settings import Settings
from eval.collection import stage
from eval.metrics import hit_at, mean, mrr_at
from index.reranker import LLMReranker
from wiring.compose import Services

log = logging.getLogger("bench.rerank")
TOP = 10


def quality(rankings: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    out = {
        "mrr@10": mean([mrr_at(r, rel, 10) for r, rel in zip(rankings, relevant, strict=True)]),
        "hit@1": mean([hit_at(r, rel, 1) for r, rel in zip(rankings, relevant, strict=True)]),
        "hit@5": mean([hit_at(r, rel, 5) for r, rel in zip(rankings, relevant, strict=True)]),
    }
    return {k: round(v, 4) for k, v in out.items() if v is not None}


def one_set(services: Services, name: str, args: argparse.Namespace) -> dict[str, Any]:
    ds = load_dataset(name, args.data_root)
    ds.questions = [q for q in ds.questions if q.relevance]
    sample_questions(ds, args.questions, args.seed)
    folder = args.work_dir / "corpus" / ds.collection
    names = stage(ds.documents.values(), folder)
    report = ingest_with_progress(services.ingestor(ds.collection), folder, f"ingest {name}")
    if report.files_failed:
        raise SystemExit(f"ingest of {name} failed for {report.files_failed} files")
    retriever = services.retriever(ds.collection)
    reranker = LLMReranker(services.answers.generator)
    before, after, relevant, wall, cpu = [], [], [], [], []
    for q in ds.questions:
        hits = retriever.retrieve(q.text, k=TOP, rerank=False).hits
        before.append(passage_ranking(hits, names)[:10])
        t0, c0 = time.perf_counter(), time.process_time()
        reranked = reranker.rerank(q.text, hits, TOP)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        after.append(passage_ranking(reranked, names)[:10])
        relevant.append(set(q.relevance))
        log.info("%s %d/%d: %.1f s", name, len(wall), len(ds.questions), wall[-1])
    wall.sort()
    return {
        "questions": len(ds.questions),
        "passages": len(ds.documents),
        "before": quality(before, relevant),
        "after": quality(after, relevant),
        "rerank_wall_s_mean": round(sum(wall) / len(wall), 2),
        "rerank_wall_s_p50": round(wall[len(wall) // 2], 2),
        "rerank_cpu_s_mean": round(sum(cpu) / len(cpu), 2),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| set | questions | MRR@10 before → after | hit@1 before → after | hit@5 before → after "
        "| rerank s / question (mean, p50) | CPU s / question |",
        "| --- | ---: | --- | --- | --- | --- | ---: |",
    ]
    for name, r in report["sets"].items():
        b, a = r["before"], r["after"]
        lines.append(
            f"| {name} | {r['questions']} | {b['mrr@10']:.3f} → {a['mrr@10']:.3f} "
            f"| {b['hit@1']:.3f} → {a['hit@1']:.3f} | {b['hit@5']:.3f} → {a['hit@5']:.3f} "
            f"| {r['rerank_wall_s_mean']:.1f}, {r['rerank_wall_s_p50']:.1f} "
            f"| {r['rerank_cpu_s_mean']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="xquad-en,cmrc")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--profile", default="fast", help="Whose generator judges: fast = 0.5B.")
    parser.add_argument("--out", type=Path)
    add_run_args(parser, "/tmp/dq-rerank")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    host, started = machine(), time.monotonic()
    settings = Settings(
        data_dir=args.work_dir / args.profile / "data",
        models_dir=args.models_dir,
        profile=args.profile,
        rerank=False,  # the bench reranks the retrieved hits itself, to have both rankings
    )
    services = Services.build_for_serving(settings)
    try:
        sets = {name: one_set(services, name, args) for name in args.sets.split(",") if name}
    finally:
        services.close()
    report = {
        **run_header(host, started),
        "generator": services.answers.generator.model_id,
        "embedder": services.embedder.model_id,
        "top": TOP,
        "sets": sets,
    }
    emit_report(report, markdown(report), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
