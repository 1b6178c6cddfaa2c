"""An in-memory copy of one keyword collection, scored by bm25s: the fast path of its search.

FTS5 ranks a query by walking every chunk that holds any query term and calling ``bm25()`` on
each one: a few microseconds a match, 72-114 ms at p95 (up to 200 ms) for the benchmark's
questions on 100,000 chunks, 63,000 (term, chunk) pairs at p95 (docs/BENCHMARKS.md). bm25s
(https://github.com/xhluca/bm25s, MIT) computes every (term, chunk) score once, into a sparse
matrix; a query is then the sum of a few of its columns (numpy) and a partial sort.

A `Snapshot` is a cache of a collection's FTS5 index at one *generation* (``generation`` in
``kw_collections``, which every write sets from a counter of the whole file, so a value is never
seen twice): `index.keyword.SqliteBM25Index` (and ``index.keyword_pg.PostgresBM25Index``, whose
generations come from a database sequence) uses it only while the collection is at that very
generation, and otherwise answers from FTS5 while a new snapshot is built. bm25s has no
incremental update; rebuilding is the delete-aware layer, and the generation is what tells a
search the snapshot is out of date.

It gives FTS5's scores: bm25s's ``robertson`` variant with FTS5's k1 1.2 and b 0.75, over the same
terms (each chunk's FTS5 row, split on spaces), times (k1 + 1), which bm25s leaves out. One
difference: where a term is in half the chunks or more, FTS5's IDF is 1e-6 and bm25s's is 0, so
both paths score only the query's *informative* terms (`informative`), and FTS5 alone answers a
query that has none. Scores are float64 as FTS5's, so ties and their order are the same.

Concessions: the snapshot holds the collection's terms in memory (69 MB of arrays at 100,000
chunks of 200 tokens, the vocabulary on top); a build is a Python loop over the chunks (8-13 s
at 100,000 chunks on a shared 2-core machine), run in a background thread, once per generation
that a search sees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

K1 = 1.2  # FTS5's bm25(): fixed in SQLite's source (fts5_aux.c)
B = 0.75


def positive_idf(df: int, n: int) -> bool:
    """Whether FTS5's IDF ``ln((n - df + 0.5) / (df + 0.5))`` is positive (not floored).

    >>> positive_idf(1, 4), positive_idf(2, 4)
    (True, False)
    """
    return 2 * df < n


@dataclass(frozen=True)
class Snapshot:
    """One collection's chunks at one generation, as bm25s score matrices."""

    collection_id: int
    generation: int
    cids: NDArray[np.int64]  # position -> kw_chunks.cid, ascending
    vocab: dict[str, int]
    df: NDArray[np.int64]  # chunks holding each term, by term id
    bm25: Any  # bm25s.BM25, its scores computed

    @classmethod
    def build(
        cls, collection_id: int, generation: int, rows: Sequence[tuple[int, str]]
    ) -> Snapshot:
        """From the collection's FTS5 rows, (cid, terms joined by spaces), in cid order."""
        import bm25s  # here: importing it (and scipy) takes 0.4 s, which small collections skip

        started = time.perf_counter()
        vocab: dict[str, int] = {}
        corpus: list[list[int]] = []
        counts: list[int] = []
        for _, terms in rows:
            ids = [vocab.setdefault(t, len(vocab)) for t in terms.split()]
            corpus.append(ids)
            counts.extend(set(ids))
        bm25 = bm25s.BM25(method="robertson", k1=K1, b=B, dtype="float64")
        bm25.index((corpus, dict(vocab)), create_empty_token=False, show_progress=False)
        df = np.bincount(np.asarray(counts, dtype=np.int64), minlength=len(vocab))
        cids = np.asarray([cid for cid, _ in rows], dtype=np.int64)
        logger.info("keyword snapshot of collection %d (generation %d): %d chunks, %d terms, "
                    "%.1f s", collection_id, generation, len(rows), len(vocab),
                    time.perf_counter() - started)  # fmt: skip
        return cls(collection_id, generation, cids, vocab, df, bm25)

    @property
    def n(self) -> int:
        return len(self.cids)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays (the score matrix, cids, document frequencies); the vocabulary
        (a dict of the terms) comes on top."""
        arrays = [self.bm25.scores[k] for k in ("data", "indices", "indptr")]
        return sum(int(a.nbytes) for a in [*arrays, self.cids, self.df])

    def informative(self, terms: Sequence[str]) -> list[str]:
        """The terms with a positive IDF here, repeats kept; a term it lacks has none."""
        return [
            t
            for t in terms
            if (i := self.vocab.get(t)) is not None and positive_idf(self.df[i], self.n)
        ]

    def top(
        self, terms: Sequence[str], k: int, allowed: NDArray[np.int64] | None = None
    ) -> list[tuple[int, float]]:
        """(cid, score) of the top ``k`` chunks for ``terms`` (all in the vocabulary), best
        first, ties by cid as FTS5's ``ORDER BY rank, rowid``; only ``allowed`` cids if given."""
        ids = np.asarray([self.vocab[t] for t in terms], dtype=np.int32)
        scores = self.bm25.get_scores_from_ids(ids) * (K1 + 1)
        if allowed is not None:
            where = np.searchsorted(self.cids, allowed)
            inside = where < self.n
            where, cids = where[inside], allowed[inside]
            keep = np.zeros(self.n, dtype=bool)
            keep[where[self.cids[where] == cids]] = True
            scores = np.where(keep, scores, 0.0)
        pos = np.flatnonzero(scores > 0)
        if len(pos) > k:
            kth = -np.partition(-scores[pos], k - 1)[k - 1]
            pos = pos[scores[pos] >= kth]  # the top k and every tie of the k-th
        order = np.lexsort((pos, -scores[pos]))[:k]  # positions ascend with cids
        return [(int(self.cids[p]), float(scores[p])) for p in pos[order]]
