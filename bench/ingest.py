"""Ingest throughput: the real pipeline against the embedder's raw ceiling, and re-ingest.

For each embedder:

1. write the corpus (by default the XQuAD en + zh contexts, 480 ``.txt`` files) and ingest it
   into a FRESH data dir (empty embedding cache) with the real pipeline: seconds, chunks/s;
2. read the same chunk texts back from the vector store (pipeline order) and time the bare
   SentenceTransformer path, ``services.embedder.inner.embed_documents(texts)`` (passage prefix
   added there, no cache, same batch size): texts/s; target pipeline / raw >= 0.8;
3. ingest the unchanged corpus again with the same services and data dir: seconds, and the
   speedup first / re-ingest; target >= 20x;
4. when a target is missed, profile that step with cProfile (the calling thread, which embeds
   and writes; parse threads show up as waits) on a fresh data dir and a part of the corpus;
5. docqa against LlamaIndex, side by side on the same corpus and model folder: docqa's pipeline
   (the embedder backend ``--embed-backend`` resolves to, on the CPU) and LlamaIndex's default
   ``SimpleDirectoryReader`` + ``VectorStoreIndex.from_documents`` into a fresh persistent Chroma
   collection (``bench/_llamaindex_ingest.py``, run with the interpreter of a separate venv made
   by ``bench/llamaindex_venv.sh``), ``--compare-runs`` times each, alternating which goes first:
   documents/s of both, target docqa >= 2x; then dense MRR@10 on the corpus's questions of that
   backend against the torch fp32 embedder, target within 0.01.

    bash bench/llamaindex_venv.sh /tmp/li-venv
    .venv/bin/python bench/ingest.py --corpus xquad --embedders multilingual-e5-small \
        --models-dir /tmp/dq1/models --llamaindex-python /tmp/li-venv/bin/python
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import _path  # noqa: F401

from bench._common import (
    add_run_args,
    embedder_slug,
    ingest_with_progress,
    load_dataset,
    passage_ranking,
    prime_query_cache,
    settings_for,
)
from bench._host import command_line, contention_note, load_average, machine, now
from bench._report import add_report_args, markdown_table, run_bench, run_lines
from config.settings import Settings
from eval.collection import stage
from eval.metrics import mean, mrr_at
from eval.types import Document
from index.embedders import SentenceTransformerEmbedder
from index.hardware import pick_device
from index.onnx_embedder import OnnxEmbedder
from index.types import document_id
from ingest.parsers import parse
from ingest.pipeline import Ingestor
from modelstore.cache import ModelCache
from modelstore.catalog import EmbedBackend
from modelstore.onnx_export import choose_backend
from modelstore.profiles import models_for
from wiring.compose import Services, model_path

log = logging.getLogger("bench.ingest")

SECTION = "bench/ingest.py"
COLLECTION = "bench-ingest"
RATIO_TARGET = 0.8
SPEEDUP_TARGET = 20.0
# docqa against LlamaIndex's default pipeline (issue 12): documents/s at least this many times
# LlamaIndex's, with dense MRR@10 within MRR_MARGIN of the torch fp32 embedder.
COMPARE_TARGET = 2.0
MRR_MARGIN = 0.01
K = 10
LLAMAINDEX_SCRIPT = Path(__file__).resolve().with_name("_llamaindex_ingest.py")
DEFAULT_LLAMAINDEX_PYTHON = Path("/tmp/li-venv/bin/python")
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
CORPORA: dict[str, tuple[str, ...]] = {
    "xquad": ("xquad-en", "xquad-zh"),
    "xquad-en": ("xquad-en",),
    "xquad-zh": ("xquad-zh",),
    "cmrc": ("cmrc",),
    "xquad+cmrc": ("xquad-en", "xquad-zh", "cmrc"),
}


@dataclass
class IngestResult:
    embedder: str
    files: int
    chunks: int
    first_s: float  # IngestReport.seconds of the first (cold) ingest
    first_wall_s: float  # wall clock around ingest(), discovery included
    chunks_per_s: float  # IngestReport.chunks_per_second
    raw_s: float  # wall seconds of the raw encode, one call (mean of before and after)
    raw_texts_per_s: float
    ratio: float  # pipeline chunks/s over raw texts/s
    raw_grouped_s: float  # raw encode in the pipeline's embed calls (measured on a ratio miss)
    parse_chunk_s: float  # CPU seconds to parse and chunk the corpus on one thread
    reingest_s: float
    reingest_wall_s: float
    reingest_unchanged: int
    speedup: float  # first_s / reingest_s
    cache_misses: int
    profile: str = ""  # cProfile summary when a target was missed
    profile_shares: dict[str, float] = field(default_factory=dict)  # part -> share of ingest()
    raw_before_s: float = 0.0  # raw_s is the mean of the passes before and after the pipeline
    raw_after_s: float = 0.0
    first_cpu_s: float = 0.0  # process CPU seconds (all threads) of the first ingest
    raw_cpu_s: float = 0.0  # ... and of a raw pass (mean of before and after)


# ---------------------------------------------------------------------------------------- corpus
@dataclass
class Corpus:
    folder: Path
    names: dict[str, str]  # file name -> passage key (``<data set>-<passage id>``)
    questions: list[tuple[str, set[str]]]  # question text, the passage keys that answer it

    @property
    def files(self) -> int:
        return len(self.names)


def build_corpus(name: str, data_root: Path, folder: Path, limit: int = 0) -> Corpus:
    """Write the corpus's passages (the first ``limit`` of them, in data-set order, when given)
    as ``.txt`` files under ``folder``, with the questions those passages answer."""
    if name not in CORPORA:
        raise SystemExit(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    documents: dict[str, Document] = {}
    questions: list[tuple[str, set[str]]] = []
    for dataset in CORPORA[name]:
        ds = load_dataset(dataset, data_root)
        for doc in ds.documents.values():
            documents[f"{dataset}-{doc.id}"] = replace(doc, id=f"{dataset}-{doc.id}")
        for question in ds.questions:
            questions.append((question.text, {f"{dataset}-{pid}" for pid in question.relevance}))
    if limit:
        documents = dict(list(documents.items())[:limit])
    kept = [(text, keys & documents.keys()) for text, keys in questions]
    return Corpus(folder, stage(documents.values(), folder), [(t, k) for t, k in kept if k])


def subset_corpus(folder: Path, n: int, target: Path) -> Path:
    """The first ``n`` files of ``folder`` (sorted), copied to ``target``: a corpus to profile."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(folder.glob("*.txt"))[:n]:
        shutil.copyfile(path, target / path.name)
    return target


