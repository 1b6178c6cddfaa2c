"""Loaders: public QA formats -> `EvalSet` (documents + questions with gold documents/answers).

- ``squad``: SQuAD v1.1/v2.0 JSON (XQuAD, CMRC 2018). A document is a paragraph's context
  (identical contexts are one document); a question's gold document is its paragraph, its gold
  answers the answer texts. ``answer_start`` is never used: answers are matched by text (about
  5% of CMRC 2018's offsets do not line up). SQuAD 2.0's ``is_impossible`` questions have no
  gold: the right output is a decline.
- ``beir``: a folder with ``corpus.jsonl`` (``_id, title, text``), ``queries.jsonl``
  (``_id, text``) and ``qrels/test.tsv`` (``query-id, corpus-id, score``; another split when
  there is no test one). Graded relevance, no answers; queries without a positive qrel are left
  out.
- ``hotpot``: HotpotQA JSON (``_id, question, answer, supporting_facts, context``) plus a corpus
  ``<name>_corpus.json`` beside it (title -> sentences). Without a corpus file the documents
  are the union of the questions' ``context`` paragraphs (the distractor setting). Gold
  documents: the titles in ``supporting_facts``.
- ``jsonl``: our own format, one JSON object a line (docs/EVALUATION.md):
  ``{"type": "doc", "id", "title"?, "text" | "path"}`` and
  ``{"type": "question", "id", "question", "answers": [...], "doc_ids": [...], "relevance"?}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eval.errors import DatasetError
from eval.types import FORMATS, Document, EvalSet, Question

log = logging.getLogger(__name__)


def load_dataset(path: Path, fmt: str) -> EvalSet:
    """Load ``path`` in format ``fmt`` (one of `FORMATS`)."""
    loaders: dict[str, Callable[[Path], EvalSet]] = {
        "squad": load_squad,
        "beir": load_beir,
        "hotpot": load_hotpot,
        "jsonl": load_jsonl,
    }
    if fmt not in loaders:
        raise DatasetError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not path.exists():
        raise DatasetError(f"data set not found: {path}")
    evalset = loaders[fmt](path)
    if not evalset.documents:
        raise DatasetError(f"{path}: no documents")
    if not evalset.questions:
        raise DatasetError(f"{path}: no questions")
    log.info(
        "%s: %d documents, %d questions",
        evalset.name,
        len(evalset.documents),
        len(evalset.questions),
    )
    return evalset


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _unique_id(qid: str, seen: set[str]) -> str:
    """Question ids must be unique in a run: a repeated one gets ``#2``, ``#3``..."""
    candidate, n = qid, 1
    while candidate in seen:
        n += 1
        candidate = f"{qid}#{n}"
    seen.add(candidate)
    return candidate


# ---------------------------------------------------------------------------------------- squad
def load_squad(path: Path) -> EvalSet:
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DatasetError(f"{path}: not SQuAD JSON (no top-level 'data' list)")
    documents: dict[str, Document] = {}
    by_context: dict[str, str] = {}
    questions: list[Question] = []
    seen: set[str] = set()
    try:
        for a, article in enumerate(data["data"]):
            for p, paragraph in enumerate(article["paragraphs"]):
                context = paragraph["context"]
                doc_id = by_context.get(context)
                if doc_id is None:
                    doc_id = str(paragraph.get("id") or f"a{a:03d}-p{p:02d}")
                    by_context[context] = doc_id
                    documents[doc_id] = Document(doc_id, text=context)
                for qa in paragraph["qas"]:
                    text = str(qa["question"]).strip()
                    if not text:
                        continue
                    impossible = bool(qa.get("is_impossible", False))
                    answers = () if impossible else _answer_texts(qa.get("answers", []))
                    questions.append(
                        Question(
                            _unique_id(str(qa["id"]), seen),
                            text,
                            answers,
                            {} if impossible else {doc_id: 1},
                        )
                    )
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not SQuAD JSON (missing {exc})") from exc
    return EvalSet(path.stem, "squad", documents, questions, [path])


def _answer_texts(answers: list[dict[str, Any]]) -> tuple[str, ...]:
    texts = [str(a["text"]).strip() for a in answers if str(a.get("text", "")).strip()]
    return tuple(dict.fromkeys(texts))


