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

class AdapterKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADAPTER_KIND_UNSPECIFIED: _ClassVar[AdapterKind]
    ADAPTER_KIND_GENERATION: _ClassVar[AdapterKind]
    ADAPTER_KIND_RERANKING: _ClassVar[AdapterKind]

class AdapterVersionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADAPTER_VERSION_STATE_UNSPECIFIED: _ClassVar[AdapterVersionState]
    ADAPTER_VERSION_STATE_PENDING: _ClassVar[AdapterVersionState]
    ADAPTER_VERSION_STATE_READY: _ClassVar[AdapterVersionState]
    ADAPTER_VERSION_STATE_FAILED: _ClassVar[AdapterVersionState]

class AdapterEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADAPTER_EVENT_TYPE_UNSPECIFIED: _ClassVar[AdapterEventType]
    ADAPTER_EVENT_TYPE_VERSION_CREATED: _ClassVar[AdapterEventType]
    ADAPTER_EVENT_TYPE_ALIAS_SET: _ClassVar[AdapterEventType]
    ADAPTER_EVENT_TYPE_ALIAS_DELETED: _ClassVar[AdapterEventType]
    ADAPTER_EVENT_TYPE_ADAPTER_DELETED: _ClassVar[AdapterEventType]
ADAPTER_KIND_UNSPECIFIED: AdapterKind
ADAPTER_KIND_GENERATION: AdapterKind
ADAPTER_KIND_RERANKING: AdapterKind
ADAPTER_VERSION_STATE_UNSPECIFIED: AdapterVersionState
ADAPTER_VERSION_STATE_PENDING: AdapterVersionState
ADAPTER_VERSION_STATE_READY: AdapterVersionState
ADAPTER_VERSION_STATE_FAILED: AdapterVersionState
ADAPTER_EVENT_TYPE_UNSPECIFIED: AdapterEventType
ADAPTER_EVENT_TYPE_VERSION_CREATED: AdapterEventType
ADAPTER_EVENT_TYPE_ALIAS_SET: AdapterEventType
ADAPTER_EVENT_TYPE_ALIAS_DELETED: AdapterEventType
ADAPTER_EVENT_TYPE_ADAPTER_DELETED: AdapterEventType

