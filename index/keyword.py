"""A BM25 keyword index in SQLite: FTS5 postings and scores over our own terms (`KeywordIndex`).

The search plan, the snapshot cache and the hits are shared with the PostgreSQL twin
(``index.keyword_pg``, which must answer alike) in ``index.keyword_base``; this file is the
SQLite store under them.

Design:

- One SQLite file may hold several collections. ``kw_collections`` has one row per collection with
  its chunk count, the version of its index (``INDEX_VERSION``: the engine and the tokenizer
  version) and its generation (below). ``kw_chunks`` holds each chunk's text, provenance
  (``Chunk.metadata()`` as JSON), source and doc_id (for filters) and length in terms.
- Each collection has its own FTS5 table, ``kw_fts_<collection id>``, so N, avgdl and document
  frequencies are the collection's own. Its one column holds the chunk's terms,
  ``tokenize(chunk.index_text)`` joined by spaces, under rowid = ``kw_chunks.cid``. Terms come
  from ``Chunk.index_text`` (a table chunk's rendered rows; its ``text`` is what is stored and
  returned, the rendering travels in the metadata). FTS5 splits them again with its ``ascii``
  tokenizer, with ``.`` and ``_`` as token characters: our terms are runs of word characters
  (non-ASCII ones are token characters there) joined by ``.`` or ``_``, already NFKC-normalized
  and lowercased, so each of our terms is exactly one FTS5 token, never split or folded again.
- Scores are FTS5's ``bm25()``: k1 1.2, b 0.75, IDF ``ln((N - df + 0.5) / (df + 0.5))``, floored
  at 1e-6, so a term in half the chunks or more counts for (almost) nothing. A query is its
  tokenized terms, repeats kept (BM25's query term frequency), less those floored terms unless
  it has no other (`search`). ``bm25()`` is negative, lower is better; a hit's score is its
  negation: positive, higher is better, 0 the lowest possible, as the fusion's theoretical
  min-max normalization expects. Ties go to the older row, then hits are ordered by score and
  chunk id. Filters (source, doc_id) restrict the rows; N, df and avgdl stay the collection's.
- Two ways to the same top k. FTS5 walks every chunk holding a query term and scores each,
  which takes 72-114 ms at p95 on 100,000 chunks (docs/BENCHMARKS.md). So a collection
  of ``snapshot_min_chunks`` or more is also scored from a `Snapshot` (``index.keyword_snapshot``,
  bm25s: the same scores in a few milliseconds), built in a background thread when a search finds
  none for the collection's current generation; until then FTS5 answers. Every write sets the
  collection's ``generation`` from a counter of the whole file (``kw_meta``), so a snapshot is
  used only for the very state it was built from, in any process.
- `upsert` and `delete` are each one ``BEGIN IMMEDIATE`` transaction, FTS5's writes included: a
  crash mid-way leaves the old state. Replacing a chunk deletes its old row first. WAL mode lets
  other connections (other processes) read while one writes.
- Threads: one connection (``check_same_thread=False``) guarded by a lock, so an instance can be
  shared by one writer and several readers; their calls are serialised. A snapshot build reads
  through a connection of its own.
- If the stored index version differs from the running one (another tokenizer version, or a file
  written by the earlier engine, docqa's own BM25 over a ``kw_postings`` table), the collection's
  FTS5 table is rebuilt from the stored texts once, when the index is opened; the earlier
  engine's postings go with it.
- A delete leaves its terms in FTS5's segments (with a delete marker) until they are merged, and
  freed pages' bytes in the file until SQLite reuses them. ``vacuum`` (``docqa compact``) merges
  every collection's FTS5 index into one segment (``optimize``: the deleted rows' terms are
  dropped), then rewrites the file, so they are gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from index.keyword_base import SNAPSHOT_MIN_CHUNKS, BM25IndexBase, Conditions, Row, ranked
from index.keyword_snapshot import Snapshot
from index.text_tokenize import TOKENIZER_VERSION, tokenize
from index.types import Chunk

logger = logging.getLogger(__name__)

__all__ = ["INDEX_VERSION", "SNAPSHOT_MIN_CHUNKS", "SqliteBM25Index", "fts_table", "vacuum"]

# What built a collection's index; a collection stored under another version is rebuilt.
INDEX_VERSION = f"fts5/{TOKENIZER_VERSION}"
# Our terms' non-ASCII characters and ASCII letters and digits are FTS5 token characters already.
FTS5_TOKENIZER = "ascii tokenchars '._'"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kw_collections (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n_chunks INTEGER NOT NULL DEFAULT 0,
    tokenizer TEXT NOT NULL, generation INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS kw_chunks (
    cid INTEGER PRIMARY KEY, coll INTEGER NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    source TEXT NOT NULL, length INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL,
    UNIQUE (coll, chunk_id));
CREATE INDEX IF NOT EXISTS kw_chunks_doc ON kw_chunks (coll, doc_id);
CREATE INDEX IF NOT EXISTS kw_chunks_source ON kw_chunks (coll, source);
CREATE TABLE IF NOT EXISTS kw_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def fts_table(coll: int) -> str:
    """The FTS5 table of the collection with this id: ``fts_table(3)`` -> ``kw_fts_3``."""
    return f"kw_fts_{int(coll)}"


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 query for any of ``terms``, each a quoted string (so never an operator).

    >>> fts_query(["orbit", "3.2.0", "orbit"])
    '"orbit" OR "3.2.0" OR "orbit"'
    """
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class SqliteBM25Index(BM25IndexBase[sqlite3.Connection]):
    """BM25 over one collection's chunk texts, stored in the SQLite file at ``path``."""

    def __init__(
        self,
        path: Path,
        collection: str,
        *,
        snapshot_min_chunks: int = SNAPSHOT_MIN_CHUNKS,
        background: bool = True,
    ) -> None:
        super().__init__(collection, snapshot_min_chunks, background)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(self.path)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA secure_delete = ON")  # a delete overwrites the text it frees
        self._db.execute("PRAGMA cache_size = -65536")  # 64 MiB: big upserts touch many pages
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(kw_collections)")}
        if "generation" not in columns:  # a file of the earlier engine
            self._db.execute(
                "ALTER TABLE kw_collections ADD COLUMN generation INTEGER NOT NULL DEFAULT 0"
            )
        self._reindex_if_stale()

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute(f"BEGIN {mode}")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _reading(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._transaction("DEFERRED")

    def _coll(self, db: sqlite3.Connection, create: bool = False) -> tuple[int, int, int]:
        """(id, N, generation) of this collection; id -1 (matching no rows) if it is absent."""
        sql = "SELECT id, n_chunks, generation FROM kw_collections WHERE name = ?"
        row = db.execute(sql, (self.collection,)).fetchone()
        if row is None and create:
            cur = db.execute(
                "INSERT INTO kw_collections (name, tokenizer) VALUES (?, ?)",
                (self.collection, INDEX_VERSION),
            )
            assert cur.lastrowid is not None
            _create_fts(db, cur.lastrowid)
            row = (cur.lastrowid, 0, 0)
        return (-1, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))

    _stats = _coll

    @staticmethod
    def _touch(db: sqlite3.Connection, coll: int, chunks: int) -> None:
        """Count ``chunks`` more (or fewer) chunks and give the collection a new generation."""
        db.execute(
            "INSERT INTO kw_meta (key, value) VALUES ('generation', 1) "
            "ON CONFLICT (key) DO UPDATE SET value = value + 1"
        )
        db.execute(
            "UPDATE kw_collections SET n_chunks = n_chunks + ?, "
            "generation = (SELECT value FROM kw_meta WHERE key = 'generation') WHERE id = ?",
            (chunks, coll),
        )

    @staticmethod
    def _remove(db: sqlite3.Connection, coll: int, chunk_id: str) -> int:
        """Delete the chunk stored under ``chunk_id``, if any; how many were (0 or 1)."""
        row = db.execute(
            "SELECT cid FROM kw_chunks WHERE coll = ? AND chunk_id = ?", (coll, chunk_id)
        ).fetchone()
        if row is None:
            return 0
        db.execute(f"DELETE FROM {fts_table(coll)} WHERE rowid = ?", row)
        db.execute("DELETE FROM kw_chunks WHERE cid = ?", row)
        return 1

    @staticmethod
    def _add(db: sqlite3.Connection, coll: int, chunk: Chunk, terms: list[str]) -> None:
        cur = db.execute(
            "INSERT INTO kw_chunks (coll, chunk_id, doc_id, source, length, text, meta) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (coll, chunk.id, chunk.doc_id, chunk.source, len(terms), chunk.text,
             json.dumps(chunk.metadata(), ensure_ascii=False)),
        )  # fmt: skip
        db.execute(
            f"INSERT INTO {fts_table(coll)} (rowid, terms) VALUES (?, ?)",
            (cur.lastrowid, " ".join(terms)),
        )

    def _reindex_if_stale(self) -> None:
        """Rebuild the FTS5 table from the stored texts once if another version indexed them."""
        sql = "SELECT id, tokenizer FROM kw_collections WHERE name = ?"
        row = self._db.execute(sql, (self.collection,)).fetchone()
        if row is None or row[1] == INDEX_VERSION:
            return  # the usual case, decided without taking the write lock
        with self._transaction() as db:
            row = db.execute(sql, (self.collection,)).fetchone()
            if row is None or row[1] == INDEX_VERSION:
                return
            coll = int(row[0])
            logger.info("re-indexing keyword collection %r (index %s -> %s)",
                        self.collection, row[1], INDEX_VERSION)  # fmt: skip
            db.execute(f"DROP TABLE IF EXISTS {fts_table(coll)}")
            _create_fts(db, coll)
            rows = db.execute("SELECT cid, chunk_id, text, meta FROM kw_chunks WHERE coll = ?",
                              (coll,)).fetchall()  # fmt: skip
            for cid, chunk_id, text, meta in rows:
                terms = tokenize(Chunk.from_metadata(chunk_id, text, json.loads(meta)).index_text)
                db.execute("UPDATE kw_chunks SET length = ? WHERE cid = ?", (len(terms), cid))
                db.execute(
                    f"INSERT INTO {fts_table(coll)} (rowid, terms) VALUES (?, ?)",
                    (cid, " ".join(terms)),
                )
            db.execute(
                "UPDATE kw_collections SET n_chunks = 0, tokenizer = ? WHERE id = ?",
                (INDEX_VERSION, coll),
            )
            self._touch(db, coll, len(rows))
            _drop_legacy_postings(db, coll)

    # -- KeywordIndex -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks, replacing (old terms included) any already stored under the same id."""
        prepared = [(chunk, tokenize(chunk.index_text)) for chunk in chunks]  # outside the lock
        if not prepared:
            return
        with self._transaction() as db:
            coll = self._coll(db, create=True)[0]
            removed = 0
            for chunk, terms in prepared:
                removed += self._remove(db, coll, chunk.id)
                self._add(db, coll, chunk, terms)
            self._touch(db, coll, len(prepared) - removed)
        logger.debug("upserted %d chunks into %r", len(prepared), self.collection)

    def delete(self, ids: Sequence[str]) -> None:
        with self._transaction() as db:
            coll = self._coll(db)[0]
            if coll >= 0 and (removed := sum(self._remove(db, coll, i) for i in ids)):
                self._touch(db, coll, -removed)

    def ids(self) -> set[str]:
        with self._transaction("DEFERRED") as db:
            rows = db.execute("SELECT chunk_id FROM kw_chunks WHERE coll = ?", self._coll(db)[:1])
            return {r[0] for r in rows}

    # -- the search's reads (index.keyword_base) ---------------------------------------------

    def _df(self, db: sqlite3.Connection, coll: int, terms: Sequence[str]) -> dict[str, int]:
        """From an ``fts5vocab`` table in the connection's temp schema."""
        vocab = f"temp.kw_vocab_{int(coll)}"
        db.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} "
            f"USING fts5vocab(main, {fts_table(coll)}, row)"
        )
        distinct = sorted(set(terms))
        marks = ",".join("?" * len(distinct))
        return dict(db.execute(f"SELECT term, doc FROM {vocab} WHERE term IN ({marks})", distinct))

    def _rank(
        self, db: sqlite3.Connection, coll: int, terms: list[str], k: int, where: Conditions
    ) -> list[Row]:
        """Ranked by FTS5's ``bm25()``."""
        fts = fts_table(coll)
        sql, args = _filter_sql(where)
        # ``+``: FTS5 walks the matches and SQLite checks each against the filtered set; a plain
        # ``f.rowid IN`` would run the MATCH once per filtered chunk (seconds for a filter that
        # keeps most of a large collection).
        restrict = (
            f"AND +f.rowid IN (SELECT c2.cid FROM kw_chunks AS c2 WHERE c2.coll = ? {sql})"
            if where
            else ""
        )
        return db.execute(
            f"""
            SELECT c.chunk_id, c.text, c.meta, -s.rank FROM (
                SELECT f.rowid AS cid, bm25({fts}) AS rank FROM {fts} AS f
                WHERE {fts} MATCH ? {restrict}
                ORDER BY rank, f.rowid LIMIT ?
            ) AS s JOIN kw_chunks AS c ON c.cid = s.cid
            ORDER BY s.rank, c.chunk_id
            """,
            (fts_query(terms), *([coll, *args] if where else []), k),
        ).fetchall()

    def _allowed(self, db: sqlite3.Connection, coll: int, where: Conditions) -> NDArray[np.int64]:
        sql, args = _filter_sql(where)
        found = db.execute(
            f"SELECT c2.cid FROM kw_chunks AS c2 WHERE c2.coll = ? {sql}", (coll, *args)
        ).fetchall()
        return np.sort(np.asarray([r[0] for r in found], dtype=np.int64))

    def _fetch(self, db: sqlite3.Connection, top: list[tuple[int, float]]) -> list[Row]:
        if not top:
            return []
        marks = ",".join("?" * len(top))
        sql = f"SELECT cid, chunk_id, text, meta FROM kw_chunks WHERE cid IN ({marks})"
        found = {r[0]: r[1:] for r in db.execute(sql, [cid for cid, _ in top])}
        return ranked([(*found[cid], score) for cid, score in top])

    def _read_snapshot(self) -> Snapshot | None:
        """Read through a connection of its own, so searches and writes go on meanwhile."""
        with contextlib.closing(_connect(self.path)) as db:
            db.execute("BEGIN")
            row = db.execute(
                "SELECT id, generation FROM kw_collections WHERE name = ?", (self.collection,)
            ).fetchone()
            if row is None:
                return None
            fts = fts_table(row[0])
            rows = db.execute(f"SELECT rowid, terms FROM {fts} ORDER BY rowid").fetchall()
            db.execute("COMMIT")
        return self._snapshot_of(int(row[0]), int(row[1]), rows)

    # -- lifecycle ----------------------------------------------------------------------------

    def drop(self) -> None:
        """Remove this collection's chunks, terms and statistics; other collections stay."""
        with self._transaction() as db:
            coll = self._coll(db)[0]
            if coll >= 0:
                db.execute(f"DROP TABLE IF EXISTS {fts_table(coll)}")
                _drop_legacy_postings(db, coll)
                db.execute("DELETE FROM kw_chunks WHERE coll = ?", (coll,))
                db.execute("DELETE FROM kw_collections WHERE id = ?", (coll,))
            self._snapshot = None
        logger.info("dropped keyword collection %r", self.collection)

    def close(self) -> None:
        """Close the connection, after a snapshot build under way (it stops before bm25s)."""
        with self._stopping():
            self._db.close()


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def _create_fts(db: sqlite3.Connection, coll: int) -> None:
    db.execute(
        f'CREATE VIRTUAL TABLE {fts_table(coll)} USING fts5(terms, tokenize = "{FTS5_TOKENIZER}")'
    )