# ----------------------------------------------------------------------------------------- beir
def load_beir(path: Path) -> EvalSet:
    root = path if path.is_dir() else path.parent
    corpus, queries = root / "corpus.jsonl", root / "queries.jsonl"
    qrels = _qrels_file(root)
    documents: dict[str, Document] = {}
    for line_no, record in _jsonl(corpus):
        try:
            doc_id = str(record["_id"])
            documents[doc_id] = Document(
                doc_id, title=str(record.get("title") or "").strip(), text=str(record["text"])
            )
        except KeyError as exc:
            raise DatasetError(f"{corpus}:{line_no}: missing {exc}") from exc
    texts = {str(r["_id"]): str(r["text"]) for _, r in _jsonl(queries) if "_id" in r}
    relevance: dict[str, dict[str, int]] = {}
    with qrels.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if (line_no == 1 and fields[0] == "query-id") or not line.strip():
                continue
            if len(fields) != 3:
                raise DatasetError(f"{qrels}:{line_no}: expected query-id, corpus-id, score")
            qid, doc_id, score = fields
            if int(score) > 0 and doc_id in documents:
                relevance.setdefault(qid, {})[doc_id] = int(score)
    questions = [
        Question(qid, texts[qid].strip(), (), rel)
        for qid, rel in relevance.items()
        if texts.get(qid, "").strip()
    ]
    return EvalSet(root.name, "beir", documents, questions, [corpus, queries, qrels], graded=True)


def _qrels_file(root: Path) -> Path:
    for split in ("test", "dev", "validation", "train"):
        candidate = root / "qrels" / f"{split}.tsv"
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{root}: no qrels/test.tsv (nor dev, validation or train)")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{line_no}: invalid JSON: {exc}") from exc
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}:{line_no}: expected a JSON object")
                yield line_no, record
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


