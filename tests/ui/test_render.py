"""The UI's pure parts: highlighting the cited sentences, the HTML of answers, sources, reports,
and the conversation kept per browser session. Everything from the server is escaped."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from tests.ui.jobs import REPORT, job_json
from ui import render
from ui.conversation import Exchange, chat_messages, exchange_at, history
from ui.highlight import citing_text, highlight, sentence_spans, strip_markers
from ui.types import Answer, Citation, Collection, Job, UploadFailure, UploadReport

PASSAGE = (
    "Access control\n\n"
    "All API keys are rotated every 90 days by the security team. "
    "Keys older than 90 days are revoked automatically.\n"
    "- Audit logs are kept for one year."
)
ZH_PASSAGE = "账号与权限。生产环境权限只授予通过考试的成员。测试环境权限默认开通给团队全部成员。"


def citation(n: int = 1, snippet: str = PASSAGE, **kw: object) -> Citation:
    base: dict[str, object] = {
        "n": n,
        "source": "security-policy.pdf",
        "title": "Security Policy",
        "page": 2,
        "snippet": snippet,
        "score": 0.03,
    }
    return Citation(**{**base, **kw})  # type: ignore[arg-type]


def answer(text: str = "API keys are rotated every 90 days [1].", **kw: object) -> Answer:
    base: dict[str, object] = {
        "answer": text,
        "citations": [citation()],
        "confidence": 0.82,
        "low_confidence": False,
        "declined": False,
        "degraded": False,
        "query": "How often do API keys rotate?",
    }
    return Answer(**{**base, **kw})  # type: ignore[arg-type]


def marked(segments: list) -> list[str]:  # type: ignore[type-arg]
    return [s.text.strip() for s in segments if s.marked]


@pytest.mark.parametrize(
    ("passage", "cited"),
    [
        (PASSAGE, "Keys rotate every 90 days."),
        (ZH_PASSAGE, "生产环境权限只授予通过考试的成员"),
        ("", "anything"),
        ("no sentence end", ""),
        ("a.b.c!!!\n\n\n", "a"),
    ],
)
def test_segments_always_join_back_to_the_passage(passage: str, cited: str) -> None:
    assert "".join(s.text for s in highlight(passage, cited)) == passage
    spans = sentence_spans(passage)
    assert "".join(passage[a:b] for a, b in spans) == passage


def test_the_sentence_the_answer_relies_on_is_marked_not_its_neighbours() -> None:
    got = marked(highlight(PASSAGE, "API keys are rotated every 90 days by the security team."))
    assert got == ["All API keys are rotated every 90 days by the security team."]
    # A wrapped line stays in its sentence; a list item is a sentence of its own.
    wrapped = "- The rotation schedule is kept in PagerDuty under the service\n  Orbit Platform."
    got = marked(highlight("Rotation\n\n" + wrapped, "The schedule is kept in PagerDuty."))
    assert got == [wrapped]


def test_chinese_passages_are_matched_by_character_bigrams() -> None:
    got = marked(highlight(ZH_PASSAGE, "生产环境的权限只给通过了考试的成员。"))
    assert got == ["生产环境权限只授予通过考试的成员。"]


def test_nothing_is_marked_when_nothing_is_shared() -> None:
    assert marked(highlight(PASSAGE, "The cafeteria serves pizza on Fridays.")) == []


def test_citing_text_takes_the_sentences_with_that_marker() -> None:
    text = "Keys rotate every 90 days [1]. Logs are kept a year [2][3]. Both apply 【1-2】."
    assert citing_text(text, 1) == "Keys rotate every 90 days. Both apply."
    assert citing_text(text, 3) == "Logs are kept a year."
    assert citing_text("No markers here.", 4) == "No markers here."
    assert strip_markers("密钥每90天轮换【1】。") == "密钥每90天轮换。"


def test_source_panel_names_the_source_and_marks_the_cited_passage() -> None:
    html = render.source_panel(citation(), "API keys are rotated every 90 days [1].")
    assert "security-policy.pdf" in html and "page 2" in html and "Security Policy" in html
    assert re.search(r"<mark>All API keys are rotated every 90 days[^<]*</mark>", html)
    assert "could not be located" not in html
    unrelated = render.source_panel(citation(), "Pizza on Fridays [1].")
    assert "<mark>" not in unrelated and "could not be located" in unrelated


def test_everything_from_the_server_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    c = citation(source=f"{evil}.md", title=evil, snippet=f"{evil} keys rotate")
    a = answer(text=f"{evil} [1]", citations=[c], query=evil)
    html = render.assistant_message(a, "q") + render.source_panel(c, a.answer)
    html += render.error_message(evil) + render.user_message(evil) + render.hint(evil)
    html += render.upload_report(
        f"{evil}.md", evil, report(files_failed=1, failures=[UploadFailure("x", evil)])
    )
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_answer_message_has_badge_sources_and_no_warning_when_confident() -> None:
    html = render.assistant_message(answer(), "How often do API keys rotate?")
    assert "docqa-badge-high" in html and "confidence 82%" in html
    assert "[1] Security Policy · p. 2" in html
    assert "docqa-warning" not in html and "Searched for" not in html


@pytest.mark.parametrize(
    ("flags", "kinds", "level"),
    [
        ({"declined": True, "low_confidence": True, "citations": []}, ["declined"], "low"),
        ({"degraded": True}, ["degraded"], "high"),
        ({"low_confidence": True, "confidence": 0.31}, ["low-confidence"], "low"),
        ({"confidence": 0.6}, [], "medium"),
    ],
)
def test_warnings_for_declined_degraded_and_low_confidence_answers(
    flags: dict[str, object], kinds: list[str], level: str
) -> None:
    a = answer(**flags)
    assert [kind for kind, _ in render.warnings(a)] == kinds
    html = render.assistant_message(a, a.query)
    assert f"docqa-badge-{level}" in html
    for kind in kinds:
        assert f"docqa-warning-{kind}" in html and "⚠️" in html


def test_follow_up_shows_what_was_searched_for() -> None:
    a = answer(query="How long does it take?\nHow often do API keys rotate?")
    html = render.assistant_message(a, "How long does it take?")
    assert "Searched for: How long does it take? How often do API keys rotate?" in html


def report(**kw: Any) -> UploadReport:
    return replace(UploadReport.from_json(REPORT), **kw)


def test_upload_reports_say_what_happened() -> None:
    assert "✅ 值班手册.md added to docs." in render.upload_report("值班手册.md", "docs", report())
    assert "3 chunks added" in render.upload_report("a.md", "docs", report())
    changed = render.upload_report("a.md", "docs", report(files_new=0, files_changed=1))
    assert "updated in docs" in changed
    same = render.upload_report("a.md", "docs", report(files_new=0, files_unchanged=1))
    assert "already in docs, unchanged" in same
    failed = render.upload_report(
        "x.pdf", "docs", report(files_new=0, files_failed=1, failures=[UploadFailure("x", "enc")])
    )
    assert "could not be ingested: enc" in failed and "docqa-report-failed" in failed


def test_an_ingest_jobs_progress_and_end_are_readable_and_escaped() -> None:
    queued = Job.from_json(job_json(source="<b>.md"))
    assert render.job_stage(queued) == "queued"
    html = render.job_progress("<b>.md", queued)
    assert "⏳ &lt;b&gt;.md: queued" in html and "<b>" not in html
    retried = Job.from_json(job_json("running", "embedding", 2, 5, attempts=2))
    assert render.job_stage(retried) == "embedding 2/5 chunks (attempt 2 of 3)"
    claimed = Job.from_json(job_json("running", "queued"))  # before its first heartbeat
    assert render.job_stage(claimed) == "starting"
    pending = render.job_pending("a.md", retried, 300)
    assert "still running after 300 s" in pending and "job-1" in pending
    done = render.job_report("a.md", Job.from_json(job_json("done", report=REPORT)))
    assert done == render.upload_report("a.md", "docs", report())
    failed = render.job_report("a.md", Job.from_json(job_json("failed", error="store <down>")))
    assert "could not be ingested: store &lt;down&gt;" in failed and "docqa-report-failed" in failed


def test_collection_and_source_choices() -> None:
    cols = [Collection("docs", 49, 5)]
    assert render.collection_choices(cols) == [("docs (5 documents, 49 chunks)", "docs")]
    two = answer(citations=[citation(2, page=None, title=""), citation(1)])
    assert render.source_choices(two) == [
        ("[2] security-policy.pdf", "2"),
        ("[1] Security Policy · p. 2", "1"),
    ]
    assert render.source_choices(None) == []


def test_conversation_history_and_messages() -> None:
    done = Exchange("How often do keys rotate?", answer=answer())
    failed = Exchange("x", error="Cannot reach the docqa server")
    streaming = Exchange("追问：谁负责？", partial="Priya")
    exchanges = [done, failed, streaming]
    assert history(exchanges) == [
        {"role": "user", "content": "How often do keys rotate?"},
        {"role": "assistant", "content": "API keys are rotated every 90 days [1]."},
    ]
    messages = chat_messages(exchanges)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert "docqa-badge" in messages[1]["content"]
    assert "docqa-error" in messages[3]["content"] and "Cannot reach" in messages[3]["content"]
    assert messages[4]["content"] == "追问：谁负责？" and messages[5]["content"].startswith("Priya")
    assert "Searching" in chat_messages([Exchange("q")])[1]["content"]
    assert (exchange_at(5), exchange_at(0), exchange_at(-1), exchange_at(None)) == (
        2,
        0,
        None,
        None,
    )


@pytest.mark.parametrize(
    "module", ["highlight", "render", "errors", "sse", "client", "conversation"]
)
def test_docstring_examples_hold(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"ui.{module}"))
    assert result.failed == 0 and result.attempted > 0
