"""What the two BM25 keyword indexes share: the search plan, the snapshot cache, scores, hits.

`index.keyword.SqliteBM25Index` (FTS5) and `index.keyword_pg.PostgresBM25Index` (BM25 tables in
PostgreSQL) store and score differently but must answer every query alike: the same terms, the
same scores (FTS5's ``bm25()``), the same ties and order. So the plan of a search lives here once
(`BM25IndexBase.search`), and each store supplies its reads: the collection's statistics, the
document frequencies of the query terms, the engine's own top k, and the rows of chunks a
`Snapshot` (``index.keyword_snapshot``) ranked.

The plan: a query is its tokenized terms, repeats kept. A collection of ``snapshot_min_chunks``
or more is "large": it scores only the query's informative terms (a positive IDF; a query with
none is scored whole), from its snapshot when one exists for the collection's current
generation, and a search that finds none has one built in a background thread (``background``).
Otherwise the store's engine ranks. Either way ties go to the older chunk (smaller row id) for the
top k, which is then ordered by score, then chunk id.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Generic, Self, TypeVar

import numpy as np
from numpy.typing import NDArray

from index.keyword_snapshot import K1, B, Snapshot, positive_idf
from index.protocols import Filters
from index.text_tokenize import tokenize
from index.types import Chunk, Hit

logger = logging.getLogger(__name__)

# Below this many chunks the store's engine alone is fast enough (a few ms); no snapshot is built.
SNAPSHOT_MIN_CHUNKS = 5_000
FILTERABLE = ("source", "doc_id")
# (field, allowed values): the filters of one search, checked; all must hold.
Conditions = list[tuple[str, list[str]]]
# (chunk_id, text, meta JSON, score): a ranked chunk as a store reads it.
Row = tuple[str, str, str, float]

Conn = TypeVar("Conn")


def conditions(filters: Filters | None) -> Conditions:
    """The filters as (field, values) pairs; a filter on anything else is an error.

    >>> conditions({"source": "a.md", "doc_id": ["x", "y"]})
    [('source', ['a.md']), ('doc_id', ['x', 'y'])]
    """
    out: Conditions = []
    for key, value in (filters or {}).items():
        if key not in FILTERABLE:
            raise ValueError(f"unsupported keyword filter {key!r}; use one of {FILTERABLE}")
        out.append((key, [value] if isinstance(value, str) else list(value)))
    return out


def idf(df: int, n: int) -> float:
    """FTS5's IDF: ``ln((n - df + 0.5) / (df + 0.5))``, floored at 1e-6 (fts5_aux.c).

    >>> round(idf(1, 4), 6), idf(2, 4)
    (0.847298, 1e-06)
    """
    value = math.log((n - df + 0.5) / (df + 0.5))
    return value if value > 0.0 else 1e-6


def informative(terms: Sequence[str], df: dict[str, int], n: int) -> list[str]:
    """The terms with a positive IDF among ``n`` chunks, repeats kept; an absent term has none."""
    return [t for t in terms if t in df and positive_idf(df[t], n)]


def ranked(rows: list[Row]) -> list[Row]:
    """Rows by score, best first, then chunk id (the order of every search's hits)."""
    return sorted(rows, key=lambda r: (-r[3], r[0]))


def hit(chunk_id: str, text: str, meta: str, score: float) -> Hit:
    return Hit(Chunk.from_metadata(chunk_id, text, json.loads(meta)), score, {"keyword": score})


# FTS5's bm25() factors, as its C computes them: score += idf * (tf * (k1 + 1)) / (tf + k1 *
# (1 - b + b * dl / avgdl)), summed over the query terms in order.
K1_PLUS_1 = K1 + 1.0
ONE_MINUS_B = 1 - B


class BM25IndexBase(ABC, Generic[Conn]):
    """The search plan and snapshot cache over a store's reads (see the module docstring)."""

    def __init__(self, collection: str, snapshot_min_chunks: int, background: bool) -> None:
        """``background``: a search that finds no current snapshot has one built in a thread
        (False: only `warm_up` builds one; searches stay on the engine until it is called)."""
        self.collection = collection
        self.snapshot_min_chunks = snapshot_min_chunks
        self.background = background
        self._lock = threading.RLock()
        self._snapshot: Snapshot | None = None
        self._builder: threading.Thread | None = None
        self._closed = False

    # -- what a store supplies ----------------------------------------------------------------

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Conn]:
        """One read transaction (under the lock): statistics and scores from one state."""

    @abstractmethod
    def _stats(self, db: Conn) -> tuple[int, int, int]:
        """(id, N, generation) of the collection; id -1 if it is absent."""

    @abstractmethod
    def _df(self, db: Conn, coll: int, terms: Sequence[str]) -> dict[str, int]:
        """Chunks holding each of ``terms`` (absent terms left out)."""

    @abstractmethod
    def _rank(self, db: Conn, coll: int, terms: list[str], k: int, where: Conditions) -> list[Row]:
        """The engine's top ``k`` for ``terms``, ordered as `ranked`."""

    @abstractmethod
    def _allowed(self, db: Conn, coll: int, where: Conditions) -> NDArray[np.int64]:
        """Row ids of the chunks the conditions keep, ascending."""

    @abstractmethod
    def _fetch(self, db: Conn, top: list[tuple[int, float]]) -> list[Row]:
        """The rows of these (row id, score), ordered as `ranked`."""

    @abstractmethod
    def _read_snapshot(self) -> Snapshot | None:
        """The collection's snapshot, read in one transaction through a connection of its own."""

    # -- search -------------------------------------------------------------------------------

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """The top ``k`` chunks by BM25 score that contain at least one query term."""
        where = conditions(filters)
        terms = tokenize(query)
        if k <= 0 or not terms:
            return []
        with self._reading() as db:
            coll, n, generation = self._stats(db)
            if coll < 0:
                return []
            snapshot = self._snapshot
            if snapshot is not None and (snapshot.collection_id, snapshot.generation) != (
                coll,
                generation,
            ):
                snapshot = None
            large = n >= self.snapshot_min_chunks
            if large and snapshot is None and self.background:
                self._build_in_background()
            # In a large collection both ways score the informative terms only (bm25s gives a
            # floored term 0 where FTS5 gives 1e-6); a query with none goes to the engine whole.
            useful = terms
            if large:
                useful = (
                    snapshot.informative(terms)
                    if snapshot
                    else informative(terms, self._df(db, coll, terms), n)
                )
            if snapshot is not None and useful:
                allowed = self._allowed(db, coll, where) if where else None
                rows = self._fetch(db, snapshot.top(useful, k, allowed))
            else:
                rows = self._rank(db, coll, useful or terms, k, where)
        return [hit(*row) for row in rows]

    def count(self) -> int:
        with self._reading() as db:
            return self._stats(db)[1]

    # -- the snapshot -------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot | None:
        """The latest snapshot built; searches use it while the collection is at its generation."""
        return self._snapshot

    def warm_up(self) -> bool:
        """Build the collection's snapshot now (a service's start-up, a benchmark, a test), if it
        has ``snapshot_min_chunks`` or more; whether searches now use one."""
        n = self.count()
        if n and n >= self.snapshot_min_chunks:
            self._install(self._read_snapshot())
        return self._snapshot is not None

    def _build_in_background(self) -> None:
        with self._lock:
            if self._closed or (self._builder is not None and self._builder.is_alive()):
                return
            self._builder = threading.Thread(
                target=self._build, name=f"keyword-snapshot-{self.collection}", daemon=True
            )
            self._builder.start()

    def _build(self) -> None:
        try:
            self._install(self._read_snapshot())
        except Exception:  # a failed build leaves searches on the engine; the next search retries
            logger.exception("building the keyword snapshot of %r failed", self.collection)

    def _install(self, snapshot: Snapshot | None) -> None:
        with self._lock:
            newest = self._snapshot is None or (
                snapshot is not None and snapshot.generation > self._snapshot.generation
            )
            if snapshot is not None and newest and not self._closed:
                self._snapshot = snapshot

    def _snapshot_of(
        self, coll: int, generation: int, rows: list[tuple[int, str]]
    ) -> Snapshot | None:
        """A snapshot of these (row id, terms) rows, unless closed meanwhile or all empty."""
        if self._closed or not any(terms for _, terms in rows):
            return None
        return Snapshot.build(coll, generation, rows)

    # -- lifecycle ----------------------------------------------------------------------------

    @contextmanager
    def _stopping(self) -> Iterator[None]:
        """Mark closed, wait for a snapshot build under way (it stops before bm25s), then let
        the caller close its connection under the lock."""
        with self._lock:
            self._closed = True
            builder = self._builder
        if builder is not None:
            builder.join()
        with self._lock:
            self._snapshot = None
            yield

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
