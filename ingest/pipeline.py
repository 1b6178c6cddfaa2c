"""The ingest pipeline: files in, chunks with vectors and keywords out, incremental and crash-safe.

Flow: worker threads read, hash, parse and chunk files while the calling thread embeds the
chunks of finished files in batches and writes them, file by file, so parsing overlaps with
embedding (torch releases the GIL while it computes). Each thread has its file parsed in a worker
process (:mod:`ingest.parse_pool`), within a deadline and a memory budget: a file past either is
reported as failed, like any bad file, and the run goes on. A file is skipped unread when its
content hash and the chunker version both match its manifest row, so a new ``CHUNKER_VERSION``
re-chunks every file once, and the run after that skips them again.

Crash safety rests on three rules:

1. Chunk ids derive from content, so writing a file twice gives the same rows (upserts).
2. A file's writes go vectors first, then keywords; stale chunks are deleted from keywords
   first, then vectors; so a chunk in the keyword index is always in the vector store too.
3. The manifest row is written last. A file killed half-way has its old row (or none), so the
   next run redoes it, and finds leftovers by asking the vector store for every chunk of the
   document's id: whatever is not in the new chunk set is deleted.

Hence a run killed at any moment, then run again, ends with the same index as a clean run.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.embedding_cache import CachedEmbedder
from index.protocols import Embedder, KeywordIndex, VectorIndex, Vectors
from index.types import Chunk, document_id
from ingest.chunker import Chunker
from ingest.discover import discover
from ingest.errors import DocumentNotFoundError
from ingest.manifest import Manifest, ManifestEntry
from ingest.parse_pool import ParseLimits, shared_pool
from ingest.parsers import INFLATED_PER_FILE_BYTE, SUPPORTED_SUFFIXES
from ingest.parsers.errors import ParseError
from ingest.report import IngestReport

log = logging.getLogger(__name__)

Progress = Callable[[int, int, int], None]  # files done, files total, chunks added so far
# An ingest job's progress (ingest/worker.py): the stage ("parsing", "embedding", "writing"),
# then chunks embedded so far and chunks to embed.
Stage = Callable[[str, int, int], None]


@dataclass(frozen=True)
class IngestOptions:
    max_file_bytes: int = 50 * 1024 * 1024
    workers: int = 2
    embed_batch: int = 256  # chunks embedded together (from one or several files)
    max_inflated_bytes: int | None = None  # what a DOCX may unpack to; None: 10 x max_file_bytes
    parse_timeout_s: float = 120.0  # a file still parsing after this is reported and skipped
    parse_memory_bytes: int | None = None  # a parse's memory; None: 20 x max_file_bytes, >= 512 MiB

    def parse_limits(self) -> ParseLimits:
        size = self.max_file_bytes
        inflated, memory = self.max_inflated_bytes, self.parse_memory_bytes
        return ParseLimits(
            max_bytes=size,
            max_inflated=INFLATED_PER_FILE_BYTE * size if inflated is None else inflated,
            timeout_s=self.parse_timeout_s,
            memory_bytes=max(512 << 20, 20 * size) if memory is None else memory,
        )


@dataclass
class _Prepared:
    """A parsed, chunked file waiting for its vectors."""

    source: str
    doc_id: str
    sha: str
    size: int
    title: str
    chunks: list[Chunk]
    old: ManifestEntry | None


@dataclass(frozen=True)
class _Skipped:
    source: str
    reason: str | None  # None: unchanged; otherwise why it failed


class Ingestor:
    def __init__(
        self,
        collection: str,
        embedder: Embedder,
        vectors: VectorIndex,
        keywords: KeywordIndex,
        manifest: Manifest,
        chunker: Chunker,
        options: IngestOptions | None = None,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.vectors = vectors
        self.keywords = keywords
        self.manifest = manifest
        self.chunker = chunker
        self.options = options or IngestOptions()

    # ---------------------------------------------------------------------------- public
    def ingest(
        self, paths: Iterable[Path], prune: bool = False, progress: Progress | None = None
    ) -> IngestReport:
        """Ingest every supported file under ``paths``; with ``prune``, forget vanished ones."""
        roots = [Path(os.path.abspath(p)) for p in paths]
        found = discover(roots, SUPPORTED_SUFFIXES)
        report = IngestReport(collection=self.collection, files_skipped=found.skipped)
        for path, reason in found.failures:
            report.fail(path, reason)
        jobs = [(p, str(p)) for p in found.files]
        self._run(jobs, report, progress)
        if prune:
            self._prune(roots, {str(p) for p in found.files}, report)
        return report

    def ingest_file(self, path: Path, source: str, stage: Stage | None = None) -> IngestReport:
        """Ingest one file under a given source name (an upload keeps its file name);
        ``stage`` hears where it is (an ingest job's progress)."""
        report = IngestReport(collection=self.collection)
        self._run([(path, source)], report, None, stage)
        return report

    def delete_source(self, source: str) -> int:
        """Remove one document's chunks from vectors, keywords and the manifest."""
        entry = self.manifest.get(self.collection, source)
        if entry is None and source != os.path.abspath(source):
            source = os.path.abspath(source)
            entry = self.manifest.get(self.collection, source)
        doc_id = entry.doc_id if entry else document_id(source)
        ids = self.vectors.ids({"doc_id": doc_id}) | set(entry.chunk_ids if entry else ())
        if entry is None and not ids:
            raise DocumentNotFoundError(f"no document {source!r} in collection {self.collection!r}")
        self._remove(sorted(ids))
        self.manifest.remove(self.collection, source)
        return len(ids)

    def delete_document(self, doc_id: str) -> int:
        entry = self.manifest.by_doc_id(self.collection, doc_id)
        if entry is None:
            raise DocumentNotFoundError(f"no document {doc_id!r} in collection {self.collection!r}")
        return self.delete_source(entry.source)

    # ---------------------------------------------------------------------------- the run
    def _run(
        self,
        jobs: Sequence[tuple[Path, str]],
        report: IngestReport,
        progress: Progress | None,
        stage: Stage | None = None,
    ) -> None:
        started = time.monotonic()
        if stage:
            stage("parsing", 0, 0)
        hits0, misses0 = self._cache_counts()
        window = max(2, self.options.workers * 4)
        done = 0
        pending: list[_Prepared] = []
        queue: deque[Future[_Prepared | _Skipped]] = deque()
        with ThreadPoolExecutor(self.options.workers, thread_name_prefix="parse") as pool:
            todo = iter(jobs)
            while True:
                while len(queue) < window and (job := next(todo, None)) is not None:
                    queue.append(pool.submit(self._examine, *job))
                if not queue:
                    break
                result = queue.popleft().result()  # in order: runs are deterministic
                if isinstance(result, _Skipped):
                    if result.reason is None:
                        report.files_unchanged += 1
                    else:
                        report.fail(result.source, result.reason)
                    done += 1
                else:
                    pending.append(result)
                    if sum(len(p.chunks) for p in pending) >= self.options.embed_batch:
                        done += self._flush(pending, report, stage)
                        pending = []
                if progress:
                    progress(done, len(jobs), report.chunks_added)
            done += self._flush(pending, report, stage)
        hits1, misses1 = self._cache_counts()
        report.cache_hits += hits1 - hits0
        report.cache_misses += misses1 - misses0
        report.seconds += time.monotonic() - started
        if progress:
            progress(done, len(jobs), report.chunks_added)

    def _examine(self, path: Path, source: str) -> _Prepared | _Skipped:
        """Worker thread: hash, compare with the manifest, parse (in a worker process), chunk."""
        try:
            if path.is_symlink() and not path.exists():
                return _Skipped(source, "broken symlink")
            size = path.stat().st_size
            if size > self.options.max_file_bytes:
                limit = self.options.max_file_bytes
                return _Skipped(source, f"file is {size} bytes, over the limit of {limit}")
            sha = _file_sha256(path)
            old = self.manifest.get(self.collection, source)
            if old is not None and (old.content_sha, old.chunker) == (sha, self.chunker.version):
                return _Skipped(source, None)  # unchanged, and chunked the way we chunk now
            doc = shared_pool(self.options.workers).parse(path, self.options.parse_limits())
            doc_id = document_id(source)
            chunks = self.chunker.chunk(doc, doc_id, source)
        except ParseError as exc:
            return _Skipped(source, exc.reason)
        except OSError as exc:
            return _Skipped(source, f"cannot read: {exc.strerror or exc}")
        except Exception as exc:  # a parser bug must cost one file, never the run
            log.exception("unexpected error ingesting %s", source)
            return _Skipped(source, f"internal error: {type(exc).__name__}: {exc}")
        if not chunks:
            return _Skipped(source, "no text to index")
        return _Prepared(source, doc_id, sha, size, doc.title, chunks, old)

    def _flush(
        self, pending: list[_Prepared], report: IngestReport, stage: Stage | None = None
    ) -> int:
        """Embed and write a batch of files: embed calls of ``embed_batch`` chunks (a big
        file's progress shows between them), one write per store for all of their chunks
        (Chroma's per-call cost dominates small writes), then per file the stale deletes and,
        last, its manifest row."""
        if not pending:
            return 0
        chunks = [c for p in pending for c in p.chunks]
        vectors = self._embed([c.index_text for c in chunks], stage)
        if stage:
            stage("writing", len(chunks), len(chunks))
        # Everything a file may have in the stores: what its manifest row lists, and whatever a
        # run killed half-way through it wrote (found by document id).
        befores = [
            self.vectors.ids({"doc_id": p.doc_id}) | set(p.old.chunk_ids if p.old else ())
            for p in pending
        ]
        self.vectors.upsert(chunks, vectors)
        self.keywords.upsert(chunks)
        for p, before in zip(pending, befores, strict=True):
            new_ids = {c.id for c in p.chunks}
            stale = sorted(before - new_ids)
            self._remove(stale)
            entry = ManifestEntry(
                self.collection,
                p.source,
                p.doc_id,
                p.sha,
                p.size,
                p.title,
                tuple(c.id for c in p.chunks),
                chunker=self.chunker.version,
            )
            self.manifest.put(entry)
            if p.old is None:
                report.files_new += 1
            else:
                report.files_changed += 1
            # Added: new to the document as last written whole (its manifest row). Chunks a killed
            # run had already written count too, so a resumed run reports what a clean one would.
            report.chunks_added += len(new_ids - set(p.old.chunk_ids if p.old else ()))
            report.chunks_removed += len(stale)
        return len(pending)

    def _embed(self, texts: list[str], stage: Stage | None) -> Vectors:
        step = max(1, self.options.embed_batch)
        parts = []
        for start in range(0, len(texts), step):
            if stage:
                stage("embedding", start, len(texts))
            parts.append(self.embedder.embed_documents(texts[start : start + step]))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _remove(self, ids: Sequence[str]) -> None:
        if ids:
            self.keywords.delete(ids)
            self.vectors.delete(ids)

    def _prune(self, roots: list[Path], present: set[str], report: IngestReport) -> None:
        for entry in self.manifest.entries(self.collection):
            under = any(_is_under(Path(entry.source), root) for root in roots)
            if under and entry.source not in present and not Path(entry.source).exists():
                ids = self.vectors.ids({"doc_id": entry.doc_id}) | set(entry.chunk_ids)
                self._remove(sorted(ids))
                self.manifest.remove(self.collection, entry.source)
                report.files_pruned += 1
                report.chunks_removed += len(ids)

    def _cache_counts(self) -> tuple[int, int]:
        if isinstance(self.embedder, CachedEmbedder):
            return self.embedder.hits, self.embedder.misses
        return 0, 0


def _is_under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
