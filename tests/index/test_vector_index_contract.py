"""The VectorIndex contract, run against embedded Chroma and a real Chroma server.

Vectors are tiny (dimension 8) and built by hand, so every expected score can be checked on paper:
``vec(1, 1)`` is (1, 1, 0, ...)/sqrt(2), whose cosine with ``vec(1)`` is 0.7071.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from index.chroma_store import (
    ChromaVectorIndex,
    close_client,
    delete_collection,
    list_collections,
    make_client,
)
from index.errors import (
    CollectionNotFoundError,
    EmbedderMismatchError,
    InvalidCollectionNameError,
    StoreUnavailableError,
)
from index.protocols import VectorIndex, Vectors
from index.types import Chunk, chunk_id, document_id
from tests.index.conftest import Backend, IndexFactory, free_port, running_chroma_server
from tests.index.memory_index import MemoryVectorIndex

DIM = 8


def vec(*weights: float) -> Vectors:
    """A normalized dimension-8 vector with these leading components: ``vec(0, 1)`` is e1."""
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(weights)] = weights
    return (v / np.linalg.norm(v)).astype(np.float32)


def stack(*vectors: Vectors) -> Vectors:
    return np.stack(vectors).astype(np.float32)


def chunk(
    text: str,
    source: str = "notes/a.md",
    index: int = 0,
    page: int | None = None,
    heading_path: tuple[str, ...] = (),
) -> Chunk:
    doc = document_id(source)
    return Chunk(
        id=chunk_id(doc, text, index),
        text=text,
        doc_id=doc,
        source=source,
        title=source.rsplit("/", 1)[-1],
        chunk_index=index,
        start=index * 100,
        end=index * 100 + len(text),
        page=page,
        heading_path=heading_path,
    )


def texts(hits: Sequence[Any]) -> list[str]:
    return [hit.chunk.text for hit in hits]


@pytest.fixture
def index(make_index: IndexFactory) -> ChromaVectorIndex:
    return make_index()


@pytest.fixture
def three(index: ChromaVectorIndex) -> list[Chunk]:
    """east = e0, north-east = (e0+e1)/sqrt(2), north = e1, in two documents."""
    chunks = [
        chunk("east", "maps/a.md", 0),
        chunk("north-east", "maps/a.md", 1),
        chunk("north", "maps/b.md", 0),
    ]
    index.upsert(chunks, stack(vec(1), vec(1, 1), vec(0, 1)))
    return chunks


def check_vector_index_contract(index: VectorIndex) -> None:
    """What every VectorIndex does, through the protocol only: empty at first; upsert, then
    search gives the nearest first by cosine; an upsert of a known id replaces; delete removes
    (unknown ids ignored); count, ids and get follow."""
    assert index.count() == 0 and index.ids() == set() and index.search(vec(1), k=3) == []
    east, north_east, north = (
        chunk("east", "maps/a.md", 0, page=3, heading_path=("Maps", "East")),
        chunk("north-east", "maps/a.md", 1),
        chunk("north", "maps/b.md", 0),
    )
    index.upsert([east, north_east, north], stack(vec(1), vec(1, 1), vec(0, 1)))
    assert index.count() == 3 and index.ids() == {east.id, north_east.id, north.id}
    # vec(1, 2) is (1, 2)/sqrt(5): cosine 3/sqrt(10) = 0.949 with north-east, 2/sqrt(5) = 0.894
    # with north, 1/sqrt(5) = 0.447 with east.
    hits = index.search(vec(1, 2), k=2)
    assert texts(hits) == ["north-east", "north"]
    assert [h.score for h in hits] == pytest.approx([3 / math.sqrt(10), 2 / math.sqrt(5)], abs=1e-5)
    assert hits[0].chunk == north_east
    assert texts(index.search(vec(1), k=1)) == ["east"]
    assert index.get([north.id, "no-such-id", east.id]) == [north, east]  # provenance kept
    assert texts(index.search(vec(1), k=3, filters={"source": "maps/b.md"})) == ["north"]
    assert index.ids({"doc_id": [east.doc_id]}) == {east.id, north_east.id}

    revised = Chunk(**{**north.__dict__, "text": "north, revised"})
    index.upsert([revised], stack(vec(0, 0, 1)))  # the same id, a new text and vector
    assert index.count() == 3 and index.get([north.id]) == [revised]
    assert texts(index.search(vec(0, 0, 1), k=1)) == ["north, revised"]
    assert texts(index.search(vec(0, 1), k=1)) == ["north-east"]  # the old vector is gone

    index.delete([east.id, "no-such-id"])
    assert index.count() == 2 and index.ids() == {north_east.id, north.id}
    assert texts(index.search(vec(1), k=3)) == ["north-east", "north, revised"]
    assert index.get([east.id]) == []
    index.delete([north_east.id, north.id])
    assert index.count() == 0 and index.search(vec(1), k=3) == []


def test_it_is_a_vector_index(index: ChromaVectorIndex) -> None:
    check_vector_index_contract(index)


def test_the_in_memory_fake_is_a_vector_index() -> None:
    check_vector_index_contract(MemoryVectorIndex(DIM))


def test_search_returns_the_nearest_first_scored_by_cosine(
    index: ChromaVectorIndex, three: list[Chunk]
) -> None:
    hits = index.search(vec(1), k=3)
    assert texts(hits) == ["east", "north-east", "north"]
    assert [h.score for h in hits] == pytest.approx([1.0, math.sqrt(0.5), 0.0], abs=1e-5)
    assert all(h.scores == {"dense": h.score} for h in hits)
    # Nearer north (3/sqrt(10) = 0.949) than north-east (4/sqrt(20) = 0.894).
    best = index.search(vec(1, 3), k=2)
    assert texts(best) == ["north", "north-east"]
    assert [h.score for h in best] == pytest.approx(
        [3 / math.sqrt(10), 4 / math.sqrt(20)], abs=1e-5
    )


def test_upsert_of_the_same_id_replaces(index: ChromaVectorIndex, three: list[Chunk]) -> None:
    old = three[0]
    new = Chunk(**{**old.__dict__, "text": "east, revised"})
    index.upsert([new], stack(vec(1)))
    assert index.count() == 3
    assert index.ids() == {c.id for c in three}
    assert [c.text for c in index.get([old.id])] == ["east, revised"]
    assert texts(index.search(vec(1), k=1)) == ["east, revised"]


def test_a_repeated_id_within_one_upsert_keeps_the_last(index: ChromaVectorIndex) -> None:
    first = chunk("same")
    second = Chunk(**{**first.__dict__, "text": "same, later"})
    index.upsert([first, second], stack(vec(1), vec(0, 1)))
    assert index.count() == 1
    assert texts(index.search(vec(0, 1), k=1)) == ["same, later"]


def test_delete_removes(index: ChromaVectorIndex, three: list[Chunk]) -> None:
    gone = three[0]
    index.delete([gone.id, "no-such-id"])
    assert index.count() == 2
    assert index.ids() == {three[1].id, three[2].id}
    assert gone.id not in {h.chunk.id for h in index.search(vec(1), k=10)}
    assert index.get([gone.id]) == []
    index.delete([])
    assert index.count() == 2


def test_filters_by_source_and_by_doc_ids(index: ChromaVectorIndex, three: list[Chunk]) -> None:
    a, b = three[0].doc_id, three[2].doc_id
    assert texts(index.search(vec(1), k=10, filters={"source": "maps/b.md"})) == ["north"]
    assert texts(index.search(vec(1), k=10, filters={"doc_id": [a]})) == ["east", "north-east"]
    assert len(index.search(vec(1), k=10, filters={"doc_id": [a, b]})) == 3
    both = {"source": "maps/a.md", "doc_id": [b]}
    assert index.search(vec(1), k=10, filters=both) == []
    assert index.search(vec(1), k=10, filters={"doc_id": []}) == []
    assert index.ids({"source": "maps/a.md"}) == {three[0].id, three[1].id}
    assert index.ids({"doc_id": [b]}) == {three[2].id}
    assert index.ids({"doc_id": []}) == set()
    with pytest.raises(ValueError, match="cannot filter on 'title'"):
        index.search(vec(1), k=1, filters={"title": "a.md"})


def test_provenance_survives_the_round_trip(index: ChromaVectorIndex) -> None:
    pdf = chunk("a page of a pdf", "docs/manual.pdf", 3, page=12, heading_path=("Setup", "GPU"))
    md = chunk("markdown text", "docs/readme.md", 0)
    index.upsert([pdf, md], stack(vec(1), vec(0, 1)))
    assert index.get([md.id, pdf.id, "missing"]) == [md, pdf]
    got_pdf, got_md = index.get([pdf.id, md.id])
    assert got_pdf.page == 12 and got_pdf.heading_path == ("Setup", "GPU")
    assert got_md.page is None and got_md.heading_path == ()
    assert index.search(vec(1), k=1)[0].chunk == pdf
    assert index.search(vec(0, 1), k=1)[0].chunk == md


def test_k_larger_than_the_collection_returns_everything(
    index: ChromaVectorIndex, three: list[Chunk]
) -> None:
    assert len(index.search(vec(1), k=1000)) == 3
    assert len(index.search(vec(1), k=1000, filters={"source": "maps/b.md"})) == 1
    assert index.search(vec(1), k=0) == []


def test_an_empty_collection_searches_to_nothing(index: ChromaVectorIndex) -> None:
    assert index.search(vec(1), k=5) == []
    assert index.ids() == set()
    assert index.get(["x"]) == []


def test_a_query_of_the_wrong_dimension_is_refused(index: ChromaVectorIndex) -> None:
    with pytest.raises(ValueError, match="dimension 3"):
        index.search(np.ones(3, dtype=np.float32), k=1)
    with pytest.raises(ValueError, match=r"shape \(1, 8\)"):
        index.upsert([chunk("x")], np.ones((1, 3), dtype=np.float32))


def test_reopening_keeps_the_data(
    backend: Backend, client: ClientAPI, collection_name: str, three: list[Chunk]
) -> None:
    again = backend.reopen(client)
    reopened = ChromaVectorIndex(again, collection_name, "fake-embedder-v1", DIM)
    assert reopened.count() == 3
    assert reopened.get([c.id for c in three]) == three
    assert texts(reopened.search(vec(1), k=1)) == ["east"]
    assert collection_name in list_collections(again)


@pytest.mark.parametrize(
    ("embedder_id", "dimension", "named"),
    [("other-embedder", 8, "other-embedder (dim 8)"), ("fake-embedder-v1", 16, "(dim 16)")],
)
def test_another_embedder_or_dimension_is_refused(
    make_index: IndexFactory,
    three: list[Chunk],
    collection_name: str,
    embedder_id: str,
    dimension: int,
    named: str,
) -> None:
    with pytest.raises(EmbedderMismatchError) as raised:
        make_index(embedder_id=embedder_id, dimension=dimension)
    message = str(raised.value)
    assert "fake-embedder-v1 (dim 8)" in message and named in message
    assert f"docqa ingest --collection {collection_name} --reindex" in message
    assert raised.value.status_code == 409
    # The refused open changed nothing.
    assert make_index().count() == 3


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("ab", "3 to 63"),
        ("x" * 64, "3 to 63"),
        ("my docs", "only letters"),
        ("_docs", "start and end"),
        ("docs-", "start and end"),
        ("a..b", "'..'"),
        ("10.0.0.1", "IPv4"),
    ],
)
def test_an_invalid_collection_name_is_refused(
    make_index: IndexFactory, client: ClientAPI, name: str, rule: str
) -> None:
    with pytest.raises(InvalidCollectionNameError, match=rule) as raised:
        make_index(name=name)
    assert name in str(raised.value) and raised.value.status_code == 422
    assert name not in list_collections(client)


def test_batches_larger_than_the_store_takes_are_split(
    client: ClientAPI, make_index: IndexFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "get_max_batch_size", lambda: 7)
    sizes: list[int] = []
    real_upsert = Collection.upsert

    def recording_upsert(self: Collection, ids: list[str], **kwargs: Any) -> None:
        sizes.append(len(ids))
        real_upsert(self, ids, **kwargs)

    monkeypatch.setattr(Collection, "upsert", recording_upsert)
    index = make_index()
    chunks = [chunk(f"passage {i}", index=i) for i in range(25)]
    index.upsert(chunks, stack(*(vec(1, i / 25) for i in range(25))))
    assert sizes == [7, 7, 7, 4]
    assert index.count() == 25
    assert index.ids() == {c.id for c in chunks}  # four pages of at most 7
    assert index.get([c.id for c in chunks]) == chunks
    index.delete([c.id for c in chunks[:20]])
    assert index.count() == 5


def test_a_batch_over_chromas_real_limit_is_split(index: ChromaVectorIndex) -> None:
    n = index.max_batch_size + 1  # 5461 + 1 with Chroma 1.5: takes ~2 s per backend
    chunks = [chunk(f"p{i}", index=i) for i in range(n)]
    # p0 points east; the rest fan out from 0.1 rad, so p0 is clearly the nearest to east.
    angles = np.concatenate([[0.0], np.linspace(0.1, math.pi / 2, n - 1)])
    vectors = stack(*(vec(math.cos(a), math.sin(a)) for a in angles))
    index.upsert(chunks, vectors)
    assert index.count() == n
    assert len(index.ids()) == n
    assert texts(index.search(vec(1), k=1)) == ["p0"]
    index.delete([c.id for c in chunks])
    assert index.count() == 0


def test_delete_collection_removes_it(index: ChromaVectorIndex, client: ClientAPI) -> None:
    index.upsert([chunk("x")], stack(vec(1)))
    assert index.name in list_collections(client)
    assert delete_collection(client, index.name)
    assert index.name not in list_collections(client)
    with pytest.raises(CollectionNotFoundError):
        index.count()


def test_an_unreachable_server_is_reported_with_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailableError, match=url) as raised:
        make_client(None, url)
    assert raised.value.status_code == 503


@pytest.mark.slow  # starts and stops its own `chroma run`
def test_a_server_that_goes_away_is_reported(tmp_path: Path) -> None:
    with running_chroma_server(tmp_path) as (url, process):
        client = make_client(None, url)
        index = ChromaVectorIndex(client, "docs", "fake-embedder-v1", DIM)
        index.upsert([chunk("x")], stack(vec(1)))
        process.terminate()
        process.wait(timeout=10)
        with pytest.raises(StoreUnavailableError, match=url):
            index.search(vec(1), k=1)
        close_client(client)


def test_a_malformed_server_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        make_client(None, "127.0.0.1:8001")


def test_a_rendered_text_travels_with_its_chunk(index: ChromaVectorIndex) -> None:
    """A table chunk's rendering (what its vector was made from) comes back with it; the stored
    document stays the chunk's own text, which citations show."""
    rendering = {"rendered": "Owners\norbit-api: Owner Priya", "row_lines": ((1, 2),)}
    table = Chunk(**{**chunk("| orbit-api | Priya Raman |").__dict__, **rendering})
    plain = chunk("plain prose", index=1)
    index.upsert([table, plain], stack(vec(1), vec(0, 1)))
    assert index.get([table.id, plain.id]) == [table, plain]
    [hit] = index.search(vec(1), k=1)
    assert hit.chunk == table and hit.chunk.text == "| orbit-api | Priya Raman |"
    assert hit.chunk.row_lines == ((1, 2),) and plain.rendered is None
