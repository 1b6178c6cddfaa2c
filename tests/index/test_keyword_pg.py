"""The PostgreSQL keyword index against the SQLite one, and as several hosts share it.

The contract suite (tests/index/test_keyword.py) runs every behaviour on both; here: the two give
the very same ranked ids and scores on a few hundred real English and Chinese chunks (filters,
deletes, re-upserts, the snapshot path), a second instance (another host) sees the first's
writes and they invalidate its snapshot, and a lost connection and an unreachable database are
`StoreUnavailableError` (503).
"""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from index import keyword_pg
from index.errors import StoreUnavailableError
from index.keyword import SqliteBM25Index
from index.keyword_pg import PostgresBM25Index
from index.types import Chunk, Hit, chunk_id, document_id
from tests.index.test_keyword import assert_consistent, make_chunk, texts

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def real_chunks() -> list[Chunk]:
    """A few hundred chunks of the sample runbook (English) and FAQ (Chinese): each line, each
    two and three consecutive lines (so terms repeat across chunks of varied lengths), and a few
    exact copies under other sources (ties)."""
    chunks: list[Chunk] = []
    for path in sorted(EXAMPLES.glob("*.md")):
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if len(ln) > 15]
        for width in (1, 2, 3):
            source = f"{path.stem}-{width}.md"
            doc = document_id(source)
            for i in range(len(lines) - width + 1):
                text = "\n".join(lines[i : i + width])
                chunks.append(make_chunk(text, source=source, index=i, id=chunk_id(doc, text, i),
                                         doc_id=doc))  # fmt: skip
    for i, original in enumerate(chunks[::17]):
        doc = document_id("copies.md")
        chunks.append(make_chunk(original.text, source="copies.md", index=i, doc_id=doc,
                                 id=chunk_id(doc, original.text, i)))  # fmt: skip
    return chunks


def queries(chunks: list[Chunk], n: int = 40) -> list[str]:
    """Fixed questions, plus runs of words and characters taken from the chunks."""
    rng = random.Random(13)
    out = ["How do I roll back Orbit?", "回滚流程是什么", "数据保留多久", "orbit deploy 部署 监控"]
    for chunk in rng.sample(chunks, n):
        words = re.findall(r"\w+", chunk.text)
        start = rng.randrange(len(words))
        out.append(" ".join(words[start : start + rng.randint(1, 4)]))
    return out


def assert_same_hits(got: list[Hit], want: list[Hit], context: object) -> None:
    assert [h.chunk.id for h in got] == [h.chunk.id for h in want], context
    assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-6), context
    assert [h.chunk for h in got] == [h.chunk for h in want], context


def compare(a: SqliteBM25Index | PostgresBM25Index, b: PostgresBM25Index, qs: list[str]) -> int:
    """Every query, with and without filters, at several k: the same hits; how many had any."""
    some = 0
    runbook = document_id("orbit-runbook-2.md")
    for query in qs:
        for filters in (None, {"source": "orbit-faq.zh-1.md"}, {"doc_id": [runbook, "x"]}):
            for k in (1, 10, 50):
                want, got = a.search(query, k, filters), b.search(query, k, filters)
                assert_same_hits(got, want, (query, filters, k))
                some += bool(want)
    return some


@pytest.fixture
def both(tmp_path: Path, postgres_url: str) -> Iterator[tuple[SqliteBM25Index, PostgresBM25Index]]:
    with (
        SqliteBM25Index(tmp_path / "kw.sqlite3", "main") as lite,
        PostgresBM25Index(postgres_url, "main") as pg,
    ):
        yield lite, pg


def test_both_backends_rank_and_score_alike(
    both: tuple[SqliteBM25Index, PostgresBM25Index],
) -> None:
    lite, pg = both
    chunks = real_chunks()
    assert len(chunks) > 250
    qs = queries(chunks)
    for index in (lite, pg):
        index.upsert(chunks[:200])
        index.upsert(chunks[150:])  # overlapping: 50 replaced by themselves
    assert compare(lite, pg, qs) > 200
    rng = random.Random(5)
    gone = [c.id for c in rng.sample(chunks, 60)]
    changed = [
        Chunk(**{**c.__dict__, "text": c.text + " 补充说明 extra rollback note"})
        for c in rng.sample(chunks, 30)
    ]
    for index in (lite, pg):
        index.delete(gone)
        index.upsert(changed)
        index.upsert([changed[0], changed[1], changed[0]])  # a repeated id: the last one counts
    assert pg.ids() == lite.ids() and pg.count() == lite.count()
    assert compare(lite, pg, [*qs, "补充说明", "extra rollback"]) > 200
    assert_consistent(pg)


