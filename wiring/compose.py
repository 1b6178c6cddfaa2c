"""The composition root: the one place that turns settings into objects.

The CLI commands, the HTTP service and the evaluation harness all get their embedder, stores,
ingestor and retriever from here, so the same settings always build the same system.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from app.answer.confidence import DEFAULT_THRESHOLD, FIT_FEATURES, ConfidenceFit
from app.answering import AnswerConfig, AnswerService
from app.ask_service import AskLimits, AskService
from app.generation.protocol import Generator
from app.queue import GenerationQueue
from config.settings import Settings
from index.chroma_store import ChromaVectorIndex, delete_collection, list_collections, make_client
from index.embedders import SentenceTransformerEmbedder
from index.embedding_cache import CachedEmbedder, EmbeddingCache, RawEmbedder
from index.hardware import pick_device
from index.keyword import SqliteBM25Index
from index.keyword_pg import PostgresBM25Index
from index.onnx_embedder import OnnxEmbedder
from index.reranker import LLMReranker
from index.retriever import RetrievalConfig, Retriever
from ingest.chunker import Chunker, ChunkerConfig
from ingest.jobs import SqlJobStore
from ingest.manifest import Manifest, SqliteManifest
from ingest.manifest_pg import PostgresManifest
from ingest.pipeline import IngestOptions, Ingestor
from modelstore.cache import Format, ModelCache, has_gguf
from modelstore.catalog import ModelSpec
from modelstore.errors import ModelFormatError, ModelNotInstalledError
from modelstore.gguf_info import gguf_quantization
from modelstore.onnx_export import choose_backend, embedder_id, read_export
from modelstore.profiles import models_for

log = logging.getLogger(__name__)


def model_path(settings: Settings, spec: ModelSpec, fmt: Format = "hf") -> Path:
    """Where a ready model loads from; a clear error when it is not prepared."""
    status = ModelCache(settings.model_cache_dir, settings.allow_network).status(spec, fmt)
    if not status.ready or status.path is None:
        raise ModelNotInstalledError(
            f"{spec.role} {spec.name} is not ready ({status.detail}): run "
            f"`docqa models prepare --profile {settings.profile}`"
        )
    return status.path


@dataclass(frozen=True)
class EngineChoice:
    engine: Literal["llamacpp", "transformers", "remote"]
    reason: str

    @property
    def model_format(self) -> Format | None:
        """The generator's format in the model cache that this engine reads (None: a remote
        server generates, no local generator is read)."""
        if self.engine == "remote":
            return None
        return "gguf" if self.engine == "llamacpp" else "hf"


def llm_engine(settings: Settings) -> EngineChoice:
    """A remote server when ``DOCQA_GENERATOR_URL`` is set; else ``DOCQA_LLM_ENGINE``, or for
    ``auto``: llama.cpp on CPU when the generator is a GGUF, transformers (+ bitsandbytes) on
    CUDA or for a model that is not a GGUF."""
    if settings.generator_url:
        return EngineChoice("remote", f"DOCQA_GENERATOR_URL is {settings.generator_url}")
    if settings.llm_engine != "auto":
        return EngineChoice(settings.llm_engine, "set by DOCQA_LLM_ENGINE")
    if pick_device(settings.device) == "cuda":
        return EngineChoice("transformers", "auto: CUDA runs transformers + bitsandbytes")
    spec = models_for(settings).generator
    if has_gguf(spec):
        return EngineChoice("llamacpp", "auto: CPU, and the generator is a GGUF")
    return EngineChoice("transformers", "auto: CPU, but the generator is not a GGUF file")


def default_quantization(settings: Settings) -> str:
    """transformers on CPU: none. Measured by bench/ask.py (docs/BENCHMARKS.md): on the test
    profile none is the fastest (ask p50 9.5 s against 19.8 s int4 and 74 s int8) and
    bitsandbytes on CPU saves memory only (int4: 1.5 GB for the 1.5B against 3.3 GB). CUDA: int4
    (NF4) for its memory and bitsandbytes' batch-1 4-bit kernels; not measured here (no GPU was
    lent; the check is bench/gpu_check.sh), so set DOCQA_LLM_QUANTIZATION to override.
    (llama.cpp runs the GGUF's own quantization: see `build_generator`.)"""
    if settings.llm_quantization is not None:
        return settings.llm_quantization
    return "int4" if pick_device(settings.device) == "cuda" else "none"


def build_generator(settings: Settings) -> Generator:
    choice = llm_engine(settings)
    log.info("generator engine %s (%s)", choice.engine, choice.reason)
    if choice.engine == "remote" and settings.generator_url:
        from app.generation.openai_generator import OpenAICompatibleGenerator

        key = settings.generator_api_key
        return OpenAICompatibleGenerator(
            settings.generator_url,
            api_key=key.get_secret_value() if key else None,
            model=settings.generator_model,
            context_window=settings.llm_context_tokens,
            concurrency=settings.generator_concurrency,
            timeout_s=settings.request_timeout_s,
        )
    spec = models_for(settings).generator
    if choice.engine == "llamacpp":
        from app.generation.llamacpp_generator import LlamaCppGenerator

        path = model_path(settings, spec, "gguf")
        quant = gguf_quantization(path)
        wanted = settings.llm_quantization
        if wanted is not None and wanted != quant.klass:
            raise ModelFormatError(
                f"DOCQA_LLM_QUANTIZATION={wanted}, but llama.cpp runs the GGUF's own "
                f"quantization and {path.name} is {quant}: point DOCQA_GENERATOR at a GGUF of "
                f"that class (Q8_0 for int8, F16 for none), unset DOCQA_LLM_QUANTIZATION, or "
                f"set DOCQA_LLM_ENGINE=transformers"
            )
        return LlamaCppGenerator(
            path,
            model_id=spec.name,
            quantization=quant.klass,
            context_tokens=settings.llm_context_tokens,
            threads=settings.llm_threads,
            allow_amx=settings.llm_allow_amx,
        )
    from app.generation.transformers_generator import TransformersGenerator

    return TransformersGenerator(
        model_path(settings, spec),
        model_id=spec.name,
        quantization=default_quantization(settings),  # type: ignore[arg-type]
        device=settings.device,
        quantized_cache_dir=settings.model_cache_dir / "quantized",
        max_context=settings.llm_context_tokens,
        cpu_dtype=settings.llm_cpu_dtype,
    )


def rerank_enabled(settings: Settings) -> bool:
    """DOCQA_RERANK; off unless set. Measured on a CPU with the 0.5B model on the top 10
    (bench/rerank.py, docs/BENCHMARKS.md): MRR@10 fell from 1.000 to 0.739 on XQuAD-en and to
    0.873 on CMRC 2018, at 35 s a question. It was on by default with CUDA, where nothing
    measured a gain either; the same model judges there, so it is off there too."""
    return bool(settings.rerank)


def answer_config(settings: Settings) -> AnswerConfig:
    return AnswerConfig(
        answer_max_tokens=settings.answer_max_tokens,
        context_tokens=settings.llm_context_tokens,
        evidence_floor=settings.evidence_floor,
        low_confidence=low_confidence(settings),
        answerable_floor=answerable_floor(settings),
        generation_timeout_s=settings.generation_timeout_s,
        confidence_fit=confidence_fit(settings),
        decline_below=decline_below(settings),
    )


def _catalog_fit(settings: Settings) -> ModelSpec | None:
    """The generator's spec when its catalog fit applies: no DOCQA_CONFIDENCE_FIT of the user's
    (which comes with its own thresholds or none), fitted, with the embedder in use, and not a
    remote generator (whose P(yes) and log-probabilities are another model's)."""
    if settings.confidence_fit is not None or settings.generator_url:
        return None
    models = models_for(settings)
    spec = models.generator
    if spec.confidence_fit is None or spec.confidence_fit_embedder != models.embedder.name:
        return None
    return spec


def decline_below(settings: Settings) -> float | None:
    """DOCQA_DECLINE_BELOW when set; else the catalog's, with the catalog's fit only (a user's
    own fit comes with its own threshold or none)."""
    if settings.decline_below is not None:
        return settings.decline_below
    spec = _catalog_fit(settings)
    return None if spec is None else spec.decline_below


def low_confidence(settings: Settings) -> float:
    """DOCQA_LOW_CONFIDENCE when set; else the catalog's, with the catalog's fit only (the
    threshold is on the fit's scale); else the weighted sum's DEFAULT_THRESHOLD."""
    if settings.low_confidence is not None:
        return settings.low_confidence
    spec = _catalog_fit(settings)
    if spec is None or spec.low_confidence is None:
        return DEFAULT_THRESHOLD
    return spec.low_confidence


def confidence_fit(settings: Settings) -> ConfidenceFit | None:
    """DOCQA_CONFIDENCE_FIT when set; else the generator's catalog fit, if it was fitted with
    the embedder in use (the retrieval part is in that embedder's cosines); else None, the
    weighted sum. A remote generator has none: its P(yes) and log-probabilities are another
    model's."""
    chosen: dict[str, float] | None = settings.confidence_fit
    if (spec := _catalog_fit(settings)) is not None:  # None when the setting is given
        chosen = dict(spec.confidence_fit or ())
    if chosen is None:
        return None
    unknown = set(chosen) - {"intercept", *FIT_FEATURES}
    if unknown or "intercept" not in chosen:
        raise ValueError(
            f"DOCQA_CONFIDENCE_FIT needs an intercept and weights of {', '.join(FIT_FEATURES)} "
            f"only; got {sorted(chosen)}"
        )
    return ConfidenceFit(**chosen)


def answerable_floor(settings: Settings) -> float | None:
    """DOCQA_ANSWERABLE_FLOOR when set (0: P(yes) is asked and recorded, nothing declined, so
    evaluation runs can replay any floor); else 0 where the catalog's confidence fit applies
    (P(yes) is one of its inputs, and its decline level declines: measured better than a floor
    on P(yes) alone, docs/EVALUATION.md); else the generator's measured floor. A user's own or
    remote model has none: P(yes) is calibrated per model."""
    if settings.answerable_floor is not None:
        return settings.answerable_floor
    if settings.generator_url:
        return None
    if _catalog_fit(settings) is not None:
        return 0.0
    return models_for(settings).generator.answerable_floor


def model_embedder(settings: Settings) -> RawEmbedder:
    """The embedder the settings name, on the backend `choose_backend` picks."""
    spec = models_for(settings).embedder
    # The backend is in the embedder id, so the cache and the collections keep them apart.
    backend = choose_backend(settings.embed_backend, spec, pick_device(settings.device))
    log.info("embedder %s on %s (embed_backend=%s)", spec.name, backend, settings.embed_backend)
    inner: SentenceTransformerEmbedder | OnnxEmbedder
    if backend == "torch":
        inner = SentenceTransformerEmbedder(
            model_path(settings, spec),
            model_id=spec.name,
            query_prefix=spec.query_prefix,
            passage_prefix=spec.passage_prefix,
            device=settings.device,
            batch_size=min(settings.embed_batch_size, 64),
        )
    else:
        exported = ModelCache(settings.model_cache_dir).onnx_status(spec, backend)
        if not exported.ready or exported.path is None:
            raise ModelNotInstalledError(
                f"embedder {spec.name} is not ready for {backend} ({exported.detail}): run "
                f"`docqa models prepare --profile {settings.profile}`, or set "
                "DOCQA_EMBED_BACKEND=torch"
            )
        inner = OnnxEmbedder(
            read_export(exported.path),  # its files are re-hashed at load()
            model_id=embedder_id(spec.name, backend),
            query_prefix=spec.query_prefix,
            passage_prefix=spec.passage_prefix,
            batch_size=min(settings.embed_batch_size, 64),
        )
    return inner


@dataclass
class Services:
    """Long-lived objects shared by every collection of one process."""

    settings: Settings
    embedder: CachedEmbedder
    cache: EmbeddingCache
    manifest: Manifest
    client: Any
    _answers: AnswerService | None = field(default=None, repr=False)
    _asks: AskService | None = field(default=None, repr=False)
    _reranker: LLMReranker | None = field(default=None, repr=False)
    _vectors: dict[str, ChromaVectorIndex] = field(default_factory=dict, repr=False)
    _keywords: dict[str, SqliteBM25Index | PostgresBM25Index] = field(
        default_factory=dict, repr=False
    )
    _jobs: SqlJobStore | None = field(default=None, repr=False)
    _jobs_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build_for_serving(
        cls,
        settings: Settings,
        generator: Generator | None = None,
        embedder: RawEmbedder | None = None,
    ) -> Services:
        """Everything, the generator included, loaded now (the service's lifespan calls this).

        One generator and one bounded queue serve answers, follow-up rewrites and the reranker:
        the reranker asks the loaded generator's weights through that queue, never a copy.
        ``generator`` and ``embedder`` replace the models the settings name (tests hand in
        fakes).
        """
        services = cls.build(settings, embedder)
        generator = generator or build_generator(settings)
        generator.load()
        # A remote server batches requests: feed it DOCQA_GENERATOR_CONCURRENCY at once.
        workers = settings.generator_concurrency if settings.generator_url else 1
        queue = GenerationQueue(settings.queue_size, workers=workers)
        services._answers = AnswerService(
            generator, services.embedder.model_id, answer_config(settings)
        )
        if rerank_enabled(settings):
            services._reranker = LLMReranker(generator, run=queue.run)
        limits = AskLimits(settings.max_question_chars, settings.request_timeout_s)
        services._asks = AskService(services, queue, limits, services.embedder.model_id)
        services.embedder.embed_query("warm up")  # loads the embedder now, not on first request
        return services

    @property
    def answers(self) -> AnswerService:
        if self._answers is None:
            raise RuntimeError("these services were built without a generator")
        return self._answers

    @property
    def asks(self) -> AskService:
        if self._asks is None:
            raise RuntimeError("these services were built without a generator")
        return self._asks

    @classmethod
    def build(cls, settings: Settings, embedder: RawEmbedder | None = None) -> Services:
        """``embedder`` replaces the model the settings name (tests hand in a fake)."""
        inner = embedder if embedder is not None else model_embedder(settings)
        cache = EmbeddingCache(settings.cache_dir / "embeddings.sqlite")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        client = make_client(
            None if settings.chroma_url else settings.chroma_dir, settings.chroma_url
        )
        url = settings.database_url
        manifest: Manifest = (
            PostgresManifest(url.get_secret_value())
            if url is not None
            else SqliteManifest(settings.data_dir / "manifest.sqlite")
        )
        return cls(
            settings=settings,
            embedder=CachedEmbedder(inner, cache),
            cache=cache,
            manifest=manifest,
            client=client,
        )

    @property
    def jobs(self) -> SqlJobStore:
        """The ingest job queue, opened on first use: in DOCQA_DATABASE_URL, else
        ``jobs.sqlite`` in the data dir."""
        with self._jobs_lock:
            if self._jobs is None:
                url = self.settings.database_url
                self._jobs = (
                    SqlJobStore.postgres(url.get_secret_value())
                    if url is not None
                    else SqlJobStore.sqlite(self.settings.data_dir / "jobs.sqlite")
                )
            return self._jobs

    def vectors(self, collection: str) -> ChromaVectorIndex:
        if collection not in self._vectors:
            self._vectors[collection] = self._open_vectors(collection)
        return self._vectors[collection]

    def _open_vectors(self, collection: str) -> ChromaVectorIndex:
        s = self.settings
        return ChromaVectorIndex(
            self.client,
            collection,
            embedder_id=self.embedder.model_id,
            dimension=self.embedder.dimension,
            hnsw_m=s.hnsw_m,
            hnsw_construction_ef=s.hnsw_construction_ef,
            hnsw_search_ef=s.hnsw_search_ef,
        )

    def keywords(self, collection: str) -> SqliteBM25Index | PostgresBM25Index:
        """The collection's keyword index: in the shared database when one is set."""
        if collection not in self._keywords:
            url = self.settings.database_url
            self._keywords[collection] = (
                PostgresBM25Index(url.get_secret_value(), collection)
                if url is not None
                else SqliteBM25Index(self.settings.data_dir / "keywords.sqlite", collection)
            )
        return self._keywords[collection]

    def drop_collection(self, collection: str) -> bool:
        """Remove a collection's vectors, keywords and manifest, whatever embedder built it."""
        self._vectors.pop(collection, None)
        existed = delete_collection(self.client, collection)
        self.keywords(collection).drop()
        self._keywords.pop(collection, None)
        self.manifest.drop_collection(collection)
        return existed

    def close(self) -> None:
        if self._asks is not None:
            self._asks.close()
        if self._jobs is not None:
            self._jobs.close()
        for keywords in self._keywords.values():
            keywords.close()
        self.manifest.close()
        self.cache.close()

    def collections(self) -> list[str]:
        return list_collections(self.client)

    def ingestor(self, collection: str) -> Ingestor:
        s = self.settings
        chunker = Chunker(
            self.embedder.count_tokens,
            ChunkerConfig(max_tokens=s.chunk_tokens, overlap_tokens=s.chunk_overlap),
        )
        mb = 1024 * 1024
        options = IngestOptions(
            max_file_bytes=int(s.max_file_mb * mb),
            workers=s.ingest_workers,
            embed_batch=s.embed_batch_size,
            max_inflated_bytes=int(s.max_inflated_mb * mb) if s.max_inflated_mb else None,
            parse_timeout_s=s.parse_timeout_s,
            parse_memory_bytes=int(s.parse_memory_mb * mb) if s.parse_memory_mb else None,
        )
        return Ingestor(
            collection,
            self.embedder,
            self.vectors(collection),
            self.keywords(collection),
            self.manifest,
            chunker,
            options,
        )

    def retriever(self, collection: str) -> Retriever:
        s = self.settings
        return Retriever(
            self.embedder,
            self.vectors(collection),
            self.keywords(collection),
            reranker=self._reranker,
            config=RetrievalConfig(
                mode=s.retrieval_mode,
                candidates=s.retrieval_candidates,
                fusion=s.retrieval_fusion,
                alpha=s.fusion_alpha,
                normalization=s.fusion_normalization,
                rrf_k=s.rrf_k,
            ),
        )
