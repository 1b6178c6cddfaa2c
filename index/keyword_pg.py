"""A BM25 keyword index in PostgreSQL (``DOCQA_DATABASE_URL``), shared by several docqa hosts.

It answers exactly as `index.keyword.SqliteBM25Index` does (the same terms, FTS5's ``bm25()``
scores, ties and order: the plan is `index.keyword_base`), from plain tables:

- ``kw_collections``: one row per collection with its chunk count N, its total length in terms
  (avgdl = total / N), the version of its index (``INDEX_VERSION``) and its generation.
- ``kw_chunks``: each chunk's text, provenance (``Chunk.metadata()`` as JSON), source and doc_id
  (for filters), and length in terms, under ``cid`` from a sequence (never reused: a new chunk
  always sorts after every older one, which is how ties go to the older chunk, as in FTS5).
- ``kw_postings``: (collection, term, cid, tf), its primary key led by (collection, term), so a
  query walks only its terms' postings. Terms are ``tokenize(chunk.index_text)``.

A search is one SQL statement over the query terms' postings (`_RANK_SQL`): per chunk it sums
``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` over the query terms in query
order, the very float64 operations, in the same order, as FTS5's C code, so scores are FTS5's to
the last bit and ties stay ties. The IDFs are computed in Python (`keyword_base.idf`) from the
document frequencies, which one statement counts first. Why not PostgreSQL's full-text search:
``ts_rank`` is not BM25, and its parser would tokenize our jieba/bigram/Snowball terms again.

Several hosts: every write is one transaction that first locks the collection's row
(``SELECT ... FOR UPDATE``), so writers of one collection take turns and N, the total length
and the postings always agree; readers are never blocked. Each write sets the collection's
generation from a database sequence, so a value is never seen twice, and every host's in-memory
bm25s snapshot (``index.keyword_snapshot``) is used only for the exact state it was built from.
Searches read in one ``REPEATABLE READ`` transaction: statistics and postings from one state.

Threads: one connection guarded by the lock, as the SQLite twin; a snapshot build reads through
a connection of its own. A lost connection is reopened at the next call; an unreachable
database is a `StoreUnavailableError` (503).

Deleted rows' bytes stay in the table files until PostgreSQL's VACUUM reuses their space
(`vacuum`, ``docqa compact``; autovacuum does it too).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from index.database import connect, create_schema, redact
from index.errors import StoreUnavailableError
from index.keyword_base import (
    K1_PLUS_1,
    ONE_MINUS_B,
    SNAPSHOT_MIN_CHUNKS,
    BM25IndexBase,
    Conditions,
    Row,
    idf,
    ranked,
)
from index.keyword_snapshot import K1, B, Snapshot
from index.text_tokenize import TOKENIZER_VERSION, tokenize
from index.types import Chunk

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

# What built a collection's postings; a collection stored under another version is rebuilt.
INDEX_VERSION = f"pg-bm25/{TOKENIZER_VERSION}"

# COLLATE "C" on ids and terms: byte order, as SQLite and Python compare them (ties by chunk id).
_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS kw_generation;
CREATE SEQUENCE IF NOT EXISTS kw_chunk_ids;
CREATE TABLE IF NOT EXISTS kw_collections (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    n_chunks BIGINT NOT NULL DEFAULT 0, total_length BIGINT NOT NULL DEFAULT 0,
    tokenizer TEXT NOT NULL, generation BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS kw_chunks (
    cid BIGINT PRIMARY KEY DEFAULT nextval('kw_chunk_ids'), coll BIGINT NOT NULL,
    chunk_id TEXT COLLATE "C" NOT NULL, doc_id TEXT NOT NULL, source TEXT NOT NULL,
    length INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL, UNIQUE (coll, chunk_id));
CREATE INDEX IF NOT EXISTS kw_chunks_doc ON kw_chunks (coll, doc_id);
CREATE INDEX IF NOT EXISTS kw_chunks_source ON kw_chunks (coll, source);
CREATE TABLE IF NOT EXISTS kw_postings (
    coll BIGINT NOT NULL, term TEXT COLLATE "C" NOT NULL, cid BIGINT NOT NULL,
    tf INTEGER NOT NULL, PRIMARY KEY (coll, term, cid));
CREATE INDEX IF NOT EXISTS kw_postings_cid ON kw_postings (cid)
"""
_TABLES = ("kw_postings", "kw_chunks", "kw_collections")

