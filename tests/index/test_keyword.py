"""The BM25 keyword indexes and their tokenizer: stemming, Chinese words, ranking, persistence,
transactions, filters, re-indexing and compaction.

One contract suite: every test taking ``index`` or ``opener`` runs against the SQLite FTS5 index
and (slow tier: a real PostgreSQL) the PostgreSQL one; the FTS5 specifics stay SQLite's."""

from __future__ import annotations

import json
import math
import random
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from index import keyword, keyword_pg
from index.keyword import INDEX_VERSION, SqliteBM25Index, fts_table, vacuum
from index.keyword_pg import PostgresBM25Index
from index.text_tokenize import _segmenter, tokenize
from index.types import Chunk, Hit, chunk_id, document_id


def make_chunk(text: str, source: str = "docs/ops.md", index: int = 0, **extra: object) -> Chunk:
    doc = document_id(source)
    fields: dict[str, object] = {
        "id": chunk_id(doc, text, index),
        "text": text,
        "doc_id": doc,
        "source": source,
        "title": "Ops",
        "chunk_index": index,
        "start": 10 * index,
        "end": 10 * index + len(text),
        "page": None,
        "heading_path": ("Ops", "Deploy"),
    }
    fields.update(extra)
    return Chunk(**fields)  # type: ignore[arg-type]


KeywordStore = SqliteBM25Index | PostgresBM25Index
# Opens an index on the test's one store (a file, a database): opener("b", snapshot_min_chunks=1).
Opener = Callable[..., KeywordStore]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        path = tmp_path / "kw.sqlite3"
        return lambda collection="main", **kw: SqliteBM25Index(path, collection, **kw)
    url = request.getfixturevalue("postgres_url")
    return lambda collection="main", **kw: PostgresBM25Index(url, collection, **kw)


@pytest.fixture
def index(opener: Opener) -> Iterator[KeywordStore]:
    with opener() as idx:
        yield idx


@pytest.fixture
def sqlite_index(tmp_path: Path) -> Iterator[SqliteBM25Index]:
    with SqliteBM25Index(tmp_path / "kw.sqlite3", "main") as idx:
        yield idx


def texts(hits: list[Hit]) -> list[str]:
    return [h.chunk.text for h in hits]


def assert_consistent(store: Path | KeywordStore) -> None:
    """The store's statistics and postings agree with its chunks (see the two below)."""
    if isinstance(store, PostgresBM25Index):
        assert_consistent_pg(store.url)
    else:
        assert_consistent_sqlite(store if isinstance(store, Path) else store.path)


def assert_consistent_pg(url: str) -> None:
    """Every collection's N and total length are its chunks', each chunk's postings add up to
    its length, no posting or chunk belongs to nothing."""
    with psycopg.connect(url) as db:
        for coll, n, total in db.execute(
            "SELECT id, n_chunks, total_length FROM kw_collections"
        ).fetchall():
            counted = db.execute(
                "SELECT count(*), coalesce(sum(length), 0) FROM kw_chunks WHERE coll = %s", (coll,)
            ).fetchone()
            assert counted == (n, total)
            uneven = db.execute(
                "SELECT count(*) FROM kw_chunks AS c WHERE c.coll = %s AND c.length <> "
                "(SELECT coalesce(sum(tf), 0) FROM kw_postings AS p WHERE p.cid = c.cid "
                "AND p.coll = c.coll)",
                (coll,),
            ).fetchone()
            assert uneven == (0,)
        for orphans in (
            "SELECT count(*) FROM kw_chunks WHERE coll NOT IN (SELECT id FROM kw_collections)",
            "SELECT count(*) FROM kw_postings WHERE cid NOT IN (SELECT cid FROM kw_chunks)",
        ):
            assert db.execute(orphans).fetchone() == (0,)


def assert_consistent_sqlite(path: Path) -> None:
    """Every collection's FTS5 rows are its chunks, its count is theirs, FTS5 checks out."""
    with sqlite3.connect(path) as db:
        for coll, n in db.execute("SELECT id, n_chunks FROM kw_collections").fetchall():
            fts = fts_table(coll)
            cids = {r[0] for r in db.execute("SELECT cid FROM kw_chunks WHERE coll = ?", (coll,))}
            assert {r[0] for r in db.execute(f"SELECT rowid FROM {fts}")} == cids
            assert n == len(cids)
            db.execute(f"INSERT INTO {fts} ({fts}) VALUES ('integrity-check')")
        orphans = "SELECT COUNT(*) FROM kw_chunks WHERE coll NOT IN (SELECT id FROM kw_collections)"
        assert db.execute(orphans).fetchone() == (0,)


