"""Shared pieces of the benchmark scripts: data sets, corpus files, settings, machine, report.

The data sets are read in their public formats (SQuAD v1 JSON, BEIR) from ``../shared/data``;
their passages are written as one ``.txt`` file each under a work folder in ``/tmp`` and go
through the real ingest pipeline, as a user's documents would. Nothing here is part of docqa.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import random
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(REPO_ROOT))
# As config.runtime.configure does for the CLI and the server, before torch or llama.cpp load
# their OpenMP runtime: active waiting collapses on a busy machine (docs/BENCHMARKS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from config.settings import Settings  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from ingest.report import IngestReport  # noqa: E402

log = logging.getLogger("bench")

DATA_ROOT = REPO_ROOT.parent / "shared" / "data"
DEFAULT_MODELS_DIR = Path(".docqa/models")
DEFAULT_OUT = Path("docs/BENCHMARKS.md")
# The profile whose embedder is the one named; the generator is never loaded by the benchmarks.
EMBEDDER_PROFILES: dict[str, str] = {"all-minilm-l6-v2": "test", "multilingual-e5-small": "fast"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


# ------------------------------------------------------------------------------------ data sets
@dataclass(frozen=True)
class Question:
    id: str
    text: str
    relevant: dict[str, int]  # passage id -> graded relevance (SQuAD sets: the one paragraph, 1)


@dataclass
class Dataset:
    name: str
    passages: dict[str, str]  # passage id -> text, in file order
    questions: list[Question]
    notes: list[str] = field(default_factory=list)
    collection: str = ""  # the docqa collection; a passage subset gets its own name

    def __post_init__(self) -> None:
        self.collection = self.collection or self.name


def load_squad(name: str, path: Path) -> Dataset:
    """SQuAD v1 JSON: a passage is a paragraph's context; a question's gold is its paragraph."""
    data = json.loads(path.read_text(encoding="utf-8"))
    passages: dict[str, str] = {}
    by_text: dict[str, list[str]] = {}
    raw_questions: list[tuple[str, str, str]] = []
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(article["paragraphs"]):
            pid = str(paragraph.get("id") or f"a{a:03d}-p{p:02d}")
            context = paragraph["context"]
            passages[pid] = context
            by_text.setdefault(context, []).append(pid)
            for qa in paragraph["qas"]:
                if qa["question"].strip():
                    raw_questions.append((str(qa["id"]), qa["question"], context))
    # A context repeated under two ids makes both passages relevant.
    questions = [
        Question(qid, text, dict.fromkeys(by_text[context], 1))
        for qid, text, context in raw_questions
    ]
    return Dataset(name, passages, questions)


def load_scifact(name: str, root: Path) -> Dataset:
    """BEIR: a passage is a document's title + blank line + text; test queries with qrels."""
    passages: dict[str, str] = {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            passages[str(doc["_id"])] = f"{doc['title']}\n\n{doc['text']}".strip()
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / "test.tsv").open(encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    texts: dict[str, str] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            query = json.loads(line)
            texts[str(query["_id"])] = query["text"]
    questions = [Question(qid, texts[qid], rel) for qid, rel in qrels.items() if qid in texts]
    return Dataset(name, passages, questions)


DATASETS: dict[str, Callable[[Path], Dataset]] = {
    "xquad-en": lambda root: load_squad("xquad-en", root / "xquad" / "xquad.en.json"),
    "xquad-zh": lambda root: load_squad("xquad-zh", root / "xquad" / "xquad.zh.json"),
    "cmrc": lambda root: load_squad("cmrc", root / "cmrc2018" / "cmrc2018_dev.json"),
    "scifact": lambda root: load_scifact("scifact", root / "scifact"),
}


def load_dataset(name: str, root: Path) -> Dataset:
    if name not in DATASETS:
        raise SystemExit(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name](root)


def sample_questions(ds: Dataset, n: int, seed: int) -> None:
    """Keep a seeded random sample of ``n`` questions (in sample order); no-op if fewer."""
    if n < len(ds.questions):
        ds.questions = random.Random(seed).sample(ds.questions, n)
        ds.notes.append(f"{n} questions sampled with seed {seed}")


def limit_passages(ds: Dataset, n: int, seed: int) -> None:
    """Keep every passage some question needs, plus a seeded sample of the others, ``n`` in all."""
    if n >= len(ds.passages):
        return
    needed = {pid for q in ds.questions for pid in q.relevant if pid in ds.passages}
    others = sorted(set(ds.passages) - needed)
    extra = random.Random(seed).sample(others, max(0, n - len(needed)))
    keep = needed | set(extra)
    total = len(ds.passages)
    ds.passages = {pid: text for pid, text in ds.passages.items() if pid in keep}
    ds.collection = f"{ds.name}-{len(ds.passages)}-s{seed}"
    ds.notes.append(
        f"{len(ds.passages)} of {total} passages: all {len(needed)} judged relevant for the "
        f"questions + a seeded sample (seed {seed}) of the rest"
    )


# ----------------------------------------------------------------------------------- corpus files
def safe_name(pid: str) -> str:
    """A file-name-safe form of a passage id: ``'a/b c'`` -> ``'a_b_c'``."""
    return _UNSAFE.sub("_", pid).strip("_")[:120] or "passage"


def write_corpus(passages: dict[str, str], folder: Path) -> dict[str, str]:
    """One ``.txt`` per passage (unchanged files left alone); returns file name -> passage id."""
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for pid, text in passages.items():
        stem = base = safe_name(pid)
        n = 1
        while f"{stem}.txt" in names:
            n += 1
            stem = f"{base}-{n}"
        name = f"{stem}.txt"
        names[name] = pid
        path = folder / name
        data = text.encode("utf-8")
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
    stale = [p for p in folder.glob("*.txt") if p.name not in names]
    for path in stale:
        path.unlink()
    return names


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


def embedder_slug(embedder: str) -> str:
    return safe_name(Path(embedder).name if "/" in embedder else embedder)


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


# ----------------------------------------------------------------------------- logging, machine
@contextmanager
def bench_logging(verbose: bool = False) -> Iterator[None]:
    """INFO logs for the benchmark, WARNING for libraries, routed around tqdm bars."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("bench").setLevel(logging.DEBUG if verbose else logging.INFO)
    with logging_redirect_tqdm():
        yield


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def code_version() -> str:
    """The commit the benchmark ran from, and whether the working tree had changes (read-only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!bench",
                ":!docs",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"git {head}" + (" + uncommitted changes outside bench/ and docs/" if dirty else "")


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": f"{cores} cores (nproc), {_cpu_model()}",
        "cpu flags": cpu_flag_summary(),
        "gpu": gpu,
        "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
        "python": platform.python_version(),
        "libraries": (
            f"sentence-transformers {_version('sentence-transformers')}, "
            f"chromadb {_version('chromadb')}"
        ),
        "code": code_version(),
        "load at start": load_average(),
    }


# The instruction sets that decide how fast the engines run here (bf16, int8 dot products).
_SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx")


def cpu_flag_summary() -> str:
    """Which of the speed-relevant /proc/cpuinfo flags this CPU has (``amx`` stands for all
    ``amx_*``)."""
    from index.hardware import read_cpu_flags

    flags = read_cpu_flags()
    have = sorted(f for f in flags if f.startswith(_SPEED_FLAGS))
    missing = [f for f in _SPEED_FLAGS if not any(h.startswith(f) for h in have)]
    return f"{' '.join(have) or 'none'}; not: {' '.join(missing) or '-'}"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every timing."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def contention_note(host: dict[str, str]) -> list[str]:
    """A warning when other work loaded the machine beyond its cores during the run."""
    try:
        cores = int(host["cpu"].split()[0])
        loads = [float(host[k].split()[0]) for k in ("load at start", "load at end") if k in host]
    except (KeyError, ValueError, IndexError):
        return []
    if not loads or max(loads) <= cores:
        return []
    return [
        f"The machine was shared: its 1-minute load average reached {max(loads):.1f} on "
        f"{cores} cores (other people's jobs). Every timing here includes that contention, "
        "which also varies between the passes compared; treat ratios as approximate."
    ]


def machine_lines(info: dict[str, str]) -> list[str]:
    return [f"- {key}: {value}" for key, value in info.items()]


def command_line() -> str:
    """The command as run, with ``nice -n N`` when the process runs niced."""
    script = Path(sys.argv[0])
    with suppress(ValueError):
        script = script.resolve().relative_to(Path.cwd())
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness else ""
    return f"{prefix}.venv/bin/python {shlex.join([str(script), *sys.argv[1:]])}"


def now() -> str:
    return dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


# ------------------------------------------------------------------------------- BENCHMARKS.md
_DOC_HEADER = """# Benchmarks

Measured numbers, each section written by the script that measured it (re-running a script
replaces its own section, between its markers). The data sets are described in
`../shared/data/README.md`; they are evaluation data, never part of the product.
"""


def replace_section(doc: Path, key: str, body: str) -> None:
    """Write ``body`` between ``<!-- BEGIN key -->`` and ``<!-- END key -->``, appending if new."""
    begin, end = f"<!-- BEGIN {key} -->", f"<!-- END {key} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else _DOC_HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
    log.info("wrote the %s section of %s", key, doc)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    aligns = ["---" if i == 0 or not _numeric(rows, i) else "---:" for i in range(len(header))]
    lines = [header, aligns, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _numeric(rows: list[list[str]], column: int) -> bool:
    cells = [r[column] for r in rows if r[column] not in ("", "–")]
    return bool(cells) and all(re.fullmatch(r"[-+]?[\d.,×%]+", c) for c in cells)


# ------------------------------------------------------------------------------------ main
def run_bench(
    args: Any,
    measure: Callable[[Any], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    section: str,
) -> int:
    """Measure (or re-render ``--from-json``), save the raw results, print and write the section.

    ``args`` carries ``from_json``, ``work_dir`` and ``out`` (``-``: print only).
    """
    with bench_logging():
        if args.from_json:
            payload = json.loads(args.from_json.read_text(encoding="utf-8"))
        else:
            payload = measure(args)
            args.work_dir.mkdir(parents=True, exist_ok=True)
            saved = args.work_dir / "results.json"
            saved.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
            log.info("results saved to %s", saved)
        text = render(payload)
        sys.stdout.write(text + "\n")
        if str(args.out) != "-":
            replace_section(args.out, section, text)
    return 0
