"""``report.html``: one self-contained page per run (figures embedded as base64 PNGs, a few lines
of inline CSS and JavaScript, nothing fetched): what was run, the metrics, the reliability
diagram, confidence and latency figures, and every question with its answer, sortable and
filterable.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from eval.plots import confidence_png, latency_png, reliability_png
from eval.store import REPORT, Run

GROUPS: dict[str, list[tuple[str, str]]] = {
    "Retrieval (document level)": [
        ("hit@1", "a gold document ranked first"),
        ("hit@5", "a gold document in the top 5"),
        ("hit@10", "a gold document in the top 10"),
        ("mrr@10", "mean of 1 / rank of the first gold document (0 past 10)"),
        ("ndcg@10", "graded gain discounted by log2(rank + 1), over the ideal ordering"),
    ],
    "Answers": [
        ("em", "exact match with a gold answer (SQuAD / CMRC 2018 normalization)"),
        ("f1", "token F1 with the best gold answer (Chinese: CMRC 2018 LCS F1)"),
        ("recall", "share of the best gold answer's tokens found in the answer"),
        ("correct", "share of answerable questions answered right (recall >= 0.75)"),
        ("citation_precision", "share of cited passages that come from a gold document"),
        ("support", "share of the answer's content words found in its cited passages"),
    ],
    "Declines": [
        ("decline_rate", "share of questions declined"),
        ("decline_precision", "declines that were on unanswerable questions"),
        ("decline_recall", "unanswerable questions that were declined"),
    ],
    "Calibration": [
        ("ece", "expected calibration error, 10 bins, all judged questions"),
        ("auroc", "P(confidence of a right answer > a wrong one's), all judged"),
        ("ece_answered", "ECE over answered (not declined) questions"),
        ("auroc_answered", "AUROC over answered questions"),
        ("suggested_low_confidence", "DOCQA_LOW_CONFIDENCE maximizing Youden's J"),
    ],
}
_STAGES = ("embed", "retrieve", "rerank", "generate")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}.sub{color:#666}table{border-collapse:collapse}
td,th{padding:.3em .6em;border-bottom:1px solid #eee;vertical-align:top;text-align:left}
th{background:#f6f6f6;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:1.2em}
.card{border:1px solid #e4e4e4;border-radius:6px;padding:.6em 1em}.card h3{margin:.2em 0 .4em}
.desc{color:#777;font-size:.85em}img{max-width:100%}tr.right td:first-child{border-left:4px solid
#3a9a5b}tr.wrong td:first-child{border-left:4px solid #c8443a}tr.unjudged td:first-child{
border-left:4px solid #ccc}.tag{font-size:.75em;padding:0 .4em;border-radius:3px;background:#eee;
margin-right:.3em}.tag.declined{background:#fde2c8}.tag.degraded{background:#f6c6c2}
.tag.unanswerable{background:#d9e4f5}#questions th{cursor:pointer}input,select{font:inherit;
padding:.2em .4em;margin-right:.6em}details pre{background:#f7f7f7;padding:1em;overflow:auto}
.answer{max-width:380px;white-space:pre-line}.q{max-width:300px}
"""

