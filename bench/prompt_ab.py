"""Answer-prompt A/B: the real answer path, one seeded evaluation sample, several prompt files.

For each data set (``--datasets``, default XQuAD-en 30 questions and CMRC 2018 dev 20) the
sample is eval's own (``eval.selection.select`` with ``--seed`` and ``--unanswerable-fraction``:
some questions lose their gold paragraph from the index and must be declined), the collection is
eval's (``eval.collection.ensure_collection``: the real ingest pipeline, reused when complete),
and each question is asked the way ``docqa eval run`` asks it (``eval.runner``'s asker:
``AskService.ask`` in-process, then the retriever's document ranking) and scored into eval's
per-question line (``eval.scoring.record``: ``correct``, EM/F1, citation precision). The
services are ``Services.build_for_serving`` with the ``default`` profile (the GGUF generator on
llama.cpp, multilingual-e5-small), loaded once for every prompt.

Switching the prompt: ``app.answer.prompt.TEMPLATE`` is a module constant naming a file in
``prompts/``; this script sets it in-process for each variant (``--prompts``, file stems) and
restores it after. Nothing else changes between variants, so any difference is the prompt's
(plus llama.cpp's nondeterminism across batch shapes, and timing noise on a shared machine).

Per prompt it reports: declines of answerable questions (the failure this exists to catch),
declines of unanswerable ones (honest declines: must stay high), eval's ``correct`` rate on
answerable questions, F1, answered questions carrying a citation, and mean latency. Each
(prompt, data set) keeps its lines in ``--work-dir``/answers (a re-run resumes; the file name
holds the sample and a hash of the prompt file, so an edited prompt starts afresh), and the
summary is saved as ``results.json`` there. Seed 0 is the evaluation matrix's sample: tune on
another. Nothing is written to docs/ unless ``--out`` names a file.

``--answerable-floor 0`` also runs the service's answerability check (``DOCQA_ANSWERABLE_FLOOR``:
the generator's P(yes) that the passages answer) without letting it decline, and the summary
replays a few floors on the recorded P(yes): a prompt that answers more, gated by the check.

    .venv/bin/python bench/prompt_ab.py --prompts answer_v3,answer_v4 --seed 11
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _path  # noqa: F401
from tqdm import tqdm

from app.answer import prompt
from bench._common import DATASETS, add_run_args
from bench._host import contention_note, machine, run_header
from bench._report import markdown_table, run_bench, run_lines
from config.settings import Settings
from eval.aggregate import aggregate
from eval.collection import EvalCollection, ensure_collection
from eval.datasets import load_dataset
from eval.metrics import mean
from eval.provenance import dataset_sha256
from eval.runner import _Asker  # eval's own asker, so a question goes exactly as in a run
from eval.scoring import record
from eval.selection import Selection, select
from eval.types import EvalSet
from prompts.template import HERE as PROMPTS_DIR
from prompts.template import named
from wiring.compose import Services

log = logging.getLogger("bench.prompt_ab")

SECTION = "bench/prompt_ab.py"
PROFILE = "default"
TOP_K = 5  # docqa eval run's default


@contextlib.contextmanager
def answer_prompt(name: str) -> Iterator[None]:
    """Answer with ``prompts/<name>.md`` inside the block (``prompt.TEMPLATE`` set, then reset)."""
    if not (PROMPTS_DIR / f"{name}.md").is_file():
        raise SystemExit(f"no prompt file prompts/{name}.md")
    saved = prompt.TEMPLATE
    prompt.TEMPLATE = name
    try:
        yield
    finally:
        prompt.TEMPLATE = saved


def prompt_digest(name: str) -> str:
    return hashlib.sha256((PROMPTS_DIR / f"{name}.md").read_bytes()).hexdigest()[:10]


def parse_datasets(text: str) -> list[tuple[str, int]]:
    """``xquad-en:30,cmrc:20`` -> [("xquad-en", 30), ("cmrc", 20)].

    >>> parse_datasets("xquad-en:30,cmrc:20")
    [('xquad-en', 30), ('cmrc', 20)]
    """
    out = []
    for part in text.split(","):
        name, _, limit = part.strip().partition(":")
        if name not in DATASETS:
            raise SystemExit(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
        out.append((name, int(limit or 20)))
    return out


# -------------------------------------------------------------------------------------- asking
def ask_all(
    asker: _Asker,
    selection: Selection,
    evalset: EvalSet,
    lines_file: Path,
    desc: str,
) -> list[dict[str, Any]]:
    """Eval's line for every selected question, appended to ``lines_file`` as it is scored;
    questions already there are not asked again."""
    done = {}
    if lines_file.is_file():
        for line in lines_file.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            done[rec["id"]] = rec
    todo = [s for s in selection.questions if s.question.id not in done]
    lines_file.parent.mkdir(parents=True, exist_ok=True)
    declined = 0
    with (
        asyncio.Runner() as loop,
        lines_file.open("a", encoding="utf-8") as out,
        tqdm(total=len(selection.questions), initial=len(done), desc=desc, unit="q") as bar,
    ):
        for selected in todo:
            rec = record(selected, asker(selected, loop), evalset.graded)
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
            done[rec["id"]] = rec
            declined += rec["declined"]
            bar.set_postfix(declined=declined, ms=round(rec["timings_ms"].get("total", 0.0)))
            bar.update(1)
    return [done[s.question.id] for s in selection.questions]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    host = machine()
    settings = Settings(
        data_dir=args.work_dir / "data",
        models_dir=args.models_dir.resolve(),
        profile=PROFILE,
        answerable_floor=args.answerable_floor,
    )
    check = "" if args.answerable_floor is None else f"-floor{args.answerable_floor}"
    names = [p.strip() for p in args.prompts.split(",") if p.strip()]
    results: dict[str, dict[str, Any]] = {name: {} for name in names}
    services = Services.build_for_serving(settings)
    try:
        for dataset, limit in parse_datasets(args.datasets):
            where, fmt = DATASETS[dataset]
            path = args.data_root / where
            evalset = load_dataset(path, fmt)
            sha = dataset_sha256(path, evalset.files)
            selection = select(evalset.questions, limit, args.seed, args.unanswerable_fraction)
            collection: EvalCollection = ensure_collection(
                services, evalset, sha, selection.removed_docs
            )
            asker = _Asker(services, collection, services.asks, TOP_K)
            for name in names:
                sample = f"n{limit}-s{args.seed}-u{args.unanswerable_fraction}{check}"
                stem = f"{name}-{prompt_digest(name)}_{dataset}_{sample}"
                lines_file = args.work_dir / "answers" / f"{stem}.jsonl"
                with answer_prompt(name):
                    lines = ask_all(asker, selection, evalset, lines_file, stem)
                results[name][dataset] = summarize(lines)
                log.info("%s on %s: %s", name, dataset, results[name][dataset])
    finally:
        services.close()
    return {
        **run_header(host, started),
        "seed": args.seed,
        "unanswerable_fraction": args.unanswerable_fraction,
        "answerable_floor": args.answerable_floor,
        "prompts": {name: named(name).version for name in names},
        "results": results,
    }


# ------------------------------------------------------------------------------------ metrics
def summarize(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Per prompt and data set: decline rates split by answerability, eval's ``correct`` on
    answerable questions, EM/F1 and citation precision (``eval.aggregate``), citations present
    on answered questions, and latency (mean and p50 of the whole ask, mean generate)."""
    answerable = [r for r in lines if r["answerable"]]
    unanswerable = [r for r in lines if not r["answerable"]]
    answered = [r for r in lines if not r["declined"] and r.get("error") is None]
    judged = [r["metrics"]["correct"] for r in answerable if r["metrics"]["correct"] is not None]
    metrics = aggregate(lines)["metrics"]
    return {
        "n": len(lines),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "declined_answerable": sum(r["declined"] for r in answerable),
        # declines the model wrote (its prompt was read), not the evidence floor's
        "model_declined_answerable": sum(
            r["declined"] and bool((r.get("usage") or {}).get("prompt_tokens")) for r in answerable
        ),
        "declined_unanswerable": sum(r["declined"] for r in unanswerable),
        "correct_answerable": sum(bool(c) for c in judged),
        "judged_answerable": len(judged),
        "em": metrics["em"],
        "f1": metrics["f1"],
        "citation_precision": metrics["citation_precision"],
        "answered": len(answered),
        "answered_with_citation": sum(bool(r["citations"]) for r in answered),
        "errors": sum(r.get("error") is not None for r in lines),
        "mean_total_ms": mean(r["timings_ms"].get("total") for r in lines),
        "p50_total_ms": metrics["p50_ms"],
        "mean_generate_ms": mean(r["timings_ms"].get("generate") for r in lines),
        "floors": floor_sweep(lines),
    }