def _drop_legacy_postings(db: sqlite3.Connection, coll: int) -> None:
    """Remove a collection's rows from the earlier engine's postings table; the table itself
    (and its index) once no collection has any left."""
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'kw_postings'"
    if db.execute(sql).fetchone() is None:
        return
    db.execute("DELETE FROM kw_postings WHERE coll = ?", (coll,))
    if db.execute("SELECT 1 FROM kw_postings LIMIT 1").fetchone() is None:
        db.execute("DROP TABLE kw_postings")


def _filter_sql(where: Conditions) -> tuple[str, list[str]]:
    """SQL conditions on ``c2``: ``[("doc_id", ["a", "b"])]`` -> ``AND c2.doc_id IN (?, ?)``."""
    clauses: list[str] = []
    args: list[str] = []
    for key, values in where:
        clauses.append(f"AND c2.{key} IN ({','.join('?' * len(values))})" if values else "AND 0")
        args.extend(values)
    return " ".join(clauses), args


def vacuum(path: Path) -> None:
    """Rewrite a keyword index file (all its collections) without deleted terms or free pages;
    empty its WAL.

    A delete leaves the chunk's terms in FTS5's older segments until they are merged, and its
    freed pages' bytes in the file (and in the write-ahead log) until SQLite reuses them. This
    merges every FTS5 index into one segment (``optimize``, which drops deleted rows' terms),
    then ``VACUUM``s: after it they are physically gone. SQLite takes the file for itself
    meanwhile: other processes' reads and writes wait.
    """
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "kw_collections" in tables:
            for (coll,) in db.execute("SELECT id FROM kw_collections").fetchall():
                fts = fts_table(coll)
                if fts in tables:
                    db.execute(f"INSERT INTO {fts} ({fts}) VALUES ('optimize')")
        db.execute("VACUUM")
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise sqlite3.OperationalError(f"{path} is in use; its write-ahead log was not emptied")
    logger.info("vacuumed the keyword index %s", path)
