"""The ingest report: what a run did, for people (``summary``) and machines (``to_json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Failure:
    path: str
    error: str


@dataclass
class IngestReport:
    collection: str = ""
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    files_pruned: int = 0
    files_skipped: int = 0  # unsupported types met while walking folders
    failures: list[Failure] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0

    def fail(self, path: str, error: str) -> None:
        self.files_failed += 1
        self.failures.append(Failure(path, error))

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_added / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0: every file went in; 2: some failed and the rest went in."""
        return 2 if self.files_failed else 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["chunks_per_second"] = round(self.chunks_per_second, 2)
        return data

    def summary(self) -> str:
        lines = [
            f"collection {self.collection}: files new {self.files_new}, changed "
            f"{self.files_changed}, unchanged {self.files_unchanged}, failed {self.files_failed}"
            + (f", pruned {self.files_pruned}" if self.files_pruned else "")
            + (f", skipped (unsupported) {self.files_skipped}" if self.files_skipped else ""),
            f"chunks added {self.chunks_added}, removed {self.chunks_removed}; embedding cache "
            f"hits {self.cache_hits}, misses {self.cache_misses}",
            f"{self.seconds:.1f} s, {self.chunks_per_second:.1f} chunks/s",
        ]
        lines += [f"  FAILED {f.path}: {f.error}" for f in self.failures]
        return "\n".join(lines)
