"""``docqa eval run``: load, select, build the collection, ask every question, score, report.

Every question goes through ``app.ask_flow.run_ask``, the code of ``POST /v1/ask``, in-process
(as ``docqa ask`` does without ``--url``), one at a time so the latencies are those of one
request on an otherwise idle service. The document ranking for the retrieval metrics comes from
the same retriever with the same settings, asked for ``retrieval_candidates`` chunks (the ask's
top_k passages are a prefix of that ranking), *after* the ask, so the ask's own timings are not
helped by the query embedding the ranking computes. With ``retrieval_only`` no generator is
loaded and only the ranking is made.

Evaluation answers are not written to the service's review log (``DATA_DIR/review.jsonl``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from app.ask_service import AskService
from app.errors import ApiError
from app.schemas import AskRequest, Turn
from config.settings import Settings
from eval.aggregate import aggregate
from eval.collection import EvalCollection, collection_key, collection_name, ensure_collection
from eval.datasets import load_dataset
from eval.errors import ResumeMismatchError
from eval.metrics import dedupe
from eval.noise import NoisyBackend, NoisyRetriever
from eval.provenance import dataset_sha256, git_commit
from eval.report import write_report
from eval.runconfig import RunSpec, build_config, differences, fingerprint, fingerprint_parts
from eval.scoring import RANK_DEPTH, Observation, record
from eval.selection import Selected, Selection, select
from eval.store import Run, create_run, find_resumable, resolve_run
from eval.types import EvalSet
from wiring.compose import Services

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run: Run
    metrics: dict[str, Any]
    resumed: int  # questions already answered before this invocation


def run_evaluation(
    settings: Settings,
    spec: RunSpec,
    resume: str | None = None,
    auto_resume: bool = True,
    progress: bool = True,
) -> RunResult:
    """One evaluation run (a new one, ``resume``'s, or an unfinished one with the same name and
    inputs when ``auto_resume``); returns its folder and ``metrics.json``'s content."""
    evalset = load_dataset(spec.dataset, spec.format)
    dataset_sha = dataset_sha256(spec.dataset, evalset.files)
    selection = select(evalset.questions, spec.limit, spec.seed, spec.unanswerable_fraction)
    log.info(
        "%d questions (%d unanswerable, %d excluded), %d documents removed from the index",
        len(selection.questions),
        selection.unanswerable,
        len(selection.excluded),
        len(selection.removed_docs),
    )
    name = spec.name or evalset.name
    parts = fingerprint_parts(settings, spec, dataset_sha)
    key = collection_key(settings, dataset_sha, selection.removed_docs)
    run = _open_run(settings, spec, name, parts, resume, auto_resume)
    if not (run.path / "config.json").exists():
        coll_info = {"name": collection_name(evalset.name, key), "key": key}
        run.write_config(
            build_config(settings, spec, name, evalset, dataset_sha, selection, coll_info)
        )
    wanted = {s.question.id for s in selection.questions}
    changed = other_code(run) if resume is not None else None
    done = {r["id"] for r in run.records()} & wanted
    todo = [s for s in selection.questions if s.question.id not in done]
    if todo and changed:
        raise ResumeMismatchError(
            f"cannot resume {run.name}: {changed}; check that commit out to finish it, or "
            "start a new run"
        )
    if done:
        log.info("resuming %s: %d questions done, %d to go", run.name, len(done), len(todo))
    started = time.monotonic()
    if not todo:  # a finished run named by --resume: recompute metrics and report only
        collection = EvalCollection(collection_name(evalset.name, key), Path(), {}, key, True, None)
    else:
        build = Services.build if spec.retrieval_only else Services.build_for_serving
        services = build(settings)
        try:
            collection = ensure_collection(
                services, evalset, dataset_sha, selection.removed_docs, progress
            )
            total = len(selection.questions)
            _ask_all(services, run, collection, evalset, todo, spec, progress, total)
        finally:
            services.close()
    metrics = finish(run, evalset, selection, collection, time.monotonic() - started, len(done))
    return RunResult(run, metrics, len(done))


def _open_run(
    settings: Settings,
    spec: RunSpec,
    name: str,
    parts: dict[str, Any],
    resume: str | None,
    auto_resume: bool,
) -> Run:
    runs_dir = settings.run_records_dir
    wanted = fingerprint(parts)
    if resume is not None:
        run = resolve_run(resume, runs_dir)
        config = run.config()
        if config.get("fingerprint") != wanted:
            diff = differences(config.get("fingerprint_parts", {}), parts)
            raise ResumeMismatchError(
                f"cannot resume {run.name}: it was made with other "
                f"{', '.join(diff) or 'inputs'}; start a new run instead"
            )
        return run
    if auto_resume:
        found = find_resumable(runs_dir, name, wanted)
        why = None if found is None else other_code(found)
        if found is not None and why is None:
            log.info("continuing the unfinished run %s (same name and inputs)", found.name)
            return found
        if found is not None:
            log.warning("not continuing %s: %s; starting a new run", found.name, why)
    return create_run(runs_dir, name)


def other_code(run: Run) -> str | None:
    """Why ``run`` was made by other code than this process runs, or None if the same (or
    unknown: no git). A run's numbers must come from one code version: its config names one."""
    made = (run.config().get("code") or {}).get("commit")
    now = git_commit()["commit"]
    if made and now and made != now:
        return f"it was started at code {made[:10]} and this is {now[:10]}"
    return None