# -- tokenizer ---------------------------------------------------------------------------------


def test_tokenize_stems_english_and_drops_stopwords() -> None:
    assert tokenize("The deploying of the services") == ["deploy", "servic"]
    assert tokenize("deployment") == tokenize("deploys") == tokenize("Deployed") == ["deploy"]


def test_tokenize_keeps_identifiers_and_versions_whole() -> None:
    terms = tokenize("Set api_key for Orbit 3.2.0 over TLS1.2.")
    assert {"api_key", "api", "key", "3.2.0", "tls1.2", "tls1"} <= set(terms)
    assert "3" not in terms and "2" not in terms  # bare version parts would match everything


def test_tokenize_normalizes_full_width_text() -> None:
    assert tokenize("ＡＰＩ　Ｋｅｙ") == tokenize("api key")


def test_tokenize_chinese_gives_bigrams_without_function_words() -> None:
    terms = tokenize("Orbit 的回滚流程")
    assert terms[0] == "orbit"
    assert {"回滚", "滚流", "流程"} <= set(terms)
    assert "的" not in terms and "的回" not in terms


def test_tokenize_folds_traditional_han_onto_simplified() -> None:
    assert tokenize("Orbit 的回滾流程：資料庫備份") == tokenize("Orbit 的回滚流程：资料库备份")
    assert {"回滚", "流程", "备份"} <= set(tokenize("回滾流程與備份"))
    assert tokenize("它們與這些") == tokenize("它们与这些")


def test_jieba_cache_goes_to_the_temp_dir() -> None:
    seg = _segmenter()
    assert seg.tmp_dir == tempfile.gettempdir()
    assert not (Path(__file__).resolve().parents[2] / "jieba.cache").exists()


# -- search ------------------------------------------------------------------------------------


def test_stemming_lets_a_query_match_other_word_forms(index: KeywordStore) -> None:
    index.upsert(
        [
            make_chunk("Deployment checklist for Orbit", index=0),
            make_chunk("The service deploys nightly", index=1),
            make_chunk("Backup retention policy", index=2),
        ]
    )
    found = texts(index.search("deploying", k=5))
    assert sorted(found) == ["Deployment checklist for Orbit", "The service deploys nightly"]


CHINESE = [
    "数据保留期为90天，到期后自动删除。",
    "审计报告中出具了保留意见。",
    "中华人民共和国网络安全法要求日志留存。",
    "数据库管理系统需要每天定期备份。",
    "我们的服务部署在北京机房。",
    "上海机房仅用于灾备。",
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("保留期", 0),  # jieba cuts the passage 保留/期为 and the query 保留/期
        ("人民", 2),  # jieba's default cut keeps 中华人民共和国 as one word
        ("共和国", 2),
        ("管理", 3),  # inside 管理系统
        ("备份", 3),
        ("北京机房", 4),
        ("服务部署", 4),
    ],
)
def test_a_chinese_passage_is_found_by_a_word_inside_it(
    index: KeywordStore, query: str, expected: int
) -> None:
    index.upsert([make_chunk(t, index=i) for i, t in enumerate(CHINESE)])
    hits = index.search(query, k=3)
    assert hits and hits[0].chunk.text == CHINESE[expected]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Traditional queries over simplified passages; every bigram holds a character that
        # is written otherwise in simplified, so only the fold can match them.
        ("數據庫備份", 3),
        ("網絡日誌", 2),
        ("災備機房", 5),
    ],
)
def test_a_traditional_query_finds_a_simplified_passage(
    index: KeywordStore, query: str, expected: int
) -> None:
    index.upsert([make_chunk(t, index=i) for i, t in enumerate(CHINESE)])
    hits = index.search(query, k=3)
    assert hits and hits[0].chunk.text == CHINESE[expected]


def test_a_simplified_query_finds_a_traditional_passage(index: KeywordStore) -> None:
    passages = ["資料庫每天定期備份，備份保留三十天。", "我們的服務部署在台北機房。"]
    index.upsert([make_chunk(t, index=i) for i, t in enumerate(passages)])
    assert texts(index.search("数据库备份", k=1)) == [passages[0]]
    assert texts(index.search("服务部署在哪个机房", k=1)) == [passages[1]]


