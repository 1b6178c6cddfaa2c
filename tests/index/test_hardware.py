"""The device choice: ``auto`` is the CPU without importing torch where the machine has no GPU
node, so a CPU-only service (llama.cpp and ONNX Runtime) never carries torch's memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from index import hardware
from index.hardware import gpu_node_present, pick_device

ROOT = Path(__file__).resolve().parents[2]


def test_a_gpu_node_is_found_by_any_of_its_paths(tmp_path: Path) -> None:
    nodes = (str(tmp_path / "nvidiactl"), str(tmp_path / "kfd"))
    assert not gpu_node_present(nodes)
    (tmp_path / "kfd").touch()
    assert gpu_node_present(nodes)


def test_an_explicit_device_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cuda_available", lambda: True)
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == "cuda"
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    assert pick_device("cuda") == "cuda"
    assert pick_device("auto") == "cpu"


@pytest.mark.skipif(gpu_node_present(), reason="this machine has a GPU node: torch is asked")
def test_auto_on_a_machine_without_a_gpu_node_does_not_import_torch() -> None:
    code = (
        "import sys; from index.hardware import pick_device; "
        "from app.metrics import Metrics; "
        "assert pick_device('auto') == 'cpu'; "
        "from prometheus_client import generate_latest; "
        "generate_latest(Metrics().registry); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