def test_the_snapshot_path_scores_alike(tmp_path: Path, postgres_url: str) -> None:
    """As large collections (every term informative or left out), from SQLite's FTS5, from
    PostgreSQL's SQL and from its bm25s snapshot."""
    chunks = real_chunks()
    qs = queries(chunks, 25)
    with (
        SqliteBM25Index(tmp_path / "kw.sqlite3", "main", snapshot_min_chunks=1,
                        background=False) as lite,
        PostgresBM25Index(postgres_url, "main", snapshot_min_chunks=1, background=False) as sql,
        PostgresBM25Index(postgres_url, "main", snapshot_min_chunks=1, background=False) as fast,
    ):  # fmt: skip
        lite.upsert(chunks)
        sql.upsert(chunks)
        assert fast.warm_up() and sql.snapshot is None
        assert compare(lite, sql, qs) > 100
        assert compare(lite, fast, qs) > 100


def test_another_host_sees_the_writes_and_they_invalidate_its_snapshot(postgres_url: str) -> None:
    chunks = real_chunks()
    with (
        PostgresBM25Index(postgres_url, "main", snapshot_min_chunks=1) as host_a,
        PostgresBM25Index(postgres_url, "main", snapshot_min_chunks=1, background=False) as host_b,
    ):
        host_b.upsert(chunks[:100])
        assert host_a.count() == 100 and host_a.warm_up()
        before = host_a.snapshot
        assert before is not None
        newcomer = make_chunk("Zanzibarquokka rollback drill 演练", source="new.md", index=999)
        host_b.upsert([newcomer])
        host_b.delete([chunks[0].id])
        # At once, from SQL (the snapshot is of an older generation), with a rebuild started.
        assert texts(host_a.search("zanzibarquokka", k=5)) == [newcomer.text]
        assert chunks[0].id not in {h.chunk.id for h in host_a.search(chunks[0].text, k=200)}
        assert host_a.ids() == host_b.ids() and host_a.count() == 100
        assert host_a._builder is not None
        host_a._builder.join()
        after = host_a.snapshot
        assert after is not None and after.generation > before.generation
        for query in queries(chunks, 10):
            assert_same_hits(host_a.search(query, 20), host_b.search(query, 20), query)
        host_b.drop()
        assert host_a.search("zanzibarquokka", k=5) == [] and host_a.count() == 0


def test_concurrent_writers_keep_the_counts(postgres_url: str) -> None:
    """Two hosts upserting and deleting overlapping chunks at once: N, the total length and the
    postings still agree with the chunks (each write locks the collection's row)."""
    import threading

    chunks = real_chunks()[:120]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            with PostgresBM25Index(postgres_url, "main") as host:
                for _ in range(15):
                    host.upsert(rng.sample(chunks, 10))
                    host.delete([c.id for c in rng.sample(chunks, 5)])
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    with PostgresBM25Index(postgres_url, "main") as first:
        first.upsert(chunks[:1])  # the collection exists; both hosts race on its row
        threads = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert first.count() == len(first.ids())
        assert_consistent(first)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_database_is_a_clear_503() -> None:
    url = f"postgresql://docqa:s3cret@127.0.0.1:{_free_port()}/docqa"
    with pytest.raises(StoreUnavailableError, match="cannot reach the database") as raised:
        PostgresBM25Index(url, "main")
    assert raised.value.status_code == 503
    assert "s3cret" not in str(raised.value) and "docqa:***@127.0.0.1" in str(raised.value)


def test_a_lost_connection_is_reported_then_reopened(postgres_url: str) -> None:
    with PostgresBM25Index(postgres_url, "main") as index:
        index.upsert([make_chunk("alpha one")])
        pid = index._db.info.backend_pid
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailableError, match="failed"):
            index.search("alpha", k=5)
        assert texts(index.search("alpha", k=5)) == ["alpha one"]  # a new connection


def test_vacuum_runs_on_the_keyword_tables(postgres_url: str) -> None:
    assert keyword_pg.vacuum(postgres_url) == []  # no tables yet: nothing to do
    with PostgresBM25Index(postgres_url, "main") as index:
        index.upsert([make_chunk("alpha")])
        index.delete(list(index.ids()))
    assert keyword_pg.vacuum(postgres_url) == ["kw_postings", "kw_chunks", "kw_collections"]
