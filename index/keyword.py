"""A BM25 keyword index persisted in SQLite, kept in step chunk by chunk (`KeywordIndex`).

Design:

- One SQLite file may hold several collections. ``kw_collections`` has one row per collection with
  its chunk count N and total length (kept up to date in every write, so avgdl costs nothing at
  query time) and the tokenizer version its postings were made with. ``kw_chunks`` holds each
  chunk's text, provenance (``Chunk.metadata()`` as JSON), source and doc_id (for filters) and
  length in terms. Terms come from ``Chunk.index_text`` (a table chunk's rendered rows; its
  ``text`` is what is stored and returned, the rendering travels in the metadata).
  ``kw_postings`` holds (collection, term, chunk, tf), clustered on (collection, term, chunk) so
  a term's postings and its document frequency are one range scan; a second index on the chunk
  makes replacing or deleting a chunk cheap.
- `upsert` and `delete` are each one ``BEGIN IMMEDIATE`` transaction: a crash mid-way leaves the
  old state. Replacing a chunk removes its old postings first. WAL mode lets other connections
  (other processes) read while one writes.
- `search` tokenizes the query with `index.text_tokenize.tokenize`, reads df for the query terms,
  and scores in SQL only the chunks that contain at least one query term (a join on postings), with
  the filters applied in the same query and the top k taken there. The join walks the query
  terms' postings, or, when the filters leave fewer chunks than that (one document's chunks),
  starts from the filtered chunks and looks their postings up by key. IDF is Lucene's non-negative
  ``ln(1 + (N - df + 0.5) / (df + 0.5))``; N, df and avgdl are over the whole collection, even when
  filters narrow the candidates.
- Threads: one connection (``check_same_thread=False``) guarded by a lock, so an instance can be
  shared by one writer and several readers; their calls are serialised.
- If the stored tokenizer version differs from the running one, the collection's postings are
  rebuilt from the stored texts once, when the index is opened.
- A delete frees pages but leaves their bytes (a deleted chunk's text) in the file until SQLite
  reuses them; ``vacuum`` (``docqa compact``) rewrites the file so they are gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from index.protocols import Filters
from index.text_tokenize import TOKENIZER_VERSION, tokenize
from index.types import Chunk, Hit

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kw_collections (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n_chunks INTEGER NOT NULL DEFAULT 0,
    total_len INTEGER NOT NULL DEFAULT 0, tokenizer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kw_chunks (
    cid INTEGER PRIMARY KEY, coll INTEGER NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    source TEXT NOT NULL, length INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL,
    UNIQUE (coll, chunk_id));
CREATE INDEX IF NOT EXISTS kw_chunks_doc ON kw_chunks (coll, doc_id);
CREATE INDEX IF NOT EXISTS kw_chunks_source ON kw_chunks (coll, source);
CREATE TABLE IF NOT EXISTS kw_postings (
    coll INTEGER NOT NULL, term TEXT NOT NULL, cid INTEGER NOT NULL, tf INTEGER NOT NULL,
    PRIMARY KEY (coll, term, cid)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kw_postings_cid ON kw_postings (cid);
"""
_FILTERABLE = ("source", "doc_id")


