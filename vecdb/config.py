"""Settings: one pydantic-settings object, read from ``VECDB_*`` environment variables.

Nested sections use ``__``: ``VECDB_LIMITS__MAX_K=50000``, ``VECDB_STORAGE__SYNC_WRITES=false``.
Every setting is documented in ``docs/configuration.md`` (a test checks that).
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = [
    "EmbeddingSettings",
    "IndexSettings",
    "Limits",
    "SearchSettings",
    "Settings",
    "StorageSettings",
    "load_settings",
    "parse_api_key",
]

_CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("vecdb_config_file", default=None)


def parse_api_key(entry: str) -> tuple[str, Literal["admin", "read"]]:
    """``KEY``, ``KEY:admin`` or ``KEY:read`` -> (KEY, role). Anything after the last ':' that is not a
    role is an error, never a silent admin key (``KEY:reed`` is a typo, not a key with a colon)."""
    if ":" not in entry:
        secret, role = entry, "admin"
    else:
        secret, _, role = entry.rpartition(":")
    if not secret or role not in ("admin", "read"):
        raise ValueError(
            "each API key is KEY, KEY:admin or KEY:read with a non-empty KEY; "
            f"the role {role!r} is not one of admin, read"
            if secret
            else "an API key is empty"
        )
    return secret, "read" if role == "read" else "admin"


class Limits(BaseModel):
    """Input limits. Exceeding one is an error (``LimitExceededError``), never a silent cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_id_bytes: int = Field(512, ge=1, description="Longest record id, in UTF-8 bytes.")
    max_text_bytes: int = Field(1 << 20, ge=1, description="Longest record text, in UTF-8 bytes.")
    max_metadata_bytes: int = Field(64 << 10, ge=2, description="Largest metadata object, as compact JSON.")
    max_metadata_depth: int = Field(16, ge=1, description="Deepest nesting of lists/objects in metadata.")
    max_source_bytes: int = Field(1024, ge=1, description="Longest source name, in UTF-8 bytes.")
    max_batch: int = Field(100_000, ge=1, description="Most records in one upsert or ids in one get/delete.")
    max_queries: int = Field(100_000, ge=1, description="Most query vectors in one search call.")
    max_k: int = Field(10_000, ge=1, description="Largest k in a search.")
    max_hits: int = Field(
        100_000,
        ge=1,
        description="Most hits one search may return: queries x k, refused before any search work. "
        "Measured over REST with short texts and metadata: ~2.2 KB of peak server memory and ~18 us per "
        "hit (100,000 hits: +215 MB, 1.8 s).",
    )
    max_response_bytes: int = Field(
        64 << 20,
        ge=1024,
        description="Largest vector payload of one search answer: with include 'vector', queries x k x "
        "dim x 4 bytes; refused before searching, never truncated.",
    )
    max_dim: int = Field(65_536, ge=1, description="Largest vector dimension of a collection.")
    max_metadata_fields: int = Field(
        1_000,
        ge=1,
        description="Most distinct top-level metadata keys in one collection (each is filterable and "
        "costs memory); a write bringing new keys past it is refused.",
    )


class StorageSettings(BaseModel):
    """Durability and checkpointing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sync_writes: bool = Field(
        True,
        description="fsync the RocksDB WAL before acknowledging a write (survives power loss). "
        "False survives a process crash only.",
    )
    checkpoint_every_ops: int = Field(
        1000, ge=1, description="Checkpoint a collection's index after this many writes since the last one."
    )
    checkpoint_every_records: int = Field(
        200_000,
        ge=1,
        description="...or after this many records were written or deleted since the last one.",
    )
    max_open_files: int = Field(
        64,
        ge=-1,
        description="Most table files each collection's RocksDB keeps open (-1: all of them, one file "
        "descriptor each). A collection also holds ~4 descriptors of its own (WAL, LOCK, MANIFEST, log).",
    )
    block_cache_mb: int = Field(
        32,
        ge=0,
        le=1 << 20,
        description="MiB of RocksDB block cache per collection, shared by all its column families (table "
        "blocks read from disk: vectors read by rebuilds, re-ranking and replay; records read by reads).",
    )
    write_buffer_mb: int = Field(
        16,
        ge=1,
        le=1 << 16,
        description="MiB of RocksDB memtables per collection, all column families together: recent writes "
        "are flushed to table files once they pass it (the WAL keeps them durable meanwhile).",
    )
    expiry_purge_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="How often expired records (ttl / expires_at) are deleted in the background. They are "
        "invisible to reads from their expiry time on, purged or not.",
    )


class SearchSettings(BaseModel):
    """Search execution."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    single_thread_max_queries: int = Field(
        8,
        ge=1,
        description="Batches of at most this many queries run on one OpenMP thread (no spin-up cost); "
        "larger batches use every core.",
    )