def test_mixed_chinese_and_english(index: KeywordStore) -> None:
    index.upsert(
        [
            make_chunk("Orbit 的回滚流程：先停止流量，再回滚到上一个版本。", index=0),
            make_chunk("Nebula 的扩容流程：增加节点。", index=1),
            make_chunk("Orbit release notes for 3.2.0", index=2),
        ]
    )
    assert texts(index.search("Orbit 回滚", k=1)) == [
        "Orbit 的回滚流程：先停止流量，再回滚到上一个版本。"
    ]
    assert len(index.search("orbit", k=5)) == 2
    assert texts(index.search("扩容", k=5)) == ["Nebula 的扩容流程：增加节点。"]


def test_hits_carry_the_bm25_score_and_full_provenance(index: KeywordStore) -> None:
    chunk = make_chunk("gamma ray burst", source="papers/g.pdf", index=3, page=7)
    filler = [make_chunk(f"filler text n{i}", index=10 + i) for i in range(3)]
    index.upsert([chunk, *filler])
    (hit,) = index.search("gamma", k=5)
    assert hit.chunk == chunk
    assert hit.scores == {"keyword": hit.score}
    # By hand, FTS5's bm25() negated: N = 4, df = 1, tf = 1, |d| = 3, avgdl = (3 + 3 * 3) / 4 = 3,
    # k1 1.2, b 0.75, IDF ln((N - df + 0.5) / (df + 0.5)).
    idf = math.log((4 - 1 + 0.5) / (1 + 0.5))
    assert hit.score == pytest.approx(idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 3 / 3)))


def test_a_term_in_most_chunks_counts_for_almost_nothing(index: KeywordStore) -> None:
    """FTS5's IDF is floored at 1e-6 for a term in half the chunks or more; scores stay > 0."""
    index.upsert([make_chunk(f"common filler{i}", index=i) for i in range(5)])
    index.upsert([make_chunk("common rare", index=9), make_chunk("other words", index=10)])
    hits = index.search("common", k=10)
    assert len(hits) == 6 and all(0 < h.score < 1e-5 for h in hits)
    assert texts(index.search("common rare", k=1)) == ["common rare"]


def test_rarer_terms_score_higher(index: KeywordStore) -> None:
    index.upsert(
        [
            make_chunk("alpha zeta", index=0),
            make_chunk("beta zeta", index=1),
            make_chunk("beta eta", index=2),
            make_chunk("beta theta", index=3),
        ]
    )
    hits = index.search("alpha beta", k=4)
    assert hits[0].chunk.text == "alpha zeta"
    assert hits[0].score > hits[1].score


def test_longer_documents_are_normalized_down(index: KeywordStore) -> None:
    long = "gamma " + " ".join(f"word{i}" for i in range(40))
    index.upsert([make_chunk(long, index=0), make_chunk("gamma short", index=1)])
    assert texts(index.search("gamma", k=2)) == ["gamma short", long]


def test_upsert_replaces_a_chunk_and_its_old_terms(index: KeywordStore) -> None:
    old = make_chunk("legacy alpha procedure")
    index.upsert([old])
    new = Chunk(**{**old.__dict__, "text": "modern beta procedure"})
    index.upsert([new])
    assert index.search("alpha", k=5) == []
    assert texts(index.search("beta", k=5)) == ["modern beta procedure"]
    assert index.count() == 1 and index.ids() == {old.id}


def test_delete_removes_chunk_and_postings(index: KeywordStore) -> None:
    a, b = make_chunk("alpha one", index=0), make_chunk("beta two", index=1)
    index.upsert([a, b])
    index.delete([a.id, "no-such-id"])
    assert index.search("alpha", k=5) == []
    assert index.count() == 1 and index.ids() == {b.id}
    index.delete([b.id])
    if isinstance(index, SqliteBM25Index):
        with sqlite3.connect(index.path) as db:
            assert db.execute(f"SELECT COUNT(*) FROM {fts_table(1)}").fetchone() == (0,)
    assert_consistent(index)


def test_a_failed_upsert_leaves_the_old_state(index: KeywordStore) -> None:
    old = make_chunk("stable alpha")
    index.upsert([old])
    replacement = Chunk(**{**old.__dict__, "text": "changed beta"})
    broken = Chunk(**{**old.__dict__, "id": None})  # violates NOT NULL mid-transaction
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        index.upsert([make_chunk("newcomer gamma", index=1), replacement, broken])
    assert index.ids() == {old.id}
    assert texts(index.search("alpha", k=5)) == ["stable alpha"]
    assert index.search("beta gamma", k=5) == []
    assert_consistent(index)


