"""Past one box, measured on one machine: ingest jobs per minute with one and two `docqa worker`
processes, and ``POST /v1/retrieve`` latency through one API host and through two.

Everything is real and started here: a Chroma server (`chroma run`), a throw-away PostgreSQL
(Debian's binaries, tests/pg_server.py), two `docqa serve` processes with ``DOCQA_WORKER=false``
(hosts A and B) and the workers, each process with a data dir of its own, so they share only
the two servers (``DOCQA_CHROMA_URL``, ``DOCQA_DATABASE_URL``).

- Jobs: ``--docs`` XQuAD-en passages (one ``.md`` file each, a few hundred words) are uploaded
  through host A into a fresh collection per worker count, all queued before any worker runs;
  then the workers start, each with a fresh data dir (no embedding cache from an earlier run).
  Throughput is jobs over the span from the first job's start to the last job's end (the jobs'
  own timestamps, read through host B); a job's run time is its end minus its claim.
- API latency: ``--questions`` XQuAD-en questions against the collection the jobs filled,
  hybrid mode: one client on host A alone, then two concurrent clients, one per host, then two
  concurrent clients on host A alone (the same load, one host).

    .venv/bin/python bench/scale_out.py --docs 120 --questions 100 --work-dir /tmp/dq-scale-out

On a 2-core machine the processes share two cores: a second worker or host adds no CPU, and
the numbers say what that costs, not what more machines would give.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import _path  # noqa: F401
import httpx

from bench._common import add_run_args, load_dataset, safe_name
from bench._host import machine, run_header
from bench._report import add_report_args, log, markdown_table, run_bench, run_lines
from tests.index.conftest import free_port, running_chroma_server
from tests.pg_server import running_postgres
from tests.processes import docqa, http_ready, wait_until

READY_S = 300.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _run_jobs(
    workers: int,
    env: dict[str, str],
    work: Path,
    a: str,
    b: str,
    files: dict[str, bytes],
) -> dict[str, Any]:
    """Queue every upload first (no worker runs yet), then start ``workers`` fresh workers
    (data dirs of their own: no embedding cache from an earlier run) and time them."""
    collection = f"bench-w{workers}"
    log.info("uploading %d documents through host A", len(files))
    with httpx.Client(timeout=120) as client:
        ids = []
        for name, data in files.items():
            r = client.post(
                f"{a}/v1/collections/{collection}/documents", files={"file": (name, data)}
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
        with ExitStack() as stack:
            for i in range(workers):
                log_path = work / f"worker-{workers}-{i}.log"
                data_dir = work / f"worker-{workers}-{i}"
                stack.enter_context(
                    docqa(["worker"], {**env, "DOCQA_DATA_DIR": str(data_dir)}, log_path)
                )
            log.info("%d worker(s) started on %d queued jobs", workers, len(ids))
            while True:
                jobs = client.get(
                    f"{b}/v1/jobs", params={"collection": collection, "limit": len(ids)}
                ).json()["jobs"]
                if all(j["state"] in ("done", "failed") for j in jobs) and len(jobs) == len(ids):
                    break
                time.sleep(1)
    failed = [j for j in jobs if j["state"] != "done"]
    span = max(j["finished_at"] for j in jobs) - min(j["started_at"] for j in jobs)
    run = [j["finished_at"] - j["started_at"] for j in jobs]
    chunks = sum(j["report"]["chunks_added"] for j in jobs if j["report"])
    by_worker: dict[str, int] = {}
    for j in jobs:
        by_worker[j["worker"]] = by_worker.get(j["worker"], 0) + 1
    return {
        "workers": workers,
        "jobs": len(jobs),
        "failed": len(failed),
        "chunks": chunks,
        "span_s": round(span, 2),
        "jobs_per_minute": round(60 * len(jobs) / span, 1),
        "chunks_per_second": round(chunks / span, 1),
        "job_run_p50_s": round(_percentile(run, 0.5), 3),
        "job_run_p95_s": round(_percentile(run, 0.95), 3),
        "jobs_by_worker": sorted(by_worker.values(), reverse=True),
    }


def _latency(bases: list[str], questions: list[str], collection: str) -> dict[str, Any]:
    """One client thread per base URL, each asking every question in turn."""
    timings: list[float] = []
    lock = threading.Lock()

    def client(base: str) -> None:
        with httpx.Client(timeout=60) as http:
            for q in questions:
                started = time.perf_counter()
                r = http.post(
                    f"{base}/v1/retrieve",
                    json={"question": q, "collection": collection, "mode": "hybrid", "top_k": 5},
                )
                r.raise_for_status()
                with lock:
                    timings.append(time.perf_counter() - started)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(base,)) for base in bases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = [t * 1000 for t in timings]
    return {
        "clients": len(bases),
        "requests": len(ms),
        "p50_ms": round(_percentile(ms, 0.5), 1),
        "p95_ms": round(_percentile(ms, 0.95), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "requests_per_second": round(len(ms) / wall, 1),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    info = machine()
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("xquad-en", args.data_root)
    texts = list(ds.texts().items())[: args.docs]
    files = {f"{safe_name(doc_id)}.md": text.encode() for doc_id, text in texts}
    questions = [q.text for q in ds.questions if set(q.relevance) & {d for d, _ in texts}]
    questions = questions[: args.questions]
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        chroma_root = work / f"chroma-{os.getpid()}"
        chroma_root.mkdir()
        chroma_url, _ = stack.enter_context(running_chroma_server(chroma_root))
        database_url = stack.enter_context(running_postgres())
        env = {
            **os.environ,
            "DOCQA_MODELS_DIR": str(args.models_dir.resolve()),
            "DOCQA_PROFILE": args.profile,
            "DOCQA_CHROMA_URL": chroma_url,
            "DOCQA_DATABASE_URL": database_url,
            "DOCQA_UI_ENABLED": "false",
            "DOCQA_WORKER": "false",
            "DOCQA_LOG_LEVEL": "WARNING",
        }
        hosts = []
        for name in ("a", "b"):
            port = free_port()
            log_path = work / f"serve-{name}.log"
            proc = stack.enter_context(
                docqa(
                    ["serve", "--port", str(port)],
                    {**env, "DOCQA_DATA_DIR": str(work / name)},
                    log_path,
                )
            )
            base = f"http://127.0.0.1:{port}"
            wait_until(http_ready(f"{base}/readyz"), proc, log_path, READY_S, f"host {name}")
            hosts.append(base)
        a, b = hosts
        env["DOCQA_LOG_LEVEL"] = "INFO"  # the workers' "started" line is how we see them up
        results["jobs"] = [_run_jobs(n, env, work, a, b, files) for n in (1, 2)]
        _latency([a], questions[:5], "bench-w1")  # warm both hosts' caches and connections
        _latency([b], questions[:5], "bench-w1")
        results["latency"] = {
            "one host, one client": _latency([a], questions, "bench-w1"),
            "two hosts, one client each": _latency([a, b], questions, "bench-w1"),
            "one host, two clients": _latency([a, a], questions, "bench-w1"),
        }
    return {
        **run_header(info, started),
        "profile": args.profile,
        "docs": len(files),
        "questions": len(questions),
        **results,
    }


def render(payload: dict[str, Any]) -> str:
    jobs = markdown_table(
        [
            "workers",
            "jobs",
            "failed",
            "chunks",
            "jobs/min",
            "chunks/s",
            "job run p50 s",
            "job run p95 s",
            "jobs per worker",
        ],
        [
            [
                str(r["workers"]),
                str(r["jobs"]),
                str(r["failed"]),
                str(r["chunks"]),
                f"{r['jobs_per_minute']:.1f}",
                f"{r['chunks_per_second']:.1f}",
                f"{r['job_run_p50_s']:.2f}",
                f"{r['job_run_p95_s']:.2f}",
                " / ".join(map(str, r["jobs_by_worker"])),
            ]
            for r in payload["jobs"]
        ],
    )
    latency = markdown_table(
        ["layout", "requests", "p50 ms", "p95 ms", "mean ms", "req/s"],
        [
            [
                name,
                str(r["requests"]),
                f"{r['p50_ms']:.1f}",
                f"{r['p95_ms']:.1f}",
                f"{r['mean_ms']:.1f}",
                f"{r['requests_per_second']:.1f}",
            ]
            for name, r in payload["latency"].items()
        ],
    )
    return "\n".join(
        [
            "## Scaling out: ingest jobs and two API hosts (`bench/scale_out.py`)",
            "",
            *run_lines(payload),
            "",
            f"Profile `{payload['profile']}`; {payload['docs']} XQuAD-en passages as one `.md` "
            f"upload each; a Chroma server and PostgreSQL on this machine; every docqa process "
            f"with its own data dir. The uploads are queued first, then the workers are "
            f"started (fresh: no embedding cache); jobs per minute over the span from the first "
            f"job's start to the last one's end (a worker loads its embedder before it claims); "
            f"a job's run time "
            f"from its claim to its end:",
            "",
            jobs,
            "",
            f"`POST /v1/retrieve` (hybrid, top 5) over {payload['questions']} XQuAD-en "
            "questions on the collection one worker filled; each client asks them all in turn:",
            "",
            latency,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_args(parser, "/tmp/dq-scale-out")
    add_report_args(parser)
    parser.add_argument("--docs", type=int, default=120)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    return run_bench(args, measure, render, "scale-out", lambda p: "scale-out.json")


if __name__ == "__main__":
    sys.exit(main())
