"""report.html: self-contained, every figure embedded, every question listed and escaped."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from eval.aggregate import aggregate
from eval.report import render, write_report
from eval.scoring import Observation, record
from eval.selection import Selected
from eval.store import Run
from eval.types import Question


def _records() -> list[dict[str, Any]]:
    out = []
    for i in range(12):
        q = Question(f"q{i}", f"Question <b>{i}</b> & more?", (f"answer {i}",), {f"d{i}": 1})
        obs = Observation(
            retrieved=[f"d{i}", "x"] if i % 3 else ["x", f"d{i}"],
            timings_ms={
                "embed": 5.0 + i,
                "retrieve": 2.0,
                "rerank": 0.0,
                "generate": 90.0 * i,
                "total": 100.0 * i + 10,
            },
            answer=f"answer {i} [1]" if i % 2 else "something else [1]",
            confidence=i / 12,
            declined=i == 11,
            citations=[{"n": 1, "chunk_id": f"c{i}", "doc_id": f"d{i}"}],
            cited_texts=[f"answer {i}"],
        )
        out.append(record(Selected(q, i != 10), obs, graded=False))
    return out


CONFIG: dict[str, Any] = {
    "name": "tiny <run>",
    "created": "2026-01-02T03:04:05+00:00",
    "dataset": {"name": "tiny", "format": "jsonl", "sha256": "ab" * 32},
    "models": {"generator": {"id": "smollm2-135m-instruct", "sha256": "cd" * 32}},
    "code": {"commit": "0123456789abcdef", "dirty": True},
    "settings": {"profile": {"value": "test", "origin": "override"}},
    "mode": {"retrieval_only": False, "top_k": 5},
}


def test_report_is_self_contained_and_lists_every_question(tmp_path: Path) -> None:
    records = _records()
    page = render(CONFIG, aggregate(records), records)
    assert page.startswith("<!doctype html>")
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 3  # reliability diagram, confidence histogram, latency
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing fetched
    for i in range(12):
        assert f"<td>q{i}</td>" in page
    assert "Question &lt;b&gt;3&lt;/b&gt; &amp; more?" in page  # escaped, not markup
    assert "<b>3</b>" not in page
    assert "tiny &lt;run&gt;" in page
    assert "DOCQA_LOW_CONFIDENCE=" in page  # the suggested threshold is explained
    for label in ("hit@5", "mrr@10", "citation_precision", "decline_recall", "auroc", "p95"):
        assert label in page
    run = Run(tmp_path)
    write_report(run, CONFIG, aggregate(records), records)
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page


def test_report_of_a_retrieval_only_run_has_no_calibration() -> None:
    records = [
        record(
            Selected(Question("q", "Which?", (), {"d": 1}), True),
            Observation(retrieved=["d"], timings_ms={"embed": 1.0, "retrieve": 1.0, "total": 3.0}),
            graded=True,
        )
    ]
    config = {**CONFIG, "mode": {"retrieval_only": True, "top_k": 5}}
    page = render(config, aggregate(records), records)
    assert "Reliability diagram" not in page
    assert page.count("data:image/png;base64,") == 1  # latency only
    assert "retrieval only" in page
