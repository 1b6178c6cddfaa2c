"""The Chroma-backed ``VectorIndex``: one collection of chunk vectors, text and provenance.

Design:

- **Our vectors only.** Every collection is created and opened with ``embedding_function=None``
  and every call passes vectors, so Chroma's default embedding function (which downloads an ONNX
  model) is never built. Telemetry is off in every client (``anonymized_telemetry=False``).
- **Two deployments, one class.** ``make_client`` gives an embedded ``PersistentClient`` (the
  default) or an ``HttpClient`` for a ``chroma run`` server; ``ChromaVectorIndex`` does not care.
- **The collection remembers its embedder.** Its metadata records ``embedder_id`` and
  ``dimension``; opening it with another embedder raises ``EmbedderMismatchError`` instead of
  silently mixing vector spaces. The index is HNSW with cosine space, configured through Chroma
  1.x's ``configuration={"hnsw": {...}}`` (not the legacy ``hnsw:*`` metadata keys), so
  ``score = 1 - distance`` is the cosine similarity of normalized vectors.
- **Batches.** Chroma refuses writes larger than ``client.get_max_batch_size()``; upserts,
  deletes and reads are cut to that size, and ``ids()`` pages with ``limit``/``offset``.
- **Errors.** Chroma and HTTP failures become ``index.errors`` classes at this boundary.

Deliberate concessions: collection names follow a stricter rule than Chroma 1.5 (3-63 characters
rather than 3-512) so that a name is also a safe file and URL segment everywhere; the HNSW
parameters of an existing collection are those it was created with (Chroma cannot change ``M`` or
``ef_construction`` afterwards), a difference is only logged.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import chromadb
import httpx
import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.api.types import Where
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import ChromaError, NotFoundError

from index.errors import (
    CollectionNotFoundError,
    EmbedderMismatchError,
    InvalidCollectionNameError,
    StoreUnavailableError,
)
from index.protocols import Filters, Vectors
from index.types import Chunk, Hit

logger = logging.getLogger(__name__)

EMBEDDER_KEY: Final = "embedder_id"
DIMENSION_KEY: Final = "dimension"
FILTER_KEYS: Final = frozenset({"source", "doc_id"})
_NAME_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
_DEFAULT_PORTS: Final = {"http": 8000, "https": 443}
T = TypeVar("T")


def _settings() -> ChromaSettings:
    return ChromaSettings(anonymized_telemetry=False)


def parse_chroma_url(url: str) -> tuple[str, int, bool]:
    """``http://127.0.0.1:8001`` -> ``("127.0.0.1", 8001, False)``; https sets ssl."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not a Chroma server URL (want http://host:port): {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"a Chroma server URL takes no path or query: {url!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    return parts.hostname, port, parts.scheme == "https"


def make_client(path: Path | None, url: str | None) -> ClientAPI:
    """A Chroma client: a server when ``url`` is set, else embedded Chroma persisted at ``path``.

    ``make_client(Path(".docqa/chroma"), None)`` or ``make_client(None, "http://127.0.0.1:8001")``.
    A server that does not answer raises ``StoreUnavailableError`` naming the URL.
    """
    if url is not None:
        host, port, ssl = parse_chroma_url(url)
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=_settings())
            client.heartbeat()
        except (ValueError, httpx.TransportError) as exc:
            # chromadb turns a refused connection into ValueError("Could not connect ...").
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {url}: {exc} "
                "(is `chroma run` started there, and is the URL right?)"
            ) from exc
        logger.debug("connected to the Chroma server at %s", url)
        return client
    if path is None:
        raise ValueError("make_client needs a path (embedded Chroma) or a url (a Chroma server)")
    path.mkdir(parents=True, exist_ok=True)
    logger.debug("opening embedded Chroma at %s", path)
    return chromadb.PersistentClient(path=str(path), settings=_settings())


def close_client(client: ClientAPI) -> None:
    """Release a client from ``make_client``: embedded Chroma stops once its last client closes."""
    close = getattr(client, "close", None)  # on chromadb's Client, not on the ClientAPI interface
    if callable(close):
        close()


_COMPACT_ID: Final = "__docqa_compact__"  # deleted to make Chroma write, never stored
_SYNC_THRESHOLD: Final = 1000  # Chroma's default, and what our collections are created with
_FTS_TABLE: Final = "embedding_fulltext_search"  # Chroma's FTS5 index of document texts


