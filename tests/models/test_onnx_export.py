"""The ONNX export in the model cache: crash-safe, pinned, refused when changed, re-made.

The real test-profile MiniLM is exported (about 10 s a time) into a temporary cache; the export
against torch is checked in tests/index/test_onnx_embedder.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from docqa.cli.main import app
from modelstore import onnx_export
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS, ModelSpec, custom_spec
from modelstore.errors import ModelFormatError, ModelIntegrityError
from modelstore.onnx_export import (
    MODEL_FILE,
    ONNX_MARKER,
    choose_backend,
    embedder_id,
    read_export,
    read_layout,
    source_fingerprint,
)
from tests.conftest import TEST_MODELS_DIR

MINILM = MODELS["all-minilm-l6-v2"]
FOLDER = "all-minilm-l6-v2@onnx"
# A child process that exports MiniLM and is killed (SIGKILL, as by the OOM killer or a power
# cut) after the model file is written and before the marker is.
_KILLED_EXPORT = """
import os, signal, sys
from pathlib import Path
from modelstore import onnx_export
from modelstore.cache import ModelCache
from modelstore.catalog import MODELS

def die(out_dir, info):
    assert (out_dir / "model.onnx").is_file()
    os.kill(os.getpid(), signal.SIGKILL)

onnx_export.write_marker = die
ModelCache(Path(sys.argv[1])).prepare_onnx(MODELS["all-minilm-l6-v2"], "onnx")
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, real_model_files: None) -> Path:
    """One fp32 export of MiniLM, made by prepare_onnx; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("onnx") / "models"
    assert ModelCache(root).prepare_onnx(MINILM, "onnx") is True
    return root / FOLDER


def _cache_with_copy(exported: Path, tmp_path: Path) -> ModelCache:
    shutil.copytree(exported, tmp_path / "models" / FOLDER)
    return ModelCache(tmp_path / "models")


def test_prepare_exports_once_and_pins_every_file(exported: Path) -> None:
    cache = ModelCache(exported.parent)
    status = cache.onnx_status(MINILM, "onnx", verify=True)
    assert status.ready and status.path == exported, status.detail
    marker = json.loads((exported / ONNX_MARKER).read_text())
    assert set(marker["files"]) == {MODEL_FILE, "tokenizer.json"}
    assert status.sha256 == marker["files"][MODEL_FILE]["sha256"]
    assert marker["pooling"] == "mean" and marker["normalize"] is True
    assert marker["max_seq_length"] == 256 and marker["min_probe_cosine"] >= 0.999
    assert cache.prepare_onnx(MINILM, "onnx") is False  # a second run does nothing
    assert not list(exported.parent.glob(".*tmp-*"))


@pytest.mark.slow  # exports the real MiniLM twice, once in a child process it kills
def test_a_killed_export_leaves_nothing_ready_and_the_next_run_finishes(tmp_path: Path) -> None:
    root = tmp_path / "models"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_EXPORT, str(root)], env=env, capture_output=True, timeout=600
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert list(root.glob(f".{FOLDER}.tmp-*")), "the half-made export stays under its temp name"
    assert not (root / FOLDER).exists()
    cache = ModelCache(root)
    assert not cache.onnx_status(MINILM, "onnx").ready
    assert cache.prepare_onnx(MINILM, "onnx") is True
    assert cache.onnx_status(MINILM, "onnx", verify=True).ready
    assert not list(root.glob(".*tmp-*")), "stale work is cleaned up"


@pytest.mark.usefixtures("real_model_files")  # the export reads the packaged MiniLM first
def test_a_failed_export_is_a_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object) -> None:
        raise RuntimeError("Exporting the operator 'aten::foo' to ONNX is not supported")

    monkeypatch.setattr(onnx_export, "_torch_export", fail)
    cache = ModelCache(tmp_path / "models")
    with pytest.raises(ModelFormatError, match=r"aten::foo.*DOCQA_EMBED_BACKEND=torch"):
        cache.prepare_onnx(MINILM, "onnx-int8")
    assert not cache.onnx_status(MINILM, "onnx-int8").ready
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".prepare.lock"]


def test_a_changed_file_is_refused_and_prepare_exports_again(
    exported: Path, tmp_path: Path
) -> None:
    cache = _cache_with_copy(exported, tmp_path)
    model = tmp_path / "models" / FOLDER / MODEL_FILE
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other weights
    model.write_bytes(bytes(data))
    assert cache.onnx_status(MINILM, "onnx").ready  # sizes only: cheap enough for every start
    with pytest.raises(ModelIntegrityError, match=r"model\.onnx has sha256 .*docqa models prepare"):
        read_export(model.parent).verify()
    status = cache.onnx_status(MINILM, "onnx", verify=True)
    assert not status.ready and "sha256" in status.detail
    assert cache.prepare_onnx(MINILM, "onnx") is True  # replaced whole
    read_export(model.parent).verify()


def test_a_resized_or_missing_file_or_marker_is_not_an_export(
    exported: Path, tmp_path: Path
) -> None:
    cache = _cache_with_copy(exported, tmp_path)
    folder = tmp_path / "models" / FOLDER
    with (folder / "tokenizer.json").open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(ModelIntegrityError, match="resized"):
        read_export(folder)
    assert not cache.onnx_status(MINILM, "onnx").ready
    (folder / ONNX_MARKER).unlink()
    with pytest.raises(ModelFormatError, match="no finished ONNX export"):
        read_export(folder)


def test_an_export_of_another_source_is_not_reused(exported: Path, tmp_path: Path) -> None:
    cache = _cache_with_copy(exported, tmp_path)
    marker = tmp_path / "models" / FOLDER / ONNX_MARKER
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "source_fingerprint": "0" * 64}))
    status = cache.onnx_status(MINILM, "onnx")
    assert not status.ready and "another or an older model" in status.detail


def test_a_source_reached_through_a_symlink_is_the_same_source(
    exported: Path, tmp_path: Path
) -> None:
    """The marker names the source by the path prepare saw; a venv reached through a symlink
    (a copy of the tree pointing at the same venv) must not force a new export."""
    cache = _cache_with_copy(exported, tmp_path)
    marker = tmp_path / "models" / FOLDER / ONNX_MARKER
    info = json.loads(marker.read_text())
    link = tmp_path / "linked-source"
    link.symlink_to(info["source"], target_is_directory=True)
    marker.write_text(json.dumps({**info, "source": str(link)}))
    assert cache.onnx_status(MINILM, "onnx").ready


def test_the_source_fingerprint_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    before = source_fingerprint(tmp_path)
    assert source_fingerprint(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert source_fingerprint(tmp_path) != before


def _st_folder(root: Path, modules: list[str], pooling: dict[str, bool]) -> Path:
    entries = [
        {"idx": i, "path": p, "type": f"sentence_transformers.models.{t}"}
        for i, (p, t) in enumerate(zip(["", "1_Pooling", "2_Dense"], modules, strict=False))
    ]
    (root / "1_Pooling").mkdir(parents=True)
    (root / "modules.json").write_text(json.dumps(entries))
    (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    return root


def test_layouts_the_onnx_path_does_not_run_are_refused(tmp_path: Path) -> None:
    mean = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}
    layout = read_layout(_st_folder(tmp_path / "a", ["Transformer", "Pooling"], mean))
    assert (layout.pooling, layout.normalize) == ("mean", False)
    dense = _st_folder(tmp_path / "b", ["Transformer", "Pooling", "Dense"], mean)
    with pytest.raises(ModelFormatError, match=r"Dense.*DOCQA_EMBED_BACKEND=torch"):
        read_layout(dense)
    maxed = _st_folder(
        tmp_path / "c", ["Transformer", "Pooling"], {"pooling_mode_max_tokens": True}
    )
    with pytest.raises(ModelFormatError, match=r"max_tokens.*DOCQA_EMBED_BACKEND=torch"):
        read_layout(maxed)
    with pytest.raises(ModelFormatError, match=r"modules\.json"):
        read_layout(tmp_path)


def test_the_backend_choice() -> None:
    e5 = MODELS["multilingual-e5-small"]
    assert choose_backend("auto", e5, "cuda") == "torch"
    assert choose_backend("auto", e5, "cpu") == e5.cpu_embed_backend
    assert choose_backend("auto", MINILM, "cpu") == MINILM.cpu_embed_backend
    # Measured choices (catalog comments, docs/BENCHMARKS.md): e5 int8, MiniLM fp32.
    assert (e5.cpu_embed_backend, MINILM.cpu_embed_backend) == ("onnx-int8", "onnx")
    assert choose_backend("auto", custom_spec("embedder", "org/unmeasured"), "cpu") == "torch"
    assert choose_backend("onnx-int8", e5, "cuda") == "onnx-int8"  # explicit wins
    assert choose_backend("torch", e5, "cpu") == "torch"
    with pytest.raises(ValueError, match="fp16"):
        choose_backend("fp16", e5, "cpu")
    assert embedder_id("m", "torch") == "m" and embedder_id("m", "onnx") == "m@onnx"


def _cli(args: list[str], backend: str) -> str:
    env = {"DOCQA_MODELS_DIR": str(TEST_MODELS_DIR), "DOCQA_DEVICE": "cpu"}
    result = CliRunner().invoke(app, args, env={**env, "DOCQA_EMBED_BACKEND": backend})
    assert result.exit_code == 0, result.output
    return result.output


def test_models_prepare_and_list_show_the_export(test_models: ModelCache) -> None:
    spec: ModelSpec = MINILM
    backend = choose_backend("auto", spec, "cpu")
    name = embedder_id(spec.name, backend)
    prepared = _cli(["models", "prepare", "--profile", "test"], "auto")
    assert f"embedder  {name}: already ready" in prepared  # made by the test_models fixture
    listed = _cli(["models", "list", "--profile", "test"], "auto")
    assert any(name in line and "ready" in line for line in listed.splitlines())
    assert name not in _cli(["models", "list", "--profile", "test"], "torch")