# --------------------------------------------------------------------------------------- hotpot
def load_hotpot(path: Path) -> EvalSet:
    questions_file, corpus_file = _hotpot_files(path)
    raw = _read_json(questions_file)
    if not isinstance(raw, list):
        raise DatasetError(f"{questions_file}: expected a JSON list of HotpotQA questions")
    files = [questions_file]
    documents: dict[str, Document] = {}
    if corpus_file is not None:
        files.append(corpus_file)
        for title, sentences in _corpus_items(_read_json(corpus_file), corpus_file):
            documents[title] = Document(title, title=title, text="".join(sentences).strip())
    questions: list[Question] = []
    seen: set[str] = set()
    missing = 0
    try:
        for item in raw:
            if corpus_file is None:
                for title, sentences in item.get("context", []):
                    documents.setdefault(
                        title, Document(title, title=title, text="".join(sentences).strip())
                    )
            gold = {str(title): 1 for title, _ in item["supporting_facts"]}
            missing += sum(1 for title in gold if title not in documents)
            gold = {title: 1 for title in gold if title in documents}
            answer = str(item["answer"]).strip()
            questions.append(
                Question(
                    _unique_id(str(item["_id"]), seen),
                    str(item["question"]).strip(),
                    (answer,) if answer else (),
                    gold,
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{questions_file}: not HotpotQA JSON ({exc!r})") from exc
    notes = [f"{missing} supporting titles not in the corpus were dropped"] if missing else []
    return EvalSet(questions_file.stem, "hotpot", documents, questions, files, notes=notes)


def _hotpot_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_file():
        corpus = path.with_name(f"{path.stem}_corpus.json")
        return path, corpus if corpus.is_file() else None
    corpora = sorted(path.glob("*_corpus.json"))
    candidates = [p for p in sorted(path.glob("*.json")) if p not in corpora]
    if len(candidates) != 1:
        raise DatasetError(f"{path}: expected one HotpotQA questions file, found {len(candidates)}")
    question_file = candidates[0]
    corpus = path / f"{question_file.stem}_corpus.json"
    return question_file, corpus if corpus.is_file() else None


def _corpus_items(data: Any, path: Path) -> Iterator[tuple[str, list[str]]]:
    """``{title: [sentences]}``, or a list of ``{title, text|sentences}`` objects."""
    if isinstance(data, dict):
        for title, sentences in data.items():
            yield str(title), [sentences] if isinstance(sentences, str) else list(sentences)
    elif isinstance(data, list):
        for item in data:
            body = item.get("sentences", item.get("text", ""))
            yield str(item["title"]), [body] if isinstance(body, str) else list(body)
    else:
        raise DatasetError(f"{path}: expected a title -> sentences mapping")


# ---------------------------------------------------------------------------------------- jsonl
def load_jsonl(path: Path) -> EvalSet:
    documents: dict[str, Document] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    files = [path]
    for line_no, record in _jsonl(path):
        kind = record.get("type")
        if kind == "doc":
            doc = _jsonl_document(path, line_no, record)
            if doc.id in documents:
                raise DatasetError(f"{path}:{line_no}: document id {doc.id!r} repeated")
            documents[doc.id] = doc
            if doc.path is not None:
                files.append(doc.path)
        elif kind == "question":
            pending.append((line_no, record))
        else:
            raise DatasetError(f"{path}:{line_no}: 'type' must be 'doc' or 'question'")
    questions: list[Question] = []
    seen: set[str] = set()
    graded = False
    for line_no, record in pending:
        question = _jsonl_question(path, line_no, record, documents)
        if question.id in seen:
            raise DatasetError(f"{path}:{line_no}: question id {question.id!r} repeated")
        seen.add(question.id)
        graded = graded or "relevance" in record
        questions.append(question)
    return EvalSet(path.stem, "jsonl", documents, questions, files, graded=graded)


def _jsonl_document(path: Path, line_no: int, record: dict[str, Any]) -> Document:
    doc_id = str(record.get("id") or "").strip()
    if not doc_id:
        raise DatasetError(f"{path}:{line_no}: a doc needs an 'id'")
    title = str(record.get("title") or "").strip()
    if "path" in record:
        file = (path.parent / str(record["path"])).resolve()
        if not file.is_file():
            raise DatasetError(f"{path}:{line_no}: no such file {file}")
        return Document(doc_id, title=title, path=file)
    if not str(record.get("text") or "").strip():
        raise DatasetError(f"{path}:{line_no}: a doc needs a non-empty 'text' or a 'path'")
    return Document(doc_id, title=title, text=str(record["text"]))


def _jsonl_question(
    path: Path, line_no: int, record: dict[str, Any], documents: dict[str, Document]
) -> Question:
    qid = str(record.get("id") or "").strip()
    text = str(record.get("question") or "").strip()
    if not qid or not text:
        raise DatasetError(f"{path}:{line_no}: a question needs an 'id' and a 'question'")
    answers = record.get("answers", [])
    if not isinstance(answers, list):
        raise DatasetError(f"{path}:{line_no}: 'answers' must be a list of strings")
    if "relevance" in record:
        relevance = {str(k): int(v) for k, v in dict(record["relevance"]).items() if int(v) > 0}
    else:
        relevance = dict.fromkeys((str(d) for d in record.get("doc_ids", [])), 1)
    unknown = sorted(set(relevance) - set(documents))
    if unknown:
        raise DatasetError(f"{path}:{line_no}: unknown doc ids {', '.join(unknown)}")
    clean = tuple(dict.fromkeys(str(a).strip() for a in answers if str(a).strip()))
    return Question(qid, text, clean, relevance, _history(path, line_no, record))


def _history(path: Path, line_no: int, record: dict[str, Any]) -> tuple[dict[str, str], ...]:
    """A conversation's earlier turns: user and assistant, alternating, the user first."""
    turns = record.get("history", [])
    if not isinstance(turns, list):
        raise DatasetError(f"{path}:{line_no}: 'history' must be a list of turns")
    out: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        want = "user" if i % 2 == 0 else "assistant"
        if not isinstance(turn, dict) or turn.get("role") != want or not turn.get("content"):
            raise DatasetError(
                f"{path}:{line_no}: history turn {i + 1} must be a {want} turn with 'content'"
            )
        out.append({"role": want, "content": str(turn["content"])})
    return tuple(out)
