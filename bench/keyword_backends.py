"""Keyword search at scale: docqa's keyword index against SQLite FTS5 ``bm25()`` and bm25s.

All of them search the same chunks (the collection ``bench/retrieval_scale.py`` builds, with the
same options; built or reused through it) with the same terms, ``index.text_tokenize.tokenize``'s
output, and return the same thing: the top ``--candidates`` chunks with text and provenance.

- ``sqlite``: ``SqliteBM25Index.search``, as the retriever calls it, on the collection's own
  keyword index. Since issue 12 (``index.keyword.INDEX_VERSION`` ``fts5/...``) that is the
  ``fts5`` scoring below on the collection's own FTS5 table (segments as the build left them),
  answered from its bm25s snapshot (``index/keyword_snapshot.py``: the same scores), built
  first with ``warm_up`` (its time is the build column); before issue 12 (index version ``1``),
  docqa's hand-written Lucene BM25 (k1 1.5, b 0.75), scored in SQL over the query terms' rows
  of a ``kw_postings`` table.
- ``sqlite-fts5``: the same index answering from FTS5, as a search does before the snapshot of
  the collection's current state is built (after a restart, or after a write): a second
  ``SqliteBM25Index`` on the file, ``background=False``, never warmed up.
- ``fts5``: an FTS5 table holding each chunk's terms joined by spaces, under the ``ascii``
  tokenizer with ``.`` and ``_`` as token characters, so each of our terms is one FTS5 token,
  never split or folded again (non-ASCII characters are token characters there). A query is the
  OR of its terms, repeats kept (BM25's query term frequency), ranked by ``bm25()``: FTS5's fixed
  k1 1.2 and b 0.75, and its IDF ``ln((N - df + 0.5) / (df + 0.5))`` floored near 0 where
  Lucene's is ``ln(1 + ...)``, so terms in over half the chunks count for nothing there. The
  top chunks' texts and provenance are joined from ``kw_chunks``. Built once into its own file
  (``fts5-<collection>.sqlite`` in the work dir, written under a temporary name), then reused.
  SQLite here is 3.40: no ``contentless_delete``, so the table keeps its terms (deletable).
- ``bm25s``: ``bm25s.BM25(method="lucene", k1=1.5, b=0.75)``, the formula of docqa's engine
  before issue 12, in memory, built from the same terms at each run (its build time is
  reported); ``get_scores`` then ``argpartition`` for the top chunks, whose texts are read from
  ``kw_chunks``. It has no incremental update: a changed document means re-indexing everything
  (what ``sqlite``'s snapshot does, in the background, with FTS5 answering meanwhile).

Filters are not exercised (the questions have none). Quality: overlap@10 with ``sqlite``, the
size of the multiset intersection of the two top-10 lists' *texts*, over the longer list's length
(10 unless a query matches fewer chunks): copies of one text score alike and each backend breaks
such ties its own way, so chunk ids would understate it. Latency: p50/p95 per backend over the
same seeded questions, backends rotated per question, after ``--warmup`` untimed ones.
``postings`` is how many (term, chunk) pairs the query terms have: the work a term-at-a-time
scorer does per query. Size: for ``sqlite`` its whole file (texts, provenance and the index; the
file of this scale's data dir holds this collection only), plus its snapshot's arrays in memory;
for ``fts5`` the FTS5 file (terms and index; the texts stay in ``kw_chunks``); for ``bm25s`` its
score arrays in memory.

    nice -n 10 .venv/bin/python bench/keyword_backends.py --scale 100000 \
        --models-dir /tmp/dq-bench/models --work-dir /tmp/dq-scale --out -
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _path  # noqa: F401
import numpy as np
from tqdm import tqdm

from bench._host import command_line, contention_note, load_average, machine, machine_lines, now
from bench._report import add_report_args, markdown_table, run_bench
from bench.retrieval_scale import add_collection_args, collection_services, questions, summary
from eval.metrics import mean
from index.keyword import INDEX_VERSION, SqliteBM25Index, fts_table
from index.text_tokenize import TOKENIZER_VERSION, tokenize
from index.types import Chunk, Hit

log = logging.getLogger("bench.keyword_backends")

SECTION = "bench/keyword_backends.py"
BACKENDS = ("sqlite", "sqlite-fts5", "fts5", "bm25s")
OVERLAP_AT = 10
Search = Callable[[str, int], list[Hit]]  # (query, k) -> hits, best first


# ------------------------------------------------------------------------------------ corpus
class Corpus:
    """The collection's chunks as the keyword index stores them, and their terms."""

    def __init__(self, path: Path, collection: str) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        row = self.db.execute(
            "SELECT id, tokenizer FROM kw_collections WHERE name = ?", (collection,)
        ).fetchone()
        if row is None or row[1] != INDEX_VERSION:
            raise SystemExit(f"keyword collection {collection!r} missing or stale in {path}")
        self.coll = int(row[0])
        # Document frequencies from the collection's FTS5 table (the connection is read-only;
        # the vocabulary table lives in its temp schema).
        self.db.execute(
            f"CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, {fts_table(self.coll)}, row)"
        )
        self._terms: dict[str, list[str]] = {}

    def rows(self) -> list[tuple[int, str]]:
        """(cid, text) of every chunk, in cid order."""
        sql = "SELECT cid, text FROM kw_chunks WHERE coll = ? ORDER BY cid"
        return self.db.execute(sql, (self.coll,)).fetchall()

    def terms(self, text: str) -> list[str]:
        """``tokenize(text)``, once per distinct text (copies share it)."""
        found = self._terms.get(text)
        if found is None:
            found = self._terms[text] = tokenize(text)
        return found

    def fetch(self, cids: list[int], scores: list[float]) -> list[Hit]:
        """These chunks as hits, in this order, as ``SqliteBM25Index.search`` makes them."""
        if not cids:
            return []
        marks = ",".join("?" * len(cids))
        rows = self.db.execute(
            f"SELECT cid, chunk_id, text, meta FROM kw_chunks WHERE cid IN ({marks})", cids
        ).fetchall()
        by_cid = {int(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows}
        return [hit(*by_cid[c], s) for c, s in zip(cids, scores, strict=True)]

    def postings(self, query: str) -> int:
        """The query terms' (term, chunk) pairs: what a term-at-a-time scorer walks."""
        qtf = set(tokenize(query))
        if not qtf:
            return 0
        marks = ",".join("?" * len(qtf))
        sql = f"SELECT COALESCE(SUM(doc), 0) FROM temp.vocab WHERE term IN ({marks})"
        return int(self.db.execute(sql, tuple(qtf)).fetchone()[0])


def hit(chunk_id: str, text: str, meta: str, score: float) -> Hit:
    return Hit(Chunk.from_metadata(chunk_id, text, json.loads(meta)), score, {"keyword": score})


# -------------------------------------------------------------------------------------- FTS5
_FTS_META = "CREATE TABLE meta (collection TEXT, chunks INTEGER, tokenizer TEXT)"


def build_fts5(corpus: Corpus, path: Path, collection: str, expected: int) -> float | None:
    """The FTS5 file for the collection, built once (under a temporary name); the seconds
    that took, None when an earlier run's file was reused."""
    if path.exists():
        with contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute("SELECT collection, chunks, tokenizer FROM meta").fetchone()
        if tuple(row) == (collection, expected, TOKENIZER_VERSION):
            log.info("FTS5 index %s reused", path)
            return None
        path.unlink()
    started = time.perf_counter()
    part = path.with_suffix(".part")
    part.unlink(missing_ok=True)
    rows = corpus.rows()
    with contextlib.closing(sqlite3.connect(part, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute(
            "CREATE VIRTUAL TABLE fts USING fts5(terms, tokenize = \"ascii tokenchars '._'\")"
        )
        db.execute(_FTS_META)
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO fts (rowid, terms) VALUES (?, ?)",
            ((cid, " ".join(corpus.terms(text))) for cid, text in tqdm(rows, desc="FTS5")),
        )
        db.execute("INSERT INTO meta VALUES (?, ?, ?)", (collection, len(rows), TOKENIZER_VERSION))
        db.execute("COMMIT")
        db.execute("INSERT INTO fts (fts) VALUES ('optimize')")  # one segment, as a merged index
    part.rename(path)
    return time.perf_counter() - started


def fts5_search(path: Path, keywords: Path) -> Search:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.execute("ATTACH ? AS kw", (f"file:{keywords}?mode=ro",))

    def search(query: str, k: int) -> list[Hit]:
        terms = tokenize(query)
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = db.execute(
            "SELECT c.chunk_id, c.text, c.meta, -s.score FROM ("
            "  SELECT rowid AS cid, bm25(fts) AS score FROM fts WHERE fts MATCH ? "
            "  ORDER BY score LIMIT ?"
            ") AS s JOIN kw.kw_chunks AS c ON c.cid = s.cid ORDER BY s.score, c.chunk_id",
            (match, k),
        ).fetchall()
        return [hit(*row) for row in rows]  # bm25() is lower-is-better: negated

    return search


# ------------------------------------------------------------------------------------- bm25s
def bm25s_search(corpus: Corpus) -> tuple[Search, float, float]:
    """A bm25s index of the collection in memory, the seconds its build took and its arrays'
    size in MB (the vocabulary and the cid map come on top)."""
    try:
        import bm25s  # type: ignore[import-untyped]
    except ImportError:
        raise SystemExit(
            "bm25s is not installed: `.venv/bin/pip install --no-deps bm25s==0.3.16` (it needs "
            "only numpy and scipy), or leave it out with --backends sqlite,fts5"
        ) from None

    started = time.perf_counter()
    rows = corpus.rows()
    vocab: dict[str, int] = {}
    ids_of: dict[str, list[int]] = {}  # distinct text -> its term ids; copies share the list
    for _, text in tqdm(rows, desc="bm25s terms"):
        if text not in ids_of:
            ids_of[text] = [vocab.setdefault(t, len(vocab)) for t in corpus.terms(text)]
    retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    retriever.index(([ids_of[text] for _, text in rows], vocab), show_progress=False)
    cids = np.asarray([cid for cid, _ in rows])
    built = time.perf_counter() - started
    arrays = retriever.scores
    mb = sum(arrays[k].nbytes for k in ("data", "indices", "indptr")) / 2**20

    def search(query: str, k: int) -> list[Hit]:
        terms = [t for t in tokenize(query) if t in vocab]
        if not terms:
            return []
        scores = retriever.get_scores(terms)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[scores[top] > 0]
        top = top[np.lexsort((cids[top], -scores[top]))]
        return corpus.fetch([int(c) for c in cids[top]], [float(s) for s in scores[top]])

    return search, built, mb


# -------------------------------------------------------------------------------------- runs
def overlap(ours: list[Hit], theirs: list[Hit], at: int = OVERLAP_AT) -> float:
    """|multiset of texts in both top ``at``| over the longer list (at most ``at``; 1 when
    both are empty): ties among copies do not count, nor a query that matches few chunks."""
    a = Counter(h.chunk.text for h in ours[:at])
    b = Counter(h.chunk.text for h in theirs[:at])
    longest = max(len(ours[:at]), len(theirs[:at]))
    return sum((a & b).values()) / longest if longest else 1.0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    host = machine()
    with collection_services(args) as (services, built):
        settings = services.settings
        sqlite_index = services.keywords(built.collection)
        keywords_path = settings.data_dir / "keywords.sqlite"
        corpus = Corpus(keywords_path, built.collection)
        backends: dict[str, Search] = {}
        build_s: dict[str, float | None] = {}
        memory_mb = snapshot_mb = 0.0
        wanted = args.backends.split(",")
        if "sqlite" in wanted:
            started = time.perf_counter()
            if not sqlite_index.warm_up():
                raise SystemExit(f"{built.collection} is too small for a keyword snapshot")
            build_s["sqlite"] = time.perf_counter() - started
            backends["sqlite"] = sqlite_index.search
            snapshot = sqlite_index.snapshot
            assert snapshot is not None
            snapshot_mb = snapshot.nbytes / 2**20
        if "sqlite-fts5" in wanted:
            cold = SqliteBM25Index(keywords_path, built.collection, background=False)
            backends["sqlite-fts5"] = cold.search
        if "fts5" in wanted:
            fts_path = args.work_dir / f"fts5-{built.collection}.sqlite"
            build_s["fts5"] = build_fts5(corpus, fts_path, built.collection, args.scale)
            backends["fts5"] = fts5_search(fts_path, keywords_path)
        if "bm25s" in wanted:
            backends["bm25s"], build_s["bm25s"], memory_mb = bm25s_search(corpus)
        qs = [t for _, t in questions(args.questions + args.warmup, args.seed, args.data_root)]
        payload = run_queries(backends, corpus, qs, args)
        sizes = {n: keywords_path.stat().st_size / 2**20 for n in ("sqlite", "sqlite-fts5")}
        if "fts5" in backends:
            sizes["fts5"] = fts_path.stat().st_size / 2**20
        if "bm25s" in backends:
            sizes["bm25s"] = memory_mb
    host["load at end"] = load_average()
    return {
        "when": now(),
        "command": command_line(),
        "machine": host,
        "collection": built.collection,
        "chunks": args.scale,
        "distinct": min(built.plan.unique, args.scale),
        "candidates": args.candidates,
        "questions": len(qs) - args.warmup,
        "build_s": build_s,
        "sizes_mb": sizes,
        "snapshot_mb": snapshot_mb,
        **payload,
    }


def run_queries(
    backends: dict[str, Search], corpus: Corpus, qs: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    names = list(backends)
    times: dict[str, list[float]] = {n: [] for n in names}
    overlaps: dict[str, list[float]] = {n: [] for n in names if n != "sqlite"}
    postings: list[int] = []
    tokenizing: list[float] = []  # the query's tokenize() alone, which every backend does
    for i, question in enumerate(tqdm(qs, desc="keyword queries", unit="q")):
        results: dict[str, list[Hit]] = {}
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            results[name] = backends[name](question, args.candidates)
            elapsed = (time.perf_counter() - t0) * 1000.0
            if i >= args.warmup:
                times[name].append(elapsed)
        t0 = time.perf_counter()
        tokenize(question)
        elapsed = (time.perf_counter() - t0) * 1000.0
        if i < args.warmup:
            continue
        tokenizing.append(elapsed)
        postings.append(corpus.postings(question))
        if "sqlite" in results:
            for name in overlaps:
                overlaps[name].append(overlap(results["sqlite"], results[name]))
    return {
        "latency_ms": {n: summary(v) for n, v in times.items()},
        "overlap10": {n: mean(v) for n, v in overlaps.items()},
        "overlap10_min": {n: min(v, default=None) for n, v in overlaps.items()},
        "postings": summary([float(p) for p in postings]),
        "tokenize_ms": summary(tokenizing),
    }


# ------------------------------------------------------------------------------------ report
def _build_cell(build_s: dict[str, float | None], name: str) -> str:
    if name not in build_s:
        return "–"
    seconds = build_s[name]
    return "reused" if seconds is None else f"{seconds:.0f}"


def _size_cell(p: dict[str, Any], name: str) -> str:
    size = f"{p['sizes_mb'][name]:.0f}"
    if name == "bm25s":
        return size + " in RAM"
    if name == "sqlite" and p.get("snapshot_mb"):
        return f"{size} + {p['snapshot_mb']:.0f} in RAM"
    return size


def render(p: dict[str, Any]) -> str:
    rows = []
    for name, lat in p["latency_ms"].items():
        ov = p["overlap10"].get(name)
        rows.append([
            name, f"{lat['p50']:.1f}", f"{lat['p95']:.1f}", f"{lat['mean']:.1f}",
            f"{lat['max']:.1f}", "1 (reference)" if name == "sqlite" else f"{ov:.3f}",
            "–" if name == "sqlite" else f"{p['overlap10_min'][name]:.1f}",
            _build_cell(p["build_s"], name),
            _size_cell(p, name),
        ])  # fmt: skip
    post, tok = p["postings"], p["tokenize_ms"]
    lines = [
        f"## Keyword backends at {p['chunks']:,} chunks (`bench/keyword_backends.py`)",
        "",
        f"Measured {p['when']} with `{p['command']}`.",
        "",
        *machine_lines(p["machine"]),
        "",
        f"Collection `{p['collection']}` ({p['chunks']:,} chunks, {p['distinct']:,} distinct "
        f"texts); {p['questions']} questions (SciFact claims and CMRC questions, seeded), top "
        f"{p['candidates']} with texts, one at a time, in-process. Postings per query (the "
        f"query terms' (term, chunk) pairs): p50 {post['p50']:,.0f}, p95 {post['p95']:,.0f}, "
        f"max {post['max']:,.0f}. Milliseconds; overlap@10 with `sqlite` counts texts "
        f"(mean, and the worst question). Every backend tokenizes the query first: that alone "
        f"took p50 {tok['p50']:.2f}, p95 {tok['p95']:.2f} ms.",
        "",
        markdown_table(
            ["backend", "p50", "p95", "mean", "max", "overlap@10", "worst", "build s", "size MB"],
            rows,
        ),
    ]
    notes = contention_note(p["machine"])
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_collection_args(parser)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--candidates", type=int, default=30, help="Top k (the retriever's 30).")
    parser.add_argument("--warmup", type=int, default=10, help="Untimed questions first.")
    add_report_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_bench(
        parse_args(argv),
        measure,
        render,
        SECTION,
        saved_as=lambda payload: f"keyword-backends-{payload['chunks']}.json",
    )


if __name__ == "__main__":
    raise SystemExit(main())