class Adapter(_message.Message):
    __slots__ = ("name", "kind", "base_model", "description", "latest_version", "aliases", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: AdapterKind
    base_model: str
    description: str
    latest_version: int
    aliases: _containers.RepeatedCompositeFieldContainer[Alias]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., base_model: _Optional[str] = ..., description: _Optional[str] = ..., latest_version: _Optional[int] = ..., aliases: _Optional[_Iterable[_Union[Alias, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AdapterFile(_message.Message):
    __slots__ = ("name", "size_bytes", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    sha256: str
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class AdapterVersion(_message.Message):
    __slots__ = ("version_id", "adapter_name", "version", "kind", "base_model", "sha256", "rank", "alpha", "target_modules", "size_bytes", "files", "parent_version_id", "metrics", "created_by", "training_job_id", "description", "state", "create_time")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    TRAINING_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    adapter_name: str
    version: int
    kind: AdapterKind
    base_model: str
    sha256: str
    rank: int
    alpha: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    size_bytes: int
    files: _containers.RepeatedCompositeFieldContainer[AdapterFile]
    parent_version_id: str
    metrics: _containers.ScalarMap[str, float]
    created_by: str
    training_job_id: str
    description: str
    state: AdapterVersionState
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, version_id: _Optional[str] = ..., adapter_name: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., base_model: _Optional[str] = ..., sha256: _Optional[str] = ..., rank: _Optional[int] = ..., alpha: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., size_bytes: _Optional[int] = ..., files: _Optional[_Iterable[_Union[AdapterFile, _Mapping]]] = ..., parent_version_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., created_by: _Optional[str] = ..., training_job_id: _Optional[str] = ..., description: _Optional[str] = ..., state: _Optional[_Union[AdapterVersionState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Alias(_message.Message):
    __slots__ = ("adapter_name", "name", "version", "version_id", "traffic_weight", "previous_version_id", "updated_by", "update_time")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    name: str
    version: int
    version_id: str
    traffic_weight: int
    previous_version_id: str
    updated_by: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, adapter_name: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., version_id: _Optional[str] = ..., traffic_weight: _Optional[int] = ..., previous_version_id: _Optional[str] = ..., updated_by: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AdapterEvent(_message.Message):
    __slots__ = ("revision", "type", "adapter_name", "kind", "alias", "version_id", "version", "traffic_weight", "event_time")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    revision: int
    type: AdapterEventType
    adapter_name: str
    kind: AdapterKind
    alias: str
    version_id: str
    version: int
    traffic_weight: int
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, revision: _Optional[int] = ..., type: _Optional[_Union[AdapterEventType, str]] = ..., adapter_name: _Optional[str] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., alias: _Optional[str] = ..., version_id: _Optional[str] = ..., version: _Optional[int] = ..., traffic_weight: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("event_id", "event_time", "actor", "action", "resource", "details", "trace_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_time: _timestamp_pb2.Timestamp
    actor: str
    action: str
    resource: str
    details: _struct_pb2.Struct
    trace_id: str
    def __init__(self, event_id: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., resource: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., trace_id: _Optional[str] = ...) -> None: ...

class AdapterUploadMetadata(_message.Message):
    __slots__ = ("adapter_name", "kind", "base_model", "description", "expected_sha256", "total_size", "parent_version_id")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    kind: AdapterKind
    base_model: str
    description: str
    expected_sha256: str
    total_size: int
    parent_version_id: str
    def __init__(self, adapter_name: _Optional[str] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., base_model: _Optional[str] = ..., description: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., total_size: _Optional[int] = ..., parent_version_id: _Optional[str] = ...) -> None: ...

class AdapterFileChunk(_message.Message):
    __slots__ = ("file_name", "data")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    data: bytes
    def __init__(self, file_name: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadAdapterVersionRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: AdapterUploadMetadata
    chunk: AdapterFileChunk
    def __init__(self, metadata: _Optional[_Union[AdapterUploadMetadata, _Mapping]] = ..., chunk: _Optional[_Union[AdapterFileChunk, _Mapping]] = ...) -> None: ...

class UploadAdapterVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: AdapterVersion
    def __init__(self, version: _Optional[_Union[AdapterVersion, _Mapping]] = ...) -> None: ...

class RegisterFromUriRequest(_message.Message):
    __slots__ = ("adapter_name", "kind", "base_model", "uri", "expected_sha256", "parent_version_id", "metrics", "description")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    kind: AdapterKind
    base_model: str
    uri: str
    expected_sha256: str
    parent_version_id: str
    metrics: _containers.ScalarMap[str, float]
    description: str
    def __init__(self, adapter_name: _Optional[str] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., base_model: _Optional[str] = ..., uri: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., parent_version_id: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., description: _Optional[str] = ...) -> None: ...

class RegisterFromUriResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: AdapterVersion
    def __init__(self, version: _Optional[_Union[AdapterVersion, _Mapping]] = ...) -> None: ...

class CreateAdapterRequest(_message.Message):
    __slots__ = ("name", "kind", "base_model", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: AdapterKind
    base_model: str
    description: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., base_model: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CreateAdapterResponse(_message.Message):
    __slots__ = ("adapter",)
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    adapter: Adapter
    def __init__(self, adapter: _Optional[_Union[Adapter, _Mapping]] = ...) -> None: ...

class GetAdapterRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAdapterResponse(_message.Message):
    __slots__ = ("adapter",)
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    adapter: Adapter
    def __init__(self, adapter: _Optional[_Union[Adapter, _Mapping]] = ...) -> None: ...

class ListAdaptersRequest(_message.Message):
    __slots__ = ("page", "kind")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    kind: AdapterKind
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., kind: _Optional[_Union[AdapterKind, str]] = ...) -> None: ...

class ListAdaptersResponse(_message.Message):
    __slots__ = ("adapters", "page")
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    adapters: _containers.RepeatedCompositeFieldContainer[Adapter]
    page: _common_pb2.PageResponse
    def __init__(self, adapters: _Optional[_Iterable[_Union[Adapter, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class DeleteAdapterRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteAdapterResponse(_message.Message):
    __slots__ = ("deleted_version_count", "revision")
    DELETED_VERSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted_version_count: int
    revision: int
    def __init__(self, deleted_version_count: _Optional[int] = ..., revision: _Optional[int] = ...) -> None: ...

class GetAdapterVersionRequest(_message.Message):
    __slots__ = ("version_id", "ref")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    ref: _common_pb2.AdapterRef
    def __init__(self, version_id: _Optional[str] = ..., ref: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ...) -> None: ...

class GetAdapterVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: AdapterVersion
    def __init__(self, version: _Optional[_Union[AdapterVersion, _Mapping]] = ...) -> None: ...

class ListAdapterVersionsRequest(_message.Message):
    __slots__ = ("adapter_name", "page", "state")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    page: _common_pb2.PageRequest
    state: AdapterVersionState
    def __init__(self, adapter_name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., state: _Optional[_Union[AdapterVersionState, str]] = ...) -> None: ...

class ListAdapterVersionsResponse(_message.Message):
    __slots__ = ("versions", "page")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[AdapterVersion]
    page: _common_pb2.PageResponse
    def __init__(self, versions: _Optional[_Iterable[_Union[AdapterVersion, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class SetAliasRequest(_message.Message):
    __slots__ = ("adapter_name", "alias", "version", "traffic_weight")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    alias: str
    version: int
    traffic_weight: int
    def __init__(self, adapter_name: _Optional[str] = ..., alias: _Optional[str] = ..., version: _Optional[int] = ..., traffic_weight: _Optional[int] = ...) -> None: ...

class SetAliasResponse(_message.Message):
    __slots__ = ("alias", "revision")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    alias: Alias
    revision: int
    def __init__(self, alias: _Optional[_Union[Alias, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("adapter_name", "alias")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    alias: str
    def __init__(self, adapter_name: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class DeleteAliasResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class ListAliasesRequest(_message.Message):
    __slots__ = ("adapter_name", "page")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    page: _common_pb2.PageRequest
    def __init__(self, adapter_name: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListAliasesResponse(_message.Message):
    __slots__ = ("aliases", "page")
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    aliases: _containers.RepeatedCompositeFieldContainer[Alias]
    page: _common_pb2.PageResponse
    def __init__(self, aliases: _Optional[_Iterable[_Union[Alias, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("adapter_name", "alias")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    alias: str
    def __init__(self, adapter_name: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("alias", "revision")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    alias: Alias
    revision: int
    def __init__(self, alias: _Optional[_Union[Alias, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ResolveRequest(_message.Message):
    __slots__ = ("ref", "request_id")
    REF_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ref: _common_pb2.AdapterRef
    request_id: str
    def __init__(self, ref: _Optional[_Union[_common_pb2.AdapterRef, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Routing(_message.Message):
    __slots__ = ("primary_version_id", "primary_version", "primary_alias", "canary_version_id", "canary_version", "canary_weight")
    PRIMARY_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_ALIAS_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    CANARY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    primary_version_id: str
    primary_version: int
    primary_alias: str
    canary_version_id: str
    canary_version: int
    canary_weight: int
    def __init__(self, primary_version_id: _Optional[str] = ..., primary_version: _Optional[int] = ..., primary_alias: _Optional[str] = ..., canary_version_id: _Optional[str] = ..., canary_version: _Optional[int] = ..., canary_weight: _Optional[int] = ...) -> None: ...

class ResolveResponse(_message.Message):
    __slots__ = ("version_id", "adapter_name", "version", "kind", "base_model", "alias", "revision", "sha256", "routing", "request_id")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    adapter_name: str
    version: int
    kind: AdapterKind
    base_model: str
    alias: str
    revision: int
    sha256: str
    routing: Routing
    request_id: str
    def __init__(self, version_id: _Optional[str] = ..., adapter_name: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[_Union[AdapterKind, str]] = ..., base_model: _Optional[str] = ..., alias: _Optional[str] = ..., revision: _Optional[int] = ..., sha256: _Optional[str] = ..., routing: _Optional[_Union[Routing, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("version_id",)
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    def __init__(self, version_id: _Optional[str] = ...) -> None: ...

class DownloadResponse(_message.Message):
    __slots__ = ("version", "chunk")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    version: AdapterVersion
    chunk: AdapterFileChunk
    def __init__(self, version: _Optional[_Union[AdapterVersion, _Mapping]] = ..., chunk: _Optional[_Union[AdapterFileChunk, _Mapping]] = ...) -> None: ...

class WatchRevisionsRequest(_message.Message):
    __slots__ = ("from_revision",)
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    from_revision: int
    def __init__(self, from_revision: _Optional[int] = ...) -> None: ...

class WatchRevisionsResponse(_message.Message):
    __slots__ = ("revision", "event")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    event: AdapterEvent
    def __init__(self, revision: _Optional[int] = ..., event: _Optional[_Union[AdapterEvent, _Mapping]] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("page", "action_prefix", "resource_prefix", "start_time", "end_time")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    ACTION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    action_prefix: str
    resource_prefix: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., action_prefix: _Optional[str] = ..., resource_prefix: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "page")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    page: _common_pb2.PageResponse
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...
