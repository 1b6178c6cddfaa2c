"""The prompt-file format and its loader.

A file is ``version: N`` on its first line, then sections ``=== system`` (optional) and
``=== user``, whose text may hold ``{{placeholders}}``. Bump the version whenever the wording
changes: answers, evaluations and caches record which prompt produced them, and each file has a
golden test (tests/prompts/) that fails on any unintended change.

Note for packaging: a non-editable install must ship ``prompts/*.md`` as package data.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
Messages = list[dict[str, str]]
_FILE = re.compile(r"version:\s*(\S+)\s*\n(?:=== system\n(.*?)\n)?=== user\n(.*)\Z", re.S)
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    system: str | None
    user: str

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall((self.system or "") + self.user))

    def render(self, **values: str) -> Messages:
        """The chat messages with every placeholder filled; a missing or extra value is an
        error, so a renamed placeholder cannot silently render as text."""
        if set(values) != self.placeholders:
            raise ValueError(
                f"prompt {self.name} takes {sorted(self.placeholders)}, got {sorted(values)}"
            )
        messages = [{"role": "user", "content": fill(self.user, values)}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": fill(self.system, values)})
        return messages


def fill(text: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m[1]], text)


@functools.cache
def load(path: Path) -> PromptTemplate:
    """Parse one prompt file (cached: the files are read once per process)."""
    text = path.read_text(encoding="utf-8")
    match = _FILE.match(text)
    if match is None:
        raise ValueError(f"{path}: expected 'version:', an optional '=== system' and '=== user'")
    system = match[2].strip("\n") if match[2] is not None else None
    return PromptTemplate(path.stem, match[1], system, match[3].strip("\n"))


def named(name: str) -> PromptTemplate:
    """A prompt shipped in this package, by file stem: ``named("rerank_v1")``."""
    return load(HERE / f"{name}.md")
