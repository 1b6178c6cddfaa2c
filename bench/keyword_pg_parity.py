"""Ranking parity of the two keyword indexes: PostgreSQL (``index.keyword_pg``) vs SQLite FTS5.

Keyword-only retrieval on XQuAD en, XQuAD zh and CMRC 2018 (``../shared/data``): every passage
is one chunk (its title, a blank line, its text: the file a benchmark ingests), stored in both
indexes; a seeded sample of the questions is searched in both (k 10), and the script prints
MRR@10 against the gold passage for each, how many questions got exactly the same ranked ids
and scores (relative 1e-6), and the search time (p50/p95 ms, in this process: no HTTP).

Both indexes score as the service would: below 5,000 chunks (all three sets here) there is no
bm25s snapshot, so this compares FTS5's ``bm25()`` with the SQL of ``keyword_pg``;
``--snapshot`` makes both build and use their snapshots (the path of large collections).

PostgreSQL: ``--database-url`` (a database the script may fill: it drops the collections it
makes), or by default a throw-away server (``tests/pg_server.py``: Debian's ``postgresql``
binaries, a temp dir, loopback).

    .venv/bin/python bench/keyword_pg_parity.py --questions 200 --seed 7
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _path  # noqa: F401

from bench._common import DATA_ROOT, Dataset, load_dataset, sample_questions
from bench._host import code_version, command_line, cpu_flag_summary, load_average
from bench._report import markdown_table
from index.keyword import SqliteBM25Index
from index.keyword_pg import PostgresBM25Index
from index.types import Chunk, Hit, sha256_text

log = logging.getLogger("bench.keyword_pg_parity")

SETS = ("xquad-en", "xquad-zh", "cmrc")
K = 10


def chunks_of(ds: Dataset) -> list[Chunk]:
    """One chunk per passage; its doc_id is the passage id (the gold's)."""
    return [
        Chunk(id=sha256_text(doc_id)[:32], text=text, doc_id=doc_id, source=f"{doc_id}.txt",
              title=ds.documents[doc_id].title, chunk_index=0, start=0, end=len(text))
        for doc_id, text in ds.texts().items()
    ]  # fmt: skip


def reciprocal_rank(hits: list[Hit], gold: frozenset[str]) -> float:
    for rank, hit in enumerate(hits[:K], start=1):
        if hit.chunk.doc_id in gold:
            return 1.0 / rank
    return 0.0


def same(a: list[Hit], b: list[Hit]) -> bool:
    return [h.chunk.id for h in a] == [h.chunk.id for h in b] and all(
        abs(x.score - y.score) <= 1e-6 * max(abs(x.score), 1e-12) for x, y in zip(a, b, strict=True)
    )


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def measure(name: str, root: Path, url: str, work: Path, args: argparse.Namespace) -> list[str]:
    ds = load_dataset(name, root)
    sample_questions(ds, args.questions, args.seed)
    chunks = chunks_of(ds)
    collection = f"parity-{name}"
    minimum = 1 if args.snapshot else 5_000
    lite = SqliteBM25Index(work / "kw.sqlite", collection, snapshot_min_chunks=minimum,
                           background=False)  # fmt: skip
    pg = PostgresBM25Index(url, collection, snapshot_min_chunks=minimum, background=False)
    try:
        loaded: dict[str, float] = {}
        for label, index in (("sqlite", lite), ("postgres", pg)):
            index.drop()
            started = time.perf_counter()
            index.upsert(chunks)
            loaded[label] = time.perf_counter() - started
            if args.snapshot:
                assert index.warm_up()
        rr: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        ms: dict[str, list[float]] = {"sqlite": [], "postgres": []}
        identical = 0
        for question in ds.questions:
            got: dict[str, list[Hit]] = {}
            for label, index in (("sqlite", lite), ("postgres", pg)):
                started = time.perf_counter()
                got[label] = index.search(question.text, K)
                ms[label].append((time.perf_counter() - started) * 1000)
                rr[label].append(reciprocal_rank(got[label], question.gold_docs))
            identical += same(got["sqlite"], got["postgres"])
        mrr = {label: sum(v) / len(v) for label, v in rr.items()}
        log.info("%s: %d chunks, %d questions, MRR@10 %s", name, len(chunks),
                 len(ds.questions), mrr)  # fmt: skip
        return [
            name,
            str(len(chunks)),
            str(len(ds.questions)),
            f"{mrr['sqlite']:.4f}",
            f"{mrr['postgres']:.4f}",
            f"{mrr['postgres'] - mrr['sqlite']:+.4f}",
            f"{identical}/{len(ds.questions)}",
            f"{percentile(ms['sqlite'], 50):.1f} / {percentile(ms['sqlite'], 95):.1f}",
            f"{percentile(ms['postgres'], 50):.1f} / {percentile(ms['postgres'], 95):.1f}",
            f"{loaded['sqlite']:.1f} / {loaded['postgres']:.1f}",
        ]
    finally:
        pg.drop()
        lite.close()
        pg.close()


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.pg_server import fresh_database, running_postgres

    with running_postgres() as server:
        yield fresh_database(server, "keyword_parity")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--snapshot", action="store_true", help="score from bm25s snapshots")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    log.setLevel(logging.INFO)
    rows = []
    with database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            rows.append(measure(name, args.data_root, url, Path(tmp), args))
    header = ["set", "chunks", "questions", "MRR@10 sqlite", "MRR@10 postgres", "delta",
              "identical rankings", "sqlite p50/p95 ms", "postgres p50/p95 ms",
              "load s sqlite/pg"]  # fmt: skip
    out = [
        f"command: {command_line()}",
        f"code: {code_version()}",
        f"cpu flags: {cpu_flag_summary()}",
        f"load: {load_average()}",
        f"path: {'bm25s snapshots' if args.snapshot else 'FTS5 bm25() vs SQL'}",
        "",
        markdown_table(header, rows),
    ]
    print("\n".join(out))  # noqa: T201  (the script's output)


if __name__ == "__main__":
    main()