def test_a_failed_delete_leaves_the_old_state(index: KeywordStore) -> None:
    """The FTS5 rows are part of the transaction: a delete that fails half-way undoes them."""
    a, b = make_chunk("alpha one", index=0), make_chunk("beta two", index=1)
    index.upsert([a, b])
    with pytest.raises((sqlite3.ProgrammingError, psycopg.ProgrammingError)):
        index.delete([a.id, object()])  # type: ignore[list-item]  # fails after a's rows went
    assert index.ids() == {a.id, b.id} and index.count() == 2
    assert sorted(texts(index.search("alpha beta", k=5))) == ["alpha one", "beta two"]
    assert_consistent(index)


def test_results_survive_close_and_reopen(opener: Opener) -> None:
    with opener() as idx:
        idx.upsert([make_chunk(t, index=i) for i, t in enumerate(CHINESE)])
        before = [(h.chunk, h.score) for h in idx.search("机房 数据", k=5)]
    with opener() as idx:
        assert [(h.chunk, h.score) for h in idx.search("机房 数据", k=5)] == before
        assert idx.count() == len(CHINESE)


def test_collections_sharing_a_file_are_isolated(opener: Opener) -> None:
    with opener("a") as a, opener("b") as b:
        a.upsert([make_chunk("alpha shared")])
        b.upsert([make_chunk("beta shared"), make_chunk("beta again", index=1)])
        assert texts(a.search("shared", k=5)) == ["alpha shared"]
        assert a.search("beta", k=5) == []
        assert (a.count(), b.count()) == (1, 2)
        b.drop()
        assert b.count() == 0 and b.ids() == set() and b.search("beta", k=5) == []
        assert texts(a.search("shared", k=5)) == ["alpha shared"]
        b.upsert([make_chunk("beta reborn")])  # a dropped collection can be filled again
        assert b.count() == 1


def test_filters_by_source_and_doc_id(index: KeywordStore) -> None:
    x = make_chunk("rollback guide", source="x.md")
    y = make_chunk("rollback notes", source="y.md")
    z = make_chunk("rollback faq", source="z.md")
    index.upsert([x, y, z])
    assert texts(index.search("rollback", k=5, filters={"source": "x.md"})) == [x.text]
    hits = index.search("rollback", k=5, filters={"doc_id": [y.doc_id, z.doc_id]})
    assert sorted(texts(hits)) == [z.text, y.text]
    assert index.search("rollback", k=5, filters={"doc_id": []}) == []
    both = {"source": "x.md", "doc_id": [y.doc_id]}
    assert index.search("rollback", k=5, filters=both) == []
    with pytest.raises(ValueError, match="unsupported"):
        index.search("rollback", k=5, filters={"title": "Ops"})


def test_filtered_search_equals_filtering_the_full_ranking(index: KeywordStore) -> None:
    """Both query plans (postings first, or filtered chunks first) give the same scores."""
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "回滚", "部署", "监控"]
    sources = ["big.md"] * 40 + ["small.md"] * 2
    index.upsert(
        [
            make_chunk(" ".join(rng.choices(words, k=rng.randint(2, 9))), source=s, index=i)
            for i, s in enumerate(sources)
        ]
    )
    small = document_id("small.md")
    for query in ["alpha", "beta 回滚", "部署 gamma delta 监控"]:
        full = {h.chunk.id: (h.chunk, h.score) for h in index.search(query, k=100)}
        for filters in ({"source": "big.md"}, {"source": "small.md"}, {"doc_id": [small, "x"]}):
            key, allowed = next(iter(filters.items()))
            want = {i: s for i, (c, s) in full.items() if getattr(c, key) in allowed}
            got = {h.chunk.id: h.score for h in index.search(query, k=100, filters=filters)}
            assert got == pytest.approx(want)


@pytest.mark.parametrize("query", ["", "   ", "the of a is", "，。！", "的"])
def test_empty_or_stopword_queries_return_nothing(index: KeywordStore, query: str) -> None:
    index.upsert([make_chunk("the alpha of a thing")])
    assert index.search(query, k=5) == []


def test_empty_index_and_k_zero(index: KeywordStore) -> None:
    assert index.search("alpha", k=5) == [] and index.count() == 0 and index.ids() == set()
    index.upsert([make_chunk("alpha")])
    assert index.search("alpha", k=0) == []


