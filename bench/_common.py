"""Shared pieces of the benchmark scripts: data sets, settings, and the glue to docqa's services.

The data sets are the public ones in ``../shared/data``, read by eval's loaders
(``eval.datasets``) under the names the benchmarks give them; their documents are written as one
``.txt`` file each under a work folder in ``/tmp`` (``eval.collection.stage``) and go through the
real ingest pipeline, as a user's documents would. Metrics come from ``eval.metrics``; the
machine and the report are ``bench/_host.py`` and ``bench/_report.py``. Nothing here is part of
docqa.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

from tqdm import tqdm

from config.settings import Settings
from eval.datasets import load_dataset as load_evalset
from eval.metrics import dedupe
from eval.provenance import REPO_ROOT
from eval.selection import draw
from eval.types import EvalSet, Format
from index.types import Hit, sha256_text
from ingest.pipeline import Ingestor
from ingest.report import IngestReport
from wiring.compose import Services

log = logging.getLogger("bench")

DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
DEFAULT_MODELS_DIR = Path(".docqa/models")
# The profile whose embedder is the one named; the generator is never loaded by the benchmarks.
EMBEDDER_PROFILES: dict[str, str] = {"all-minilm-l6-v2": "test", "multilingual-e5-small": "fast"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def add_run_args(parser: argparse.ArgumentParser, work_dir: str) -> None:
    """``--models-dir``, ``--data-root`` and ``--work-dir`` (default ``work_dir``)."""
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--work-dir", type=Path, default=Path(work_dir))


# ------------------------------------------------------------------------------------ data sets
# Each benchmark data set: its file or folder under the data root, and its format.
DATASETS: dict[str, tuple[str, Format]] = {
    "xquad-en": ("xquad/xquad.en.json", "squad"),
    "xquad-zh": ("xquad/xquad.zh.json", "squad"),
    "cmrc": ("cmrc2018/cmrc2018_dev.json", "squad"),
    "scifact": ("scifact", "beir"),
    "hotpotqa": ("hotpotqa", "hotpot"),
}


@dataclass
class Dataset(EvalSet):
    """An eval data set under the benchmark's name for it, with the docqa collection it is
    ingested into (a passage subset gets its own)."""

    collection: str = ""

    def __post_init__(self) -> None:
        self.collection = self.collection or self.name

    def texts(self) -> dict[str, str]:
        """Document id -> the text of its file (title, blank line, text), in file order."""
        return {doc_id: doc.content().decode("utf-8") for doc_id, doc in self.documents.items()}


def load_dataset(name: str, root: Path) -> Dataset:
    """``eval.datasets.load_dataset`` on the named data set (``DATASETS``) under ``root``."""
    if name not in DATASETS:
        raise SystemExit(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    where, fmt = DATASETS[name]
    evalset = load_evalset(root / where, fmt)
    values = {f.name: getattr(evalset, f.name) for f in fields(EvalSet)}
    return Dataset(**values | {"name": name})


def sample_questions(ds: Dataset, n: int, seed: int) -> None:
    """Keep a seeded sample of ``n`` questions, in the order drawn (``eval.selection.draw``);
    no-op if fewer."""
    if n < len(ds.questions):
        ds.questions = draw(ds.questions, n, seed)
        ds.notes.append(f"{n} questions sampled with seed {seed}")


def limit_passages(ds: Dataset, n: int, seed: int) -> None:
    """Keep every passage some question needs, plus a seeded sample of the others, ``n`` in all."""
    if n >= len(ds.documents):
        return
    needed = {pid for q in ds.questions for pid in q.relevance if pid in ds.documents}
    others = sorted(set(ds.documents) - needed)
    extra = random.Random(seed).sample(others, max(0, n - len(needed)))
    keep = needed | set(extra)
    total = len(ds.documents)
    ds.documents = {pid: doc for pid, doc in ds.documents.items() if pid in keep}
    ds.collection = f"{ds.name}-{len(ds.documents)}-s{seed}"
    ds.notes.append(
        f"{len(ds.documents)} of {total} passages: all {len(needed)} judged relevant for the "
        f"questions + a seeded sample (seed {seed}) of the rest"
    )


# ---------------------------------------------------------------------------------- docqa glue
def settings_for(embedder: str, data_dir: Path, models_dir: Path) -> Settings:
    """Settings for a run with ``embedder``: the profile that carries it, reranking off."""
    if embedder in EMBEDDER_PROFILES:
        return Settings(
            data_dir=data_dir,
            models_dir=models_dir,
            profile=EMBEDDER_PROFILES[embedder],
            rerank=False,
        )
    # Anything else is a local model folder (or hub id), as DOCQA_EMBEDDER takes it.
    return Settings(data_dir=data_dir, models_dir=models_dir, embedder=embedder, rerank=False)


def safe_name(name: str) -> str:
    """A file-name-safe form of a name: ``'a/b c'`` -> ``'a_b_c'``."""
    return _UNSAFE.sub("_", name).strip("_")[:120] or "passage"


def embedder_slug(embedder: str) -> str:
    return safe_name(Path(embedder).name if "/" in embedder else embedder)


def passage_ranking(hits: Iterable[Hit], names: dict[str, str]) -> list[str]:
    """Passage ids in rank order: each chunk counts for its file's passage (``names``: file name
    -> passage id, as ``eval.collection.stage`` returns it), deduped at its first rank."""
    return dedupe(names.get(Path(hit.chunk.source).name) for hit in hits)


def prime_query_cache(services: Services, texts: Iterable[str], step: int = 256) -> int:
    """Embed the questions in batches into the embedding cache, under the exact key the
    retriever's ``CachedEmbedder.embed_query`` looks up, instead of one model call per question;
    returns how many were computed."""
    inner = services.embedder.inner
    model_id = services.embedder.model_id
    prefixed = list(dict.fromkeys(inner.query_prefix + text for text in texts))
    shas = [sha256_text(text) for text in prefixed]
    found = services.cache.get_many(model_id, shas)
    missing = [(sha, text) for sha, text in zip(shas, prefixed, strict=True) if sha not in found]
    for start in tqdm(range(0, len(missing), step), desc="query vectors", mininterval=5):
        part = missing[start : start + step]
        vectors = inner.embed_raw([text for _, text in part])
        services.cache.put_many(model_id, dict(zip((sha for sha, _ in part), vectors, strict=True)))
    return len(missing)


def ingest_with_progress(ingestor: Ingestor, folder: Path, desc: str) -> IngestReport:
    """``ingestor.ingest([folder])`` with a tqdm bar (files done, chunks added, chunks/s)."""
    with tqdm(desc=desc, unit="file", mininterval=5.0) as bar:

        def progress(done: int, total: int, chunks: int) -> None:
            bar.total = total
            elapsed = bar.format_dict["elapsed"]
            rate = chunks / elapsed if elapsed else 0.0
            bar.set_postfix(chunks=chunks, chunks_per_s=f"{rate:.1f}", refresh=False)
            bar.update(done - bar.n)  # tqdm redraws at most every `mininterval` seconds

        return ingestor.ingest([folder], progress=progress)