def purge_write_log(client: ClientAPI, name: str) -> None:
    """Make Chroma drop the write-ahead log of collection ``name`` up to now.

    Chroma logs every write, text included, in its ``embeddings_queue`` table, and purges the
    log only up to what its HNSW index has persisted, which it does every ``sync_threshold``
    (1000) writes. So a deleted chunk's text stays in the log until a thousand more writes come.
    Here the threshold is set to 1 for one write (a delete of an id that does not exist): the
    index persists, and Chroma purges the log behind it. The threshold is then put back.
    """
    with _store_errors(client, "purging the write log", name):
        collection = client.get_collection(name, embedding_function=None)
        hnsw = (collection.configuration or {}).get("hnsw")
        if not hnsw:
            logger.info("collection %r has no HNSW index; its log is left as it is", name)
            return
        threshold = int(hnsw.get("sync_threshold") or _SYNC_THRESHOLD)
        if threshold <= 1:  # a compaction was interrupted here: restore the default
            threshold = _SYNC_THRESHOLD
        collection.modify(configuration={"hnsw": {"sync_threshold": 1}})
        try:
            client.get_collection(name, embedding_function=None).delete(ids=[_COMPACT_ID])
        finally:
            collection.modify(configuration={"hnsw": {"sync_threshold": threshold}})
    logger.info("purged the write log of collection %r", name)


def vacuum_persistent(path: Path, timeout_s: float = 3600) -> int:
    """Rewrite embedded Chroma's database at ``path`` so that deleted text is physically gone.

    Run it with no client open on ``path`` (Chroma takes the database for itself meanwhile).
    Two steps: SQLite FTS5's ``optimize`` on Chroma's full-text index (a deleted document's
    trigrams stay in the index's segments until they are merged), then Chroma's own
    ``chroma vacuum`` (it purges the log as far as every segment allows and runs SQLite
    ``VACUUM``, which rewrites the file without its free pages).

    Returns how many logged writes with a document text are still in the log: 0 unless a
    purge could not happen (another process holding the collection open).
    """
    database = path / "chroma.sqlite3"
    if not database.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=60)) as db, db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_FTS_TABLE,)
            ).fetchone()
            if found:
                db.execute(f"INSERT INTO {_FTS_TABLE}({_FTS_TABLE}) VALUES ('optimize')")
    except sqlite3.Error as exc:  # "database is locked": a server or an ingest has it open
        raise StoreUnavailableError(f"cannot compact {database}: {exc}") from exc
    # Chroma's CLI is Rust, reached through its Python bindings; in a child process, because it
    # prints to stdout and expects to own the process.
    script = "import sys, chromadb_rust_bindings as b; b.cli(['chroma', *sys.argv[1:]])"
    command = [sys.executable, "-c", script, "vacuum", "--path", str(path), "--force"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise StoreUnavailableError(f"chroma vacuum of {path} took over {timeout_s:g} s") from exc
    if done.returncode != 0 or "Vacuum complete" not in done.stdout:
        detail = (done.stderr or done.stdout).strip()[-500:]
        raise StoreUnavailableError(f"chroma vacuum of {path} failed: {detail}")
    logger.debug("chroma vacuum: %s", done.stdout.strip())
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT COUNT(*) FROM embeddings_queue WHERE metadata LIKE '%\"chroma:document\"%'"
            ).fetchone()
    except sqlite3.Error:  # another Chroma version's layout: nothing to say
        return 0
    return int(row[0])


def list_collections(client: ClientAPI) -> list[str]:
    """The names of the client's collections, sorted."""
    with _store_errors(client, "listing collections"):
        return sorted(collection.name for collection in client.list_collections())


def delete_collection(client: ClientAPI, name: str) -> bool:
    """Delete a collection whatever embedder built it; False when there was none."""
    if name not in list_collections(client):
        return False
    with _store_errors(client, "deleting a collection", name):
        client.delete_collection(name)
    logger.info("deleted collection %r", name)
    return True


def validate_collection_name(name: str) -> str:
    """Return ``name`` if Chroma (and we) accept it, else raise ``InvalidCollectionNameError``.

    Rules: 3-63 characters from ``[a-zA-Z0-9._-]``, starting and ending with a letter or digit,
    no ``..``, not an IPv4 address.
    """
    problem = None
    if not 3 <= len(name) <= 63:
        problem = f"it has {len(name)} characters; a name needs 3 to 63"
    elif not _NAME_CHARS.fullmatch(name):
        bad = sorted({ch for ch in name if not _NAME_CHARS.fullmatch(ch)})
        problem = (
            f"it contains {''.join(bad)!r}; only letters, digits, '.', '_' and '-' are allowed"
        )
    elif not (name[0].isalnum() and name[-1].isalnum()):
        problem = "it must start and end with a letter or a digit"
    elif ".." in name:
        problem = "it contains '..'"
    else:
        with contextlib.suppress(ValueError):
            ipaddress.IPv4Address(name)
            problem = "it is an IPv4 address"
    if problem is not None:
        raise InvalidCollectionNameError(f"invalid collection name {name!r}: {problem}")
    return name


