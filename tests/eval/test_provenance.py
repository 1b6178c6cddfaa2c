"""The code's provenance: the commit, and whether tracked files changed (outside some folders)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from eval.provenance import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "bench").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "bench" / "run.py").write_text("y = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_tree(repo: Path) -> None:
    info = git_commit(repo)
    assert len(info["commit"]) == 40
    assert info["dirty"] is False


def test_a_change_in_an_excluded_folder_is_not_dirty(repo: Path) -> None:
    (repo / "bench" / "run.py").write_text("y = 2\n")
    assert git_commit(repo)["dirty"] is True
    assert git_commit(repo, exclude=("bench", "docs"))["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(repo, exclude=("bench",))["dirty"] is True


def test_untracked_files_do_not_count(repo: Path) -> None:
    (repo / "new.py").write_text("z = 1\n")
    assert git_commit(repo)["dirty"] is False


def test_no_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repo further up
    assert git_commit(tmp_path) == {"commit": None, "dirty": None}