# ----------------------------------------------------------------------------------------- steps
def bench_settings(
    embedder: str, data_dir: Path, args: argparse.Namespace, backend: str | None = None
) -> Settings:
    """``settings_for``'s, with the device and embedder backend (``--embed-backend`` unless
    ``backend`` is given) this run asks for."""
    settings = settings_for(embedder, data_dir, args.models_dir)
    update = {"embed_backend": backend or args.embed_backend, "device": args.device}
    return settings.model_copy(update=update)


def resolved_backend(settings: Settings) -> EmbedBackend:
    """What ``embed_backend`` (``auto`` included) runs as on this machine, as Services picks it."""
    spec = models_for(settings).embedder
    return choose_backend(settings.embed_backend, spec, pick_device(settings.device))


def fresh_services(
    embedder: str, data_dir: Path, args: argparse.Namespace, backend: str | None = None
) -> tuple[Services, Ingestor]:
    """Services on an empty data dir (empty embedding cache), the model loaded and warmed up;
    an ONNX backend's export is made first if missing, as `docqa models prepare` makes it."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    settings = bench_settings(embedder, data_dir, args, backend)
    chosen = resolved_backend(settings)
    if chosen != "torch":
        spec = models_for(settings).embedder
        ModelCache(settings.model_cache_dir).prepare_onnx(spec, chosen)
    services = Services.build(settings)
    ingestor = services.ingestor(COLLECTION)  # opens the collection, which loads the model
    services.embedder.inner.embed_raw(["warm-up"])  # first-call costs out of both timings
    return services, ingestor


def chunk_texts(services: Services) -> list[list[str]]:
    """Each file's chunk texts as stored, in pipeline order (files by name, chunks by index)."""
    entries = services.manifest.entries(COLLECTION)
    ids = [cid for entry in entries for cid in entry.chunk_ids]
    text_of = {chunk.id: chunk.text for chunk in services.vectors(COLLECTION).get(ids)}
    return [[text_of[cid] for cid in entry.chunk_ids if cid in text_of] for entry in entries]


def pipeline_groups(per_file: list[list[str]], batch: int) -> list[list[str]]:
    """The texts of each embed call the pipeline made: whole files until ``batch`` is reached."""
    groups: list[list[str]] = []
    pending: list[str] = []
    for texts in per_file:
        pending += texts
        if len(pending) >= batch:
            groups.append(pending)
            pending = []
    return [*groups, pending] if pending else groups


