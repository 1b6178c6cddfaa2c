"""``docqa eval backfill``: measure a confidence part a run was recorded without, so that a
fit can weigh it on runs made before it existed.

The part is ``coverage`` (`app.answer.confidence.question_coverage`): the share of the query's
content units in the top-ranked passage. A run records documents, not the chunks an answer
read, so the backfill asks the run's retrieval again: the run's own collection (reused from the
data dir, or rebuilt from its data set with the same key), the query the answer used (a
follow-up's standalone rewrite), the run's top_k, and for a noise run the same distractors and
shuffle. Retrieval is deterministic for a collection, so this is the passage the answer read,
and it is checked: every passage the answer cited must be among the hits, and without noise the
hits' documents must open the recorded ranking. An answer that fails the check gets no value
(it is listed instead), and a fit leaves it out.

The values go to ``backfill.json`` in the run folder, with the code that measured them;
``per_question.jsonl`` stays as recorded (`eval.store.Run.records` fills the part in).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app.answer.confidence import question_coverage
from config.settings import Settings
from eval.collection import (
    EvalCollection,
    collection_key,
    collection_name,
    ensure_collection,
)
from eval.datasets import load_dataset
from eval.errors import EvalError
from eval.metrics import dedupe
from eval.noise import NoisyRetriever
from eval.provenance import dataset_sha256, git_commit
from eval.replay import recorded_parts
from eval.store import BACKFILL, Run, read_json, write_json
from eval.types import EvalSet
from wiring.compose import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backfilled:
    run: Run
    measured: int  # answers given a coverage
    unchecked: list[str]  # ids whose retrieval no longer matched the record: no value


def needs_coverage(record: Mapping[str, Any]) -> bool:
    """An answer (every part recorded but coverage: declines before the LLM have none) whose
    coverage was not recorded."""
    parts = recorded_parts(record)
    return parts is not None and parts.coverage is None


def backfill_coverage(settings: Settings, run: Run, progress: bool = True) -> Backfilled:
    """Measure and write the coverage of every answer of ``run`` that lacks one."""
    records = [r for r in run.records() if needs_coverage(r)]  # earlier backfills kept
    if not records:
        return Backfilled(run, 0, [])
    config = run.config()
    evalset, sha, removed = _run_data(settings, run, config)
    sidecar = run.path / BACKFILL
    earlier = read_json(sidecar)["parts"]["coverage"] if sidecar.is_file() else {}
    services = Services.build(settings)
    try:
        collection = ensure_collection(services, evalset, sha, removed, progress)
        values, unchecked = _measure(services, collection, config, records, progress)
    finally:
        services.close()
    write_json(
        sidecar,
        {
            "code": git_commit(),
            "how": "docqa eval backfill: retrieval asked again on the run's collection",
            "unchecked": unchecked,
            "parts": {"coverage": {**earlier, **values}},
        },
    )
    if unchecked:
        log.warning(
            "%s: %d answers' retrieval no longer matches the record: no coverage for them",
            run.name,
            len(unchecked),
        )
    return Backfilled(run, len(values), unchecked)


def _run_data(
    settings: Settings, run: Run, config: Mapping[str, Any]
) -> tuple[EvalSet, str, frozenset[str]]:
    """The run's data set, its sha256 and the documents the run removed, checked to be what the
    run indexed, and indexed by ``settings`` into the run's own collection."""
    dataset = config["dataset"]
    path = Path(dataset["path"])
    if not path.exists():
        raise EvalError(f"{run.name}: its data set {path} is not there to rebuild retrieval from")
    evalset = load_dataset(path, dataset["format"])
    sha = dataset_sha256(path, evalset.files)
    if sha != dataset["sha256"]:
        raise EvalError(f"{run.name}: {path} changed since the run (sha256 {sha[:12]})")
    removed = frozenset(config["selection"]["removed_docs"])
    wanted = config["collection"]["name"]
    if collection_name(evalset.name, collection_key(settings, sha, removed)) != wanted:
        raise EvalError(
            f"{run.name}: these settings index its data set as another collection than its "
            f"{wanted} (another embedder, chunking or profile): use the run's --profile"
        )
    return evalset, sha, removed


def _measure(
    services: Services,
    collection: EvalCollection,
    config: Mapping[str, Any],
    records: list[dict[str, Any]],
    progress: bool,
) -> tuple[dict[str, float], list[str]]:
    """Each record's coverage from its retrieval asked again, and the ids that no longer match."""
    mode = config["mode"]
    inner = services.retriever(collection.name)
    noisy = None
    if mode.get("noise_passages"):
        noisy = NoisyRetriever(
            inner, int(mode["noise_passages"]), int(config["seed"]), collection.doc_of
        )
    values: dict[str, float] = {}
    unchecked: list[str] = []
    for record in tqdm(records, unit="q", disable=not progress):
        query = record.get("query") or record["question"]
        if noisy is not None:
            noisy.for_question(record["id"], record.get("gold_docs") or {})
        hits = (noisy or inner).retrieve(query, k=int(mode["top_k"])).hits
        cited = {c["chunk_id"] for c in record.get("citations") or []}
        ranked = dedupe(collection.doc_of(h.chunk.source) for h in hits)
        # Noise shuffles the passages, so only the citations can be checked there.
        same = cited <= {h.chunk.id for h in hits} and (
            noisy is not None or ranked == record["retrieved"][: len(ranked)]
        )
        if same:
            values[record["id"]] = round(question_coverage(query, hits), 4)
        else:
            unchecked.append(record["id"])
    return values, unchecked
