import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lorag.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_DENSE: _ClassVar[SearchMode]
    SEARCH_MODE_SPARSE: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]

class FusionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_METHOD_UNSPECIFIED: _ClassVar[FusionMethod]
    FUSION_METHOD_RRF: _ClassVar[FusionMethod]
    FUSION_METHOD_WEIGHTED: _ClassVar[FusionMethod]

class DocumentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_STATUS_UNSPECIFIED: _ClassVar[DocumentStatus]
    DOCUMENT_STATUS_INDEXED: _ClassVar[DocumentStatus]
    DOCUMENT_STATUS_FAILED: _ClassVar[DocumentStatus]
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_DENSE: SearchMode
SEARCH_MODE_SPARSE: SearchMode
SEARCH_MODE_HYBRID: SearchMode
FUSION_METHOD_UNSPECIFIED: FusionMethod
FUSION_METHOD_RRF: FusionMethod
FUSION_METHOD_WEIGHTED: FusionMethod
DOCUMENT_STATUS_UNSPECIFIED: DocumentStatus
DOCUMENT_STATUS_INDEXED: DocumentStatus
DOCUMENT_STATUS_FAILED: DocumentStatus

class CharSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("text", "dense", "span", "metadata")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DENSE_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    dense: _containers.RepeatedScalarFieldContainer[float]
    span: CharSpan
    metadata: _struct_pb2.Struct
    def __init__(self, text: _Optional[str] = ..., dense: _Optional[_Iterable[float]] = ..., span: _Optional[_Union[CharSpan, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ChunkList(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ...) -> None: ...

class DocumentInput(_message.Message):
    __slots__ = ("doc_id", "title", "metadata", "content_sha256", "chunks", "text", "data", "mime_type")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    title: str
    metadata: _struct_pb2.Struct
    content_sha256: str
    chunks: ChunkList
    text: str
    data: bytes
    mime_type: str
    def __init__(self, doc_id: _Optional[str] = ..., title: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., content_sha256: _Optional[str] = ..., chunks: _Optional[_Union[ChunkList, _Mapping]] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., mime_type: _Optional[str] = ...) -> None: ...

class ChunkingOptions(_message.Message):
    __slots__ = ("chunk_tokens", "overlap_tokens")
    CHUNK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    chunk_tokens: int
    overlap_tokens: int
    def __init__(self, chunk_tokens: _Optional[int] = ..., overlap_tokens: _Optional[int] = ...) -> None: ...

class DocumentResult(_message.Message):
    __slots__ = ("doc_id", "status", "chunk_count", "replaced_chunk_count", "chunk_ids", "error")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    status: DocumentStatus
    chunk_count: int
    replaced_chunk_count: int
    chunk_ids: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, doc_id: _Optional[str] = ..., status: _Optional[_Union[DocumentStatus, str]] = ..., chunk_count: _Optional[int] = ..., replaced_chunk_count: _Optional[int] = ..., chunk_ids: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class UpsertProgress(_message.Message):
    __slots__ = ("documents_total", "documents_done", "documents_failed", "chunks_written")
    DOCUMENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_DONE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FAILED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    documents_total: int
    documents_done: int
    documents_failed: int
    chunks_written: int
    def __init__(self, documents_total: _Optional[int] = ..., documents_done: _Optional[int] = ..., documents_failed: _Optional[int] = ..., chunks_written: _Optional[int] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("documents", "embedding_model", "chunking")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[DocumentInput]
    embedding_model: str
    chunking: ChunkingOptions
    def __init__(self, documents: _Optional[_Iterable[_Union[DocumentInput, _Mapping]]] = ..., embedding_model: _Optional[str] = ..., chunking: _Optional[_Union[ChunkingOptions, _Mapping]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("result", "progress")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    result: DocumentResult
    progress: UpsertProgress
    def __init__(self, result: _Optional[_Union[DocumentResult, _Mapping]] = ..., progress: _Optional[_Union[UpsertProgress, _Mapping]] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("doc_id", "title", "metadata", "chunk_count", "content_sha256", "embedding_model", "create_time", "update_time")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    title: str
    metadata: _struct_pb2.Struct
    chunk_count: int
    content_sha256: str
    embedding_model: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, doc_id: _Optional[str] = ..., title: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., chunk_count: _Optional[int] = ..., content_sha256: _Optional[str] = ..., embedding_model: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("chunk", "text", "score", "metadata", "title", "span")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    chunk: _common_pb2.ChunkRef
    text: str
    score: float
    metadata: _struct_pb2.Struct
    title: str
    span: CharSpan
    def __init__(self, chunk: _Optional[_Union[_common_pb2.ChunkRef, _Mapping]] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., title: _Optional[str] = ..., span: _Optional[_Union[CharSpan, _Mapping]] = ...) -> None: ...

class CollectionStats(_message.Message):
    __slots__ = ("collection", "embedding_model", "dimension", "schema_version", "document_count", "chunk_count")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    embedding_model: str
    dimension: int
    schema_version: int
    document_count: int
    chunk_count: int
    def __init__(self, collection: _Optional[str] = ..., embedding_model: _Optional[str] = ..., dimension: _Optional[int] = ..., schema_version: _Optional[int] = ..., document_count: _Optional[int] = ..., chunk_count: _Optional[int] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("doc_ids", "embedding_model")
    DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    doc_ids: _containers.RepeatedScalarFieldContainer[str]
    embedding_model: str
    def __init__(self, doc_ids: _Optional[_Iterable[str]] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("deleted_document_count", "deleted_chunk_count")
    DELETED_DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DELETED_CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_document_count: int
    deleted_chunk_count: int
    def __init__(self, deleted_document_count: _Optional[int] = ..., deleted_chunk_count: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query_text", "query_vector", "mode", "fusion", "rrf_k", "dense_weight", "top_k", "filter", "embedding_model", "sparse_weight")
    QUERY_TEXT_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    DENSE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    SPARSE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    query_text: str
    query_vector: _containers.RepeatedScalarFieldContainer[float]
    mode: SearchMode
    fusion: FusionMethod
    rrf_k: int
    dense_weight: float
    top_k: int
    filter: _common_pb2.Filter
    embedding_model: str
    sparse_weight: float
    def __init__(self, query_text: _Optional[str] = ..., query_vector: _Optional[_Iterable[float]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., fusion: _Optional[_Union[FusionMethod, str]] = ..., rrf_k: _Optional[int] = ..., dense_weight: _Optional[float] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., embedding_model: _Optional[str] = ..., sparse_weight: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "mode", "took_ms", "embedding_model")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    mode: SearchMode
    took_ms: float
    embedding_model: str
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., took_ms: _Optional[float] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("doc_id", "embedding_model")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    embedding_model: str
    def __init__(self, doc_id: _Optional[str] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class GetDocumentResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: Document
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("page", "filter", "embedding_model")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    filter: _common_pb2.Filter
    embedding_model: str
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class ListDocumentsResponse(_message.Message):
    __slots__ = ("documents", "page")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    page: _common_pb2.PageResponse
    def __init__(self, documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("embedding_model",)
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    embedding_model: str
    def __init__(self, embedding_model: _Optional[str] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("collections", "document_count", "chunk_count")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionStats]
    document_count: int
    chunk_count: int
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionStats, _Mapping]]] = ..., document_count: _Optional[int] = ..., chunk_count: _Optional[int] = ...) -> None: ...
