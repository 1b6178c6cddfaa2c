"""`docqa serve` as a real process on a loopback port: it starts, gets ready, answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from modelstore.cache import ModelCache
from tests.conftest import TEST_MODELS_DIR


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_gets_ready_and_serves(tmp_path: Path, test_models: ModelCache) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(tmp_path / "data"),
        "DOCQA_MODELS_DIR": str(TEST_MODELS_DIR),
        "DOCQA_PROFILE": "test",
    }
    cmd = [sys.executable, "-m", "docqa", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server never became ready"
            time.sleep(0.2)
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        upload = httpx.post(
            f"{base}/v1/collections/docs/documents?wait=true",
            files={"file": ("n.md", b"# Ops\n\nThe pager rotation changes every Monday.\n")},
            timeout=60,
        )
        assert upload.status_code == 200 and upload.json()["files_new"] == 1
        r = httpx.post(f"{base}/v1/retrieve", json={"question": "pager rotation"}, timeout=30)
        assert r.status_code == 200 and r.json()["passages"][0]["source"] == "n.md"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
