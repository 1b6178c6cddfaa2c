"""`docqa ingest --url`: a folder uploaded to a real server (uvicorn on loopback, the real
pipeline and in-process worker on the hashing embedder) as ingest jobs, followed to the end."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.generation.fake import FakeGenerator
from app.main import create_app
from docqa.cli import ingest_remote
from docqa.cli.main import app as cli
from tests.app.fake_backend import fake_backend, fake_settings
from tests.app.live import serving

KEY = "remote-ingest-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The service on fakes, with an API key, served on a loopback port; its URL once ready."""
    settings = fake_settings(tmp_path / "server", api_keys=KEY)
    with serving(create_app(settings, fake_backend(FakeGenerator()))) as (host, port):
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)
        yield url


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "handbook"
    (root / "team-a").mkdir(parents=True)
    (root / "team-b").mkdir()
    (root / "guide.md").write_text("# Guide\n\nThe pager rotates weekly.\n", encoding="utf-8")
    (root / "team-a" / "guide.md").write_text("# A\n\nTeam A deploys on Tuesdays.\n")
    (root / "team-b" / "值班.html").write_text(
        "<html><body><h1>值班</h1><p>每周一上午十点交接。</p></body></html>", encoding="utf-8"
    )
    (root / "team-b" / "broken.pdf").write_bytes(b"%PDF-1.7 garbage")
    (root / "notes.xyz").write_text("not a document type")  # skipped, as locally
    return root


def _run(args: list[str], tmp_path: Path) -> tuple[int, str]:
    env = {
        "DOCQA_DATA_DIR": str(tmp_path / "cli-data"),
        "DOCQA_MODELS_DIR": str(tmp_path / "no-models"),
        "DOCQA_PROFILE": "test",
        "DOCQA_API_KEYS": KEY,
    }
    result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.stdout + result.stderr


def _sources(url: str, collection: str) -> dict[str, str]:
    r = httpx.get(f"{url}/v1/collections/{collection}/documents", headers=AUTH)
    assert r.status_code == 200, r.text
    return {d["source"]: d["doc_id"] for d in r.json()["documents"]}


def test_a_folder_goes_up_as_jobs_with_relative_sources_and_again_changes_nothing(
    server: str, folder: Path, tmp_path: Path
) -> None:
    code, out = _run(["ingest", str(folder), "--url", server, "-c", "handbook"], tmp_path)
    assert code == 2, out  # the broken PDF failed; the rest went in
    expected = {"guide.md", "team-a/guide.md", "team-b/值班.html"}
    assert len([ln for ln in out.splitlines() if ln.startswith("job ")]) == 4, out
    assert "files new 3, changed 0, unchanged 0, failed 1" in out
    assert "FAILED team-b/broken.pdf: team-b/broken.pdf could not be ingested" in out
    assert "Traceback" not in out
    first = _sources(server, "handbook")
    assert set(first) == expected

    code, out = _run(["ingest", str(folder), "--url", server, "-c", "handbook", "--json"], tmp_path)
    assert code == 2, out
    jobs = {j["source"]: j for j in json.loads(out.splitlines()[-1])["jobs"]}
    assert set(jobs) == {*expected, "team-b/broken.pdf"}
    for source in expected:
        job = jobs[source]["job"]
        assert job["state"] == "done" and job["report"]["files_unchanged"] == 1, job
        assert job["report"]["chunks_added"] == 0
    broken = jobs["team-b/broken.pdf"]
    assert broken["state"] == "failed" and "could not be ingested" in broken["job"]["error"]
    assert _sources(server, "handbook") == first  # the same documents, the same ids

    # A single file named directly is known by its name; --no-wait only queues it.
    code, out = _run(
        ["ingest", str(folder / "team-a" / "guide.md"), "--url", server, "-c", "single"],
        tmp_path,
    )
    assert code == 0 and "files new 1, changed 0, unchanged 0, failed 0" in out, out
    assert set(_sources(server, "single")) == {"guide.md"}
    code, out = _run(
        ["ingest", str(folder / "guide.md"), "--url", server, "-c", "later", "--no-wait"],
        tmp_path,
    )
    assert code == 0, out
    job_id = next(ln.split()[1] for ln in out.splitlines() if ln.startswith("job "))
    deadline = time.monotonic() + 60
    while (job := httpx.get(f"{server}/v1/jobs/{job_id}", headers=AUTH).json())["state"] != "done":
        assert time.monotonic() < deadline and job["state"] != "failed", job
        time.sleep(0.1)


def test_an_unreachable_server_a_wrong_key_and_local_only_options_are_fatal(
    server: str, folder: Path, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = _run(["ingest", str(folder), "--url", f"http://127.0.0.1:{port}"], tmp_path)
    assert code == 1 and f"cannot reach the docqa server at http://127.0.0.1:{port}" in out
    assert "Traceback" not in out
    code, out = _run(["ingest", str(folder), "--url", server, "--api-key", "wrong"], tmp_path)
    assert code == 1 and "refused the API key (401)" in out, out
    code, out = _run(["ingest", str(folder), "--url", server, "-c", "x"], tmp_path)
    assert code == 1 and "invalid collection name 'x'" in out, out
    assert "job " not in out  # nothing was uploaded
    code, out = _run(["ingest", str(folder), "--url", server, "--prune"], tmp_path)
    assert code == 1 and "local ingest only" in out


def test_a_busy_server_is_waited_out_and_a_refused_file_fails_alone(tmp_path: Path) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 2:
            busy = {"error": {"code": "rate_limited", "message": "slow down"}}
            return httpx.Response(429, json=busy, headers={"Retry-After": "0"})
        if request.url.path == "/v1/jobs":
            return httpx.Response(200, json={"jobs": []})
        if b"big.md" in request.content:
            error = {"code": "payload_too_large", "message": "file is over 50 MB"}
            return httpx.Response(413, json={"error": error})
        job = {"id": "j1", "state": "queued", "progress": {"stage": "queued"}}
        return httpx.Response(202, json=job)

    (tmp_path / "a.md").write_text("# A\n")
    (tmp_path / "big.md").write_text("# B\n")
    client = ingest_remote.JobClient(
        "http://docqa.test", None, transport=httpx.MockTransport(handler)
    )
    said: list[str] = []
    uploads = ingest_remote.run(client, [tmp_path], "docs", say=said.append, wait=False)
    assert said == ["job j1 queued: a.md", "refused big.md: 413: file is over 50 MB"]
    assert calls == ["/v1/jobs", *["/v1/collections/docs/documents"] * 3]  # one 429 retried
    assert ingest_remote.exit_code(uploads) == 2
