"""The evaluation collection: a data set's documents ingested through the real pipeline, reused.

Each document is written as one file, named by its id, in a staging folder
``DATA_DIR/eval/staging/<collection>/`` (inline text as ``.txt``: title, blank line, text; a
``path`` document copied with its own suffix), and the folder is ingested with
``Services.ingestor(collection)``: the same parsing, chunking, embedding and stores as
``docqa ingest``.

The collection's name is ``eval-<data set>-<key>``, where ``key`` is a sha256 over everything that
changes what the index holds: the data set's sha256, the embedder, the chunk budget and overlap,
the chunker version, the HNSW build parameters and the documents removed to make questions
unanswerable. Same data set and settings -> same name -> the collection is reused (a marker file
``DATA_DIR/eval/collections/<name>.json`` is written once ingest has finished; a killed build has
none and is finished by the next run, which skips the files ingest already holds). The embedding
cache is shared, so a second collection of the same texts (another removal set) embeds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from config.settings import Settings
from eval.types import Document, EvalSet
from index.types import CHUNKER_VERSION
from ingest.report import IngestReport
from modelstore.profiles import models_for
from wiring.compose import Services

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class EvalCollection:
    name: str
    folder: Path  # the staging folder
    files: dict[str, str]  # file name -> document id
    key: dict[str, Any]  # what the name was derived from
    reused: bool
    report: IngestReport | None  # None when reused

    def doc_of(self, source: str) -> str | None:
        """The document id of a chunk's ``source`` (the staged file's path)."""
        return self.files.get(Path(source).name)


def file_name(doc: Document) -> str:
    """A stable, file-name-safe name for a document: its id when safe, else a slug + hash.

    >>> file_name(Document("a/b c", text="x"))
    'a_b_c-0af99a60.txt'
    """
    if _SAFE_ID.fullmatch(doc.id):
        stem = doc.id
    else:
        slug = _UNSAFE.sub("_", doc.id).strip("_")[:80] or "doc"
        stem = f"{slug}-{hashlib.sha256(doc.id.encode('utf-8')).hexdigest()[:8]}"
    return stem + doc.suffix


def collection_key(settings: Settings, dataset_sha: str, removed: Iterable[str]) -> dict[str, Any]:
    removed_sha = hashlib.sha256("\n".join(sorted(removed)).encode("utf-8")).hexdigest()
    return {
        "dataset_sha256": dataset_sha,
        "embedder": models_for(settings).embedder.name,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap": settings.chunk_overlap,
        "chunker_version": CHUNKER_VERSION,
        "hnsw_m": settings.hnsw_m,
        "hnsw_construction_ef": settings.hnsw_construction_ef,
        "removed_docs_sha256": removed_sha,
    }


def collection_name(dataset_name: str, key: dict[str, Any]) -> str:
    """``eval-<slug>-<12 hex>``: at most 63 characters, as Chroma requires."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    slug = _UNSAFE.sub("-", dataset_name.replace(".", "-")).strip("-").lower()[:40] or "set"
    return f"eval-{slug}-{digest}"


def stage(documents: Iterable[Document], folder: Path) -> dict[str, str]:
    """Write each document as a file (unchanged files left alone, stale ones removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    for doc in documents:
        name = file_name(doc)
        if name in files:
            raise ValueError(f"documents {files[name]!r} and {doc.id!r} map to one file {name}")
        files[name] = doc.id
        data = doc.content()
        path = folder / name
        if not path.exists() or path.read_bytes() != data:
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in files:
            stale.unlink()
    return files


def ensure_collection(
    services: Services,
    evalset: EvalSet,
    dataset_sha: str,
    removed: frozenset[str],
    progress: bool = True,
) -> EvalCollection:
    """Build the data set's collection, or reuse it when it is already complete."""
    settings = services.settings
    key = collection_key(settings, dataset_sha, removed)
    name = collection_name(evalset.name, key)
    root = settings.data_dir / "eval"
    folder = root / "staging" / name
    marker = root / "collections" / f"{name}.json"
    kept = [doc for doc_id, doc in evalset.documents.items() if doc_id not in removed]
    if marker.is_file() and name in services.collections() and folder.is_dir():
        log.info("reusing collection %s (%d documents)", name, len(kept))
        files = {file_name(doc): doc.id for doc in kept}
        return EvalCollection(name, folder, files, key, True, None)
    log.info("building collection %s from %d documents", name, len(kept))
    files = stage(kept, folder)
    report = _ingest(services, name, folder, progress)
    if report.files_failed:
        for failure in report.failures[:10]:
            log.warning("not ingested: %s: %s", failure.path, failure.error)
        log.warning("%d of %d documents failed to ingest", report.files_failed, len(files))
    marker.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "name": name,
        "key": key,
        "documents": len(files),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ingest": report.to_json(),
    }
    marker.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    return EvalCollection(name, folder, files, key, False, report)


def _ingest(services: Services, name: str, folder: Path, progress: bool) -> IngestReport:
    ingestor = services.ingestor(name)
    with tqdm(desc="ingest", unit="doc", disable=not progress, mininterval=2.0) as bar:

        def update(done: int, total: int, chunks: int) -> None:
            bar.total = total
            bar.set_postfix(chunks=chunks, refresh=False)
            bar.update(done - bar.n)

        return ingestor.ingest([folder], progress=update)
