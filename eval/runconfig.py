"""A run's ``config.json`` and its fingerprint: what must match for a run to be resumed.

The fingerprint is a sha256 over the data set's sha256, the question selection (format, limit,
seed, unanswerable fraction), the mode (retrieval only, top_k), the model ids, and every setting
that can change an answer. Settings that cannot (where files live, the HTTP server's address,
keys and limits, logging, the chat UI's) are left out, so moving the data or model folder does
not stop a resume.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.answer.prompt import PROMPT_VERSION
from config.settings import Settings
from eval.provenance import git_commit, library_versions, model_info, settings_snapshot
from eval.selection import Selection
from eval.types import EvalSet
from modelstore.profiles import models_for
from wiring.compose import answerable_floor

# Settings that cannot change what a question gets, hence not part of the fingerprint.
NOT_FINGERPRINTED = frozenset(
    [
        "data_dir",
        "models_dir",
        "runs_dir",
        "chroma_url",
        "collection",
        "host",
        "port",
        "api_keys",
        "rate_limit_per_minute",
        "protect_metrics",
        "log_level",
        "review_sample",
        "queue_size",
        "max_batch",
        "ingest_workers",
        "embed_batch_size",
        "max_file_mb",
    ]
)


@dataclass(frozen=True)
class RunSpec:
    """What was asked for on the command line."""

    dataset: Path
    format: str
    name: str | None = None
    limit: int | None = None
    seed: int = 0
    unanswerable_fraction: float = 0.0
    retrieval_only: bool = False
    top_k: int = 5
    noise_passages: int = 0  # distractors added to each question's passages (eval.noise)
    command: list[str] = field(default_factory=list)
    arguments: dict[str, Any] = field(default_factory=dict)


def fingerprint_parts(settings: Settings, spec: RunSpec, dataset_sha: str) -> dict[str, Any]:
    models = models_for(settings)
    values = {
        name: row["value"]
        for name, row in settings_snapshot(settings).items()
        if name not in NOT_FINGERPRINTED and not name.startswith("ui_")
    }
    return {
        "dataset_sha256": dataset_sha,
        "format": spec.format,
        "limit": spec.limit,
        "seed": spec.seed,
        "unanswerable_fraction": spec.unanswerable_fraction,
        "retrieval_only": spec.retrieval_only,
        "top_k": spec.top_k,
        "generator": models.generator.name,
        "embedder": models.embedder.name,
        "prompt_version": PROMPT_VERSION,
        "settings": values,
        # Only when used, so runs recorded before the option still resume.
        **({"noise_passages": spec.noise_passages} if spec.noise_passages else {}),
    }


def fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the fingerprint parts (settings one level down) that differ.

    >>> differences({"seed": 1, "settings": {"rrf_k": 60}}, {"seed": 2, "settings": {"rrf_k": 9}})
    ['seed', 'settings.rrf_k']
    """
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{key}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            out.append(key)
    return out


def build_config(
    settings: Settings,
    spec: RunSpec,
    name: str,
    evalset: EvalSet,
    dataset_sha: str,
    selection: Selection,
    collection: dict[str, Any],
) -> dict[str, Any]:
    parts = fingerprint_parts(settings, spec, dataset_sha)
    return {
        "name": name,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": spec.command,
        "arguments": spec.arguments,
        "seed": spec.seed,
        "dataset": {
            "path": str(spec.dataset.resolve()),
            "format": spec.format,
            "name": evalset.name,
            "sha256": dataset_sha,
            "documents": len(evalset.documents),
            "questions": len(evalset.questions),
            "notes": evalset.notes,
        },
        "selection": {
            "limit": spec.limit,
            "questions": len(selection.questions),
            "unanswerable_fraction": spec.unanswerable_fraction,
            "unanswerable": selection.unanswerable,
            "removed_docs": sorted(selection.removed_docs),
            "excluded": selection.excluded,
        },
        "mode": {
            "retrieval_only": spec.retrieval_only,
            "top_k": spec.top_k,
            "noise_passages": spec.noise_passages,
        },
        "collection": collection,
        "models": model_info(settings),
        "prompt_version": PROMPT_VERSION,
        # The floor in effect (the setting, else the generator's): `docqa eval replay` needs it.
        "answerable_floor": answerable_floor(settings),
        "settings": settings_snapshot(settings),
        "code": git_commit(),
        "libraries": library_versions(),
        "fingerprint": fingerprint(parts),
        "fingerprint_parts": parts,
    }