def chroma_where(filters: Filters | None) -> Where | None:
    """Our filters as a Chroma ``where``: ``{"source": "a.md", "doc_id": ["x", "y"]}`` ->
    ``{"$and": [{"doc_id": {"$in": ["x", "y"]}}, {"source": "a.md"}]}``.

    An empty list of values matches nothing; callers check ``_matches_nothing`` first.
    """
    if not filters:
        return None
    clauses: list[dict[str, Any]] = []
    for key, value in sorted(filters.items()):
        if key not in FILTER_KEYS:
            raise ValueError(f"cannot filter on {key!r}; filter keys are {sorted(FILTER_KEYS)}")
        if isinstance(value, str):
            clauses.append({key: value})
        else:
            clauses.append({key: {"$in": list(value)}})
    # Chroma wants at least two clauses under $and.
    where = clauses[0] if len(clauses) == 1 else {"$and": clauses}
    return cast(Where, where)


def _matches_nothing(filters: Filters | None) -> bool:
    return bool(filters) and any(
        not isinstance(v, str) and len(v) == 0 for v in (filters or {}).values()
    )


def _describe(client: ClientAPI) -> str:
    settings = client.get_settings()
    if settings.chroma_server_host:
        scheme = "https" if settings.chroma_server_ssl_enabled else "http"
        port = settings.chroma_server_http_port
        return f"the Chroma server at {scheme}://{settings.chroma_server_host}:{port}"
    return f"embedded Chroma at {settings.persist_directory}"


@contextlib.contextmanager
def _store_errors(client: ClientAPI, action: str, collection: str | None = None) -> Iterator[None]:
    """Turn transport and not-found failures into the index layer's errors."""
    try:
        yield
    except httpx.TransportError as exc:
        raise StoreUnavailableError(
            f"{_describe(client)} did not answer while {action}: {exc}"
        ) from exc
    except NotFoundError as exc:
        what = f"collection {collection!r}" if collection else "the collection"
        raise CollectionNotFoundError(
            f"{what} does not exist in {_describe(client)} (while {action})"
        ) from exc