_JS = """
const table=document.getElementById('questions');
function filter(){const q=document.getElementById('find').value.toLowerCase();
const kind=document.getElementById('kind').value;
for(const row of table.tBodies[0].rows){const text=row.textContent.toLowerCase();
const okKind=kind==='all'||row.classList.contains(kind)||row.dataset.flags.includes(kind);
row.style.display=(text.includes(q)&&okKind)?'':'none';}}
document.getElementById('find').addEventListener('input',filter);
document.getElementById('kind').addEventListener('change',filter);
table.tHead.addEventListener('click',e=>{const th=e.target.closest('th');if(!th)return;
const i=[...th.parentNode.children].indexOf(th);const rows=[...table.tBodies[0].rows];
const dir=th.dataset.dir==='asc'?-1:1;th.dataset.dir=dir===1?'asc':'desc';
const key=r=>{const v=r.cells[i].dataset.v??r.cells[i].textContent;const n=parseFloat(v);
return isNaN(n)?v:n};rows.sort((a,b)=>{const x=key(a),y=key(b);
return (x>y?1:x<y?-1:0)*dir});rows.forEach(r=>table.tBodies[0].appendChild(r));});
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"
    return html.escape(str(value))


def _e(text: Any) -> str:
    return html.escape("" if text is None else str(text))


def metrics_cards(metrics: dict[str, Any]) -> str:
    cards = []
    for group, rows in GROUPS.items():
        body = "".join(
            f"<tr><td>{name}<div class=desc>{_e(desc)}</div></td>"
            f"<td class=n>{_fmt(metrics.get(name))}</td></tr>"
            for name, desc in rows
        )
        cards.append(f"<div class=card><h3>{group}</h3><table>{body}</table></div>")
    lat = "".join(
        f"<tr><td>{label}</td><td class=n>{_fmt(metrics.get(f'p50_{key}ms'), 1)}</td>"
        f"<td class=n>{_fmt(metrics.get(f'p95_{key}ms'), 1)}</td></tr>"
        for label, key in [("total", ""), *((s, f"{s}_") for s in _STAGES)]
    )
    cards.append(
        "<div class=card><h3>Latency (ms)</h3><table><tr><th></th><th>p50</th><th>p95</th></tr>"
        f"{lat}</table></div>"
    )
    return "<div class=grid>" + "".join(cards) + "</div>"


def _question_rows(records: Sequence[dict[str, Any]]) -> str:
    rows = []
    for r in records:
        m = r["metrics"]
        correct = m.get("correct")
        css = "unjudged" if correct is None else "right" if correct else "wrong"
        flags = [f for f in ("declined", "degraded") if r.get(f)]
        if not r["answerable"]:
            flags.append("unanswerable")
        if r.get("error"):
            flags.append("error")
        tags = "".join(f"<span class='tag {f}'>{f}</span>" for f in flags)
        cited = ", ".join(str(c.get("doc_id")) for c in r.get("citations", []))
        answer = r.get("error") or r.get("answer") or ""
        rank = m.get("rank")
        rows.append(
            f"<tr class={css} data-flags='{' '.join(flags)}'>"
            f"<td>{_e(r['id'])}</td><td class=q>{_e(r['question'])}</td>"
            f"<td>{_e(' | '.join(r['gold_answers']))}<div class=desc>"
            f"{_e(', '.join(r['gold_docs']))}</div></td>"
            f"<td class=answer>{tags}{_e(answer)}<div class=desc>cited: {_e(cited)}</div></td>"
            f"<td class=n>{_fmt(r.get('confidence'), 2)}</td>"
            f"<td class=n>{_fmt(m.get('f1'), 2)}</td>"
            f"<td class=n data-v='{rank if rank is not None else 99}'>{_fmt(rank)}</td>"
            f"<td class=n>{_fmt(m.get('citation_precision'), 2)}</td>"
            f"<td class=n>{_fmt(r['timings_ms'].get('total'), 0)}</td></tr>"
        )
    return "".join(rows)


def render(
    config: dict[str, Any], result: dict[str, Any], records: Sequence[dict[str, Any]]
) -> str:
    metrics, counts, cal = result["metrics"], result["counts"], result["calibration"]
    dataset, models = config["dataset"], config.get("models", {})
    model_line = ", ".join(
        f"{role} {_e(info.get('id'))} (sha256 {_e(str(info.get('sha256'))[:12])}…)"
        for role, info in models.items()
    )
    code = config.get("code", {})
    commit = (code.get("commit") or "unknown")[:10] + (" + changes" if code.get("dirty") else "")
    judged = [r for r in records if r["metrics"].get("correct") is not None and not r.get("error")]
    figures = []
    if judged:
        panels = [
            ("all judged questions (declines included)", cal["bins"]),
            ("answered questions only", cal["bins_answered"]),
        ]
        figures.append(
            "<h2>Calibration</h2><p>Reliability diagram: the share of right answers in each "
            "confidence bin against the diagonal of perfect calibration; the numbers are the "
            "questions per bin. Right := the answer holds ≥ 75% of the gold answer's tokens "
            "(answerable) or declined (unanswerable)."
            "</p><img alt='reliability diagram' src='data:image/png;base64,"
            f"{reliability_png(panels)}'>"
            "<p>Confidence of right and wrong answers:</p><img alt='confidence histogram' "
            "src='data:image/png;base64,"
            f"{confidence_png([r['confidence'] for r in judged], [r['metrics']['correct'] for r in judged])}'>"  # noqa: E501
            + _threshold_text(cal.get("threshold"))
        )
    timings = [r["timings_ms"] for r in records if r["timings_ms"]]
    if timings:
        figures.append(
            "<h2>Latency</h2><img alt='latency' src='data:image/png;base64,"
            f"{latency_png(timings)}'>"
        )
    profile = config["settings"].get("profile", {}).get("value")
    subtitle = (
        f"{_e(config.get('created'))} · data set {_e(dataset['name'])} "
        f"({_e(dataset['format'])}, sha256 {_e(dataset['sha256'][:12])}…) · {model_line} · "
        f"profile {_e(profile)} · code {_e(commit)}"
        + (" · retrieval only" if config["mode"]["retrieval_only"] else "")
    )
    count_line = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<title>docqa eval: {_e(config["name"])}</title><style>{_CSS}</style></head><body>
<h1>{_e(config["name"])}</h1>
<div class=sub>{subtitle}</div>
<p>{_e(count_line)}</p>
<h2>Metrics</h2>{metrics_cards(metrics)}
{"".join(figures)}
<h2>Questions</h2>
<p><input id=find placeholder='filter text'><select id=kind><option value=all>all</option>
<option value=wrong>wrong</option><option value=right>right</option>
<option value=declined>declined</option><option value=unanswerable>unanswerable</option>
<option value=degraded>degraded</option><option value=error>errors</option></select>
click a column to sort</p>
<table id=questions><thead><tr><th>id</th><th>question</th><th>gold</th><th>answer</th>
<th>conf.</th><th>F1</th><th>rank</th><th>cit. prec.</th><th>ms</th></tr></thead>
<tbody>{_question_rows(records)}</tbody></table>
<h2>Configuration</h2><details><summary>config.json</summary><pre>
{_e(json.dumps(config, indent=2, ensure_ascii=False))}</pre></details>
<script>{_JS}</script></body></html>
"""


def _threshold_text(threshold: dict[str, Any] | None) -> str:
    if not threshold:
        return "<p>No threshold suggested: the answered questions are all right or all wrong.</p>"
    return (
        f"<p>Suggested <code>DOCQA_LOW_CONFIDENCE={threshold['value']:.3f}</code> (the confidence "
        f"maximizing Youden's J = {threshold['youden_j']:.2f} on the answered questions): it keeps "
        f"{threshold['tpr']:.0%} of right answers and {threshold['fpr']:.0%} of wrong ones, flags "
        f"{threshold['flagged']:.0%} of answers; precision of the kept answers "
        f"{_fmt(threshold['precision'], 2)}.</p>"
    )


def write_report(
    run: Run, config: dict[str, Any], result: dict[str, Any], records: Sequence[dict[str, Any]]
) -> None:
    tmp = run.path / f".{REPORT}.tmp"
    tmp.write_text(render(config, result, records), encoding="utf-8")
    tmp.replace(run.path / REPORT)
