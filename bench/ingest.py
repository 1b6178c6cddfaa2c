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
   and writes; parse threads show up as waits) on a fresh data dir and a part of the corpus.

    .venv/bin/python bench/ingest.py --corpus xquad --embedders multilingual-e5-small \
        --models-dir /tmp/dq1/models
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/ingest.py` puts bench/ first on the path
    sys.path.insert(0, str(REPO_ROOT))

from bench._common import (  # noqa: E402
    DATA_ROOT,
    DEFAULT_MODELS_DIR,
    DEFAULT_OUT,
    command_line,
    contention_note,
    embedder_slug,
    ingest_with_progress,
    load_average,
    load_dataset,
    machine,
    machine_lines,
    markdown_table,
    now,
    run_bench,
    safe_name,
    settings_for,
    write_corpus,
)
from docqa.compose import Services  # noqa: E402
from index.embedders import SentenceTransformerEmbedder  # noqa: E402
from index.types import document_id  # noqa: E402
from ingest.parsers import parse  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402

log = logging.getLogger("bench.ingest")

SECTION = "bench/ingest.py"
COLLECTION = "bench-ingest"
RATIO_TARGET = 0.8
SPEEDUP_TARGET = 20.0
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
def build_corpus(name: str, data_root: Path, folder: Path) -> int:
    """Write the corpus's passages as ``.txt`` files under ``folder``; returns the file count."""
    if name not in CORPORA:
        raise SystemExit(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    passages: dict[str, str] = {}
    for dataset in CORPORA[name]:
        for pid, text in load_dataset(dataset, data_root).passages.items():
            passages[f"{dataset}-{safe_name(pid)}"] = text
    return len(write_corpus(passages, folder))


def subset_corpus(folder: Path, n: int, target: Path) -> Path:
    """The first ``n`` files of ``folder`` (sorted), copied to ``target``: a corpus to profile."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(folder.glob("*.txt"))[:n]:
        shutil.copyfile(path, target / path.name)
    return target


# ----------------------------------------------------------------------------------------- steps
def fresh_services(embedder: str, data_dir: Path, models_dir: Path) -> tuple[Services, Ingestor]:
    """Services on an empty data dir (empty embedding cache), the model loaded and warmed up."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    services = Services.build(settings_for(embedder, data_dir, models_dir))
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
    """Wall and process CPU seconds of the bare SentenceTransformer path, one
    ``embed_documents`` call per group: passage prefix added there, no cache, same batch size."""
    inner = services.embedder.inner
    assert isinstance(inner, SentenceTransformerEmbedder)
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
    _, ingestor = fresh_services(embedder, args.work_dir / slug / "profile", args.models_dir)
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
    services, ingestor = fresh_services(embedder, args.work_dir / slug / "data", args.models_dir)
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
        embedder=embedder,
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


def render(payload: dict[str, object]) -> str:
    fields = set(IngestResult.__dataclass_fields__)
    results = [
        IngestResult(**{"parse_chunk_s": 0.0} | {k: v for k, v in r.items() if k in fields})
        for r in payload["results"]  # type: ignore[attr-defined]
    ]
    parts = [
        "## Ingest throughput (`bench/ingest.py`)",
        "",
        f"Measured {payload['date']}. Machine:",
        "",
        *machine_lines(payload["machine"]),  # type: ignore[arg-type]
        "",
        "Command:",
        "",
        f"```sh\n{payload['command']}\n```",
        "",
        f"Corpus: {payload['corpus_note']}. Each run starts from a fresh data dir and an empty "
        "embedding cache, with the model already loaded and warmed up (one short encode); "
        "`first ingest s` and `chunks/s` are the `IngestReport`'s. `raw encode` is "
        "`services.embedder.inner.embed_documents(texts)` on the same chunk texts (read back "
        "from the vector store after the ingest; made by the same chunker before it): the bare "
        "SentenceTransformer call with the passage prefix, no cache, the pipeline's batch size "
        "(64), all texts in one call, timed once before and once after the ingest and "
        "averaged, since the machine's load drifts. `pipeline / raw` is chunks/s over raw "
        "texts/s. `re-ingest` is the same corpus again with the same services and data dir.",
        "",
        results_table(results),
        "",
        *findings(results),
        "",
        *contention_note(payload["machine"]),  # type: ignore[arg-type]
    ]
    for r in results:
        if r.profile:
            parts += ["", f"Profile ({r.embedder}): {r.profile}"]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="xquad", choices=sorted(CORPORA))
    parser.add_argument("--embedders", "--embedder", default="multilingual-e5-small")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/docqa-bench/ingest"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="'-' writes no file.")
    parser.add_argument("--profile-files", type=int, default=120, help="Files profiled on a miss.")
    parser.add_argument("--profile-top", type=int, default=18, help="Functions listed.")
    parser.add_argument("--no-profile", action="store_true", help="Never profile.")
    parser.add_argument("--from-json", type=Path, help="Re-render from a saved results file.")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, object]:
    host = machine()
    corpus = args.work_dir / "corpus" / args.corpus
    files = build_corpus(args.corpus, args.data_root, corpus)
    results = []
    for embedder in (e.strip() for e in args.embedders.split(",") if e.strip()):
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
        results.append(result)
    host["load at end"] = load_average()
    sets = " + ".join(CORPORA[args.corpus])
    return {
        "date": now(),
        "machine": host,
        "command": command_line(),
        "corpus_note": f"`{args.corpus}`, the contexts of {sets} as {files} `.txt` files",
        "results": [asdict(r) for r in results],
    }


def main(argv: list[str] | None = None) -> int:
    return run_bench(parse_args(argv), measure, render, SECTION)


if __name__ == "__main__":
    raise SystemExit(main())