class ChromaVectorIndex:
    """A ``VectorIndex`` over one Chroma collection, created on first use.

    ``ChromaVectorIndex(make_client(path, None), "docs", embedder.model_id, embedder.dimension)``
    """

    def __init__(
        self,
        client: ClientAPI,
        name: str,
        embedder_id: str,
        dimension: int,
        hnsw_m: int = 16,
        hnsw_construction_ef: int = 100,
        hnsw_search_ef: int = 64,
    ) -> None:
        self.client = client
        self.name = validate_collection_name(name)
        self.embedder_id = embedder_id
        self.dimension = dimension
        self._hnsw: dict[str, Any] = {
            "space": "cosine",
            "max_neighbors": hnsw_m,
            "ef_construction": hnsw_construction_ef,
            "ef_search": hnsw_search_ef,
        }
        with self._errors("opening the collection"):
            self.max_batch_size = client.get_max_batch_size()
            self._collection = self._open_or_create()
        self._check_embedder()

    # -- opening -------------------------------------------------------------------------------

    def _open_or_create(self) -> Collection:
        try:
            collection = self.client.get_collection(self.name, embedding_function=None)
        except NotFoundError:
            pass
        else:
            self._log_hnsw_differences(collection)
            return collection
        metadata: dict[str, str | int] = {
            EMBEDDER_KEY: self.embedder_id,
            DIMENSION_KEY: self.dimension,
        }
        try:
            collection = self.client.create_collection(
                self.name,
                configuration={"hnsw": cast(Any, self._hnsw)},
                metadata=metadata,
                embedding_function=None,
            )
        except ChromaError as create_error:
            # Another process may have created it between our get and create (Chroma 1.5 says
            # InternalError "already exists"): open theirs, else report why creation failed.
            try:
                return self.client.get_collection(self.name, embedding_function=None)
            except NotFoundError:
                raise create_error from None
        logger.info(
            "created collection %r (%s, dim %d, hnsw %s)",
            self.name,
            self.embedder_id,
            self.dimension,
            self._hnsw,
        )
        return collection

    def _check_embedder(self) -> None:
        meta = self._collection.metadata or {}
        stored_id = meta.get(EMBEDDER_KEY)
        stored_dim = meta.get(DIMENSION_KEY)
        stored_dim_int = None
        with contextlib.suppress(TypeError, ValueError):
            stored_dim_int = int(stored_dim)  # type: ignore[arg-type]
        if stored_id != self.embedder_id or stored_dim_int != self.dimension:
            raise EmbedderMismatchError(
                self.name,
                str(stored_id) if stored_id is not None else None,
                stored_dim_int,
                self.embedder_id,
                self.dimension,
            )

    def _log_hnsw_differences(self, collection: Collection) -> None:
        stored = (collection.configuration or {}).get("hnsw") or {}
        differ = {
            key: (stored.get(key), wanted)
            for key, wanted in self._hnsw.items()
            if key in stored and stored.get(key) != wanted
        }
        if differ:
            logger.warning(
                "collection %r keeps the HNSW settings it was created with: %s (stored, requested)",
                self.name,
                differ,
            )

    def _errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return _store_errors(self.client, action, self.name)

    # -- VectorIndex -----------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        """Insert or replace chunks by id. Within one call a repeated id keeps its last chunk.

        The stored document is the chunk's ``text`` (what citations show); a rendered text
        (``Chunk.rendered``, what the vector was made from) goes with the metadata."""
        matrix = self._as_matrix(vectors, len(chunks))
        last = {chunk.id: i for i, chunk in enumerate(chunks)}
        rows = sorted(last.values())
        if len(rows) < len(chunks):
            logger.debug("upsert: %d repeated ids kept once", len(chunks) - len(rows))
        with self._errors("upserting"):
            for batch in _batches(rows, self.max_batch_size):
                picked = [chunks[i] for i in batch]
                self._collection.upsert(
                    ids=[chunk.id for chunk in picked],
                    embeddings=matrix[batch].tolist(),
                    documents=[chunk.text for chunk in picked],
                    metadatas=[chunk.metadata() for chunk in picked],
                )
                logger.debug("upserted %d chunks into %r", len(batch), self.name)

    def delete(self, ids: Sequence[str]) -> None:
        """Remove these ids; unknown ids are ignored."""
        unique = list(dict.fromkeys(ids))
        with self._errors("deleting"):
            for batch in _batches(unique, self.max_batch_size):
                self._collection.delete(ids=batch)

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the order asked; unknown ids are left out."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Chunk] = {}
        with self._errors("reading"):
            for batch in _batches(wanted, self.max_batch_size):
                result = self._collection.get(ids=batch, include=["documents", "metadatas"])
                documents = result["documents"] or []
                metadatas = result["metadatas"] or []
                for chunk_id, text, meta in zip(result["ids"], documents, metadatas, strict=True):
                    found[chunk_id] = Chunk.from_metadata(chunk_id, text or "", dict(meta or {}))
        return [found[i] for i in wanted if i in found]

    def search(self, vector: Vectors, k: int, filters: Filters | None = None) -> list[Hit]:
        """The ``k`` nearest chunks, best first; ``score`` is the cosine similarity."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.dimension:
            raise ValueError(
                f"query vector has dimension {query.shape[0]}; collection {self.name!r} "
                f"holds dimension {self.dimension}"
            )
        if k <= 0 or _matches_nothing(filters):
            return []
        where = chroma_where(filters)
        embedding: Sequence[float] = query.tolist()
        with self._errors("searching"):
            result = self._collection.query(
                query_embeddings=embedding,
                n_results=k,
                where=where,
                include=["documents", "metadatas", "distances"],
            )
        ids = result["ids"][0]
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        hits = []
        for chunk_id, text, meta, distance in zip(
            ids, documents, metadatas, distances, strict=True
        ):
            similarity = 1.0 - float(distance)
            chunk = Chunk.from_metadata(chunk_id, text or "", dict(meta or {}))
            hits.append(Hit(chunk=chunk, score=similarity, scores={"dense": similarity}))
        hits.sort(key=lambda hit: hit.score, reverse=True)
        return hits

    def ids(self, filters: Filters | None = None) -> set[str]:
        """Every id in the collection (or matching ``filters``), read page by page."""
        if _matches_nothing(filters):
            return set()
        where = chroma_where(filters)
        found: set[str] = set()
        offset = 0
        with self._errors("listing ids"):
            while True:
                page = self._collection.get(
                    where=where, limit=self.max_batch_size, offset=offset, include=[]
                )
                found.update(page["ids"])
                if len(page["ids"]) < self.max_batch_size:
                    return found
                offset += self.max_batch_size

    def count(self) -> int:
        with self._errors("counting"):
            return self._collection.count()

    # -- helpers ---------------------------------------------------------------------------------

    def _as_matrix(self, vectors: Vectors, rows: int) -> Vectors:
        matrix = np.asarray(vectors, dtype=np.float32)
        if rows == 0 and matrix.size == 0:
            return matrix.reshape(0, self.dimension)
        if matrix.shape != (rows, self.dimension):
            raise ValueError(
                f"expected vectors of shape ({rows}, {self.dimension}) for collection "
                f"{self.name!r}, got {matrix.shape}"
            )
        return matrix


def _batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``_batches([1, 2, 3], 2)`` yields ``[1, 2]`` then ``[3]``."""
    size = max(size, 1)
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