def test_many_chunks(index: KeywordStore) -> None:
    rng = random.Random(7)
    vocab = [f"term{i}" for i in range(2000)] + ["部署", "回滚", "监控", "告警", "备份"]
    chunks = [
        make_chunk(" ".join(rng.choices(vocab, k=60)) + f" unique{i}", index=i) for i in range(5000)
    ]
    index.upsert(chunks)
    assert index.count() == 5000
    assert texts(index.search("unique4321", k=3)) == [chunks[4321].text]
    hits = index.search("term5 回滚 监控", k=10)
    assert len(hits) == 10
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_ids_follow_a_model_through_random_upserts_and_deletes(index: KeywordStore) -> None:
    rng = random.Random(11)
    pool = [make_chunk(f"tok{i} common 词{i % 7}", index=i) for i in range(60)]
    model: dict[str, Chunk] = {}
    for _ in range(40):
        if rng.random() < 0.6:
            batch = rng.sample(pool, rng.randint(1, 8))
            index.upsert(batch)
            model.update((c.id, c) for c in batch)
        else:
            gone = [c.id for c in rng.sample(pool, rng.randint(1, 8))]
            index.delete(gone)
            for cid in gone:
                model.pop(cid, None)
        assert index.ids() == set(model)
        assert index.count() == len(model)
    assert_consistent(index)
    for chunk in model.values():
        assert index.search(chunk.text.split()[0], k=1)[0].chunk == chunk


