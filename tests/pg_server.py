"""A real PostgreSQL for tests: Debian's `postgresql` binaries, a cluster in a temp dir, loopback.

``running_postgres()`` runs ``initdb`` into a fresh temp dir (trust authentication, no
password), starts ``postgres`` on a free loopback port with its socket in ``root`` (never
/var/run), waits until it accepts connections, yields its URL and stops it (``pg_ctl stop -m
immediate``) however the block ends. It fails, never skips, when the binaries are missing under
CI (``make postgres`` installs them), with the server's log when it does not come up. Root may
not run ``postgres``: as root the cluster is made and run as the ``nobody`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 30.0


def postgres_bin_dir() -> Path | None:
    """Where initdb, pg_ctl and postgres are: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(versions[0]).parent if versions else None


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_uid() -> int | None:
    """The uid to run the server as: ourselves (None), or ``nobody`` as root."""
    return pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else None


def _run(command: list[str], uid: int | None, log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            user=uid,
            env={**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"},
            check=False,
        )
    if result.returncode != 0:
        pytest.fail(f"{command[0]} failed ({result.returncode}):\n{_tail(log)}")


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""


def _missing() -> None:
    message = "PostgreSQL is not installed (Debian: apt-get install postgresql; `make postgres`)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """Start a throw-away PostgreSQL in a temp dir; yield its URL (database ``postgres``).

    The dir is made here, under the system temp dir, not pytest's ``tmp_path``: as root the
    server runs as ``nobody``, who cannot enter root's private pytest folders.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        _missing()
    assert bin_dir is not None
    uid = _server_uid()
    root = Path(tempfile.mkdtemp(prefix="docqa-pg-"))
    if uid is not None:
        os.chown(root, uid, -1)
    data, log = root / "data", root / "server.log"
    _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "docqa", "--auth=trust", "-E", "UTF8"],
        uid,
        root / "initdb.log",
    )
    port = _free_port()
    options = f"-p {port} -h 127.0.0.1 -k {root} -c fsync=off -c full_page_writes=off"
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(START_TIMEOUT_S)),
            "start",
        ],
        uid,
        root / "pg_ctl.log",
    )
    url = f"postgresql://docqa@127.0.0.1:{port}/postgres"
    try:
        _wait_ready(url, log)
        yield url
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            user=uid,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, log: Path) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not accept connections:\n{_tail(log)}")
            time.sleep(0.2)


def fresh_database(server_url: str, name: str) -> str:
    """Create an empty database ``name`` on the server; its URL."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name
