"""The one typed settings object of docqa, and where each of its values came from.

Settings are built once, at start-up (the CLI's callback, ``create_app(settings)``, a test), and
passed down. This is the only module that reads the environment. It imports nothing from the
project, so every layer may import it.

Precedence, highest first:

1. explicit overrides (command-line flags, or keyword arguments in tests);
2. environment variables with the ``DOCQA_`` prefix (``DOCQA_API_KEYS`` as a JSON list,
   ``'["k1", "k2"]'``, or comma-separated, ``k1,k2``);
3. a TOML file given by ``--config`` or ``DOCQA_CONFIG`` (keys are field names without prefix);
4. the defaults below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "DOCQA_"
CONFIG_ENV = "DOCQA_CONFIG"
Profile = Literal["default", "fast", "test"]
Quantization = Literal["none", "int8", "int4"]
Device = Literal["auto", "cpu", "cuda"]
LlmEngine = Literal["auto", "llamacpp", "transformers"]


class ConfigFileError(ValueError):
    """The configuration file is missing, unreadable or not TOML."""


class Settings(BaseSettings):
    """Every knob of docqa. Field docs double as the ``docqa config show`` reference."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings(...)` takes only what it is given; load_settings() merges the environment
        # and the config file, so there is one reader of the environment and it is explicit.
        return (init_settings,)

    # Where things live.
    data_dir: Path = Field(
        Path(".docqa"), description="Chroma data, embedding cache, model cache, run records."
    )
    models_dir: Path | None = Field(
        None, description="Model cache; defaults to DATA_DIR/models (a Docker image sets its own)."
    )

    # Models.
    profile: Profile = Field("default", description="Model profile: default, fast or test.")
    generator: str | None = Field(
        None, description="Override the profile's generator: a local model folder or a hub id."
    )
    embedder: str | None = Field(
        None, description="Override the profile's embedder: a local model folder or a hub id."
    )
    embed_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        "auto",
        description="How the embedder runs: torch, onnx (ONNX Runtime, fp32) or onnx-int8; "
        "auto: ONNX Runtime at the precision measured for the model on a CPU, torch on CUDA.",
    )
    allow_network: bool = Field(
        False, description="Let hub ids download; off by default (HF_HUB_OFFLINE=1)."
    )
    device: Device = Field("auto", description="auto picks CUDA when present, else CPU.")
    llm_quantization: Quantization | None = Field(
        None, description="none, int8 or int4; unset picks the measured default for the device."
    )
    llm_engine: LlmEngine = Field(
        "auto",
        description="llamacpp or transformers; auto: llama.cpp on CPU (a GGUF model), "
        "transformers on CUDA.",
    )
    llm_cpu_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="transformers on CPU: auto is bf16 where the CPU has it natively "
        "(AVX512-BF16, AMX), else fp32.",
    )
    llm_threads: int | None = Field(
        None, ge=1, le=512, description="llama.cpp threads; unset: every core this process has."
    )
    llm_allow_amx: bool = Field(
        False,
        description="llama.cpp: run a build with ggml's AMX kernels, which crash the process on "
        "the first Q4_K matrix product on Sapphire Rapids virtual machines "
        "(ggml-org/llama.cpp#20824); off: such a build is refused at load, with how to rebuild it.",
    )
    generator_url: str | None = Field(
        None,
        description="An OpenAI-compatible server (vLLM, llama.cpp server, Ollama, TGI) that "
        "generates instead of the in-process model: its base URL, e.g. http://vllm:8000/v1.",
    )
    generator_api_key: SecretStr | None = Field(
        None, description="The bearer key DOCQA_GENERATOR_URL wants, if any."
    )
    generator_model: str | None = Field(
        None,
        description="The model name to ask DOCQA_GENERATOR_URL for; unset: the one it serves "
        "(its /models list).",
    )
    generator_concurrency: int = Field(
        4,
        ge=1,
        le=1024,
        description="Requests in flight to DOCQA_GENERATOR_URL at once: fills its batches, "
        "never floods it.",
    )

    # Index.
    chroma_url: str | None = Field(
        None, description="A Chroma server (http://host:port); unset uses embedded Chroma."
    )
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL (postgresql://user:pass@host:port/db) for the manifest, keyword "
        "index and job queue, shared by several hosts; unset: SQLite files under the data dir.",
    )
    worker: bool = Field(
        True, description="`docqa serve` runs ingest jobs in-process (false on API-only hosts)."
    )
    job_attempts: int = Field(
        3, ge=1, le=100, description="Tries of an ingest job before it is marked failed."
    )
    job_lease_s: float = Field(
        60.0,
        ge=5,
        description="A running job not heard from for this long is taken as its worker's death "
        "and retried.",
    )
    collection: str = Field("docs", description="Default collection (knowledge base).")
    hnsw_m: int = Field(16, ge=2, le=128, description="HNSW graph degree (new collections).")
    hnsw_construction_ef: int = Field(100, ge=8, description="HNSW build-time candidate list.")
    hnsw_search_ef: int = Field(64, ge=8, description="HNSW query-time candidate list.")

    # Ingest.
    chunk_tokens: int = Field(200, ge=32, le=2048, description="Chunk budget, embedder tokens.")
    chunk_overlap: int = Field(32, ge=0, description="Overlap between chunks of a section.")
    max_file_mb: float = Field(50.0, gt=0, description="Files over this size are refused.")
    max_inflated_mb: float | None = Field(
        None,
        gt=0,
        description="What a DOCX (a zip) may unpack to, counted as it inflates; "
        "unset: 10 x MAX_FILE_MB.",
    )
    parse_timeout_s: float = Field(
        120.0, gt=0, description="A file still parsing after this is reported and skipped."
    )
    parse_memory_mb: float | None = Field(
        None,
        gt=0,
        description="Memory one file's parse may take (its worker process's cap); "
        "unset: 20 x MAX_FILE_MB, at least 512.",
    )
    ingest_workers: int = Field(
        2, ge=1, le=64, description="Files parsed at once, each in a worker process."
    )
    embed_batch_size: int = Field(
        256, ge=1, le=4096, description="Chunks embedded and written together."
    )

    # Retrieval.
    retrieval_mode: Literal["hybrid", "dense", "keyword"] = Field(
        "hybrid", description="hybrid fuses dense and keyword results by reciprocal rank."
    )
    retrieval_candidates: int = Field(30, ge=1, le=1000, description="Per-method candidates.")
    retrieval_fusion: Literal["convex", "rrf"] = Field(
        "convex",
        description="Hybrid fusion: convex combination of normalized scores, or reciprocal rank "
        "fusion (docs/EVALUATION.md has the measurements behind the default).",
    )
    fusion_alpha: float = Field(
        0.9, ge=0.0, le=1.0, description="Dense weight of the convex combination."
    )
    fusion_normalization: Literal["tmm", "mm"] = Field(
        "tmm", description="Score normalization: theoretical or per-query min-max."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    rerank: bool | None = Field(
        None, description="LLM yes/no reranking (off unless set: it measured worse than none)."
    )

    # Answers.
    answer_max_tokens: int = Field(256, ge=8, le=4096, description="Token budget of an answer.")
    llm_context_tokens: int = Field(
        4096, ge=512, description="Cap on prompt plus answer tokens (CPU latency grows with it)."
    )
    evidence_floor: float = Field(
        0.2, ge=0, le=1, description="Below this retrieval evidence, decline without the LLM."
    )
    low_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Answers under this confidence are flagged. Unset: the profile model's, "
        "fitted with its confidence; else 0.5.",
    )
    answerable_floor: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Ask the generator whether the passages hold the answer before answering; "
        "P(yes) under this declines. Unset: the profile model's measured floor (none for a "
        "model without one); 0 asks and records it but never declines (to measure floors).",
    )
    confidence_fit: dict[str, float] | None = Field(
        None,
        description="A fitted confidence (JSON: intercept and weights of retrieval, support, "
        "certainty, answerable), as `docqa eval fit-confidence` prints it. Unset: the profile "
        "model's fit, when it was fitted with this embedder; else the weighted sum.",
    )
    decline_below: float | None = Field(
        None,
        ge=0,
        le=1,
        description="With a confidence fit: decline an answer whose fitted P(right) is under "
        "this. Unset: the profile model's, fitted with its confidence; else none.",
    )
    generation_timeout_s: float = Field(
        60.0, gt=0, description="Past it, the answer degrades to an extractive one."
    )
    request_timeout_s: float = Field(120.0, gt=0, description="Time limit of one request.")
    queue_size: int = Field(8, ge=1, le=1000, description="Generations waiting or running.")
    max_question_chars: int = Field(2000, ge=10, description="Longer questions get a 422.")
    max_batch: int = Field(16, ge=1, le=256, description="Questions per /v1/ask/batch call.")
    review_sample: float = Field(
        0.01, ge=0, le=1, description="Share of answers (besides low-confidence ones) logged."
    )

    # Service.
    host: str = Field("127.0.0.1", description="Address `docqa serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `docqa serve` binds.")
    # NoDecode: the environment's string reaches `_key_list` as is, so a plain `k1,k2` works too.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys for /v1 routes (a JSON list or comma-separated); empty: open.",
    )
    rate_limit_per_minute: int = Field(
        120, ge=1, description="Requests per minute per API key (429 beyond)."
    )
    protect_metrics: bool = Field(False, description="Require an API key for /metrics too.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging level."
    )

    # Chat UI (ui/): mounted at /ui by `docqa serve`, or served alone by `docqa ui`. It calls the
    # API over HTTP only, so these say where and with which key.
    ui_enabled: bool = Field(True, description="Mount the chat UI at /ui in `docqa serve`.")
    ui_api_url: str | None = Field(
        None,
        description="The API the UI calls; unset: the server's own address (serve), "
        "http://127.0.0.1:8000 (`docqa ui`).",
    )
    ui_api_key: SecretStr | None = Field(
        None, description="Key the UI sends; unset: the first of DOCQA_API_KEYS."
    )

    # Evaluation (eval/, `docqa eval`): where run records go. Runs build their own collections
    # under DATA_DIR/eval and use every other setting as the service would.
    runs_dir: Path | None = Field(
        None, description="Evaluation run records (`docqa eval`); defaults to DATA_DIR/runs."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        """A JSON list (``'["k1", "k2"]'``) or a comma-separated string (``k1,k2``).

        >>> [k.get_secret_value() for k in Settings(api_keys="k1, k2").api_keys]
        ['k1', 'k2']
        """
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not a JSON list of keys: {exc}") from exc
        return [key.strip() for key in text.split(",") if key.strip()]

    @field_validator("data_dir", "models_dir", "runs_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def model_cache_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def run_records_dir(self) -> Path:
        return self.runs_dir if self.runs_dir is not None else self.data_dir / "runs"


def _config_path(config_file: Path | None, environ: Mapping[str, str]) -> Path | None:
    if config_file is not None:
        return config_file
    from_env = environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigFileError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"config file {path} is not valid TOML: {exc}") from exc
    return data


def _sources(
    overrides: Mapping[str, Any], config: Path | None, environ: Mapping[str, str]
) -> list[tuple[str, PydanticBaseSettingsSource]]:
    """The sources in precedence order, each with the label `config show` prints."""
    sources: list[tuple[str, PydanticBaseSettingsSource]] = [
        ("override", InitSettingsSource(Settings, init_kwargs=dict(overrides))),
        ("env", _MappingEnvSource(Settings, environ)),
    ]
    if config is not None:
        _read_toml(config)  # fail early with a clear message
        sources.append((f"file:{config}", TomlConfigSettingsSource(Settings, toml_file=config)))
    return sources


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping so tests need not touch os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls, case_sensitive=False)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {key.lower(): value for key, value in self._environ.items()}


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from overrides, environment, config file and defaults."""
    env = os.environ if environ is None else environ
    config = _config_path(config_file, env)
    sources = _sources({k: v for k, v in overrides.items() if v is not None}, config, env)
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for label, source in reversed(sources):  # lowest precedence first, so higher ones win
        for name, value in source().items():
            if name not in Settings.model_fields:
                raise ConfigFileError(f"unknown setting {name!r} (from {label})")
            merged[name] = value
            origins[name] = label
    settings = Settings(**merged)
    settings._origins = origins
    return settings


def origin_of(settings: Settings, name: str) -> str:
    """Where a value came from: ``override``, ``env``, ``file:PATH`` or ``default``."""
    return settings._origins.get(name, "default")


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """Rows of (name, value with secrets masked, origin) for `docqa config show`."""
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "**********"
        elif isinstance(value, list) and any(isinstance(v, SecretStr) for v in value):
            shown = f"[{len(value)} masked]"
        else:
            shown = "" if value is None else str(value)
        rows.append((name, shown, origin_of(settings, name)))
    return rows
