from lorag.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScoringMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORING_METHOD_UNSPECIFIED: _ClassVar[ScoringMethod]
    SCORING_METHOD_CROSS_ENCODER: _ClassVar[ScoringMethod]
    SCORING_METHOD_BI_ENCODER_COSINE: _ClassVar[ScoringMethod]
SCORING_METHOD_UNSPECIFIED: ScoringMethod
SCORING_METHOD_CROSS_ENCODER: ScoringMethod
SCORING_METHOD_BI_ENCODER_COSINE: ScoringMethod

class Passage(_message.Message):
    __slots__ = ("id", "text")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class RerankResult(_message.Message):
    __slots__ = ("index", "id", "score")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    score: float
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RerankerModel(_message.Message):
    __slots__ = ("name", "max_seq_length", "weights_sha256", "is_default", "scoring_method", "note", "metrics", "version", "quantized")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LENGTH_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SCORING_METHOD_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    QUANTIZED_FIELD_NUMBER: _ClassVar[int]
    name: str
    max_seq_length: int
    weights_sha256: str
    is_default: bool
    scoring_method: ScoringMethod
    note: str
    metrics: _containers.ScalarMap[str, float]
    version: str
    quantized: bool
    def __init__(self, name: _Optional[str] = ..., max_seq_length: _Optional[int] = ..., weights_sha256: _Optional[str] = ..., is_default: _Optional[bool] = ..., scoring_method: _Optional[_Union[ScoringMethod, str]] = ..., note: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., version: _Optional[str] = ..., quantized: _Optional[bool] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("query", "passages", "top_n", "model", "adapter")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    TOP_N_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    query: str
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    top_n: int
    model: str
    adapter: _common_pb2.AdapterRef
    def __init__(self, query: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ..., top_n: _Optional[int] = ..., model: _Optional[str] = ..., adapter: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("results", "model", "adapter_version_id", "usage", "scoring_method")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    SCORING_METHOD_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RerankResult]
    model: str
    adapter_version_id: str
    usage: _common_pb2.Usage
    scoring_method: ScoringMethod
    def __init__(self, results: _Optional[_Iterable[_Union[RerankResult, _Mapping]]] = ..., model: _Optional[str] = ..., adapter_version_id: _Optional[str] = ..., usage: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., scoring_method: _Optional[_Union[ScoringMethod, str]] = ...) -> None: ...

class ListRerankerModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRerankerModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[RerankerModel]
    def __init__(self, models: _Optional[_Iterable[_Union[RerankerModel, _Mapping]]] = ...) -> None: ...