def test_a_stale_index_version_rebuilds_the_terms(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    with SqliteBM25Index(path, "main") as idx:
        idx.upsert([make_chunk("alpha 回滚流程")])
    with sqlite3.connect(path) as db:
        db.execute(f"DELETE FROM {fts_table(1)}")
        db.execute("UPDATE kw_collections SET tokenizer = 'old'")
    with SqliteBM25Index(path, "main") as idx:
        assert texts(idx.search("回滚", k=1)) == ["alpha 回滚流程"]
        assert idx.count() == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT tokenizer FROM kw_collections").fetchall() == [(INDEX_VERSION,)]
    assert_consistent(path)


def stored(index: KeywordStore, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a query without parameters on the index's own store (a file, a database)."""
    if isinstance(index, PostgresBM25Index):
        with psycopg.connect(index.url) as pg:
            return pg.execute(sql).fetchall()
    with sqlite3.connect(index.path) as db:
        return db.execute(sql).fetchall()


def test_a_tokenizer_change_re_tokenizes_the_stored_texts(
    opener: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new tokenizer version re-indexes each collection once, at open, from its stored texts
    (lengths included); other collections in the store are re-indexed when they are opened."""
    with opener("a") as a, opener("b") as b:
        a.upsert([make_chunk("alpha procedure"), make_chunk("beta notes", index=1)])
        b.upsert([make_chunk("gamma procedure")])
    module = keyword_pg if isinstance(a, PostgresBM25Index) else keyword
    old = module.INDEX_VERSION
    monkeypatch.setattr(module, "INDEX_VERSION", "next")
    monkeypatch.setattr(module, "tokenize", lambda text: [*tokenize(text), "zzmark"])
    with opener("a") as a:
        assert sorted(texts(a.search("zzmark", k=5))) == ["alpha procedure", "beta notes"]
        assert a.count() == 2
    assert dict(stored(a, "SELECT name, tokenizer FROM kw_collections")) == {"a": "next", "b": old}
    of_a = "(SELECT id FROM kw_collections WHERE name = 'a')"
    lengths = stored(a, f"SELECT length FROM kw_chunks WHERE coll = {of_a} ORDER BY cid")
    assert [r[0] for r in lengths] == [3, 3]  # the new terms' count: two words + zzmark
    with opener("b") as b:
        assert texts(b.search("zzmark", k=5)) == ["gamma procedure"]
        assert_consistent(b)


_LEGACY_SCHEMA = """
CREATE TABLE kw_collections (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, n_chunks INTEGER NOT NULL DEFAULT 0,
    total_len INTEGER NOT NULL DEFAULT 0, tokenizer TEXT NOT NULL);
CREATE TABLE kw_chunks (
    cid INTEGER PRIMARY KEY, coll INTEGER NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    source TEXT NOT NULL, length INTEGER NOT NULL, text TEXT NOT NULL, meta TEXT NOT NULL,
    UNIQUE (coll, chunk_id));
CREATE TABLE kw_postings (
    coll INTEGER NOT NULL, term TEXT NOT NULL, cid INTEGER NOT NULL, tf INTEGER NOT NULL,
    PRIMARY KEY (coll, term, cid)) WITHOUT ROWID;
CREATE INDEX kw_postings_cid ON kw_postings (cid);
"""


def test_a_file_of_the_earlier_postings_engine_is_re_indexed(tmp_path: Path) -> None:
    """A keywords.sqlite written before FTS5 (docqa's own BM25 over ``kw_postings``) is
    re-indexed from its stored texts, one collection at a time, and its postings dropped."""
    path = tmp_path / "kw.sqlite3"
    a, b = make_chunk("alpha 回滚流程"), make_chunk("beta notes", index=1)
    with sqlite3.connect(path) as db:
        db.executescript(_LEGACY_SCHEMA)
        db.execute("INSERT INTO kw_collections VALUES (1, 'a', 1, 3, '1'), (2, 'b', 1, 2, '1')")
        for cid, coll, c in ((1, 1, a), (2, 2, b)):
            db.execute(
                "INSERT INTO kw_chunks VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (cid, coll, c.id, c.doc_id, c.source, c.text, json.dumps(c.metadata())),
            )
            db.execute("INSERT INTO kw_postings VALUES (?, 'x', ?, 1)", (coll, cid))
    with SqliteBM25Index(path, "a") as idx:
        [hit] = idx.search("回滚", k=5)
        assert hit.chunk == a and idx.count() == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT coll FROM kw_postings").fetchall() == [(2,)]
    with SqliteBM25Index(path, "b") as idx:
        assert texts(idx.search("notes", k=5)) == ["beta notes"]
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        assert "kw_postings" not in tables and "kw_postings_cid" not in tables
    assert_consistent(path)


def test_one_writer_and_several_readers_share_an_instance(index: KeywordStore) -> None:
    index.upsert([make_chunk("seed alpha")])
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(50):
                assert index.search("alpha", k=5)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    for i in range(50):
        index.upsert([make_chunk(f"alpha {i}", index=i + 1)])
    for t in readers:
        t.join()
    assert not errors
    assert index.count() == 51


def test_a_table_chunk_is_found_by_its_rendered_rows_and_returns_its_own_text(
    tmp_path: Path,
) -> None:
    """Terms come from ``index_text`` (the rows with their column names); the hit carries the
    document's text for citing and the rendering, also after a re-tokenizing rebuild."""
    text = "| orbit-scheduler | Daniel Ferreira |\n| Grafana 监控 | 王强 |"
    rendered = "Owners\norbit-scheduler: Owner Daniel Ferreira\nGrafana 监控: 负责人 王强"
    path = tmp_path / "kw.sqlite3"
    with SqliteBM25Index(path, "main") as idx:
        table = make_chunk(text, rendered=rendered, row_lines=((1, 3),))
        idx.upsert([table, make_chunk("other owner notes", index=1)])
        for query in ("Owner Daniel Ferreira", "负责人"):
            [hit] = idx.search(query, k=1)
            assert hit.chunk == table and hit.chunk.text == text
        assert "负责人" not in text and "owner" not in text.lower()  # only the rendering has them
    with sqlite3.connect(path) as db:
        db.execute(f"DELETE FROM {fts_table(1)}")
        db.execute("UPDATE kw_collections SET tokenizer = 'old'")
    with SqliteBM25Index(path, "main") as idx:
        assert [h.chunk.rendered for h in idx.search("负责人", k=1)] == [rendered]


# -- FTS5 specifics ----------------------------------------------------------------------------


def test_each_of_our_terms_is_one_fts5_token(sqlite_index: SqliteBM25Index) -> None:
    """FTS5's ``ascii`` tokenizer with ``.`` and ``_`` as token characters neither splits nor
    folds our terms: the index holds exactly ``tokenize``'s terms."""
    index = sqlite_index
    text = (
        "Set api_key for Orbit 3.2.0 over TLS1.2; naïve café Ｖ２ déjà-vu x_y.z "
        "中华人民共和国 的回滚流程 Ελληνικά русский ١٢٣ ｶﾀｶﾅ 한국어 e=mc² 50% C++ O'Neil"
    )
    index.upsert([make_chunk(text)])
    fts = fts_table(1)
    with sqlite3.connect(index.path) as db:
        db.execute(f"CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, {fts}, row)")
        stored = {r[0]: r[1] for r in db.execute("SELECT term, cnt FROM temp.v")}
    assert stored == {t: 1 for t in set(tokenize(text))}
    for term in set(tokenize(text)):
        assert texts(index.search(term, k=1)) == [text], term


@pytest.mark.parametrize(
    "query", ["NEAR(alpha beta)", 'alpha AND "beta', "alpha* OR -beta ^gamma", "col:alpha {x}"]
)
def test_query_syntax_is_never_interpreted(index: KeywordStore, query: str) -> None:
    """Every term goes to FTS5 as a quoted string: no operator, column filter or prefix."""
    index.upsert([make_chunk("alpha beta gamma near col"), make_chunk("delta", index=1)])
    assert texts(index.search(query, k=5)) == ["alpha beta gamma near col"]


def test_collections_keep_their_own_statistics(opener: Opener) -> None:
    """N, df and avgdl are per collection: filling another collection changes no score."""
    with opener("a") as a, opener("b") as b:
        a.upsert([make_chunk("alpha beta", index=0), make_chunk("gamma delta", index=1)])
        before = [(h.chunk.id, h.score) for h in a.search("alpha gamma", k=5)]
        b.upsert([make_chunk(f"alpha filler {i}", index=i) for i in range(20)])
        assert [(h.chunk.id, h.score) for h in a.search("alpha gamma", k=5)] == before
        assert_consistent(a)


def test_drop_removes_the_collections_fts5_table(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    with SqliteBM25Index(path, "a") as a, SqliteBM25Index(path, "b") as b:
        a.upsert([make_chunk("alpha")])
        b.upsert([make_chunk("beta")])
        a.drop()
        a.drop()  # dropping an absent collection is a no-op
        assert a.search("alpha", k=5) == [] and a.count() == 0
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert fts_table(1) not in names and fts_table(2) in names
    assert_consistent(path)


def test_two_instances_on_one_file_see_each_others_writes(opener: Opener) -> None:
    """Another connection (another process: an ingest beside the server; another host on the
    shared database) reads what one committed, at its next search."""
    with opener() as writer, opener() as reader:
        assert reader.search("alpha", k=5) == []
        chunk = make_chunk("alpha one")
        writer.upsert([chunk])
        assert texts(reader.search("alpha", k=5)) == ["alpha one"] and reader.count() == 1
        writer.delete([chunk.id])
        assert reader.search("alpha", k=5) == [] and reader.count() == 0


def _files_holding(folder: Path, needle: str) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if p.is_file() and needle.encode() in p.read_bytes()
    )


def test_vacuum_makes_a_deleted_chunks_terms_and_text_physically_gone(tmp_path: Path) -> None:
    """A delete leaves the chunk's terms in FTS5's older segments: VACUUM alone would keep
    them. ``vacuum`` merges the segments first (FTS5 ``optimize``), then rewrites the file."""
    path = tmp_path / "kw.sqlite3"
    secret = make_chunk("Zanzibarquokka launch code 7731", index=99)
    with SqliteBM25Index(path, "main") as idx:
        idx.upsert([make_chunk(f"common words number{i}", index=i) for i in range(50)])
        idx.upsert([secret])
        idx.upsert([make_chunk(f"later words n{i}", index=100 + i) for i in range(50)])
        idx.delete([secret.id])
        assert idx.search("zanzibarquokka", k=5) == []
    assert _files_holding(tmp_path, "zanzibarquokka")  # the term, in an FTS5 segment
    vacuum(path)
    assert _files_holding(tmp_path, "zanzibarquokka") == []
    assert _files_holding(tmp_path, "Zanzibarquokka") == []
    with SqliteBM25Index(path, "main") as idx:
        assert len(idx.search("words", k=200)) == 100 and idx.count() == 100
        idx.upsert([make_chunk("fresh words")])  # the store takes writes again
        assert texts(idx.search("fresh", k=5)) == ["fresh words"]
    assert_consistent(path)


# -- the bm25s snapshot ------------------------------------------------------------------------


def _corpus(n: int, seed: int = 5) -> list[Chunk]:
    """``n`` chunks of common and rare English and Chinese words, every fifth text a copy of
    another's (ties), over three sources."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "回滚", "部署", "监控", "告警", "机房"]
    words += [f"rare{i}" for i in range(40)]
    weights = [30, 20, 12, 8, 5, 10, 6, 4, 2, 1] + [1] * 40
    texts = [" ".join(rng.choices(words, weights, k=rng.randint(3, 30))) for _ in range(n)]
    for i in range(0, n, 5):
        texts[i] = texts[rng.randrange(n)]
    return [make_chunk(t, source=f"s{i % 3}.md", index=i) for i, t in enumerate(texts)]


QUERIES = ["alpha", "beta rare3", "回滚 部署 监控", "rare7 rare7 gamma 机房", "omega delta rare1"]


def assert_same_ranking(got: list[Hit], want: list[Hit]) -> None:
    """The same chunks in the same order, the same scores but for float rounding."""
    assert [h.chunk.id for h in got] == [h.chunk.id for h in want]
    assert [h.score for h in got] == pytest.approx([h.score for h in want], rel=1e-9)


@pytest.fixture
def pair(opener: Opener) -> Iterator[tuple[KeywordStore, KeywordStore]]:
    """Two instances on one store, both scoring as a large collection does: one with a
    snapshot, one on the engine alone (FTS5, SQL; no background builds)."""
    with (
        opener(snapshot_min_chunks=1) as fast,
        opener(snapshot_min_chunks=1, background=False) as fts,
    ):
        yield fast, fts


def test_the_snapshot_gives_fts5s_hits_scores_and_ties(
    pair: tuple[KeywordStore, KeywordStore],
) -> None:
    fast, fts = pair
    fast.upsert(_corpus(400))
    assert fast.warm_up()
    small = document_id("s1.md")
    for query in QUERIES:
        for k in (1, 3, 10, 500):
            for filters in (None, {"source": "s2.md"}, {"doc_id": [small]}, {"source": []}):
                got, want = fast.search(query, k, filters), fts.search(query, k, filters)
                assert_same_ranking(got, want)
                assert [h.chunk for h in got] == [h.chunk for h in want]
    assert fast._snapshot is not None and fts._snapshot is None


def test_a_large_collection_scores_its_informative_terms_only(
    pair: tuple[KeywordStore, KeywordStore], opener: Opener
) -> None:
    """A term in half the chunks or more has FTS5's floored IDF (1e-6), bm25s's 0: both ways
    leave it out of a query that has other terms, and a query of such terms alone goes to
    FTS5 whole (ranked by their term frequencies)."""
    fast, fts = pair
    fast.upsert([make_chunk(f"common filler{i}", index=i) for i in range(5)])
    fast.upsert([make_chunk("common rare", index=9), make_chunk("rare rare other", index=10)])
    assert fast.warm_up()
    for index in (fast, fts):
        assert texts(index.search("common rare", k=10)) == ["rare rare other", "common rare"]
        assert len(index.search("common", k=10)) == 6
    small = opener()  # below the threshold: every term counts
    assert len(small.search("common rare", k=10)) == 7
    small.close()


def test_writes_are_seen_at_once_and_the_snapshot_is_rebuilt(
    pair: tuple[KeywordStore, KeywordStore],
) -> None:
    """A write (here, or by another connection: another process) gives the collection a new
    generation: searches go to FTS5 at once, and a new snapshot is built in the background."""
    fast, other = pair
    chunks = _corpus(60)
    fast.upsert(chunks)
    assert fast.warm_up()
    before = fast._snapshot
    other.upsert([make_chunk("rare3 newcomer", index=999)])
    other.delete([chunks[1].id])
    assert texts(fast.search("newcomer", k=5)) == ["rare3 newcomer"]
    assert chunks[1].id not in {h.chunk.id for h in fast.search(chunks[1].text, k=100)}
    assert fast._builder is not None
    fast._builder.join()
    after = fast._snapshot
    assert after is not None and before is not None and after.generation > before.generation
    assert texts(fast.search("newcomer", k=5)) == ["rare3 newcomer"]
    for query in QUERIES:
        assert_same_ranking(fast.search(query, 20), other.search(query, 20))


def test_a_dropped_and_refilled_collection_never_meets_its_old_snapshot(opener: Opener) -> None:
    """Generations come from one counter for the whole store: a collection dropped and made
    again elsewhere (in SQLite its id reused) never matches a snapshot of the old one."""
    with (
        opener(snapshot_min_chunks=1) as reader,
        opener(snapshot_min_chunks=1) as writer,
    ):
        writer.upsert([make_chunk("alpha old", index=0), make_chunk("beta", index=1)])
        assert reader.warm_up()
        writer.drop()
        writer.upsert([make_chunk("alpha new", index=0), make_chunk("gamma", index=1)])
        assert texts(reader.search("alpha", k=5)) == ["alpha new"]
    if isinstance(writer, SqliteBM25Index):
        with sqlite3.connect(writer.path) as db:
            assert db.execute("SELECT id, generation FROM kw_collections").fetchall() == [(1, 2)]


def test_below_the_threshold_no_snapshot_is_built(index: KeywordStore) -> None:
    index.upsert(_corpus(50))
    assert index.snapshot_min_chunks > 50
    assert not index.warm_up()
    assert index.search("alpha", k=5)
    assert index._builder is None and index._snapshot is None


def test_close_waits_for_a_build_under_way(opener: Opener) -> None:
    idx = opener(snapshot_min_chunks=1)
    idx.upsert(_corpus(200))
    assert idx.search("alpha", k=5)  # on FTS5, starting a build
    builder = idx._builder
    idx.close()
    assert builder is not None and not builder.is_alive() and idx._snapshot is None
