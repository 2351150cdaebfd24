from google.protobuf import struct_pb2 as _struct_pb2
from lorag.common.v1 import common_pb2 as _common_pb2
from lorag.generation.v1 import generation_pb2 as _generation_pb2
from lorag.retrieval.v1 import retrieval_pb2 as _retrieval_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STATUS_UNSPECIFIED: _ClassVar[IngestStatus]
    INGEST_STATUS_INDEXED: _ClassVar[IngestStatus]
    INGEST_STATUS_FAILED: _ClassVar[IngestStatus]
    INGEST_STATUS_SKIPPED: _ClassVar[IngestStatus]

class RetrievalRouting(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRIEVAL_ROUTING_UNSPECIFIED: _ClassVar[RetrievalRouting]
    RETRIEVAL_ROUTING_AUTO: _ClassVar[RetrievalRouting]
    RETRIEVAL_ROUTING_ALWAYS: _ClassVar[RetrievalRouting]
    RETRIEVAL_ROUTING_NEVER: _ClassVar[RetrievalRouting]

class FeedbackRating(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEEDBACK_RATING_UNSPECIFIED: _ClassVar[FeedbackRating]
    FEEDBACK_RATING_THUMBS_UP: _ClassVar[FeedbackRating]
    FEEDBACK_RATING_THUMBS_DOWN: _ClassVar[FeedbackRating]
INGEST_STATUS_UNSPECIFIED: IngestStatus
INGEST_STATUS_INDEXED: IngestStatus
INGEST_STATUS_FAILED: IngestStatus
INGEST_STATUS_SKIPPED: IngestStatus
RETRIEVAL_ROUTING_UNSPECIFIED: RetrievalRouting
RETRIEVAL_ROUTING_AUTO: RetrievalRouting
RETRIEVAL_ROUTING_ALWAYS: RetrievalRouting
RETRIEVAL_ROUTING_NEVER: RetrievalRouting
FEEDBACK_RATING_UNSPECIFIED: FeedbackRating
FEEDBACK_RATING_THUMBS_UP: FeedbackRating
FEEDBACK_RATING_THUMBS_DOWN: FeedbackRating

class Document(_message.Message):
    __slots__ = ("doc_id", "title", "text", "data", "mime_type", "metadata")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    title: str
    text: str
    data: bytes
    mime_type: str
    metadata: _struct_pb2.Struct
    def __init__(self, doc_id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class IngestOptions(_message.Message):
    __slots__ = ("embedding_model", "force", "chunk_tokens", "overlap_tokens")
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    embedding_model: str
    force: bool
    chunk_tokens: int
    overlap_tokens: int
    def __init__(self, embedding_model: _Optional[str] = ..., force: _Optional[bool] = ..., chunk_tokens: _Optional[int] = ..., overlap_tokens: _Optional[int] = ...) -> None: ...

class DocumentResult(_message.Message):
    __slots__ = ("doc_id", "status", "chunk_count", "error")
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    doc_id: str
    status: IngestStatus
    chunk_count: int
    error: str
    def __init__(self, doc_id: _Optional[str] = ..., status: _Optional[_Union[IngestStatus, str]] = ..., chunk_count: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class IngestTotals(_message.Message):
    __slots__ = ("received", "indexed", "failed", "skipped", "chunks")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    received: int
    indexed: int
    failed: int
    skipped: int
    chunks: int
    def __init__(self, received: _Optional[int] = ..., indexed: _Optional[int] = ..., failed: _Optional[int] = ..., skipped: _Optional[int] = ..., chunks: _Optional[int] = ...) -> None: ...

class RetrievalOptions(_message.Message):
    __slots__ = ("mode", "top_k", "rerank", "rerank_top_n", "fusion", "min_relevance")
    MODE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    RERANK_TOP_N_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    MIN_RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    mode: _retrieval_pb2.SearchMode
    top_k: int
    rerank: bool
    rerank_top_n: int
    fusion: _retrieval_pb2.FusionMethod
    min_relevance: float
    def __init__(self, mode: _Optional[_Union[_retrieval_pb2.SearchMode, str]] = ..., top_k: _Optional[int] = ..., rerank: _Optional[bool] = ..., rerank_top_n: _Optional[int] = ..., fusion: _Optional[_Union[_retrieval_pb2.FusionMethod, str]] = ..., min_relevance: _Optional[float] = ...) -> None: ...

class GenerationOptions(_message.Message):
    __slots__ = ("model", "sampling")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    model: str
    sampling: _generation_pb2.SamplingParams
    def __init__(self, model: _Optional[str] = ..., sampling: _Optional[_Union[_generation_pb2.SamplingParams, _Mapping]] = ...) -> None: ...

class ConversationTurn(_message.Message):
    __slots__ = ("question", "answer")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    question: str
    answer: str
    def __init__(self, question: _Optional[str] = ..., answer: _Optional[str] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("index", "doc_id", "chunk_id", "score", "text", "char_start", "char_end", "title")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DOC_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    index: int
    doc_id: str
    chunk_id: str
    score: float
    text: str
    char_start: int
    char_end: int
    title: str
    def __init__(self, index: _Optional[int] = ..., doc_id: _Optional[str] = ..., chunk_id: _Optional[str] = ..., score: _Optional[float] = ..., text: _Optional[str] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ..., title: _Optional[str] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("document", "options")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    document: Document
    options: IngestOptions
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., options: _Optional[_Union[IngestOptions, _Mapping]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("result", "totals")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    result: DocumentResult
    totals: IngestTotals
    def __init__(self, result: _Optional[_Union[DocumentResult, _Mapping]] = ..., totals: _Optional[_Union[IngestTotals, _Mapping]] = ...) -> None: ...

class IngestDocumentsRequest(_message.Message):
    __slots__ = ("documents", "options")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    options: IngestOptions
    def __init__(self, documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ..., options: _Optional[_Union[IngestOptions, _Mapping]] = ...) -> None: ...

class IngestDocumentsResponse(_message.Message):
    __slots__ = ("results", "totals")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DocumentResult]
    totals: IngestTotals
    def __init__(self, results: _Optional[_Iterable[_Union[DocumentResult, _Mapping]]] = ..., totals: _Optional[_Union[IngestTotals, _Mapping]] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("doc_ids",)
    DOC_IDS_FIELD_NUMBER: _ClassVar[int]
    doc_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, doc_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("deleted_document_count", "deleted_chunk_count")
    DELETED_DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    DELETED_CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    deleted_document_count: int
    deleted_chunk_count: int
    def __init__(self, deleted_document_count: _Optional[int] = ..., deleted_chunk_count: _Optional[int] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("question", "adapter", "reranker_adapter", "filter", "retrieval", "generation", "template", "history", "query_rewrite", "multi_query", "routing", "return_contexts")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    RERANKER_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    QUERY_REWRITE_FIELD_NUMBER: _ClassVar[int]
    MULTI_QUERY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    RETURN_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    question: str
    adapter: _common_pb2.AdapterRef
    reranker_adapter: _common_pb2.AdapterRef
    filter: _common_pb2.Filter
    retrieval: RetrievalOptions
    generation: GenerationOptions
    template: str
    history: _containers.RepeatedCompositeFieldContainer[ConversationTurn]
    query_rewrite: bool
    multi_query: int
    routing: RetrievalRouting
    return_contexts: bool
    def __init__(self, question: _Optional[str] = ..., adapter: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ..., reranker_adapter: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., retrieval: _Optional[_Union[RetrievalOptions, _Mapping]] = ..., generation: _Optional[_Union[GenerationOptions, _Mapping]] = ..., template: _Optional[str] = ..., history: _Optional[_Iterable[_Union[ConversationTurn, _Mapping]]] = ..., query_rewrite: _Optional[bool] = ..., multi_query: _Optional[int] = ..., routing: _Optional[_Union[RetrievalRouting, str]] = ..., return_contexts: _Optional[bool] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("answer", "citations", "rejected", "timings", "usage", "adapter_version_id", "reranker_adapter_version_id", "trace_id", "answer_id", "contexts", "search_queries", "retrieval_performed")
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    RERANKER_ADAPTER_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_QUERIES_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_PERFORMED_FIELD_NUMBER: _ClassVar[int]
    answer: str
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    rejected: bool
    timings: _containers.RepeatedCompositeFieldContainer[_common_pb2.StageTiming]
    usage: _common_pb2.Usage
    adapter_version_id: str
    reranker_adapter_version_id: str
    trace_id: str
    answer_id: str
    contexts: _containers.RepeatedCompositeFieldContainer[Citation]
    search_queries: _containers.RepeatedScalarFieldContainer[str]
    retrieval_performed: bool
    def __init__(self, answer: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., rejected: _Optional[bool] = ..., timings: _Optional[_Iterable[_Union[_common_pb2.StageTiming, _Mapping]]] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., adapter_version_id: _Optional[str] = ..., reranker_adapter_version_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., answer_id: _Optional[str] = ..., contexts: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., search_queries: _Optional[_Iterable[str]] = ..., retrieval_performed: _Optional[bool] = ...) -> None: ...

class AskStreamRequest(_message.Message):
    __slots__ = ("question", "adapter", "reranker_adapter", "filter", "retrieval", "generation", "template", "history", "query_rewrite", "multi_query", "routing", "return_contexts")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    RERANKER_ADAPTER_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    QUERY_REWRITE_FIELD_NUMBER: _ClassVar[int]
    MULTI_QUERY_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    RETURN_CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    question: str
    adapter: _common_pb2.AdapterRef
    reranker_adapter: _common_pb2.AdapterRef
    filter: _common_pb2.Filter
    retrieval: RetrievalOptions
    generation: GenerationOptions
    template: str
    history: _containers.RepeatedCompositeFieldContainer[ConversationTurn]
    query_rewrite: bool
    multi_query: int
    routing: RetrievalRouting
    return_contexts: bool
    def __init__(self, question: _Optional[str] = ..., adapter: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ..., reranker_adapter: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., retrieval: _Optional[_Union[RetrievalOptions, _Mapping]] = ..., generation: _Optional[_Union[GenerationOptions, _Mapping]] = ..., template: _Optional[str] = ..., history: _Optional[_Iterable[_Union[ConversationTurn, _Mapping]]] = ..., query_rewrite: _Optional[bool] = ..., multi_query: _Optional[int] = ..., routing: _Optional[_Union[RetrievalRouting, str]] = ..., return_contexts: _Optional[bool] = ...) -> None: ...

class AskStreamResponse(_message.Message):
    __slots__ = ("answer_delta", "result")
    ANSWER_DELTA_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    answer_delta: str
    result: AskResponse
    def __init__(self, answer_delta: _Optional[str] = ..., result: _Optional[_Union[AskResponse, _Mapping]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("answer_id", "rating", "score", "comment", "corrected_answer", "relevant_chunk_ids", "irrelevant_chunk_ids")
    ANSWER_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    RELEVANT_CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    IRRELEVANT_CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    answer_id: str
    rating: FeedbackRating
    score: float
    comment: str
    corrected_answer: str
    relevant_chunk_ids: _containers.RepeatedScalarFieldContainer[str]
    irrelevant_chunk_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, answer_id: _Optional[str] = ..., rating: _Optional[_Union[FeedbackRating, str]] = ..., score: _Optional[float] = ..., comment: _Optional[str] = ..., corrected_answer: _Optional[str] = ..., relevant_chunk_ids: _Optional[_Iterable[str]] = ..., irrelevant_chunk_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("feedback_id",)
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    def __init__(self, feedback_id: _Optional[str] = ...) -> None: ...
