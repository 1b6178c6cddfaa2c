"""The common shape every data set loads into: documents to ingest, questions with their gold.

A question's gold is two things: the documents that hold its answer (``relevance``: document id
-> graded relevance, at least 1) and the answer strings (``answers``). Either may be empty:
BEIR has relevance but no answers; a question with neither is unanswerable by construction
(SQuAD 2.0's ``is_impossible``, or a jsonl question with no ``doc_ids``), and the right output is
a decline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Format = Literal["squad", "beir", "hotpot", "jsonl"]
FORMATS: tuple[Format, ...] = ("squad", "beir", "hotpot", "jsonl")


@dataclass(frozen=True)
class Document:
    """One document of the corpus: inline text (written as a ``.txt`` file) or a file to copy."""

    id: str
    title: str = ""
    text: str | None = None
    path: Path | None = None  # an existing file (any format ingest reads), used as is

    def __post_init__(self) -> None:
        if (self.text is None) == (self.path is None):
            raise ValueError(f"document {self.id!r} needs exactly one of text and path")

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower() if self.path is not None else ".txt"

    def content(self) -> bytes:
        """The bytes of the file ingest reads: the title, a blank line, then the text."""
        if self.path is not None:
            return self.path.read_bytes()
        assert self.text is not None
        body = f"{self.title}\n\n{self.text}" if self.title else self.text
        return body.encode("utf-8")


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...] = ()
    relevance: Mapping[str, int] = field(default_factory=dict)  # doc id -> grade (>= 1)
    # A follow-up's conversation so far ({"role": "user" | "assistant", "content": ...}, oldest
    # first): the question is asked with it, so the run measures rewrite + retrieval + answer.
    history: tuple[Mapping[str, str], ...] = ()

    @property
    def gold_docs(self) -> frozenset[str]:
        return frozenset(self.relevance)

    @property
    def natively_unanswerable(self) -> bool:
        """No gold document and no answer: the data set itself says the corpus cannot answer."""
        return not self.relevance and not self.answers


@dataclass
class EvalSet:
    name: str
    format: Format
    documents: dict[str, Document]  # id -> document, in file order
    questions: list[Question]
    files: list[Path]  # every file read, for the data set's sha256
    graded: bool = False  # relevance grades beyond 0/1 exist (BEIR qrels): report nDCG@10
    notes: list[str] = field(default_factory=list)
