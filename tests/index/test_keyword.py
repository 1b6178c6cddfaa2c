"""The SQLite BM25 index and its tokenizer: stemming, Chinese words, ranking, persistence."""

from __future__ import annotations

import math
import random
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.keyword import SqliteBM25Index
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


@pytest.fixture
def index(tmp_path: Path) -> Iterator[SqliteBM25Index]:
    with SqliteBM25Index(tmp_path / "kw.sqlite3", "main") as idx:
        yield idx


def texts(hits: list[Hit]) -> list[str]:
    return [h.chunk.text for h in hits]


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


def test_stemming_lets_a_query_match_other_word_forms(index: SqliteBM25Index) -> None:
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
    index: SqliteBM25Index, query: str, expected: int
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
    index: SqliteBM25Index, query: str, expected: int
) -> None:
    index.upsert([make_chunk(t, index=i) for i, t in enumerate(CHINESE)])
    hits = index.search(query, k=3)
    assert hits and hits[0].chunk.text == CHINESE[expected]


def test_a_simplified_query_finds_a_traditional_passage(index: SqliteBM25Index) -> None:
    passages = ["資料庫每天定期備份，備份保留三十天。", "我們的服務部署在台北機房。"]
    index.upsert([make_chunk(t, index=i) for i, t in enumerate(passages)])
    assert texts(index.search("数据库备份", k=1)) == [passages[0]]
    assert texts(index.search("服务部署在哪个机房", k=1)) == [passages[1]]


def test_mixed_chinese_and_english(index: SqliteBM25Index) -> None:
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


def test_hits_carry_the_bm25_score_and_full_provenance(index: SqliteBM25Index) -> None:
    chunk = make_chunk("gamma ray burst", source="papers/g.pdf", index=3, page=7)
    filler = [make_chunk(f"filler text n{i}", index=10 + i) for i in range(3)]
    index.upsert([chunk, *filler])
    (hit,) = index.search("gamma", k=5)
    assert hit.chunk == chunk
    assert hit.scores == {"keyword": hit.score}
    # By hand: N = 4, df = 1, tf = 1, |d| = 3, avgdl = (3 + 3 * 3) / 4 = 3.
    idf = math.log(1 + (4 - 1 + 0.5) / (1 + 0.5))
    assert hit.score == pytest.approx(idf * 1 * 2.5 / (1 + 1.5 * (1 - 0.75 + 0.75 * 3 / 3)))


def test_rarer_terms_score_higher(index: SqliteBM25Index) -> None:
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


def test_longer_documents_are_normalized_down(index: SqliteBM25Index) -> None:
    long = "gamma " + " ".join(f"word{i}" for i in range(40))
    index.upsert([make_chunk(long, index=0), make_chunk("gamma short", index=1)])
    assert texts(index.search("gamma", k=2)) == ["gamma short", long]


def test_upsert_replaces_a_chunk_and_its_old_terms(index: SqliteBM25Index) -> None:
    old = make_chunk("legacy alpha procedure")
    index.upsert([old])
    new = Chunk(**{**old.__dict__, "text": "modern beta procedure"})
    index.upsert([new])
    assert index.search("alpha", k=5) == []
    assert texts(index.search("beta", k=5)) == ["modern beta procedure"]
    assert index.count() == 1 and index.ids() == {old.id}


def test_delete_removes_chunk_and_postings(index: SqliteBM25Index) -> None:
    a, b = make_chunk("alpha one", index=0), make_chunk("beta two", index=1)
    index.upsert([a, b])
    index.delete([a.id, "no-such-id"])
    assert index.search("alpha", k=5) == []
    assert index.count() == 1 and index.ids() == {b.id}
    index.delete([b.id])
    with sqlite3.connect(index.path) as db:
        assert db.execute("SELECT COUNT(*) FROM kw_postings").fetchone() == (0,)


def test_a_failed_upsert_leaves_the_old_state(index: SqliteBM25Index) -> None:
    old = make_chunk("stable alpha")
    index.upsert([old])
    replacement = Chunk(**{**old.__dict__, "text": "changed beta"})
    broken = Chunk(**{**old.__dict__, "id": None})  # violates NOT NULL mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        index.upsert([make_chunk("newcomer gamma", index=1), replacement, broken])
    assert index.ids() == {old.id}
    assert texts(index.search("alpha", k=5)) == ["stable alpha"]
    assert index.search("beta gamma", k=5) == []


def test_results_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    with SqliteBM25Index(path, "main") as idx:
        idx.upsert([make_chunk(t, index=i) for i, t in enumerate(CHINESE)])
        before = [(h.chunk, h.score) for h in idx.search("机房 数据", k=5)]
    with SqliteBM25Index(path, "main") as idx:
        assert [(h.chunk, h.score) for h in idx.search("机房 数据", k=5)] == before
        assert idx.count() == len(CHINESE)


def test_collections_sharing_a_file_are_isolated(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    with SqliteBM25Index(path, "a") as a, SqliteBM25Index(path, "b") as b:
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


def test_filters_by_source_and_doc_id(index: SqliteBM25Index) -> None:
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


def test_filtered_search_equals_filtering_the_full_ranking(index: SqliteBM25Index) -> None:
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
def test_empty_or_stopword_queries_return_nothing(index: SqliteBM25Index, query: str) -> None:
    index.upsert([make_chunk("the alpha of a thing")])
    assert index.search(query, k=5) == []


def test_empty_index_and_k_zero(index: SqliteBM25Index) -> None:
    assert index.search("alpha", k=5) == [] and index.count() == 0 and index.ids() == set()
    index.upsert([make_chunk("alpha")])
    assert index.search("alpha", k=0) == []


def test_many_chunks(index: SqliteBM25Index) -> None:
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


def test_ids_follow_a_model_through_random_upserts_and_deletes(index: SqliteBM25Index) -> None:
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
    with sqlite3.connect(index.path) as db:
        n, total = db.execute("SELECT n_chunks, total_len FROM kw_collections").fetchone()
        assert (n, total) == db.execute("SELECT COUNT(*), SUM(length) FROM kw_chunks").fetchone()
        orphans = "SELECT COUNT(*) FROM kw_postings WHERE cid NOT IN (SELECT cid FROM kw_chunks)"
        assert db.execute(orphans).fetchone() == (0,)
    for chunk in model.values():
        assert index.search(chunk.text.split()[0], k=1)[0].chunk == chunk


def test_a_stale_tokenizer_version_rebuilds_postings(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    with SqliteBM25Index(path, "main") as idx:
        idx.upsert([make_chunk("alpha 回滚流程")])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM kw_postings")
        db.execute("UPDATE kw_collections SET tokenizer = 'old', total_len = 0")
    with SqliteBM25Index(path, "main") as idx:
        assert texts(idx.search("回滚", k=1)) == ["alpha 回滚流程"]
        assert idx.count() == 1


def test_one_writer_and_several_readers_share_an_instance(index: SqliteBM25Index) -> None:
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
        db.execute("DELETE FROM kw_postings")
        db.execute("UPDATE kw_collections SET tokenizer = 'old', total_len = 0")
    with SqliteBM25Index(path, "main") as idx:
        assert [h.chunk.rendered for h in idx.search("负责人", k=1)] == [rendered]