SWEPT_FLOORS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8)


def floor_sweep(lines: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """What each answerability floor would have declined, replayed on the lines' P(yes) (runs
    with ``--answerable-floor 0``: the check ran, nothing was declined for it). A question under
    the floor counts as declined (and, if answerable, not correct); the others keep their answer.
    Empty when the check did not run."""
    if any(r.get("p_answerable") is None and not r["declined"] for r in lines):
        return {}
    sweep = {}
    for floor in SWEPT_FLOORS:

        def declined(r: dict[str, Any], floor: float = floor) -> bool:
            p = r.get("p_answerable")
            return bool(r["declined"]) or (p is not None and p < floor)

        answerable = [r for r in lines if r["answerable"]]
        sweep[str(floor)] = {
            "declined_answerable": sum(declined(r) for r in answerable),
            "declined_unanswerable": sum(declined(r) for r in lines if not r["answerable"]),
            "correct_answerable": sum(
                bool(r["metrics"]["correct"]) and not declined(r) for r in answerable
            ),
        }
    return sweep


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}% ({part}/{whole})" if whole else "–"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _rates(counts: dict[str, int], s: dict[str, Any]) -> list[str]:
    """Declines of answerable and unanswerable questions, and right answers, as percentages of
    the data set's counts in ``s``."""
    return [
        _pct(counts["declined_answerable"], s["answerable"]),
        _pct(counts["declined_unanswerable"], s["unanswerable"]),
        _pct(counts["correct_answerable"], s["judged_answerable"]),
    ]


