"""Pure functions from API results to the HTML the chat UI shows. Every piece of text is escaped.

Chat messages are Markdown with block-level HTML (a ``<div>`` on one line is not re-read as
Markdown), so file names with ``_`` or ``*`` show as they are. The CSS classes used here are
styled in ``ui/style.css``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from ui.highlight import citing_text, highlight
from ui.types import Answer, Citation, Collection, Job, UploadReport

HIGH_CONFIDENCE = 0.75  # at or above: "high"; the server decides what is "low"

DECLINED = (
    "No answer found in the documents: the service declined rather than guess. Try rephrasing, "
    "another collection, or more passages (top-k) in the settings."
)
DEGRADED = (
    "Fallback answer: the language model failed or ran out of time, so this is the best "
    "matching sentence of the top source, not a generated answer."
)
LOW_CONFIDENCE = (
    "Low confidence: the sources support this answer only weakly. Check them before relying on it."
)


def esc(text: str) -> str:
    """HTML-escaped text.

    >>> esc('<b>"x" & 页</b>')
    '&lt;b&gt;&quot;x&quot; &amp; 页&lt;/b&gt;'
    """
    return html.escape(text, quote=True)


def confidence_level(answer: Answer) -> str:
    if answer.declined or answer.low_confidence:
        return "low"
    return "high" if answer.confidence >= HIGH_CONFIDENCE else "medium"


def confidence_badge(answer: Answer) -> str:
    level = confidence_level(answer)
    pct = round(answer.confidence * 100)
    return (
        f'<span class="docqa-badge docqa-badge-{level}" title="confidence {answer.confidence:.2f}">'
        f"confidence {pct}% · {level}</span>"
    )


def warnings(answer: Answer) -> list[tuple[str, str]]:
    """(kind, text) of each warning the answer deserves: declined, degraded, low confidence."""
    found = []
    if answer.declined:
        found.append(("declined", DECLINED))
    if answer.degraded:
        found.append(("degraded", DEGRADED))
    if answer.low_confidence and not answer.declined:
        found.append(("low-confidence", LOW_CONFIDENCE))
    return found


def citation_label(c: Citation) -> str:
    """How a source is named in lists: ``[n] title or file · p. 3``."""
    page = f" · p. {c.page}" if c.page is not None else ""
    return f"[{c.n}] {c.title or c.source}{page}"


def user_message(question: str) -> str:
    return esc(question)


def streaming_message(partial: str) -> str:
    return f"{esc(partial)} ▌" if partial else '<div class="docqa-thinking">Searching…</div>'


def assistant_message(answer: Answer, question: str = "") -> str:
    """The answer, then one line with its badge and sources, what was searched for when a
    follow-up was rewritten, then any warnings."""
    parts = [esc(answer.answer.strip()) or "(empty answer)", ""]
    sources = ""
    if answer.citations:
        names = " ".join(
            f'<span class="docqa-cite">{esc(citation_label(c))}</span>' for c in answer.citations
        )
        sources = f' <span class="docqa-sources">Sources: {names}</span>'
    parts.append(f'<div class="docqa-meta">{confidence_badge(answer)}{sources}</div>')
    if answer.query and " ".join(answer.query.split()) != " ".join(question.split()):
        parts.append(
            f'<div class="docqa-query">Searched for: {esc(" ".join(answer.query.split()))}</div>'
        )
    for kind, text in warnings(answer):
        parts.append(f'<div class="docqa-warning docqa-warning-{kind}">⚠️ {esc(text)}</div>')
    return "\n".join(parts)


def error_message(message: str) -> str:
    """A readable failure, in the chat or beside the upload and collection controls."""
    return f'<div class="docqa-error">⚠️ {esc(message)}</div>'


def hint(message: str) -> str:
    """A neutral note (not an error), such as an empty server."""
    return f'<div class="docqa-note">{esc(message)}</div>'


def source_choices(answer: Answer | None) -> list[tuple[str, str]]:
    """(label, value) for the source picker; the value is the citation number."""
    if answer is None:
        return []
    return [(citation_label(c), str(c.n)) for c in answer.citations]


def source_panel(citation: Citation, answer_text: str) -> str:
    """A cited passage with its source and page; the sentences the answer relies on marked."""
    cited = citing_text(answer_text, citation.n)
    segments = highlight(citation.snippet, cited)
    body = "".join(f"<mark>{esc(s.text)}</mark>" if s.marked else esc(s.text) for s in segments)
    located = any(s.marked for s in segments)
    note = (
        ""
        if located
        else '<p class="docqa-note">The cited words could not be located in this passage.</p>'
    )
    page = f" · page {citation.page}" if citation.page is not None else ""
    title = (
        f'<div class="docqa-source-title">{esc(citation.title)}</div>'
        if citation.title and citation.title != citation.source
        else ""
    )
    return (
        f'<div class="docqa-source" data-citation="{citation.n}">'
        f'<div class="docqa-source-head"><span class="docqa-source-n">[{citation.n}]</span> '
        f'<span class="docqa-source-name">{esc(citation.source)}</span>{esc(page)}</div>'
        f'{title}<blockquote class="docqa-passage">{body}</blockquote>{note}</div>'
    )


def empty_source_panel() -> str:
    return (
        '<div class="docqa-source docqa-source-empty">Pick a numbered source of an answer to see '
        "the passage it cites. Click an earlier answer to list its sources.</div>"
    )


def collection_choices(collections: Sequence[Collection]) -> list[tuple[str, str]]:
    """(label, name) of each collection, with its counts."""
    return [(f"{c.name} ({c.documents} documents, {c.chunks} chunks)", c.name) for c in collections]


def upload_report(filename: str, collection: str, report: UploadReport) -> str:
    """What happened to an uploaded file, in a sentence and a few numbers."""
    if report.files_failed:
        reasons = "; ".join(f.error for f in report.failures) or "no reason given"
        status = f"❌ {esc(filename)} could not be ingested: {esc(reasons)}"
        kind = "failed"
    elif report.files_unchanged:
        status = f"✔️ {esc(filename)} is already in {esc(collection)}, unchanged."
        kind = "unchanged"
    else:
        verb = "updated in" if report.files_changed else "added to"
        status = f"✅ {esc(filename)} {verb} {esc(collection)}."
        kind = "ok"
    stats = (
        f"{report.chunks_added} chunks added, {report.chunks_removed} removed, "
        f"in {report.seconds:.1f} s"
    )
    return (
        f'<div class="docqa-report docqa-report-{kind}"><div>{status}</div>'
        f'<div class="docqa-report-stats">{esc(stats)}</div></div>'
    )


def job_stage(job: Job) -> str:
    """Where an ingest job is, in a few words.

    >>> job_stage(Job("j1", "docs", "a.md", "running", 1, 3, "embedding", 120, 300))
    'embedding 120/300 chunks'
    """
    if job.stage == "embedding" and job.chunks_total:
        text = f"embedding {job.chunks_done}/{job.chunks_total} chunks"
    elif job.state == "running" and job.stage in ("queued", "done", "failed"):
        text = "starting"  # claimed by a worker; the first heartbeat has not said more yet
    else:
        text = job.stage
    if job.attempts > 1 and not job.finished:
        text += f" (attempt {job.attempts} of {job.max_attempts})"
    return text


def job_progress(filename: str, job: Job) -> str:
    """An upload whose ingest job is queued or running (``a.md: embedding 120/300 chunks``)."""
    return (
        f'<div class="docqa-report docqa-report-running" data-job="{esc(job.id)}">'
        f"<div>⏳ {esc(filename)}: {esc(job_stage(job))}</div></div>"
    )


def job_pending(filename: str, job: Job, waited_s: float) -> str:
    """An upload whose job is unfinished when the UI stops watching: it continues on the server."""
    status = (
        f"⏳ {esc(filename)}: still running after {waited_s:.0f} s ({esc(job_stage(job))}), "
        f'as job <code class="docqa-job-id">{esc(job.id)}</code>.'
    )
    stats = (
        f"It continues on the server (GET /v1/jobs/{job.id} shows it); refresh the collections "
        f"to see {job.collection} when it is done."
    )
    return (
        f'<div class="docqa-report docqa-report-running" data-job="{esc(job.id)}">'
        f'<div>{status}</div><div class="docqa-report-stats">{esc(stats)}</div></div>'
    )


def job_report(filename: str, job: Job) -> str:
    """A finished upload: its ingest report, or the job's error when it failed without one."""
    if job.report is not None and (job.state == "done" or job.report.files_failed):
        return upload_report(filename, job.collection, job.report)
    reason = job.error or "no reason given"
    status = f"❌ {esc(filename)} could not be ingested: {esc(reason)}"
    return (
        f'<div class="docqa-report docqa-report-failed" data-job="{esc(job.id)}">'
        f'<div>{status}</div><div class="docqa-report-stats">job {esc(job.id)}</div></div>'
    )
