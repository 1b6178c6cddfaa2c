"""Every shipped prompt file: parsed, rendered against a golden file, placeholders checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.answer.answerability import answerability_messages
from app.answer.followup import rewrite_messages
from app.answer.prompt import build_messages
from index.reranker import LLMReranker
from index.types import Chunk, Hit
from prompts.template import HERE, load, named

GOLDEN = Path(__file__).with_name("golden")
HISTORY = [
    {"role": "user", "content": "What port does orbit-agent use?"},
    {"role": "assistant", "content": "orbit-agent uses port 7070. [1]"},
]


def _hit() -> Hit:
    text = "| orbit-agent | Lin Wei | 7070 |"
    return Hit(Chunk("c1", text, "d1", "orbit-runbook.md", "Orbit runbook", 0, 0, len(text)), 1.0)


class _NoJudge:
    def yes_probability(self, prompts: object) -> list[float]:
        raise AssertionError("not called")


def _rendered(messages: list[dict[str, str]]) -> str:
    return "".join(f"=== {m['role']}\n{m['content']}\n" for m in messages)


CASES = {
    "rerank_v1_en.txt": lambda: LLMReranker(_NoJudge()).messages(
        "How often do API keys rotate?", "API keys rotate every 30 days."
    ),
    "rewrite_v2_en.txt": lambda: rewrite_messages(HISTORY, "And who owns it?"),
    "answerable_v1_en.txt": lambda: answerability_messages(
        build_messages("Who owns orbit-agent?", [_hit()], lambda t: len(t.split()), 10_000)
    ),
    "rewrite_v2_zh.txt": lambda: rewrite_messages(
        [
            {"role": "user", "content": "orbit-agent 用哪个端口？"},
            {"role": "assistant", "content": "orbit-agent 使用 7070 端口。[1]"},
        ],
        "它归谁负责？",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_prompt_matches_golden_file(name: str) -> None:
    """Regenerate with DOCQA_UPDATE_GOLDEN=1 after an intended wording change (and bump the
    file's version)."""
    rendered = _rendered(CASES[name]())
    golden = GOLDEN / name
    if os.environ.get("DOCQA_UPDATE_GOLDEN") == "1":
        golden.write_text(rendered, encoding="utf-8")
    assert rendered == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", sorted(HERE.glob("*.md")), ids=lambda p: p.name)
def test_every_prompt_file_parses_and_names_its_version(path: Path) -> None:
    template = load(path)
    assert template.version.isdigit()
    assert path.stem.endswith(f"_v{template.version}")  # the file name says its version
    assert template.placeholders


def test_a_missing_or_unknown_placeholder_is_an_error() -> None:
    template = named("rerank_v1")
    with pytest.raises(ValueError, match="takes"):
        template.render(passage="p")
    with pytest.raises(ValueError, match="takes"):
        template.render(passage="p", question="q", extra="x")


def test_the_rewrite_prompt_keeps_its_fixed_part_first() -> None:
    """The rules and examples are the system message, the same for every conversation, so
    llama.cpp reuses their KV cache; only the user message varies."""
    a = rewrite_messages(HISTORY, "And who owns it?")
    b = rewrite_messages([{"role": "user", "content": "x"}], "y")
    assert a[0] == b[0] and a[0]["role"] == "system" and "{{" not in a[0]["content"]
    assert a[1] != b[1]
