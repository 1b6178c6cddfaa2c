"""LlamaIndex's default ingest of a folder into a fresh persistent Chroma collection, timed.

Run by ``bench/ingest.py`` with the interpreter of a separate venv (``bench/llamaindex_venv.sh``),
so LlamaIndex never enters docqa's dependencies; for the same reason this file imports nothing
from docqa. It does what LlamaIndex's getting-started shows, with every default kept:

    documents = SimpleDirectoryReader(folder).load_data()
    index = VectorStoreIndex.from_documents(documents, storage_context=<Chroma>)

The only things set are the ones a user must set to run offline on the same model: the embedder
is ``HuggingFaceEmbedding`` on the local model folder docqa uses (with the same passage/query
prefix, e.g. e5's ``passage: ``: LlamaIndex adds no prefix for a model it does not know), on the
CPU; chunking is ``Settings.node_parser``'s default ``SentenceSplitter`` (1024 tokens, 200
overlap); the batch size is HuggingFaceEmbedding's default. The model is loaded and warmed up
before the clock starts, as on docqa's side. Prints one JSON object on stdout.

    /tmp/li-venv/bin/python bench/_llamaindex_ingest.py --corpus DIR --model DIR --persist-dir DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from importlib import metadata
from pathlib import Path

# Offline and quiet, before any of these libraries is imported: a missing file fails at once
# instead of reaching for a hub, and Chroma sends no telemetry.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger("bench.llamaindex")

PACKAGES = (
    "llama-index-core",
    "llama-index-vector-stores-chroma",
    "llama-index-embeddings-huggingface",
    "chromadb",
    "sentence-transformers",
    "transformers",
    "torch",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="A folder of documents.")
    parser.add_argument("--model", type=Path, required=True, help="A local model folder.")
    parser.add_argument(
        "--persist-dir", type=Path, required=True, help="A Chroma folder that does not exist yet."
    )
    parser.add_argument("--collection", default="bench-llamaindex")
    parser.add_argument("--text-instruction", default="", help="Passage prefix, e5: 'passage: '.")
    parser.add_argument("--query-instruction", default="", help="Query prefix, e5: 'query: '.")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def run(args: argparse.Namespace) -> dict[str, object]:
    if not args.model.is_dir():
        raise SystemExit(f"--model {args.model} is not a folder (a local model folder is needed)")
    if args.persist_dir.exists():
        raise SystemExit(f"--persist-dir {args.persist_dir} exists: give a fresh folder")

    import chromadb
    import torch
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    started = time.perf_counter()
    embed_model = HuggingFaceEmbedding(
        model_name=str(args.model),
        text_instruction=args.text_instruction or None,
        query_instruction=args.query_instruction or None,
        device=args.device,
    )
    embed_model.get_text_embedding("warm-up")  # first-call costs out of the timing
    load_s = time.perf_counter() - started
    Settings.embed_model = embed_model
    splitter = Settings.node_parser  # the default SentenceSplitter that from_documents applies

    client = chromadb.PersistentClient(
        path=str(args.persist_dir),
        settings=chromadb.config.Settings(anonymized_telemetry=False),
    )
    collection = client.create_collection(args.collection)
    storage = StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=collection)
    )

    wall, cpu = time.perf_counter(), time.process_time()
    documents = SimpleDirectoryReader(str(args.corpus)).load_data()
    read_s = time.perf_counter() - wall
    VectorStoreIndex.from_documents(documents, storage_context=storage)
    seconds, cpu_s = time.perf_counter() - wall, time.process_time() - cpu

    return {
        "seconds": round(seconds, 3),
        "cpu_s": round(cpu_s, 2),
        "read_s": round(read_s, 3),
        "load_s": round(load_s, 2),
        "docs": len(documents),
        "chunks": collection.count(),
        "chunk_size": getattr(splitter, "chunk_size", None),
        "chunk_overlap": getattr(splitter, "chunk_overlap", None),
        "splitter": type(splitter).__name__,
        "embed_batch_size": embed_model.embed_batch_size,
        "text_instruction": args.text_instruction,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = run(parse_args(argv))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
