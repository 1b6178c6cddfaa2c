"""Find the files to ingest under the paths given, reporting what cannot be walked.

Directories are walked recursively, following symlinks but never twice into the same directory
(a symlink loop is reported, not followed forever). Hidden entries (a leading dot) are skipped.
In a directory, files of a type we do not parse are skipped and counted; a file named
explicitly is always attempted, so its failure is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: int = 0  # unsupported types found while walking directories


def discover(paths: Iterable[Path], suffixes: frozenset[str]) -> Discovery:
    found = Discovery()
    seen_files: set[str] = set()

    def add(path: Path) -> None:
        key = str(path)
        if key not in seen_files:
            seen_files.add(key)
            found.files.append(path)

    for root in paths:
        root = Path(os.path.abspath(root))
        if root.is_dir():
            _walk(root, suffixes, found, add)
        elif root.exists() or root.is_symlink():
            add(root)  # named explicitly: the parser reports what is wrong with it
        else:
            found.failures.append((str(root), "no such file or directory"))
    return found


def _walk(
    root: Path, suffixes: frozenset[str], found: Discovery, add: Callable[[Path], None]
) -> None:
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            found.failures.append((str(folder), f"cannot read directory: {exc.strerror or exc}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            found.failures.append((str(folder), "symlink loop: directory already visited"))
            continue
        visited.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            found.failures.append((str(folder), f"cannot read directory: {exc.strerror or exc}"))
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as exc:  # e.g. ELOOP on a self-referencing symlink
                found.failures.append((str(path), f"cannot follow: {exc.strerror or exc}"))
                continue
            if is_dir:
                subdirs.append(path)
            elif path.suffix.lower() in suffixes:
                add(path)
            elif entry.is_symlink() and not path.exists():
                found.failures.append((str(path), "broken symlink"))
            else:
                found.skipped += 1
        stack.extend(reversed(subdirs))