def raw_encode(services: Services, groups: list[list[str]]) -> tuple[float, float]:
    """Wall and process CPU seconds of the bare embedder (SentenceTransformer or the ONNX
    Runtime session), one ``embed_documents`` call per group: passage prefix added there, no
    cache, same batch size."""
    inner = services.embedder.inner
    assert isinstance(inner, SentenceTransformerEmbedder | OnnxEmbedder)
    wall, cpu = time.perf_counter(), time.process_time()
    for texts in groups:
        inner.embed_documents(texts)
    return time.perf_counter() - wall, time.process_time() - cpu


def chunk_corpus(ingestor: Ingestor, corpus: Path) -> tuple[list[list[str]], float]:
    """Each file's chunk texts as the pipeline will make them (same parser and chunker, files
    in the same order), and the CPU seconds that took on this one thread."""
    started = time.thread_time()
    per_file = []
    for path in sorted(corpus.glob("*.txt")):
        doc = parse(path, ingestor.options.max_file_bytes)
        chunks = ingestor.chunker.chunk(doc, document_id(str(path)), str(path))
        per_file.append([chunk.text for chunk in chunks])
    return per_file, time.thread_time() - started


def profile_ingest(
    embedder: str, args: argparse.Namespace, corpus: Path, reingest: bool
) -> tuple[str, dict[str, float], float]:
    """cProfile one ingest of a corpus subset on a fresh data dir; top functions by cumulative."""
    slug = embedder_slug(embedder)
    subset = subset_corpus(corpus, args.profile_files, args.work_dir / "profile-corpus")
    _, ingestor = fresh_services(embedder, args.work_dir / slug / "profile", args)
    if reingest:
        ingestor.ingest([subset])
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    ingestor.ingest([subset])
    profiler.disable()
    seconds = time.perf_counter() - started
    text, shares = profile_summary(profiler, args.profile_top)
    return text, shares, seconds


# Where the calling thread's time goes: (label, path suffix, function name).
_PARTS = (
    ("SentenceTransformer.encode", "sentence_transformers/sentence_transformer/model.py", "encode"),
    ("ONNX Runtime encode", "index/onnx_embedder.py", "_encode"),
    ("embedding cache get/put/count", "index/embedding_cache.py", "get_many|put_many|count"),
    ("Chroma upsert", "index/chroma_store.py", "upsert"),
    ("Chroma ids (a document's old chunks)", "index/chroma_store.py", "ids"),
    ("BM25 upsert", "index/keyword.py", "upsert"),
    ("manifest put", "ingest/manifest.py", "put"),
    ("waiting for parse threads (Future.result)", "concurrent/futures/_base.py", "result"),
)