def _ask_all(
    services: Services,
    run: Run,
    collection: EvalCollection,
    evalset: EvalSet,
    todo: list[Selected],
    spec: RunSpec,
    progress: bool,
    total: int,
) -> None:
    """Ask each question, appending its line to the run as soon as it is scored."""
    asks = None if spec.retrieval_only else services.asks
    noisy = None
    if asks is not None and spec.noise_passages:
        noisy = NoisyRetriever(
            services.retriever(collection.name), spec.noise_passages, spec.seed, collection.doc_of
        )
        asks = AskService(NoisyBackend(services, noisy), asks.queue, asks.limits, asks.embedder_id)
    ask = _Asker(services, collection, asks, spec.top_k, noisy)
    declined, asked = 0, total - len(todo)
    every = max(1, total // 10)  # without a progress bar, a log line per tenth of the run
    with (
        asyncio.Runner() as loop,
        tqdm(total=total, initial=total - len(todo), unit="q", disable=not progress) as bar,
    ):
        for selected in todo:
            cpu = time.process_time()  # every thread of this process: llama.cpp's included
            obs = ask(selected, loop)
            obs.cpu_ms = round((time.process_time() - cpu) * 1000.0, 1)
            run.append(record(selected, obs, evalset.graded))
            declined += obs.declined
            bar.set_postfix(declined=declined, ms=round(obs.timings_ms.get("total", 0.0)))
            bar.update(1)
            asked += 1
            if not progress and (asked % every == 0 or asked == total):
                log.info("%d/%d questions asked (%d declined)", asked, total, declined)


class _Asker:
    def __init__(
        self,
        services: Services,
        collection: EvalCollection,
        asks: AskService | None,  # None: retrieval only
        top_k: int,
        noisy: NoisyRetriever | None = None,  # the noise variant's retriever, told each question
    ) -> None:
        self.services = services
        self.collection = collection
        self.asks = asks
        self.top_k = top_k
        self.noisy = noisy
        self.retriever = services.retriever(collection.name)
        self.depth = max(services.settings.retrieval_candidates, RANK_DEPTH)

    def __call__(self, selected: Selected, loop: asyncio.Runner) -> Observation:
        text = selected.question.text
        misses = self.services.embedder.misses
        if self.asks is None:
            started = time.perf_counter()
            retrieval = self.retriever.retrieve(text, k=self.depth)
            total = round((time.perf_counter() - started) * 1000.0, 2)
            return Observation(
                retrieved=self._ranking(retrieval.hits),
                timings_ms={**retrieval.timings_ms, "total": total},
                query_cached=self.services.embedder.misses == misses,
            )
        if self.noisy is not None:
            self.noisy.for_question(selected.question.id, selected.question.gold_docs)
        history = [Turn.model_validate(t) for t in selected.question.history] or None
        request = AskRequest(
            question=text, collection=self.collection.name, top_k=self.top_k, history=history
        )
        try:
            response = loop.run(self.asks.ask(request))
        except (ApiError, ValidationError) as exc:
            log.warning("question %s: %s", selected.question.id, exc)
            return Observation(retrieved=[], timings_ms={}, error=f"{type(exc).__name__}: {exc}")
        cached = self.services.embedder.misses == misses
        # A follow-up is ranked by what retrieval was asked: the rewritten question.
        ranking = self._ranking(self.retriever.retrieve(response.query or text, k=self.depth).hits)
        ids = [c.chunk_id for c in response.citations]
        chunks = {c.id: c for c in self.services.vectors(self.collection.name).get(ids)}
        return Observation(
            retrieved=ranking,
            timings_ms=dict(response.timings_ms),
            answer=response.answer,
            declined=response.declined,
            degraded=response.degraded,
            low_confidence=response.low_confidence,
            confidence=response.confidence,
            citations=[
                {"n": c.n, "chunk_id": c.chunk_id, "doc_id": self.collection.doc_of(c.source)}
                for c in response.citations
            ],
            cited_texts=[chunks[i].text if i in chunks else "" for i in ids],
            usage=response.usage.model_dump(),
            query=response.query if history else None,
            answerable=response.answerable,
            confidence_parts=None
            if response.confidence_parts is None
            else response.confidence_parts.model_dump(),
            query_cached=cached,
        )

    def _ranking(self, hits: list[Any]) -> list[str]:
        return dedupe(self.collection.doc_of(h.chunk.source) for h in hits)[:RANK_DEPTH]


def finish(
    run: Run,
    evalset: EvalSet,
    selection: Selection,
    collection: EvalCollection,
    seconds: float,
    resumed: int,
) -> dict[str, Any]:
    """Metrics from the run's lines (in selection order), then metrics.json and report.html."""
    wanted = {s.question.id: i for i, s in enumerate(selection.questions)}
    by_id = {r["id"]: r for r in run.records() if r["id"] in wanted}
    records = sorted(by_id.values(), key=lambda r: wanted[r["id"]])
    result = aggregate(records, excluded=len(selection.excluded))
    result["run"] = {
        "collection": collection.name,
        "collection_reused": collection.reused,
        "ingest": collection.report.to_json() if collection.report else None,
        "resumed_after": resumed,
        "seconds": round(seconds, 1),
        # Over every line, so across resumed sessions: what the run cost to ask.
        # (to the millisecond: a small retrieval-only run asks in well under a second)
        "question_cpu_s": round(sum(r.get("cpu_ms") or 0.0 for r in records) / 1000.0, 3),
        "question_wall_s": round(
            sum((r.get("timings_ms") or {}).get("total", 0.0) for r in records) / 1000.0, 3
        ),
        "complete": len(records) == len(selection.questions),
    }
    run.write_metrics(result)
    write_report(run, run.config(), result, records)
    log.info("wrote %s", run.path)
    return result
