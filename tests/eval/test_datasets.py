"""Loaders on tiny hand-made files, one per format, and their error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.datasets import load_dataset
from eval.errors import DatasetError

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
REPO = Path(__file__).resolve().parents[2]


def test_squad() -> None:
    ds = load_dataset(DATA / "squad_tiny.json", "squad")
    assert ds.format == "squad" and ds.name == "squad_tiny"
    # the repeated context is one document; a blank question is skipped
    assert list(ds.documents) == ["a000-p00", "a000-p01"]
    assert ds.documents["a000-p01"].text == "部署日志保留九十天，之后自动删除。"
    by_id = {q.id: q for q in ds.questions}
    assert list(by_id) == ["s1", "s2", "s3", "s1#2", "s5"]  # a repeated id gets "#2"
    assert by_id["s1"].answers == ("15 minutes", "at most 15 minutes")  # deduplicated
    assert by_id["s1"].relevance == {"a000-p00": 1}
    assert by_id["s1#2"].relevance == {"a000-p00": 1}  # the shared context's one document
    # answer_start 99 is past the context: answers are matched by text, never by offset
    assert by_id["s3"].answers == ("九十天",)
    assert by_id["s5"].natively_unanswerable  # SQuAD 2.0 is_impossible
    assert not ds.graded
    assert ds.files == [DATA / "squad_tiny.json"]


def test_beir() -> None:
    ds = load_dataset(DATA / "beir_tiny", "beir")
    assert ds.graded and ds.name == "beir_tiny"
    assert ds.documents["d1"].content() == (
        b"Vitamin D and bones\n\nVitamin D supplements increase bone density in older adults."
    )
    assert ds.documents["d2"].content() == b"Sleep deprivation impairs working memory."
    # query 3 has only a 0 judgement and query 4 none: both left out
    assert [(q.id, dict(q.relevance)) for q in ds.questions] == [
        ("1", {"d1": 2, "d3": 1}),
        ("2", {"d2": 1}),
    ]
    assert all(q.answers == () for q in ds.questions)
    assert [p.name for p in ds.files] == ["corpus.jsonl", "queries.jsonl", "test.tsv"]


def test_hotpot_with_a_corpus_file() -> None:
    ds = load_dataset(DATA / "hotpot_tiny" / "hotpot_tiny.json", "hotpot")
    assert set(ds.documents) == {"Blue Harbor", "Sea Museum", "Lost Archive", "Unrelated Page"}
    doc = ds.documents["Sea Museum"]
    assert doc.title == "Sea Museum"
    assert doc.content().decode() == (
        "Sea Museum\n\nThe Sea Museum was founded in 1990. It is located in Lisbon."
    )
    h1, h2 = ds.questions
    assert h1.answers == ("Lisbon",)
    assert h1.gold_docs == {"Blue Harbor", "Sea Museum"}
    assert h2.answers == ("yes",)
    assert len(ds.files) == 2
    # the folder works too
    assert set(load_dataset(DATA / "hotpot_tiny", "hotpot").documents) == set(ds.documents)


def test_hotpot_without_a_corpus_uses_the_question_contexts(tmp_path: Path) -> None:
    source = DATA / "hotpot_tiny" / "hotpot_tiny.json"
    (tmp_path / "q.json").write_bytes(source.read_bytes())
    ds = load_dataset(tmp_path / "q.json", "hotpot")
    assert set(ds.documents) == {"Blue Harbor", "Sea Museum", "Lost Archive"}


def test_jsonl_inline_documents_and_unanswerable_questions() -> None:
    ds = load_dataset(DATA / "tiny.jsonl", "jsonl")
    assert len(ds.documents) == 5 and len(ds.questions) == 5
    assert ds.documents["canteen-zh"].content().decode().startswith("食堂规定\n\n公司食堂")
    off = next(q for q in ds.questions if q.id == "q-offtopic")
    assert off.natively_unanswerable
    assert not ds.graded


def test_jsonl_documents_by_path_are_copied_as_files() -> None:
    ds = load_dataset(REPO / "tests" / "data" / "eval_gate.jsonl", "jsonl")
    pdf = ds.documents["security-policy"]
    assert pdf.path == REPO / "examples" / "security-policy.pdf"
    assert pdf.suffix == ".pdf"
    assert pdf.content() == pdf.path.read_bytes()
    assert REPO / "examples" / "onboarding.zh.docx" in ds.files  # part of the data set's hash


def test_jsonl_graded_relevance(tmp_path: Path) -> None:
    lines = [
        {"type": "doc", "id": "a", "text": "alpha"},
        {"type": "doc", "id": "b", "text": "beta"},
        {"type": "question", "id": "q", "question": "which?", "relevance": {"a": 2, "b": 0}},
    ]
    path = tmp_path / "g.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    ds = load_dataset(path, "jsonl")
    assert ds.graded
    assert dict(ds.questions[0].relevance) == {"a": 2}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"type": "doc", "id": "a"}'], "non-empty 'text' or a 'path'"),
        (['{"type": "note"}'], "'type' must be"),
        (['{"type": "doc", "id": "a", "text": "x"}', "{oops"], ":2: invalid JSON"),
        (
            [
                '{"type": "doc", "id": "a", "text": "x"}',
                '{"type": "question", "id": "q", "question": "?", "doc_ids": ["zz"]}',
            ],
            "unknown doc ids zz",
        ),
        (['{"type": "doc", "id": "a", "path": "missing.pdf"}'], "no such file"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, "jsonl")


def test_format_and_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown format"):
        load_dataset(DATA / "tiny.jsonl", "csv")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nothing.json", "squad")
    with pytest.raises(DatasetError, match="not SQuAD"):
        load_dataset(DATA / "hotpot_tiny" / "hotpot_tiny.json", "squad")
    with pytest.raises(DatasetError, match="no qrels"):
        load_dataset(DATA / "hotpot_tiny", "beir")


def test_jsonl_follow_ups_carry_their_history(tmp_path: Path) -> None:
    ds = load_dataset(REPO / "tests" / "data" / "conversations.jsonl", "jsonl")
    assert len(ds.questions) == 14 and all(len(q.history) == 2 for q in ds.questions)
    first = ds.questions[0]
    assert first.history[0] == {"role": "user", "content": "What port does orbit-agent use?"}
    assert first.history[1]["role"] == "assistant"
    assert any(q.id == "cv12" and q.text == "那 VPN 呢？" for q in ds.questions)


@pytest.mark.parametrize(
    "history",
    [
        "not a list",
        [{"role": "assistant", "content": "an assistant first"}],
        [{"role": "user", "content": "q"}, {"role": "user", "content": "two users"}],
        [{"role": "user", "content": ""}],
    ],
)
def test_jsonl_bad_history_is_an_error_naming_the_line(tmp_path: Path, history: object) -> None:
    lines = [
        {"type": "doc", "id": "a", "text": "alpha"},
        {"type": "question", "id": "q", "question": "and?", "history": history},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"c\.jsonl:2: .*history"):
        load_dataset(path, "jsonl")