def profile_summary(profiler: cProfile.Profile, top: int) -> tuple[str, dict[str, float]]:
    """A breakdown of the ingest's time by part, then the top functions by own time."""
    table: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    cumulative = [(path, name, value[3]) for (path, _, name), value in table.items()]
    total = max((ct for path, name, ct in cumulative if name == "ingest"), default=0.0)
    lines = [f"{'part':<45} {'seconds':>8} {'share':>6}"]
    shares: dict[str, float] = {}
    for label, suffix, names in _PARTS:
        wanted = names.split("|")
        seconds = sum(
            ct for path, name, ct in cumulative if path.endswith(suffix) and name in wanted
        )
        share = seconds / total if total else 0.0
        shares[label] = round(share, 3)
        lines.append(f"{label:<45} {seconds:8.2f} {share:6.1%}")
    lines.append(f"{'whole ingest() call':<45} {total:8.2f} {1:6.1%}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    own = text[text.index("ncalls") :] if "ncalls" in text else text
    summary = "\n".join(lines) + f"\n\nTop {top} functions by own time:\n" + own.rstrip()
    return summary, shares


def run_embedder(embedder: str, corpus: Path, files: int, args: argparse.Namespace) -> IngestResult:
    slug = embedder_slug(embedder)
    services, ingestor = fresh_services(embedder, args.work_dir / slug / "data", args)
    expected, parse_chunk_s = chunk_corpus(ingestor, corpus)
    flat = [text for file_texts in expected for text in file_texts]
    # The raw ceiling is timed before and after the pipeline, and averaged: on a shared
    # machine the load drifts, and a single pass on one side would carry all of the drift.
    log.info("%s: raw encode of the corpus's %d chunk texts (before)", embedder, len(flat))
    before_s, before_cpu = raw_encode(services, [flat])
    log.info("%s: ingesting %d files into a fresh data dir", embedder, files)
    wall, cpu = time.perf_counter(), time.process_time()
    first = ingest_with_progress(ingestor, corpus, f"ingest {embedder}")
    first_wall, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
    log.info("first ingest: %s", first.summary().replace("\n", "; "))
    if first.files_failed:
        raise SystemExit(f"{first.files_failed} files failed to ingest")
    per_file = chunk_texts(services)
    texts = [text for file_texts in per_file for text in file_texts]
    if texts != flat:
        log.warning("the stored chunks differ from the chunker's (%d vs %d)", len(texts), len(flat))
    log.info("raw encode of the same %d chunk texts read back from the store (after)", len(texts))
    after_s, after_cpu = raw_encode(services, [texts])
    raw_s, raw_cpu = (before_s + after_s) / 2, (before_cpu + after_cpu) / 2
    started = time.perf_counter()
    again = ingestor.ingest([corpus])
    again_wall = time.perf_counter() - started
    log.info("re-ingest: %s", again.summary().replace("\n", "; "))
    raw_rate = len(texts) / raw_s if raw_s > 0 else 0.0
    ratio = first.chunks_per_second / raw_rate if raw_rate else 0.0
    grouped_s = 0.0
    if ratio < RATIO_TARGET:  # tell batching apart from the pipeline's other costs
        groups = pipeline_groups(per_file, services.settings.embed_batch_size)
        log.info("raw encode again in the pipeline's %d embed calls", len(groups))
        grouped_s, _ = raw_encode(services, groups)
    return IngestResult(
        embedder=services.embedder.model_id,  # the backend is in it (name@onnx-int8)
        files=files,
        chunks=first.chunks_added,
        first_s=round(first.seconds, 2),
        first_wall_s=round(first_wall, 2),
        chunks_per_s=round(first.chunks_per_second, 2),
        raw_s=round(raw_s, 2),
        raw_texts_per_s=round(raw_rate, 2),
        ratio=round(ratio, 3),
        raw_grouped_s=round(grouped_s, 2),
        parse_chunk_s=round(parse_chunk_s, 2),
        reingest_s=round(again.seconds, 3),
        reingest_wall_s=round(again_wall, 3),
        reingest_unchanged=again.files_unchanged,
        speedup=round(first.seconds / again.seconds, 1) if again.seconds > 0 else 0.0,
        cache_misses=first.cache_misses,
        raw_before_s=round(before_s, 2),
        raw_after_s=round(after_s, 2),
        first_cpu_s=round(first_cpu, 1),
        raw_cpu_s=round(raw_cpu, 1),
    )


# ------------------------------------------------------------------------- docqa vs LlamaIndex
@dataclass
class CompareResult:
    embedder: str  # docqa's embedder id: the model name, with the backend unless torch
    backend: str
    files: int
    docqa_s: list[float]  # wall seconds around ingest(), one per run
    docqa_cpu_s: list[float]  # this process's CPU seconds (all threads) over the same span
    docqa_chunks: int
    llamaindex_s: list[float]  # reading + VectorStoreIndex.from_documents, one per run
    llamaindex_cpu_s: list[float]
    llamaindex_docs: int
    llamaindex_chunks: int
    llamaindex: dict[str, Any]  # its settings and versions, as its script reported them
    docqa_docs_per_s: float  # files over the median seconds
    llamaindex_docs_per_s: float
    ratio: float  # docqa documents/s over LlamaIndex's
    cpu_ratio: float  # the same by CPU seconds (medians), less skewed by other jobs
    questions: int  # the corpus's questions that one of its passages answers
    mrr10: float  # dense, with the backend compared
    torch_mrr10: float  # dense, the torch fp32 embedder, same chunks
    torch_s: float  # wall seconds of docqa's ingest with torch (0: the backend is torch)


def docqa_run(
    embedder: str, corpus: Path, data_dir: Path, args: argparse.Namespace, backend: str | None
) -> tuple[Services, float, float, int]:
    """One docqa ingest of the corpus on a fresh data dir: services, wall s, CPU s, chunks."""
    services, ingestor = fresh_services(embedder, data_dir, args, backend)
    wall, cpu = time.perf_counter(), time.process_time()
    report = ingestor.ingest([corpus])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if report.files_failed:
        raise SystemExit(f"docqa: {report.files_failed} files failed to ingest")
    log.info("docqa (%s): %.2f s, %d chunks", services.embedder.model_id, wall, report.chunks_added)
    return services, wall, cpu, report.chunks_added


def llamaindex_run(
    model_dir: Path,
    prefixes: tuple[str, str],
    corpus: Path,
    persist: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One LlamaIndex ingest of the corpus, in the separate venv's interpreter; its JSON."""
    if persist.exists():
        shutil.rmtree(persist)
    persist.parent.mkdir(parents=True, exist_ok=True)
    command = [str(args.llamaindex_python), str(LLAMAINDEX_SCRIPT), "--corpus", str(corpus)]
    command += ["--model", str(model_dir), "--persist-dir", str(persist), "--device", args.device]
    command += ["--text-instruction", prefixes[0], "--query-instruction", prefixes[1]]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=args.llamaindex_timeout
    )
    if proc.returncode != 0:
        raise SystemExit(f"LlamaIndex ingest failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    log.info(
        "LlamaIndex: %.2f s, %d docs, %d chunks",
        result["seconds"],
        result["docs"],
        result["chunks"],
    )
    return result


def dense_mrr(services: Services, corpus: Corpus) -> float:
    """MRR@10 of dense retrieval with the real retriever: a chunk counts for its file's
    passage, passages deduped at their first rank."""
    if not corpus.questions:
        return 0.0
    prime_query_cache(services, (text for text, _ in corpus.questions))
    retriever = services.retriever(COLLECTION)
    scores = []
    for text, relevant in corpus.questions:
        hits = retriever.retrieve(text, k=K, mode="dense", rerank=False).hits
        scores.append(mrr_at(passage_ranking(hits, corpus.names), relevant, K))
    return mean(scores) or 0.0


def compare_llamaindex(embedder: str, corpus: Corpus, args: argparse.Namespace) -> CompareResult:
    """docqa and LlamaIndex on the same corpus and model folder, ``--compare-runs`` times each,
    alternating which goes first (a drifting load then weighs on both alike); then dense MRR@10
    of docqa's backend against torch fp32."""
    settings = bench_settings(embedder, args.work_dir, args)
    spec = models_for(settings).embedder
    backend = resolved_backend(settings)
    model_dir = model_path(settings, spec)  # the sentence-transformers folder torch loads
    root = args.work_dir / embedder_slug(embedder) / "compare"
    docqa_s, docqa_cpu, li_runs = [], [], []
    services: Services | None = None
    chunks = 0
    for run in range(args.compare_runs):
        for side in ("docqa", "llamaindex") if run % 2 == 0 else ("llamaindex", "docqa"):
            log.info("compare run %d/%d: %s", run + 1, args.compare_runs, side)
            if side == "docqa":
                # A folder per run: Chroma keeps one client per path in a process, and a
                # client whose folder was deleted under it fails ("no such table").
                services, wall, cpu, chunks = docqa_run(
                    embedder, corpus.folder, root / f"docqa-{run + 1}", args, backend
                )
                docqa_s.append(wall)
                docqa_cpu.append(cpu)
            else:
                prefixes = (spec.passage_prefix, spec.query_prefix)
                persist = root / f"llamaindex-{run + 1}"
                li_runs.append(llamaindex_run(model_dir, prefixes, corpus.folder, persist, args))
    assert services is not None
    log.info("dense MRR@10 on %d questions, %s", len(corpus.questions), services.embedder.model_id)
    mrr = dense_mrr(services, corpus)
    torch_mrr, torch_s = mrr, 0.0
    if backend != "torch":
        reference, torch_s, _, _ = docqa_run(
            embedder, corpus.folder, root / "docqa-torch", args, "torch"
        )
        log.info("dense MRR@10 with the torch fp32 reference")
        torch_mrr = dense_mrr(reference, corpus)
    li_s = [float(r["seconds"]) for r in li_runs]
    li_cpu = [float(r["cpu_s"]) for r in li_runs]
    docqa_rate = corpus.files / statistics.median(docqa_s)
    li_rate = int(li_runs[-1]["docs"]) / statistics.median(li_s)
    info = {k: v for k, v in li_runs[-1].items() if k not in ("seconds", "cpu_s", "read_s")}
    return CompareResult(
        embedder=services.embedder.model_id,
        backend=backend,
        files=corpus.files,
        docqa_s=[round(x, 2) for x in docqa_s],
        docqa_cpu_s=[round(x, 1) for x in docqa_cpu],
        docqa_chunks=chunks,
        llamaindex_s=[round(x, 2) for x in li_s],
        llamaindex_cpu_s=[round(x, 1) for x in li_cpu],
        llamaindex_docs=int(li_runs[-1]["docs"]),
        llamaindex_chunks=int(li_runs[-1]["chunks"]),
        llamaindex=info,
        docqa_docs_per_s=round(docqa_rate, 2),
        llamaindex_docs_per_s=round(li_rate, 2),
        ratio=round(docqa_rate / li_rate, 3),
        cpu_ratio=round(
            (corpus.files / statistics.median(docqa_cpu))
            / (int(li_runs[-1]["docs"]) / statistics.median(li_cpu)),
            3,
        ),
        questions=len(corpus.questions),
        mrr10=round(mrr, 4),
        torch_mrr10=round(torch_mrr, 4),
        torch_s=round(torch_s, 2),
    )


# ---------------------------------------------------------------------------------------- report
def _met(value: float, target: float) -> str:
    return "met" if value >= target else "**missed**"


def results_table(results: list[IngestResult]) -> str:
    rows = [
        [
            r.embedder,
            str(r.files),
            str(r.chunks),
            f"{r.first_s:.1f}",
            f"{r.chunks_per_s:.1f}",
            _raw_cell(r),
            f"{r.raw_texts_per_s:.1f}",
            f"{r.ratio:.2f} ({_met(r.ratio, RATIO_TARGET)})",
            f"{r.reingest_s:.2f}",
            f"{r.speedup:.0f}× ({_met(r.speedup, SPEEDUP_TARGET)})",
        ]
        for r in results
    ]
    header = ["embedder", "files", "chunks", "first ingest s", "chunks/s", "raw encode s"]
    header += ["raw texts/s", "pipeline / raw", "re-ingest s", "speedup"]
    return markdown_table(header, rows)


def _raw_cell(r: IngestResult) -> str:
    if r.raw_before_s and r.raw_after_s:
        return f"{r.raw_s:.1f} ({r.raw_before_s:.1f} before, {r.raw_after_s:.1f} after)"
    return f"{r.raw_s:.1f}"


def findings(results: list[IngestResult]) -> list[str]:
    lines = []
    for r in results:
        lines.append(
            f"- {r.embedder}: pipeline {r.chunks_per_s:.1f} chunks/s vs raw "
            f"{r.raw_texts_per_s:.1f} texts/s = {r.ratio:.2f} (target ≥ {RATIO_TARGET}: "
            f"{_met(r.ratio, RATIO_TARGET)}); re-ingest {r.reingest_s:.2f} s for "
            f"{r.reingest_unchanged} unchanged files, {r.speedup:.0f}× faster than the first "
            f"ingest (target ≥ {SPEEDUP_TARGET:.0f}×: {_met(r.speedup, SPEEDUP_TARGET)}). "
            f"Wall clock around `ingest()`: {r.first_wall_s:.1f} s first, "
            f"{r.reingest_wall_s:.2f} s again; embedding cache misses on the first run: "
            f"{r.cache_misses}."
            + (
                f" Parsing and chunking the whole corpus alone takes {r.parse_chunk_s:.1f} CPU s"
                " (one thread)."
                if r.parse_chunk_s
                else ""
            )
        )
        if r.first_cpu_s and r.raw_cpu_s:
            lines.append(
                f"  - CPU time (all threads of the process), which other people's jobs inflate "
                f"less than wall time: first ingest {r.first_cpu_s:.1f} s, raw encode "
                f"{r.raw_cpu_s:.1f} s; raw / pipeline = {r.raw_cpu_s / r.first_cpu_s:.2f}."
            )
        if r.profile_shares:
            ranked = sorted(r.profile_shares.items(), key=lambda item: -item[1])
            big = [f"{label} {share:.0%}" for label, share in ranked if share >= 0.02]
            lines.append(f"  - What dominates the profiled ingest: {', '.join(big)}.")
        if r.raw_grouped_s > 0:
            grouped = r.chunks / r.raw_grouped_s
            lines.append(
                f"  - Raw encode again, split into the pipeline's own embed calls (whole files "
                f"until 64 chunks): {r.raw_grouped_s:.1f} s, {grouped:.1f} texts/s; pipeline / "
                f"that = {r.chunks_per_s / grouped:.2f}. So of the gap, one call → the "
                f"pipeline's calls is batching (padding, short tail batches), and the pipeline's "
                f"calls → the pipeline is everything else (parse threads competing for the "
                f"cores, cache and index writes)."
            )
    return lines


def _runs(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


def compare_tables(rows: list[CompareResult]) -> list[str]:
    """Two tables, a row per embedder in each: documents/s of both sides, then dense MRR@10."""
    speed, quality = [], []
    for r in rows:
        docqa = [_runs(r.docqa_s), str(r.docqa_chunks), f"{r.docqa_docs_per_s:.1f}"]
        li = [_runs(r.llamaindex_s), str(r.llamaindex_chunks), f"{r.llamaindex_docs_per_s:.1f}"]
        ratios = [f"{r.ratio:.2f}× ({_met(r.ratio, COMPARE_TARGET)})", f"{r.cpu_ratio:.2f}×"]
        speed.append([r.embedder, str(r.files), *docqa, *li, *ratios])
        change = r.mrr10 - r.torch_mrr10
        mrr = [
            f"{r.mrr10:.3f}",
            f"{r.torch_mrr10:.3f}",
            f"{change:+.3f} ({_met(change, -MRR_MARGIN)})",
        ]
        quality.append([r.embedder, str(r.questions), *mrr])
    header = ["docqa embedder", "files", "docqa s", "docqa chunks", "docqa docs/s"]
    header += ["LlamaIndex s", "LlamaIndex chunks", "LlamaIndex docs/s", "docqa / LlamaIndex"]
    header += ["same, by CPU s"]
    quality_header = ["docqa embedder", "questions", "dense MRR@10", "torch fp32 MRR@10", "change"]
    return [markdown_table(header, speed), "", markdown_table(quality_header, quality)]


def compare_findings(rows: list[CompareResult]) -> list[str]:
    lines = []
    for r in rows:
        li = r.llamaindex
        versions = li.get("versions", {})
        lines.append(
            f"- {r.embedder}: docqa {r.docqa_docs_per_s:.1f} documents/s, LlamaIndex "
            f"{r.llamaindex_docs_per_s:.1f}: {r.ratio:.2f}× (target ≥ {COMPARE_TARGET:.0f}×: "
            f"{_met(r.ratio, COMPARE_TARGET)}; by CPU seconds {r.cpu_ratio:.2f}×). docqa made "
            f"{r.docqa_chunks} chunks, LlamaIndex {r.llamaindex_chunks} ({li.get('splitter')} "
            f"{li.get('chunk_size')}/{li.get('chunk_overlap')} tokens, embed batch "
            f"{li.get('embed_batch_size')}, llama-index-core "
            f"{versions.get('llama-index-core', '?')}). Dense MRR@10 on {r.questions} "
            f"questions: {r.mrr10:.3f} on {r.backend}, {r.torch_mrr10:.3f} on torch fp32 "
            f"(target within {MRR_MARGIN}: {_met(r.mrr10 - r.torch_mrr10, -MRR_MARGIN)})"
            + (f"; docqa's ingest on torch took {r.torch_s:.1f} s." if r.torch_s else ".")
        )
    return lines


def compare_section(rows: list[CompareResult], runs: int) -> list[str]:
    return [
        "### docqa against LlamaIndex's default pipeline",
        "",
        "The same corpus folder and the same model folder, in one run, each side on the CPU "
        "with its model loaded and warmed up before the clock starts, on a fresh store and (for "
        f"docqa) an empty embedding cache; {runs} runs of each, alternating which goes first. "
        "docqa: `ingestor.ingest([folder])` with the embedder backend `--embed-backend` "
        "resolved to, wall clock around the call. LlamaIndex (its own venv, "
        "`bench/llamaindex_venv.sh`; `bench/_llamaindex_ingest.py`): "
        "`SimpleDirectoryReader(folder).load_data()` then `VectorStoreIndex.from_documents` "
        "into a fresh persistent Chroma collection, every default kept (SentenceSplitter, "
        "HuggingFaceEmbedding's batch size, the file metadata it embeds with each chunk), the "
        "model's passage/query prefix given as `text_instruction`/`query_instruction`. "
        "documents/s is files over the median run. Quality: every corpus question that one of "
        "its passages answers, dense retrieval through docqa's retriever (top 10 chunks, "
        "passages deduped), on the backend measured and on the torch fp32 embedder.",
        "",
        *compare_tables(rows),
        "",
        *compare_findings(rows),
    ]


def render(payload: dict[str, Any]) -> str:
    fields = set(IngestResult.__dataclass_fields__)
    results = [
        IngestResult(**{"parse_chunk_s": 0.0} | {k: v for k, v in r.items() if k in fields})
        for r in payload["results"]
    ]
    compare = [CompareResult(**c) for c in payload.get("compare", [])]
    parts = [
        "## Ingest throughput (`bench/ingest.py`)",
        "",
        *run_lines(payload),
        "",
        f"Corpus: {payload['corpus_note']}.",
    ]
    if results:
        parts += [
            "",
            "Each run starts from a fresh data dir and an empty embedding cache, with the model "
            "already loaded and warmed up (one short encode); `first ingest s` and `chunks/s` "
            "are the `IngestReport`'s. `raw encode` is `services.embedder.inner."
            "embed_documents(texts)` on the same chunk texts (read back from the vector store "
            "after the ingest; made by the same chunker before it): the bare embedder call "
            "(SentenceTransformer, or the ONNX Runtime session) with the passage prefix, no "
            "cache, the pipeline's batch size (64), all texts in one call, timed once before "
            "and once after the ingest and averaged, since the machine's load drifts. "
            "`pipeline / raw` is chunks/s over raw texts/s. `re-ingest` is the same corpus "
            "again with the same services and data dir.",
            "",
            results_table(results),
            "",
            *findings(results),
        ]
    if compare:
        parts += ["", *compare_section(compare, int(payload.get("compare_runs", 0)))]
    parts += ["", *contention_note(payload["machine"])]
    for r in results:
        if r.profile:
            parts += ["", f"Profile ({r.embedder}): {r.profile}"]
    return "\n".join(parts).rstrip()


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="xquad", choices=sorted(CORPORA))
    parser.add_argument("--embedders", "--embedder", default="multilingual-e5-small")
    add_run_args(parser, "/tmp/docqa-bench/ingest")
    add_report_args(parser)
    parser.add_argument("--profile-files", type=int, default=120, help="Files profiled on a miss.")
    parser.add_argument("--profile-top", type=int, default=18, help="Functions listed.")
    parser.add_argument("--no-profile", action="store_true", help="Never profile.")
    parser.add_argument(
        "--embed-backend",
        default="auto",
        choices=BACKENDS,
        help="docqa's embedder backend (DOCQA_EMBED_BACKEND); auto: what docqa picks here.",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument(
        "--limit-files", type=int, default=0, help="Only the first N passages (0: all)."
    )
    parser.add_argument(
        "--llamaindex-python",
        type=Path,
        default=DEFAULT_LLAMAINDEX_PYTHON,
        help="The interpreter of the LlamaIndex venv (bash bench/llamaindex_venv.sh VENV).",
    )
    parser.add_argument("--llamaindex-timeout", type=float, default=3600.0, help="Seconds a run.")
    parser.add_argument("--compare-runs", type=int, default=2, help="Runs of each side.")
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument(
        "--no-llamaindex", action="store_true", help="Skip the LlamaIndex comparison."
    )
    steps.add_argument(
        "--compare-only", action="store_true", help="Only the LlamaIndex comparison (step 5)."
    )
    args = parser.parse_args(argv)
    if not args.from_json and not args.no_llamaindex and not args.llamaindex_python.is_file():
        parser.error(
            f"no LlamaIndex interpreter at {args.llamaindex_python}: run "
            "`bash bench/llamaindex_venv.sh /tmp/li-venv` (or pass --llamaindex-python, or "
            "--no-llamaindex)"
        )
    if args.compare_runs < 1:
        parser.error("--compare-runs must be at least 1")
    return args


def measure(args: argparse.Namespace) -> dict[str, object]:
    host = machine()
    name = f"{args.corpus}-{args.limit_files}" if args.limit_files else args.corpus
    corpus = build_corpus(
        args.corpus, args.data_root, args.work_dir / "corpus" / name, args.limit_files
    )
    files = corpus.files
    results = []
    compare = []
    for embedder in (e.strip() for e in args.embedders.split(",") if e.strip()):
        if not args.compare_only:
            results.append(measure_throughput(embedder, corpus.folder, files, args))
        if not args.no_llamaindex:
            compare.append(compare_llamaindex(embedder, corpus, args))
    host["load at end"] = load_average()
    sets = " + ".join(CORPORA[args.corpus])
    part = f"the first {files} contexts" if args.limit_files else "the contexts"
    return {
        "date": now(),
        "machine": host,
        "command": command_line(),
        "corpus_note": f"`{args.corpus}`, {part} of {sets} as {files} `.txt` files",
        "results": [asdict(r) for r in results],
        "compare": [asdict(c) for c in compare],
        "compare_runs": args.compare_runs,
    }


def measure_throughput(
    embedder: str, corpus: Path, files: int, args: argparse.Namespace
) -> IngestResult:
    """Steps 1-4: pipeline against raw encode, re-ingest, and a profile on a miss."""
    result = run_embedder(embedder, corpus, files, args)
    missed_ratio = result.ratio < RATIO_TARGET
    if not args.no_profile and (missed_ratio or result.speedup < SPEEDUP_TARGET):
        step = "first ingest" if missed_ratio else "re-ingest"
        log.info("a target was missed: profiling the %s of %d files", step, args.profile_files)
        body, shares, seconds = profile_ingest(embedder, args, corpus, not missed_ratio)
        result.profile_shares = shares
        result.profile = (
            f"cProfile of the {step} of the first {args.profile_files} files on a fresh data "
            f"dir ({seconds:.1f} s under the profiler; the calling thread, which embeds "
            f"and writes, while parse threads read and chunk):\n\n```text\n{body}\n```"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    return run_bench(parse_args(argv), measure, render, SECTION)


if __name__ == "__main__":
    raise SystemExit(main())
