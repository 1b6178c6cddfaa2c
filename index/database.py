"""The shared database (``DOCQA_DATABASE_URL``): one way to reach PostgreSQL for every store.

The manifest, the keyword index and the job queue keep SQLite files under the data dir by
default; with a PostgreSQL URL they live in that database instead, so several API hosts and
workers share them. Each store opens its own connection with `connect` (psycopg 3, a thread-safe
connection guarded by the store's lock, like its SQLite twin) and creates its tables if missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.errors import StoreUnavailableError

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT_S = 10
# The advisory lock key that serialises schema creation (any constant; "docqa" in ASCII).
SCHEMA_LOCK = 0x6463_7161


def is_postgres_url(url: str) -> bool:
    return url.split("://", 1)[0] in {"postgres", "postgresql"}


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to the PostgreSQL at ``url``; a clear error (without the password) when it
    cannot be reached."""
    import psycopg

    if not is_postgres_url(url):
        raise StoreUnavailableError(
            f"DOCQA_DATABASE_URL must be a postgresql:// URL, not {redact(url)!r}"
        )
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise StoreUnavailableError(f"cannot reach the database at {redact(url)}: {exc}") from exc


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``.

    >>> redact("postgresql://docqa:s3cret@db:5432/docqa")
    'postgresql://docqa:***@db:5432/docqa'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}{at}{host}"


def create_schema(conn: psycopg.Connection, ddl: str) -> None:
    """Run ``ddl`` (statements separated by ``;``, each ``IF NOT EXISTS``) in one transaction.

    Two hosts starting at once would race in ``CREATE TABLE IF NOT EXISTS`` (a duplicate key in
    the catalog); a transaction-scoped advisory lock makes the second wait and find the tables.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
