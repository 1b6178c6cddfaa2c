"""Past one box, end to end on one machine: a Chroma server, PostgreSQL, two `docqa serve`
processes (API only, ``DOCQA_WORKER=false``) and one `docqa worker`, each with a data dir of its
own, so nothing is shared but the two servers.

An upload through host A becomes a job that the worker runs; host B then finds the document by
keyword, dense and hybrid retrieval, lists it, and shows the job; a delete through B removes it
for A too, in every index.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR
from tests.index.conftest import free_port
from tests.processes import docqa, http_ready, tail, wait_until

pytestmark = pytest.mark.slow  # child processes
READY_S = 180.0
JOB_S = 120.0
COLLECTION = "two-hosts"
RUNBOOK = (
    b"# Orbit runbook\n\n## Ports\n\nThe orbit-agent daemon listens on port 7070 and the "
    b"orbit-scheduler on port 8450.\n\n## Owners\n\nLin Wei owns orbit-agent; Daniel Ferreira owns "
    b"orbit-scheduler.\n"
)


def _sources(base: str, question: str, mode: str) -> list[str]:
    r = httpx.post(
        f"{base}/v1/retrieve",
        json={"question": question, "collection": COLLECTION, "mode": mode, "top_k": 5},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return [p["source"] for p in r.json()["passages"]]


def test_two_api_hosts_and_a_worker_share_one_chroma_and_one_database(
    tmp_path: Path, test_models: ModelCache, chroma_server: str, postgres_url: str
) -> None:
    common = {
        **os.environ,
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
        "DOCQA_CHROMA_URL": chroma_server,
        "DOCQA_DATABASE_URL": postgres_url,
        "DOCQA_UI_ENABLED": "false",
        "DOCQA_LLM_THREADS": "1",
    }
    hosts: dict[str, str] = {}
    with ExitStack() as stack:
        procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for name in ("a", "b"):
            port = free_port()
            env = {**common, "DOCQA_DATA_DIR": str(tmp_path / name), "DOCQA_WORKER": "false"}
            log = tmp_path / f"serve-{name}.log"
            procs[name] = (
                stack.enter_context(docqa(["serve", "--port", str(port)], env, log)),
                log,
            )
            hosts[name] = f"http://127.0.0.1:{port}"
        worker_log = tmp_path / "worker.log"
        worker = stack.enter_context(
            docqa(["worker"], {**common, "DOCQA_DATA_DIR": str(tmp_path / "w")}, worker_log)
        )
        for name, base in hosts.items():
            proc, log = procs[name]
            wait_until(http_ready(f"{base}/readyz"), proc, log, READY_S, f"host {name}")
        a, b = hosts["a"], hosts["b"]

        # Upload through A: a job, run by the worker process (A and B run none).
        r = httpx.post(
            f"{a}/v1/collections/{COLLECTION}/documents",
            files={"file": ("orbit-runbook.md", RUNBOOK)},
            data={"source": "ops/orbit-runbook.md"},
            timeout=60,
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + JOB_S
        while (job := httpx.get(f"{b}/v1/jobs/{job_id}", timeout=10).json())["state"] not in (
            "done",
            "failed",
        ):
            assert worker.poll() is None, tail(worker_log)
            assert time.monotonic() < deadline, f"{job}\n{tail(worker_log)}"
            time.sleep(0.3)
        assert job["state"] == "done", job
        assert job["worker"].split(":")[1] == str(worker.pid)  # the worker, not A or B
        assert job["report"]["files_new"] == 1

        # B finds it by every retrieval method, and lists it; so does A.
        for mode in ("keyword", "dense", "hybrid"):
            assert _sources(b, "Which port does orbit-agent listen on?", mode)[0] == (
                "ops/orbit-runbook.md"
            ), mode
        docs: list[dict[str, Any]] = httpx.get(
            f"{b}/v1/collections/{COLLECTION}/documents", timeout=10
        ).json()["documents"]
        assert [d["source"] for d in docs] == ["ops/orbit-runbook.md"]
        assert [j["id"] for j in httpx.get(f"{b}/v1/jobs", timeout=10).json()["jobs"]] == [job_id]

        # The same upload through B again changes nothing (B sees A's manifest).
        again = httpx.post(
            f"{b}/v1/collections/{COLLECTION}/documents?wait=true",
            files={"file": ("orbit-runbook.md", RUNBOOK)},
            data={"source": "ops/orbit-runbook.md"},
            timeout=120,
        )
        assert again.status_code == 200, again.text
        assert (again.json()["files_unchanged"], again.json()["chunks_added"]) == (1, 0)

        # A delete through B removes it everywhere: A finds it by no method.
        deleted = httpx.delete(
            f"{b}/v1/collections/{COLLECTION}/documents/{docs[0]['doc_id']}", timeout=30
        )
        assert deleted.status_code == 200 and deleted.json()["chunks_removed"] == docs[0]["chunks"]
        for mode in ("keyword", "dense", "hybrid"):
            assert "ops/orbit-runbook.md" not in _sources(a, "orbit-agent port 7070", mode), mode
        assert (
            httpx.get(f"{a}/v1/collections/{COLLECTION}/documents", timeout=10).json()["documents"]
            == []
        )
