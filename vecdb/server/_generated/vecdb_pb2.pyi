from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vectors(_message.Message):
    __slots__ = ("dim", "data")
    DIM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dim: int
    data: bytes
    def __init__(self, dim: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "index_json", "embedding_json", "max_records", "eviction", "shards", "replicas", "text_index_json", "get_or_create")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    EVICTION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    TEXT_INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    GET_OR_CREATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index_json: str
    embedding_json: str
    max_records: int
    eviction: str
    shards: int
    replicas: int
    text_index_json: str
    get_or_create: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index_json: _Optional[str] = ..., embedding_json: _Optional[str] = ..., max_records: _Optional[int] = ..., eviction: _Optional[str] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., text_index_json: _Optional[str] = ..., get_or_create: _Optional[bool] = ...) -> None: ...

class CollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "index_json", "count", "sources", "index_state_json", "seq", "checkpoint_seq", "embedding_json", "capacity_json", "text_index_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SEQ_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_JSON_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_JSON_FIELD_NUMBER: _ClassVar[int]
    TEXT_INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index_json: str
    count: int
    sources: int
    index_state_json: str
    seq: int
    checkpoint_seq: int
    embedding_json: str
    capacity_json: str
    text_index_json: str
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index_json: _Optional[str] = ..., count: _Optional[int] = ..., sources: _Optional[int] = ..., index_state_json: _Optional[str] = ..., seq: _Optional[int] = ..., checkpoint_seq: _Optional[int] = ..., embedding_json: _Optional[str] = ..., capacity_json: _Optional[str] = ..., text_index_json: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RecordData(_message.Message):
    __slots__ = ("id", "text", "metadata_json", "source", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    metadata_json: str
    source: str
    expires_at: float
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., source: _Optional[str] = ..., expires_at: _Optional[float] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "records", "vectors", "missing_vectors", "ttl")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_VECTORS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    records: _containers.RepeatedCompositeFieldContainer[RecordData]
    vectors: Vectors
    missing_vectors: _containers.RepeatedScalarFieldContainer[int]
    ttl: float
    def __init__(self, collection: _Optional[str] = ..., records: _Optional[_Iterable[_Union[RecordData, _Mapping]]] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ..., missing_vectors: _Optional[_Iterable[int]] = ..., ttl: _Optional[float] = ...) -> None: ...

class ReplaceSourceRequest(_message.Message):
    __slots__ = ("collection", "source", "records", "vectors", "missing_vectors")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_VECTORS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    source: str
    records: _containers.RepeatedCompositeFieldContainer[RecordData]
    vectors: Vectors
    missing_vectors: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, collection: _Optional[str] = ..., source: _Optional[str] = ..., records: _Optional[_Iterable[_Union[RecordData, _Mapping]]] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ..., missing_vectors: _Optional[_Iterable[int]] = ...) -> None: ...

class WriteResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class Include(_message.Message):
    __slots__ = ("fields",)
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fields: _Optional[_Iterable[str]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "include")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    include: Include
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., include: _Optional[_Union[Include, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("id", "text", "metadata_json", "source", "vector")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    metadata_json: str
    source: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., source: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter_json", "source", "text_filter_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: IdList
    filter_json: str
    source: str
    text_filter_json: str
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Union[IdList, _Mapping]] = ..., filter_json: _Optional[str] = ..., source: _Optional[str] = ..., text_filter_json: _Optional[str] = ...) -> None: ...

class IdList(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("ef_search", "nprobe", "target_recall")
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    ef_search: int
    nprobe: int
    target_recall: float
    def __init__(self, ef_search: _Optional[int] = ..., nprobe: _Optional[int] = ..., target_recall: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "k", "filter_json", "include", "params", "texts", "score_threshold", "mode", "text_filter_json", "fusion_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    FUSION_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: Vectors
    k: int
    filter_json: str
    include: Include
    params: SearchParams
    texts: _containers.RepeatedScalarFieldContainer[str]
    score_threshold: float
    mode: str
    text_filter_json: str
    fusion_json: str
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Union[Vectors, _Mapping]] = ..., k: _Optional[int] = ..., filter_json: _Optional[str] = ..., include: _Optional[_Union[Include, _Mapping]] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ..., score_threshold: _Optional[float] = ..., mode: _Optional[str] = ..., text_filter_json: _Optional[str] = ..., fusion_json: _Optional[str] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "text", "metadata_json", "source", "vector", "explain_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    text: str
    metadata_json: str
    source: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    explain_json: str
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., metadata_json: _Optional[str] = ..., source: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., explain_json: _Optional[str] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter_json", "text_filter_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter_json: str
    text_filter_json: str
    def __init__(self, collection: _Optional[str] = ..., filter_json: _Optional[str] = ..., text_filter_json: _Optional[str] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class SourceCount(_message.Message):
    __slots__ = ("source", "count")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    source: str
    count: int
    def __init__(self, source: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources",)
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[SourceCount]
    def __init__(self, sources: _Optional[_Iterable[_Union[SourceCount, _Mapping]]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "model", "collection")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    collection: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("vectors", "model")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    vectors: Vectors
    model: str
    def __init__(self, vectors: _Optional[_Union[Vectors, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "cursor", "limit", "filter_json", "include", "max_pages", "text_filter_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    MAX_PAGES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    cursor: str
    limit: int
    filter_json: str
    include: Include
    max_pages: int
    text_filter_json: str
    def __init__(self, collection: _Optional[str] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ..., filter_json: _Optional[str] = ..., include: _Optional[_Union[Include, _Mapping]] = ..., max_pages: _Optional[int] = ..., text_filter_json: _Optional[str] = ...) -> None: ...

class ScrollPage(_message.Message):
    __slots__ = ("records", "next_cursor")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    next_cursor: str
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("collection", "name")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    collection: str
    name: str
    def __init__(self, collection: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SnapshotInfo(_message.Message):
    __slots__ = ("collection", "name", "created_at", "seq", "records", "dim", "metric", "bytes")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    collection: str
    name: str
    created_at: str
    seq: int
    records: int
    dim: int
    metric: str
    bytes: int
    def __init__(self, collection: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., seq: _Optional[int] = ..., records: _Optional[int] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[SnapshotInfo]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[SnapshotInfo, _Mapping]]] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestoreSnapshotRequest(_message.Message):
    __slots__ = ("collection", "name", "target")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    collection: str
    name: str
    target: str
    def __init__(self, collection: _Optional[str] = ..., name: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class SetTextIndexRequest(_message.Message):
    __slots__ = ("collection", "text_index_json")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    text_index_json: str
    def __init__(self, collection: _Optional[str] = ..., text_index_json: _Optional[str] = ...) -> None: ...

class SetTextIndexResponse(_message.Message):
    __slots__ = ("text_index_json",)
    TEXT_INDEX_JSON_FIELD_NUMBER: _ClassVar[int]
    text_index_json: str
    def __init__(self, text_index_json: _Optional[str] = ...) -> None: ...

class RecordPatch(_message.Message):
    __slots__ = ("id", "metadata_json", "text", "source")
    ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    metadata_json: str
    text: str
    source: str
    def __init__(self, id: _Optional[str] = ..., metadata_json: _Optional[str] = ..., text: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("collection", "records")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    records: _containers.RepeatedCompositeFieldContainer[RecordPatch]
    def __init__(self, collection: _Optional[str] = ..., records: _Optional[_Iterable[_Union[RecordPatch, _Mapping]]] = ...) -> None: ...
