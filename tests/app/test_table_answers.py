"""Table questions answered right by the `default` profile (Qwen2.5-Coder-1.5B on llama.cpp,
multilingual-e5-small), through /v1/ask over the sample documents.

The 1.5B model misread the runbook's Markdown table ("Who owns the orbit-scheduler
component?" got the first row's "Priya Raman"); it now reads each row rendered with its column
names (``ingest.tables``), the row the question names first (``app.answer.prompt.passage_text``):
with the rendering alone it still answered "Priya Raman". The Chinese case is an expected
failure for a reason outside tables (see its mark). The models come from ``DOCQA_MODELS_DIR``
(else the test model cache, ``.docqa-test/models``), prepared with
``docqa --profile default models prepare``. Without them the test is skipped, except under CI
(env CI set), where it fails.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from config.settings import Settings
from index.hardware import pick_device
from modelstore.cache import ModelCache
from modelstore.onnx_export import choose_backend
from modelstore.profiles import models_for
from tests.conftest import TEST_MODELS_DIR
from wiring.compose import Services, llm_engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS_DIR = Path(os.environ.get("DOCQA_MODELS_DIR") or TEST_MODELS_DIR)

pytestmark = pytest.mark.slow


def _settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        models_dir=MODELS_DIR,
        profile="default",
        answer_max_tokens=64,
        generation_timeout_s=600,  # a 1.5B model on a loaded 2-core machine: never degrade
    )


def _missing(settings: Settings) -> list[str]:
    """The default profile's models that are not ready in the cache, with why."""
    cache = ModelCache(settings.model_cache_dir)
    models = models_for(settings)
    statuses = [
        cache.status(models.generator, llm_engine(settings).model_format),
        cache.status(models.embedder),
    ]
    backend = choose_backend(settings.embed_backend, models.embedder, pick_device(settings.device))
    if backend != "torch":
        statuses.append(cache.onnx_status(models.embedder, backend))
    return [f"{s.spec.name}: {s.detail}" for s in statuses if not s.ready]


_MISSING = _missing(_settings(Path("unused")))
if _MISSING:
    reason = (
        f"the default profile's models are not prepared in {MODELS_DIR} ({'; '.join(_MISSING)}): "
        "run `DOCQA_MODELS_DIR=... docqa --profile default models prepare`"
    )
    if os.environ.get("CI"):
        pytest.fail(f"the default-profile table test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = _settings(tmp_path_factory.mktemp("tables") / "data")
    with TestClient(create_app(settings, Services.build_for_serving)) as c:
        deadline = time.monotonic() + 600
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, c.get("/readyz").text
            time.sleep(0.5)
        for path in sorted(EXAMPLES.iterdir()):
            with path.open("rb") as fh:
                uploaded = c.post(
                    "/v1/collections/docs/documents?wait=true", files={"file": (path.name, fh)}
                )
            assert uploaded.status_code == 200, uploaded.text
        yield c


@pytest.mark.parametrize(
    ("question", "expected", "wrong", "source"),
    [
        ("Who owns the orbit-scheduler component?", "Daniel Ferreira", "Priya", "orbit-runbook.md"),
        ("Which port does orbit-scheduler listen on?", "8450", "8443", "orbit-runbook.md"),
        ("谁负责 Grafana 监控的权限？", "王强", "陈静", "onboarding.zh.docx"),
    ],
    ids=["owner", "port", "zh-owner"],
)
def test_a_table_question_is_answered_from_the_right_row(
    client: TestClient, question: str, expected: str, wrong: str, source: str
) -> None:
    r = client.post("/v1/ask", json={"question": question})
    assert r.status_code == 200, r.text
    body = r.json()
    answer = body["answer"]
    assert not body["declined"] and not body["degraded"], body
    assert expected in re.sub(r"\s+", " ", answer), answer
    assert wrong not in answer, answer  # the value of another row
    cited = [c for c in body["citations"] if c["source"] == source]
    assert cited, body["citations"]
    assert any("|" in c["snippet"] for c in cited)  # citations show the document's own text


@pytest.mark.parametrize(
    ("history", "question", "expected", "wrong", "source"),
    [
        (
            [
                {"role": "user", "content": "What port does orbit-agent use?"},
                {"role": "assistant", "content": "orbit-agent uses port 7070. [1]"},
            ],
            "And who owns it?",
            "Lin Wei",
            "Platform Delivery",
            "orbit-runbook.md",
        ),
        (
            [
                {"role": "user", "content": "VPN 权限找谁申请？"},
                {"role": "assistant", "content": "找陈静，联系 IT 服务台。[1]"},
            ],
            "那 PagerDuty 值班呢？",
            "刘洋",
            "陈静",
            "onboarding.zh.docx",
        ),
    ],
    ids=["en-pronoun", "zh-ellipsis"],
)
def test_a_follow_up_is_rewritten_and_answered_from_the_right_row(
    client: TestClient,
    history: list[dict[str, str]],
    question: str,
    expected: str,
    wrong: str,
    source: str,
) -> None:
    """The issue's follow-up: the rewrite was the two-line concatenation "Who owns the port 7070
    used by orbit-agent?\\nWhat port does orbit-agent use?" and the answer "the Platform Delivery
    team". The rewrite is now one standalone question naming the component, and the answer's
    citation is moved to the passage that holds it when the model cites a neighbour."""
    r = client.post("/v1/ask", json={"question": question, "history": history})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "\n" not in body["query"] and "(" not in body["query"], body["query"]  # not the fallback
    assert not body["declined"] and not body["degraded"], body
    assert expected in body["answer"] and wrong not in body["answer"], body["answer"]
    assert any(c["source"] == source for c in body["citations"]), body["citations"]
