"""The HTTP API's retrieval, documents, health and errors, over real HTTP (TestClient) with the
real test models, a real Chroma and the real BM25 index."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.main import create_app
from config.settings import Settings
from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR
from wiring.compose import Services

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 120
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.1)


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, Services.build))


@pytest.fixture
def client(tmp_path: Path, test_models: ModelCache) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", models_dir=TEST_MODELS_DIR, profile="test")
    with _client(settings) as c:
        _wait_ready(c)
        for name in ("orbit-runbook.md", "security-policy.pdf"):
            with (EXAMPLES / name).open("rb") as fh:
                r = c.post("/v1/collections/docs/documents?wait=true", files={"file": (name, fh)})
            assert r.status_code == 200, r.text
            assert r.json()["files_new"] == 1
        yield c


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    assert "/v1/retrieve" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_retrieve_returns_passages_with_provenance(client: TestClient) -> None:
    r = client.post("/v1/retrieve", json={"question": "How often do API keys rotate?", "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    top = body["passages"][0]
    assert top["source"] == "security-policy.pdf" and top["page"] == 2
    assert "30 days" in top["text"] and "convex" in top["scores"]
    assert set(body["timings_ms"]) == {"embed", "retrieve", "rerank"}
    only = client.post(
        "/v1/retrieve",
        json={"question": "API keys", "filters": {"source": "orbit-runbook.md"}, "top_k": 5},
    ).json()["passages"]
    assert only and all(p["source"] == "orbit-runbook.md" for p in only)


def test_collections_documents_and_delete(client: TestClient) -> None:
    cols = client.get("/v1/collections").json()["collections"]
    assert [c["name"] for c in cols] == ["docs"] and cols[0]["documents"] == 2
    docs = client.get("/v1/collections/docs/documents").json()["documents"]
    pdf = next(d for d in docs if d["source"] == "security-policy.pdf")
    r = client.delete(f"/v1/collections/docs/documents/{pdf['doc_id']}")
    assert r.status_code == 200 and r.json()["chunks_removed"] == pdf["chunks"]
    hits = client.post("/v1/retrieve", json={"question": "API keys rotate", "top_k": 5}).json()
    assert all(p["source"] != "security-policy.pdf" for p in hits["passages"])
    again = client.delete(f"/v1/collections/docs/documents/{pdf['doc_id']}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"question": ""}, 422, "question"),
        ({"question": "x", "top_k": 0}, 422, "top_k"),
        ({"question": "x", "top_k": 500}, 422, "top_k"),
        ({"question": "x", "collection": "nope-missing"}, 404, "does not exist"),
        ({"question": "x", "collection": "a"}, 422, "collection"),
        ({"question": "x", "filters": {"owner": "me"}}, 422, "owner"),
        ({"question": "x" * 2001}, 422, "2001 characters, over the limit of 2000"),
    ],
)
def test_bad_requests_get_clear_4xx(
    client: TestClient, body: dict[str, object], status: int, needle: str
) -> None:
    r = client.post("/v1/retrieve", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message"} and needle in error["message"]


def test_uploads_refuse_bad_types_sizes_and_paths(client: TestClient, tmp_path: Path) -> None:
    r = client.post(
        "/v1/collections/docs/documents?wait=true", files={"file": ("evil.exe", b"MZ...")}
    )
    assert r.status_code == 415
    big = b"a" * (2 * 1024 * 1024)
    client.app.state.docqa.backend.settings.max_file_mb = 1  # type: ignore[attr-defined]
    r = client.post("/v1/collections/docs/documents?wait=true", files={"file": ("big.txt", big)})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]
    client.app.state.docqa.backend.settings.max_file_mb = 50  # type: ignore[attr-defined]
    r = client.post(
        "/v1/collections/docs/documents?wait=true",
        files={"file": ("../../etc/notes.md", b"# Notes\n\nThe VPN gateway is vpn-7.\n")},
    )
    assert r.status_code == 200, r.text
    sources = [
        d["source"] for d in client.get("/v1/collections/docs/documents").json()["documents"]
    ]
    assert "notes.md" in sources
    r = client.post(
        "/v1/collections/docs/documents?wait=true", files={"file": ("bad.pdf", b"%PDF-1.4 junk")}
    )
    assert r.status_code == 422, r.text
    error, report = r.json()["error"], r.json()["report"]
    assert error["code"] == "ingest_failed" and error["message"].startswith("bad.pdf could not")
    assert report["files_failed"] == 1 and report["failures"][0]["path"] == "bad.pdf"
    reason = report["failures"][0]["error"]
    assert "pdf" in reason.lower() and reason in error["message"]


def test_a_long_file_name_keeps_its_extension(client: TestClient) -> None:
    for name in ("n" * 296 + ".md", "值班" * 150 + ".md"):
        r = client.post(
            "/v1/collections/long/documents?wait=true",
            files={"file": (name, b"# Duty\n\nThe on-call phone is kept in room 4.\n")},
        )
        assert r.status_code == 200, r.text
    sources = [
        d["source"] for d in client.get("/v1/collections/long/documents").json()["documents"]
    ]
    assert len(sources) == 2 and all(s.endswith(".md") for s in sources), sources
    assert all(len(s.encode()) <= 200 for s in sources)


def test_same_named_uploads_need_their_own_source_or_replace(client: TestClient) -> None:
    url = "/v1/collections/teams/documents?wait=true"
    team_a = b"# Report\n\nTeam A ships the billing service on Tuesdays.\n"
    team_b = b"# Report\n\nTeam B ships the search service on Thursdays.\n"

    def texts() -> str:
        r = client.post("/v1/retrieve", json={"question": "ships", "collection": "teams"})
        return " ".join(p["text"] for p in r.json()["passages"])

    # The base name is the default source: team B's report.md may not silently replace A's.
    r = client.post(url, files={"file": ("team-a/report.md", team_a)})
    assert r.status_code == 200 and r.json()["files_new"] == 1, r.text
    r = client.post(url, files={"file": ("team-b/report.md", team_b)})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict" and "'report.md'" in error["message"]
    assert "replace=true" in error["message"] and "source" in error["message"]
    assert "Team A" in texts() and "Team B" not in texts()
    # Each its own source: both stay.
    r = client.post(url, files={"file": ("report.md", team_b)}, data={"source": "team-b/report.md"})
    assert r.status_code == 200 and r.json()["files_new"] == 1, r.text
    docs = client.get(url).json()["documents"]
    assert sorted(d["source"] for d in docs) == ["report.md", "team-b/report.md"]
    assert "Team A" in texts() and "Team B" in texts()
    # The same content again is no conflict: nothing changes.
    r = client.post(url, files={"file": ("report.md", team_a)})
    assert r.status_code == 200 and r.json()["files_unchanged"] == 1, r.text
    # Replacing is asked for.
    r = client.post(url, files={"file": ("report.md", team_b)}, data={"replace": "true"})
    assert r.status_code == 200 and r.json()["files_changed"] == 1, r.text
    assert "Team A" not in texts()
    # A source may not climb out of the collection.
    r = client.post(url, files={"file": ("x.md", team_a)}, data={"source": "../x.md"})
    assert r.status_code == 422 and "'..'" in r.json()["error"]["message"]


def test_metrics_appear_and_move(client: TestClient) -> None:
    def scrape() -> dict[str, float]:
        text = client.get("/metrics").text
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = sample.name + str(sorted(sample.labels.items()))
                values[key] = sample.value
        return values

    before = scrape()
    client.post("/v1/retrieve", json={"question": "rollback window"})
    after = scrape()
    req = "docqa_requests_total[('endpoint', '/v1/retrieve'), ('status', '200')]"
    assert after.get(req) == before.get(req, 0) + 1, [k for k in after if "requests" in k]
    stage = "docqa_stage_latency_seconds_count[('stage', 'retrieve')]"
    assert after[stage] == before.get(stage, 0) + 1
    assert after["docqa_retrieval_top_score_count[]"] >= 1
    assert after["docqa_embedding_cache_misses_total[]"] > 0


def test_api_keys_and_rate_limit(tmp_path: Path, test_models: ModelCache) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        models_dir=TEST_MODELS_DIR,
        profile="test",
        api_keys=[SecretStr("k-1")],
        rate_limit_per_minute=2,
    )
    with _client(settings) as c:
        _wait_ready(c)
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        r = c.get("/v1/collections")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert (
            c.get("/v1/collections", headers={"Authorization": "Bearer wrong"}).status_code == 401
        )
        ok = {"Authorization": "Bearer k-1"}
        assert [c.get("/v1/collections", headers=ok).status_code for _ in range(2)] == [200, 200]
        limited = c.get("/v1/collections", headers=ok)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_not_ready_is_503_with_reason(tmp_path: Path) -> None:
    # The fast profile's embedder must be prepared first; this model cache is empty.
    settings = Settings(
        data_dir=tmp_path / "data", models_dir=tmp_path / "no-models", profile="fast"
    )
    with _client(settings) as c:
        deadline = time.monotonic() + 60
        while "Error" not in c.get("/readyz").text:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = c.get("/readyz")
        assert r.status_code == 503 and "models prepare" in r.json()["reason"]
        r = c.post("/v1/retrieve", json={"question": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert c.get("/healthz").status_code == 200