class SqliteBM25Index:
    """BM25 over one collection's chunk texts, stored in the SQLite file at ``path``."""

    def __init__(self, path: Path, collection: str, *, k1: float = 1.5, b: float = 0.75) -> None:
        self.path = Path(path)
        self.collection = collection
        self.k1 = k1
        self.b = b
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA secure_delete = ON")  # a delete overwrites the text it frees
        self._db.execute("PRAGMA cache_size = -65536")  # 64 MiB: big upserts touch many pages
        self._db.executescript(_SCHEMA)
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

    def _coll(self, db: sqlite3.Connection, create: bool = False) -> tuple[int, int, int]:
        """(id, N, total length) of this collection; id -1 (matching no rows) if it is absent."""
        sql = "SELECT id, n_chunks, total_len FROM kw_collections WHERE name = ?"
        row = db.execute(sql, (self.collection,)).fetchone()
        if row is None and create:
            db.execute(
                "INSERT INTO kw_collections (name, tokenizer) VALUES (?, ?)",
                (self.collection, TOKENIZER_VERSION),
            )
            row = db.execute(sql, (self.collection,)).fetchone()
        return (-1, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))

    @staticmethod
    def _bump(db: sqlite3.Connection, coll: int, chunks: int, length: int) -> None:
        db.execute(
            "UPDATE kw_collections SET n_chunks = n_chunks + ?, total_len = total_len + ? "
            "WHERE id = ?",
            (chunks, length, coll),
        )

    def _remove(self, db: sqlite3.Connection, coll: int, chunk_id: str) -> None:
        row = db.execute(
            "SELECT cid, length FROM kw_chunks WHERE coll = ? AND chunk_id = ?", (coll, chunk_id)
        ).fetchone()
        if row is not None:
            db.execute("DELETE FROM kw_postings WHERE cid = ?", (row[0],))
            db.execute("DELETE FROM kw_chunks WHERE cid = ?", (row[0],))
            self._bump(db, coll, -1, -row[1])

    def _add(self, db: sqlite3.Connection, coll: int, chunk: Chunk, terms: list[str]) -> None:
        cur = db.execute(
            "INSERT INTO kw_chunks (coll, chunk_id, doc_id, source, length, text, meta) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (coll, chunk.id, chunk.doc_id, chunk.source, len(terms), chunk.text,
             json.dumps(chunk.metadata(), ensure_ascii=False)),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO kw_postings (coll, term, cid, tf) VALUES (?, ?, ?, ?)",
            [(coll, term, cur.lastrowid, tf) for term, tf in Counter(terms).items()],
        )
        self._bump(db, coll, 1, len(terms))

    def _reindex_if_stale(self) -> None:
        """Re-tokenize the stored texts once if they were indexed by another tokenizer version."""
        sql = "SELECT id, tokenizer FROM kw_collections WHERE name = ?"
        row = self._db.execute(sql, (self.collection,)).fetchone()
        if row is None or row[1] == TOKENIZER_VERSION:
            return  # the usual case, decided without taking the write lock
        with self._transaction() as db:
            row = db.execute(sql, (self.collection,)).fetchone()
            if row is None or row[1] == TOKENIZER_VERSION:
                return
            logger.info("re-tokenizing keyword collection %r (tokenizer %s -> %s)",
                        self.collection, row[1], TOKENIZER_VERSION)  # fmt: skip
            rows = db.execute("SELECT chunk_id, text, meta FROM kw_chunks WHERE coll = ?", row[:1])
            chunks = [Chunk.from_metadata(c, t, json.loads(m)) for c, t, m in rows.fetchall()]
            db.execute("DELETE FROM kw_postings WHERE coll = ?", row[:1])
            db.execute("DELETE FROM kw_chunks WHERE coll = ?", row[:1])
            db.execute(
                "UPDATE kw_collections SET n_chunks = 0, total_len = 0, tokenizer = ? WHERE id = ?",
                (TOKENIZER_VERSION, row[0]),
            )
            for chunk in chunks:
                self._add(db, row[0], chunk, tokenize(chunk.index_text))

    # -- KeywordIndex -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks, replacing (old postings included) any already stored under the same id."""
        prepared = [(chunk, tokenize(chunk.index_text)) for chunk in chunks]  # outside the lock
        if not prepared:
            return
        with self._transaction() as db:
            coll = self._coll(db, create=True)[0]
            for chunk, terms in prepared:
                self._remove(db, coll, chunk.id)
                self._add(db, coll, chunk, terms)
        logger.debug("upserted %d chunks into %r", len(prepared), self.collection)

    def delete(self, ids: Sequence[str]) -> None:
        with self._transaction() as db:
            coll = self._coll(db)[0]
            for chunk_id in ids:
                self._remove(db, coll, chunk_id)

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """The top ``k`` chunks by BM25 score that contain at least one query term."""
        where, where_args = _filter_sql(filters)
        qtf = Counter(tokenize(query))
        if k <= 0 or not qtf:
            return []
        with self._transaction("DEFERRED") as db:  # one snapshot for statistics and scores
            coll, n, total = self._coll(db)
            marks = ",".join("?" * len(qtf))
            df = dict(db.execute(
                f"SELECT term, COUNT(*) FROM kw_postings WHERE coll = ? AND term IN ({marks}) "
                "GROUP BY term", (coll, *qtf)))  # fmt: skip
            # Walk the query terms' postings, unless the filters leave fewer chunks to look at.
            order = "q CROSS JOIN kw_postings AS p CROSS JOIN kw_chunks AS c2"
            if df and where:
                sql = f"SELECT COUNT(*) FROM kw_chunks AS c2 WHERE c2.coll = ? {where}"
                if db.execute(sql, (coll, *where_args)).fetchone()[0] * len(df) < sum(df.values()):
                    order = "kw_chunks AS c2 CROSS JOIN q CROSS JOIN kw_postings AS p"
            # A term's query weight: its count in the query x IDF x (k1 + 1).
            weights = [
                (t, qtf[t] * math.log(1 + (n - d + 0.5) / (d + 0.5)) * (self.k1 + 1))
                for t, d in df.items()
            ]
            rows = db.execute(
                f"""
                WITH q(term, w) AS (VALUES {",".join(["(?, ?)"] * len(weights))})
                SELECT c.chunk_id, c.text, c.meta, s.score FROM (
                    SELECT p.cid, c2.chunk_id,
                        SUM(q.w * p.tf / (p.tf + ? * (1 - ? + ? * c2.length / ?))) AS score
                    FROM {order}
                    WHERE p.coll = ? AND p.term = q.term AND c2.coll = ? AND c2.cid = p.cid {where}
                    GROUP BY p.cid ORDER BY score DESC, c2.chunk_id LIMIT ?
                ) AS s JOIN kw_chunks AS c ON c.cid = s.cid
                ORDER BY s.score DESC, c.chunk_id
                """,
                (*[x for tw in weights for x in tw], self.k1, self.b, self.b,
                 total / n if total else 1.0, coll, coll, *where_args, k),
            ).fetchall() if df else []  # fmt: skip
        return [
            Hit(Chunk.from_metadata(cid, text, json.loads(meta)), score, {"keyword": score})
            for cid, text, meta, score in rows
        ]

    def ids(self) -> set[str]:
        with self._transaction("DEFERRED") as db:
            rows = db.execute("SELECT chunk_id FROM kw_chunks WHERE coll = ?", self._coll(db)[:1])
            return {r[0] for r in rows}

    def count(self) -> int:
        with self._transaction("DEFERRED") as db:
            return self._coll(db)[1]

    # -- lifecycle ----------------------------------------------------------------------------

    def drop(self) -> None:
        """Remove this collection's chunks, postings and statistics; other collections stay."""
        with self._transaction() as db:
            coll = self._coll(db)[:1]
            db.execute("DELETE FROM kw_postings WHERE coll = ?", coll)
            db.execute("DELETE FROM kw_chunks WHERE coll = ?", coll)
            db.execute("DELETE FROM kw_collections WHERE id = ?", coll)
        logger.info("dropped keyword collection %r", self.collection)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteBM25Index:
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _filter_sql(filters: Filters | None) -> tuple[str, list[str]]:
    """SQL conditions on ``c2`` for the filters: ``{"doc_id": ["a", "b"]}`` -> ``IN (?, ?)``."""
    clauses: list[str] = []
    args: list[str] = []
    for key, value in (filters or {}).items():
        if key not in _FILTERABLE:
            raise ValueError(f"unsupported keyword filter {key!r}; use one of {_FILTERABLE}")
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"AND c2.{key} IN ({','.join('?' * len(values))})" if values else "AND 0")
        args.extend(values)
    return " ".join(clauses), args


def vacuum(path: Path) -> None:
    """Rewrite a keyword index file (all its collections) without its free pages; empty its WAL.

    A delete only marks a chunk's pages free: its text stays in the file (and in the
    write-ahead log) until SQLite reuses them. After this it is physically gone from both.
    SQLite takes the file for itself meanwhile: other processes' reads and writes wait.
    """
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as db:
        db.execute("VACUUM")
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise sqlite3.OperationalError(f"{path} is in use; its write-ahead log was not emptied")
    logger.info("vacuumed the keyword index %s", path)
