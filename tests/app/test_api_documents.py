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
from docqa.compose import Services
from docqa.models.cache import ModelCache
from docqa.settings import Settings
from tests.conftest import TEST_MODELS_DIR

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
                r = c.post("/v1/collections/docs/documents", files={"file": (name, fh)})
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
    assert "30 days" in top["text"] and "rrf" in top["scores"]
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
    r = client.post("/v1/collections/docs/documents", files={"file": ("evil.exe", b"MZ...")})
    assert r.status_code == 415
    big = b"a" * (2 * 1024 * 1024)
    client.app.state.docqa.backend.settings.max_file_mb = 1  # type: ignore[attr-defined]
    r = client.post("/v1/collections/docs/documents", files={"file": ("big.txt", big)})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]
    client.app.state.docqa.backend.settings.max_file_mb = 50  # type: ignore[attr-defined]
    r = client.post(
        "/v1/collections/docs/documents",
        files={"file": ("../../etc/notes.md", b"# Notes\n\nThe VPN gateway is vpn-7.\n")},
    )
    assert r.status_code == 200, r.text
    sources = [
        d["source"] for d in client.get("/v1/collections/docs/documents").json()["documents"]
    ]
    assert "notes.md" in sources
    r = client.post("/v1/collections/docs/documents", files={"file": ("bad.pdf", b"%PDF-1.4 junk")})
    assert r.status_code == 200 and r.json()["files_failed"] == 1
    assert "pdf" in r.json()["failures"][0]["error"].lower()


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
