"""What a run's ``config.json`` records so its numbers can be reproduced: the settings (secrets
masked), the models with their sha256, the code's git commit, library versions, the data set's
sha256.

A model's sha256 is its catalog pin when the catalog has one (the GGUF files). Otherwise (a
package folder, the rebuilt e5, a local folder) it is a digest of the prepared folder: sha256
over each file's relative path and sha256, in path order. Folder digests are cached in
``DATA_DIR/eval/model_digests.json`` under (path, total size, newest mtime), so a large local
model is hashed once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from config.settings import Settings, describe
from modelstore.cache import ModelCache
from modelstore.catalog import GgufParts, ModelSpec, PackageFile, PackageFolder
from modelstore.profiles import models_for
from wiring.compose import llm_engine

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("docqa", "torch", "transformers", "sentence-transformers", "chromadb")
_CHUNK = 8 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(files: list[Path], root: Path | None = None) -> str:
    """One sha256 over several files: each file's name (relative to ``root``) and sha256."""
    digest = hashlib.sha256()
    for path in files:
        name = str(path.relative_to(root)) if root and path.is_relative_to(root) else path.name
        digest.update(f"{name}\x00{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def dataset_sha256(dataset: Path, files: list[Path]) -> str:
    """A data set's fingerprint: `files_sha256` of its files, named relative to its folder (the
    path itself when it is a folder). A run records it; a backfill checks against it."""
    root = dataset if dataset.is_dir() else dataset.parent
    return files_sha256(files, root.resolve())


def git_commit(repo: Path = REPO_ROOT, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The commit of the code, and whether tracked files had changes (outside the ``exclude``
    folders, relative to ``repo``); None fields without git."""
    outside = ["--", ".", *(f":!{folder}" for folder in exclude)] if exclude else []
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", *outside],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(status)}


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def settings_snapshot(settings: Settings) -> dict[str, dict[str, str]]:
    """Every setting, secrets masked, with its origin (the rows of `docqa config show`)."""
    return {name: {"value": value, "origin": origin} for name, value, origin in describe(settings)}


def model_info(settings: Settings) -> dict[str, dict[str, Any]]:
    cache = ModelCache(settings.model_cache_dir, settings.allow_network)
    digests = _DigestCache(settings.data_dir / "eval" / "model_digests.json")
    out: dict[str, dict[str, Any]] = {}
    engine = llm_engine(settings)
    for spec in models_for(settings):
        if spec.role == "generator" and engine.model_format is None:
            out[spec.role] = {
                "id": settings.generator_model or "the server's",
                "engine": engine.engine,
                "url": settings.generator_url,
            }
            continue
        fmt = (engine.model_format or "hf") if spec.role == "generator" else "hf"
        status = cache.status(spec, fmt)
        pinned = _pinned_sha(spec)
        entry: dict[str, Any] = {
            "id": spec.name,
            "engine": engine.engine if spec.role == "generator" else None,
            "format": fmt,
            "source": type(spec.source).__name__,
            "requirement": _requirement(spec),
            "sha256": pinned,
            "sha256_of": "catalog pin" if pinned else None,
            "path": str(status.path) if status.path else None,
        }
        if pinned is None and status.path is not None and status.path.is_dir():
            entry["sha256"] = digests.folder(status.path)
            entry["sha256_of"] = "prepared folder (sha256 of relative paths and file sha256s)"
        elif pinned is None and status.path is not None and status.path.is_file():
            entry["sha256"] = digests.file(status.path)
            entry["sha256_of"] = "the model file"
        out[spec.role] = entry
    digests.save()
    return out


def _pinned_sha(spec: ModelSpec) -> str | None:
    source = spec.source
    if isinstance(source, GgufParts | PackageFile):
        return source.sha256
    return None


def _requirement(spec: ModelSpec) -> str | None:
    source = spec.source
    if isinstance(source, PackageFile | PackageFolder):
        return f"{source.package}=={source.version}"
    if isinstance(source, GgufParts):
        first, last = source.parts[0], source.parts[-1]
        return f"{first.requirement} .. {last.requirement} ({len(source.parts)} parts)"
    return None


class _DigestCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = False
        try:
            self.entries: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.entries = {}

    def folder(self, root: Path) -> str:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in files)
        newest = max((p.stat().st_mtime_ns for p in files), default=0)
        key = f"{root.resolve()}|{size}|{newest}"
        if key not in self.entries:
            log.info("hashing model folder %s (%.0f MB)", root, size / 1e6)
            self.entries[key] = files_sha256(files, root)
            self.changed = True
        return self.entries[key]

    def file(self, path: Path) -> str:
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self.entries:
            log.info("hashing model file %s (%.0f MB)", path, stat.st_size / 1e6)
            self.entries[key] = file_sha256(path)
            self.changed = True
        return self.entries[key]

    def save(self) -> None:
        if self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.entries, indent=2), encoding="utf-8")