def render(payload: dict[str, Any]) -> str:
    header = [
        "prompt",
        "data set",
        "n",
        "declined: answerable",
        "declined: unanswerable",
        "correct (answerable)",
        "F1",
        "answered with citation",
        "mean s",
        "mean generate s",
    ]
    rows = []
    for name, per_set in payload["results"].items():
        label = f"{name} (v{payload['prompts'][name]})"
        for dataset, s in per_set.items():
            answered = [
                _num(s["f1"]),
                _pct(s["answered_with_citation"], s["answered"]),
                _num((s["mean_total_ms"] or 0) / 1000, 1),
                _num((s["mean_generate_ms"] or 0) / 1000, 1),
            ]
            rows.append([label, dataset, str(s["n"]), *_rates(s, s), *answered])
            for floor, f in s.get("floors", {}).items():
                replayed = f"{label}, P(yes) floor {floor} replayed"
                rows.append([replayed, dataset, str(s["n"]), *_rates(f, s), *["–"] * 4])
    lines = [
        f"Answer prompts compared on one seeded sample (seed {payload['seed']}, "
        f"unanswerable fraction {payload['unanswerable_fraction']}), profile {PROFILE}, "
        f"answerability floor {payload.get('answerable_floor')}.",
        "",
        *run_lines(payload),
        "",
        markdown_table(header, rows),
        "",
        *contention_note(payload["machine"]),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--prompts", default=prompt.TEMPLATE, help="Comma-separated prompts/ file stems."
    )
    parser.add_argument("--datasets", default="xquad-en:30,cmrc:20", help="NAME:QUESTIONS,...")
    parser.add_argument("--seed", type=int, default=11, help="Not 0: that is the eval sample.")
    parser.add_argument("--unanswerable-fraction", type=float, default=0.25)
    parser.add_argument(
        "--answerable-floor",
        type=float,
        help="DOCQA_ANSWERABLE_FLOOR for every variant (unset: the profile's, no check); 0 runs "
        "the check without declining, and the summary replays other floors on its P(yes).",
    )
    add_run_args(parser, "/tmp/docqa-prompt-ab")
    parser.add_argument("--out", type=Path, default=Path("-"), help="'-' (default): no file.")
    parser.add_argument("--from-json", type=Path, help="Re-render from a saved results file.")
    args = parser.parse_args()
    return run_bench(args, measure, render, SECTION, saved_as=results_file)


def results_file(payload: dict[str, Any]) -> str:
    floor = payload.get("answerable_floor")
    return "results.json" if floor is None else f"results-floor{floor}.json"


if __name__ == "__main__":
    raise SystemExit(main())
