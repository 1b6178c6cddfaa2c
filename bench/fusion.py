"""Hybrid fusion, tuned on development splits: which fusion function never loses to its inputs.

For each data set the passages are ingested with the real pipeline (as ``bench/retrieval.py``
does), then each question's dense and keyword candidate lists (``DOCQA_RETRIEVAL_CANDIDATES``
each, the real ``Retriever``'s stores) are taken once, and every fusion is computed from those
same lists offline: dense alone, keyword alone, RRF (k=60) and the convex combination of
normalized scores (Bruch et al. 2023) for alpha in 0, 0.05, ..., 1 under theoretical ("tmm") and
per-query ("mm") min-max. Metrics per set: MRR@10, hit@1, hit@5 (and nDCG@10 with graded qrels),
passages deduped at their first rank, from ``eval.metrics``.

Choice: among the fusions whose MRR@10 is at least the best single method's on EVERY
development set (within ``--tolerance``), the one with the best mean MRR@10 over them. The
held-out sets are reported beside it, never used to choose. The report is JSON on stdout or
``--out``, and a Markdown table for docs/EVALUATION.md.

    .venv/bin/python bench/fusion.py --dev hotpotqa,xquad-en,xquad-zh --held-out cmrc,scifact \
        --questions 200 --models-dir /tmp/dq-bench/models --work-dir /tmp/dq-fusion
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _path  # noqa: F401

from bench._common import (
    Dataset,
    add_run_args,
    embedder_slug,
    ingest_with_progress,
    load_dataset,
    passage_ranking,
    prime_query_cache,
    sample_questions,
    settings_for,
)
from bench._host import command_line, emit_report, machine, now
from eval.collection import stage
from eval.metrics import hit_at, mean, mrr_at, ndcg_at
from index.fusion import convex_combination, reciprocal_rank_fusion
from index.types import Hit
from wiring.compose import Services

log = logging.getLogger("bench.fusion")
ALPHAS = [round(i * 0.05, 2) for i in range(21)]


@dataclass
class Lists:
    question: str
    relevance: dict[str, int]
    dense: list[Hit]
    keyword: list[Hit]


def fusions() -> dict[str, Any]:
    out: dict[str, Any] = {
        "dense": lambda d, k: d,
        "keyword": lambda d, k: k,
        "rrf": lambda d, k: reciprocal_rank_fusion({"dense": d, "keyword": k}, 60),
    }
    for norm in ("tmm", "mm"):
        for a in ALPHAS:
            out[f"convex-{norm}-{a:.2f}"] = lambda d, k, a=a, norm=norm: convex_combination(
                {"dense": d, "keyword": k}, a, norm
            )
    return out


def candidate_lists(services: Services, ds: Dataset, folder: Path) -> tuple[list[Lists], dict]:
    names = stage(ds.documents.values(), folder)
    report = ingest_with_progress(services.ingestor(ds.collection), folder, f"ingest {ds.name}")
    if report.files_failed:
        raise SystemExit(f"ingest of {ds.name} failed for {report.files_failed} files")
    prime_query_cache(services, [q.text for q in ds.questions])
    retriever = services.retriever(ds.collection)
    n = services.settings.retrieval_candidates
    out = []
    for q in ds.questions:
        lists, _ = retriever.candidates(q.text, n, mode="hybrid")
        out.append(Lists(q.text, dict(q.relevance), lists["dense"], lists["keyword"]))
    return out, names


def score(lists: list[Lists], names: dict[str, str], fuse: Any, graded: bool) -> dict[str, float]:
    mrr, h1, h5, ndcg = [], [], [], []
    for item in lists:
        # Fusions build new hits and leave their inputs alone, so the lists are shared as they are.
        ranking = passage_ranking(fuse(item.dense, item.keyword), names)[:10]
        rel = set(item.relevance)
        mrr.append(mrr_at(ranking, rel, 10))
        h1.append(hit_at(ranking, rel, 1))
        h5.append(hit_at(ranking, rel, 5))
        if graded:
            ndcg.append(ndcg_at(ranking, item.relevance, 10))
    result = {"mrr@10": mean(mrr), "hit@1": mean(h1), "hit@5": mean(h5)}
    if graded:
        result["ndcg@10"] = mean(ndcg)
    return {k: round(v, 4) for k, v in result.items() if v is not None}


def choose(table: dict[str, dict[str, dict[str, float]]], dev: list[str], tol: float) -> str:
    """The fusion at least as good as the best single method on every dev set (MRR@10, within
    ``tol``) with the best mean MRR@10 over the dev sets."""
    ok = []
    for name in table:
        if name in ("dense", "keyword"):
            continue
        if all(
            table[name][d]["mrr@10"]
            >= max(table["dense"][d]["mrr@10"], table["keyword"][d]["mrr@10"]) - tol
            for d in dev
        ):
            ok.append(name)
    pool = ok or [n for n in table if n not in ("dense", "keyword")]
    return max(pool, key=lambda n: (sum(table[n][d]["mrr@10"] for d in dev), n == "rrf"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", default="hotpotqa,xquad-en,xquad-zh")
    parser.add_argument("--held-out", default="cmrc,scifact")
    parser.add_argument("--embedder", default="multilingual-e5-small")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--tolerance", type=float, default=0.0)
    parser.add_argument("--out", type=Path)
    add_run_args(parser, "/tmp/dq-fusion")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    dev = [d for d in args.dev.split(",") if d]
    held = [d for d in args.held_out.split(",") if d]
    settings = settings_for(
        args.embedder, args.work_dir / embedder_slug(args.embedder) / "data", args.models_dir
    )
    services = Services.build(settings)
    table: dict[str, dict[str, dict[str, float]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    try:
        for name in dev + held:
            ds = load_dataset(name, args.data_root)
            ds.questions = [q for q in ds.questions if q.relevance]
            sample_questions(ds, args.questions, args.seed)
            lists, names = candidate_lists(services, ds, args.work_dir / "corpus" / ds.collection)
            sizes[name] = {"questions": len(lists), "passages": len(ds.documents)}
            for fname, fuse in fusions().items():
                table.setdefault(fname, {})[name] = score(lists, names, fuse, ds.graded)
            log.info(
                "%s: dense %s keyword %s rrf %s",
                name,
                table["dense"][name],
                table["keyword"][name],
                table["rrf"][name],
            )
    finally:
        services.close()
    chosen = choose(table, dev, args.tolerance)
    report = {
        "when": now(),
        "command": command_line(),
        "machine": machine(),
        "embedder": services.embedder.model_id,
        "candidates": settings.retrieval_candidates,
        "dev": dev,
        "held_out": held,
        "sizes": sizes,
        "chosen": chosen,
        "table": table,
    }
    emit_report(report, markdown(report), args.out)
    return 0


def markdown(report: dict[str, Any]) -> str:
    sets = report["dev"] + report["held_out"]
    shown = ["dense", "keyword", "rrf", report["chosen"]]
    head = (
        "| fusion | "
        + " | ".join(f"{s} MRR@10{' (held out)' if s in report['held_out'] else ''}" for s in sets)
        + " |"
    )
    lines = [head, "|---" * (len(sets) + 1) + "|"]
    for name in dict.fromkeys(shown):
        cells = [f"{report['table'][name][s]['mrr@10']:.3f}" for s in sets]
        mark = " (chosen)" if name == report["chosen"] else ""
        lines.append(f"| {name}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