class IndexSettings(BaseModel):
    """Index maintenance and the filtered-search planner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: Literal["cpu", "gpu", "auto"] = Field(
        "auto",
        description="Where flat and IVF searches run: 'gpu' mirrors them on GPU 0 through FAISS's GPU "
        "indexes (needs the faiss-gpu build; an error without a GPU), 'cpu' never does, 'auto' uses a "
        "GPU when FAISS sees one. HNSW, filtered searches and checkpoints always use the CPU index.",
    )
    merge_min_records: int = Field(
        2_000, ge=1, description="New vectors wait in the exact delta buffer until at least this many..."
    )
    merge_ratio: float = Field(
        0.05, gt=0, description="...and this share of the ANN index; then a background merge adds them."
    )
    tombstone_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Rebuild an ANN index in the background once this share of it is deleted.",
    )
    ivf_train_min: int = Field(10_000, ge=1, description="Train an IVF index once this many vectors exist.")
    ivf_regrow_factor: float = Field(
        4.0,
        gt=1,
        description="Retrain an IVF with nlist='auto' once the collection is this many times "
        "the size it was trained at.",
    )
    exact_max_admitted: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="How a filtered search is planned. 'auto': the plan of least estimated work, exact "
        "over the admitted records (read in place from the index) or the ANN index with a selector and "
        "ef/nprobe widened by 1/selectivity (docs/indexes.md#filtered-search-planning: the break-even grows "
        "with sqrt(collection size x ef) for HNSW). A number pins the plan: a filter admitting at most "
        "that many records is searched exactly, above it through the ANN index (0: always the ANN index).",
    )
    range_max_repeat: int = Field(
        128,
        ge=0,
        description="A numeric metadata field whose values repeat fewer times than this on average (a "
        "timestamp, a price) answers range filters and long $in lists from its sorted column "
        "(O(log n + matches)); one with more repeated values by a union of its per-value bitmaps. "
        "0: never the column.",
    )
    audit_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of unfiltered searches on an ANN index re-run exactly in the background to "
        "estimate the recall delivered (info()['index_state']['recall']['audit'], /metrics); 0 turns "
        "the audit off. Audited in batches, at most 5% of wall time (samples over budget are dropped).",
    )


class EmbeddingSettings(BaseModel):
    """Built-in embedding (collections created with ``embedding={"model": ...}``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        True,
        description="Embed texts sent without vectors. Off: such requests fail clearly and torch is "
        "never loaded.",
    )
    allow_download: bool = Field(
        False,
        description="Let a model name that is not available locally be downloaded from the Hugging "
        "Face hub. Off (the default), nothing touches the network.",
    )
    default_model: str = Field(
        "all-MiniLM-L6-v2", description="Model of embedding={} (packaged, no download)."
    )
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Further models that requests (/v1/embed, create_collection over REST or gRPC) may "
        "name: names or local folder paths; comma-separated in the environment. The default model, the "
        "packaged one and the models of existing collections are always allowed.",
    )
    batch_size: int = Field(
        16,
        ge=1,
        le=4096,
        description="Texts per encoding batch (small batches pad less: 16 measured ~1.9x "
        "faster than 64 on 2 cores).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Device of the torch backend (auto: the GPU when torch sees one)."
    )
    backend: Literal["onnx", "onnx-int8", "torch"] = Field(
        "onnx",
        description="Inference backend: onnx (onnxruntime, float32, exported once from the local model "
        "folder into the data directory's models/; torch is never imported by the server), onnx-int8 (the "
        "same with dynamic int8 weights: faster, vectors change slightly, see docs/embedding.md), torch "
        "(sentence-transformers; any model folder, e.g. with Dense layers; GPUs).",
    )
    threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Intra-op threads of the embedding backend for every call; 0 (the default): onnx "
        "backends use all the process's cores, torch 1 thread for calls of up to 4 texts (queries) and all "
        "the cores for larger ones (ingest).",
    )

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value