# The top k: FTS5's bm25() per chunk over the query's (term, idf) in query order (see the
# module docstring), ties to the older chunk, then ordered by score and chunk id.
_RANK_SQL = """
WITH q AS (
    SELECT t.term, t.idf, t.pos
    FROM unnest(%(terms)s::text[], %(idf)s::float8[]) WITH ORDINALITY AS t(term, idf, pos)),
s AS (
    SELECT p.cid, sum(q.idf * ((p.tf * %(k1p1)s::float8) / (p.tf + %(k1)s::float8
        * (%(omb)s::float8 + %(b)s::float8 * c.length / %(avgdl)s::float8))) ORDER BY q.pos)
        AS score
    FROM q JOIN kw_postings AS p ON p.coll = %(coll)s AND p.term = q.term
    JOIN kw_chunks AS c ON c.cid = p.cid {where}
    GROUP BY p.cid ORDER BY score DESC, p.cid LIMIT %(k)s)
SELECT c.chunk_id, c.text, c.meta, s.score FROM s JOIN kw_chunks AS c ON c.cid = s.cid
ORDER BY s.score DESC, c.chunk_id
"""


class PostgresBM25Index(BM25IndexBase["psycopg.Connection"]):
    """BM25 over one collection's chunk texts, stored in the PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        collection: str,
        *,
        snapshot_min_chunks: int = SNAPSHOT_MIN_CHUNKS,
        background: bool = True,
    ) -> None:
        super().__init__(collection, snapshot_min_chunks, background)
        self.url = url
        self._db = connect(url, autocommit=True)  # transactions are begun explicitly below
        create_schema(self._db, _SCHEMA)
        self._reindex_if_stale()

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, read_only: bool = False) -> Iterator[psycopg.Connection]:
        """One transaction under the lock: REPEATABLE READ for reads (one state for statistics
        and postings), READ COMMITTED for writes (which lock the collection's row first)."""
        import psycopg

        with self._lock:
            if self._db.closed and not self._closed:  # lost: reopen it for this call
                self._db = connect(self.url, autocommit=True)
            try:
                self._db.execute(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if read_only else "BEGIN"
                )
                try:
                    yield self._db
                except BaseException:
                    if not self._db.closed:
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except psycopg.OperationalError as exc:
                raise StoreUnavailableError(
                    f"the keyword index's database ({redact(self.url)}) failed: {exc}"
                ) from exc

    def _reading(self) -> contextlib.AbstractContextManager[psycopg.Connection]:
        return self._transaction(read_only=True)

    def _stats(self, db: psycopg.Connection) -> tuple[int, int, int]:
        row = db.execute(
            "SELECT id, n_chunks, generation FROM kw_collections WHERE name = %s",
            (self.collection,),
        ).fetchone()
        return (-1, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def _locked(self, db: psycopg.Connection, create: bool = False) -> int:
        """Lock this collection's row for the write under way (other hosts' writers wait); its
        id, made first if ``create``; -1 if it is absent."""
        for _ in range(3):  # a drop by another host between the insert and the lock: again
            if create:
                db.execute(
                    "INSERT INTO kw_collections (name, tokenizer) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO NOTHING",
                    (self.collection, INDEX_VERSION),
                )
            row = db.execute(
                "SELECT id FROM kw_collections WHERE name = %s FOR UPDATE", (self.collection,)
            ).fetchone()
            if row is not None or not create:
                return -1 if row is None else int(row[0])
        raise StoreUnavailableError(f"keyword collection {self.collection!r} keeps vanishing")

    @staticmethod
    def _touch(db: psycopg.Connection, coll: int, chunks: int, length: int) -> None:
        """Count ``chunks`` and ``length`` more (or fewer) and give the collection a new
        generation."""
        db.execute(
            "UPDATE kw_collections SET n_chunks = n_chunks + %s, "
            "total_length = total_length + %s, generation = nextval('kw_generation') "
            "WHERE id = %s",
            (chunks, length, coll),
        )

    @staticmethod
    def _remove(db: psycopg.Connection, coll: int, ids: Sequence[str]) -> tuple[int, int]:
        """Delete the chunks stored under these ids and their postings; (chunks, terms) gone."""
        gone = db.execute(
            "DELETE FROM kw_chunks WHERE coll = %s AND chunk_id = ANY(%s) RETURNING cid, length",
            (coll, list(ids)),
        ).fetchall()
        if gone:
            db.execute("DELETE FROM kw_postings WHERE cid = ANY(%s)", ([r[0] for r in gone],))
        return len(gone), sum(int(r[1]) for r in gone)

    @staticmethod
    def _write_postings(
        db: psycopg.Connection, coll: int, rows: list[tuple[int, list[str]]]
    ) -> None:
        """COPY the postings of these (cid, terms)."""
        with (
            db.cursor() as cur,
            cur.copy("COPY kw_postings (coll, term, cid, tf) FROM STDIN") as copy,
        ):
            for cid, terms in rows:
                for term, tf in Counter(terms).items():
                    copy.write_row((coll, term, cid, tf))

    def _reindex_if_stale(self) -> None:
        """Rebuild the postings from the stored texts once if another version indexed them."""
        sql = "SELECT tokenizer FROM kw_collections WHERE name = %s"
        with self._transaction(read_only=True) as db:
            row = db.execute(sql, (self.collection,)).fetchone()
        if row is None or row[0] == INDEX_VERSION:
            return  # the usual case, decided without taking the row lock
        with self._transaction() as db:
            coll = self._locked(db)
            row = db.execute(sql, (self.collection,)).fetchone()
            if coll < 0 or row is None or row[0] == INDEX_VERSION:
                return
            logger.info("re-indexing keyword collection %r (index %s -> %s)",
                        self.collection, row[0], INDEX_VERSION)  # fmt: skip
            db.execute("DELETE FROM kw_postings WHERE coll = %s", (coll,))
            stored = db.execute(
                "SELECT cid, chunk_id, text, meta FROM kw_chunks WHERE coll = %s", (coll,)
            ).fetchall()
            rows = [
                (cid, tokenize(Chunk.from_metadata(chunk_id, text, json.loads(meta)).index_text))
                for cid, chunk_id, text, meta in stored
            ]
            with db.cursor() as cur:
                cur.executemany(
                    "UPDATE kw_chunks SET length = %s WHERE cid = %s",
                    [(len(terms), cid) for cid, terms in rows],
                )
            self._write_postings(db, coll, rows)
            db.execute(
                "UPDATE kw_collections SET n_chunks = 0, total_length = 0, tokenizer = %s "
                "WHERE id = %s",
                (INDEX_VERSION, coll),
            )
            self._touch(db, coll, len(rows), sum(len(t) for _, t in rows))

    # -- KeywordIndex -------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk]) -> None:
        """Add chunks, replacing (old terms included) any already stored under the same id."""
        latest: dict[str, Chunk] = {}
        for chunk in chunks:  # a repeated id: the last one counts, as the newest chunk
            latest.pop(chunk.id, None)
            latest[chunk.id] = chunk
        prepared = [(c, tokenize(c.index_text)) for c in latest.values()]  # outside the lock
        if not prepared:
            return
        with self._transaction() as db:
            coll = self._locked(db, create=True)
            removed, removed_length = self._remove(db, coll, list(latest))
            cids = [
                int(r[0])
                for r in db.execute(
                    "SELECT nextval('kw_chunk_ids') FROM generate_series(1, %s)", (len(prepared),)
                )
            ]
            cids.sort()  # ascending in the batch's order: later chunks are newer
            with (
                db.cursor() as cur,
                cur.copy(
                    "COPY kw_chunks (cid, coll, chunk_id, doc_id, source, length, text, meta) "
                    "FROM STDIN"
                ) as copy,
            ):
                for cid, (chunk, terms) in zip(cids, prepared, strict=True):
                    meta = json.dumps(chunk.metadata(), ensure_ascii=False)
                    copy.write_row((cid, coll, chunk.id, chunk.doc_id, chunk.source, len(terms),
                                    chunk.text, meta))  # fmt: skip
            postings = [(cid, t) for cid, (_, t) in zip(cids, prepared, strict=True)]
            self._write_postings(db, coll, postings)
            length = sum(len(t) for _, t in prepared)
            self._touch(db, coll, len(prepared) - removed, length - removed_length)
        logger.debug("upserted %d chunks into %r", len(prepared), self.collection)

    def delete(self, ids: Sequence[str]) -> None:
        with self._transaction() as db:
            coll = self._locked(db)
            if coll >= 0:
                removed, length = self._remove(db, coll, ids)
                if removed:
                    self._touch(db, coll, -removed, -length)

    def ids(self) -> set[str]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT c.chunk_id FROM kw_chunks AS c JOIN kw_collections AS k "
                "ON k.id = c.coll WHERE k.name = %s",
                (self.collection,),
            )
            return {r[0] for r in rows}

    # -- the search's reads (index.keyword_base) ---------------------------------------------

    def _df(self, db: psycopg.Connection, coll: int, terms: Sequence[str]) -> dict[str, int]:
        rows = db.execute(
            "SELECT term, count(*) FROM kw_postings WHERE coll = %s AND term = ANY(%s) "
            "GROUP BY term",
            (coll, sorted(set(terms))),
        )
        return {term: int(df) for term, df in rows}

    def _rank(
        self, db: psycopg.Connection, coll: int, terms: list[str], k: int, where: Conditions
    ) -> list[Row]:
        stats = db.execute(
            "SELECT n_chunks, total_length FROM kw_collections WHERE id = %s", (coll,)
        ).fetchone()
        assert stats is not None  # read in this transaction's state, where _stats found it
        n, total = int(stats[0]), int(stats[1])
        if n <= 0:
            return []
        df = self._df(db, coll, terms)
        sql, args = _filter_sql(where, "c")
        params = {
            "terms": terms,
            "idf": [idf(df.get(t, 0), n) for t in terms],
            "k1p1": K1_PLUS_1,
            "k1": K1,
            "omb": ONE_MINUS_B,
            "b": B,
            "avgdl": total / n,  # FTS5: (double)nToken / (double)nRow
            "coll": coll,
            "k": k,
            **args,
        }
        rows = db.execute(_RANK_SQL.format(where=sql), params).fetchall()
        return [(r[0], r[1], r[2], float(r[3])) for r in rows]

    def _allowed(self, db: psycopg.Connection, coll: int, where: Conditions) -> NDArray[np.int64]:
        sql, args = _filter_sql(where, "c")
        found = db.execute(
            f"SELECT c.cid FROM kw_chunks AS c WHERE c.coll = %(coll)s {sql} ORDER BY c.cid",
            {"coll": coll, **args},
        ).fetchall()
        return np.asarray([r[0] for r in found], dtype=np.int64)

    def _fetch(self, db: psycopg.Connection, top: list[tuple[int, float]]) -> list[Row]:
        if not top:
            return []
        found = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT cid, chunk_id, text, meta FROM kw_chunks WHERE cid = ANY(%s)",
                ([cid for cid, _ in top],),
            )
        }
        return ranked([(*found[cid], score) for cid, score in top])

    def _read_snapshot(self) -> Snapshot | None:
        """Each chunk's terms (its postings, repeated tf times; a chunk without terms counts
        for N too), read in one transaction through a connection of its own."""
        with contextlib.closing(connect(self.url, autocommit=True)) as db:
            db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = db.execute(
                "SELECT id, generation FROM kw_collections WHERE name = %s", (self.collection,)
            ).fetchone()
            if row is None:
                return None
            rows = db.execute(
                "SELECT c.cid, coalesce(string_agg(repeat(p.term || ' ', p.tf), ''), '') "
                "FROM kw_chunks AS c LEFT JOIN kw_postings AS p ON p.cid = c.cid "
                "WHERE c.coll = %s GROUP BY c.cid ORDER BY c.cid",
                (row[0],),
            ).fetchall()
            db.execute("COMMIT")
        return self._snapshot_of(int(row[0]), int(row[1]), [(int(c), t) for c, t in rows])

    # -- lifecycle ----------------------------------------------------------------------------

    def drop(self) -> None:
        """Remove this collection's chunks, postings and statistics; other collections stay."""
        with self._transaction() as db:
            coll = self._locked(db)
            if coll >= 0:
                db.execute("DELETE FROM kw_postings WHERE coll = %s", (coll,))
                db.execute("DELETE FROM kw_chunks WHERE coll = %s", (coll,))
                db.execute("DELETE FROM kw_collections WHERE id = %s", (coll,))
            self._snapshot = None
        logger.info("dropped keyword collection %r", self.collection)

    def close(self) -> None:
        """Close the connection, after a snapshot build under way."""
        with self._stopping():
            self._db.close()


def _filter_sql(where: Conditions, alias: str) -> tuple[str, dict[str, list[str]]]:
    """SQL conditions on ``alias``: ``[("source", ["a"])]`` -> ``AND c.source = ANY(%(f0)s)``."""
    clauses = [f"AND {alias}.{key} = ANY(%(f{i})s)" for i, (key, _) in enumerate(where)]
    return " ".join(clauses), {f"f{i}": values for i, (_, values) in enumerate(where)}


def vacuum(url: str) -> list[str]:
    """``VACUUM (ANALYZE)`` the keyword tables: deleted rows' space becomes reusable (their bytes
    are overwritten as it is reused; ``VACUUM FULL``, which locks the tables, rewrites them at
    once). The tables vacuumed."""
    with contextlib.closing(connect(url, autocommit=True)) as db:
        present = [
            t for t in _TABLES if db.execute("SELECT to_regclass(%s)", (t,)).fetchone() != (None,)
        ]
        for table in present:
            db.execute(f"VACUUM (ANALYZE) {table}")
    logger.info("vacuumed the keyword tables %s", present)
    return present