class Settings(BaseSettings):
    """All of vecdb's settings: flags (``vecdb serve --help``) > ``VECDB_*`` environment > config file."""

    model_config = SettingsConfigDict(
        env_prefix="VECDB_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )

    data_dir: Path = Field(Path("./data"), description="Where collections live.")
    host: str = Field("127.0.0.1", description="Interface the server listens on (REST and gRPC).")
    rest_port: int = Field(8080, ge=0, le=65535, description="REST port.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API keys as KEY (admin) or KEY:read (read-only); comma-separated in the environment. "
        "None configured: the server is open.",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate (chain) of the server: REST serves HTTPS and gRPC serves TLS on their "
        "usual ports. Needs tls_key. See docs/operations.md.",
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert (unencrypted).")
    tls_client_ca: Path | None = Field(
        None,
        description="PEM CA certificate(s) for mutual TLS: both ports then require a client certificate "
        "issued by this CA. Needs tls_cert and tls_key.",
    )
    max_request_bytes: int = Field(64 << 20, ge=1024, description="Largest REST body or gRPC message.")
    grpc_workers: int = Field(16, ge=1, description="Threads serving gRPC calls.")
    grpc_max_concurrent_rpcs: int = Field(
        64,
        ge=1,
        description="gRPC calls running or waiting for a thread; one more is RESOURCE_EXHAUSTED at once.",
    )
    grpc_max_streams: int | None = Field(
        None,
        ge=0,
        description="Streaming gRPC calls (UpsertStream, Scroll) open at once; must be below grpc_workers, "
        "so that unary calls and the health check always find a thread. One more is RESOURCE_EXHAUSTED. "
        "None: half of grpc_workers.",
    )
    grpc_stream_idle_seconds: float = Field(
        30.0,
        gt=0,
        description="A gRPC stream that sends (or, for Scroll, reads) no message for this long is ended "
        "with DEADLINE_EXCEEDED, freeing its thread.",
    )
    grpc_connection_idle_seconds: float = Field(
        300.0, gt=0, description="A gRPC connection with no call for this long is closed."
    )
    grpc_keepalive_seconds: float = Field(
        60.0, gt=0, description="The server pings each gRPC connection this often to find dead peers."
    )
    rest_max_connections: int = Field(
        1000,
        ge=1,
        description="Open REST connections (and requests in progress) beyond which new requests are "
        "answered 503 at once.",
    )
    rest_keep_alive_seconds: int = Field(
        5, ge=1, description="An idle REST keep-alive connection is closed after this long."
    )
    read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A REST request's headers and body, and a gRPC connection's handshake, must arrive "
        "within this long (from the connection, or the end of its previous response); the connection is "
        "closed otherwise (slow or idle clients cannot hold sockets).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level; debug logs one line per request."
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, description="On SIGTERM/SIGINT, how long in-flight requests may finish."
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster to hold sharded collections (create_collection with shards / replicas): an "
        "address like ray://head:10001 or HOST:6379, or auto (the cluster this node joined). None: no "
        "sharding. Needs the vecdb[cluster] extra; see docs/scaling.md.",
    )
    ray_actor_cpus: float = Field(
        1.0,
        ge=0,
        description="CPUs each shard actor asks Ray for (with ray_address): fractions pack several shards "
        "on a core; a collection whose actors cannot all be placed fails to create after 120 s.",
    )
    limits: Limits = Field(default_factory=Limits)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            parse_api_key(key)
        return keys

    @model_validator(mode="after")
    def _check_streams(self) -> Settings:
        if self.grpc_max_streams is not None and self.grpc_max_streams >= self.grpc_workers:
            raise ValueError(
                f"grpc_max_streams ({self.grpc_max_streams}) must be below grpc_workers "
                f"({self.grpc_workers}): a stream holds its thread, and unary calls and the health check "
                "need one"
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(
                f"{given} is set but {missing} is not: TLS needs both the certificate and its key "
                "(--tls-cert and --tls-key)"
            )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key as well")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_FILE.get()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path))


def load_settings(config_file: Path | None = None, **kwargs: Any) -> Settings:
    """Settings from ``kwargs`` (e.g. ``_cli_settings_source``), the environment and a TOML file."""
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")
    token = _CONFIG_FILE.set(config_file)
    try:
        return Settings(**kwargs)
    finally:
        _CONFIG_FILE.reset(token)
