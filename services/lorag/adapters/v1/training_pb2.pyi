import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lorag.adapters.v1 import adapters_pb2 as _adapters_pb2
from lorag.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatasetFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_FORMAT_UNSPECIFIED: _ClassVar[DatasetFormat]
    DATASET_FORMAT_JSONL: _ClassVar[DatasetFormat]

class DatasetState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_STATE_UNSPECIFIED: _ClassVar[DatasetState]
    DATASET_STATE_READY: _ClassVar[DatasetState]
    DATASET_STATE_INVALID: _ClassVar[DatasetState]

class TrainingPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAINING_PHASE_UNSPECIFIED: _ClassVar[TrainingPhase]
    TRAINING_PHASE_QUEUED: _ClassVar[TrainingPhase]
    TRAINING_PHASE_VALIDATING: _ClassVar[TrainingPhase]
    TRAINING_PHASE_PREPROCESSING: _ClassVar[TrainingPhase]
    TRAINING_PHASE_TRAINING: _ClassVar[TrainingPhase]
    TRAINING_PHASE_EVALUATING: _ClassVar[TrainingPhase]
    TRAINING_PHASE_REGISTERING: _ClassVar[TrainingPhase]
    TRAINING_PHASE_SUCCEEDED: _ClassVar[TrainingPhase]
    TRAINING_PHASE_FAILED: _ClassVar[TrainingPhase]
    TRAINING_PHASE_CANCELLED: _ClassVar[TrainingPhase]
DATASET_FORMAT_UNSPECIFIED: DatasetFormat
DATASET_FORMAT_JSONL: DatasetFormat
DATASET_STATE_UNSPECIFIED: DatasetState
DATASET_STATE_READY: DatasetState
DATASET_STATE_INVALID: DatasetState
TRAINING_PHASE_UNSPECIFIED: TrainingPhase
TRAINING_PHASE_QUEUED: TrainingPhase
TRAINING_PHASE_VALIDATING: TrainingPhase
TRAINING_PHASE_PREPROCESSING: TrainingPhase
TRAINING_PHASE_TRAINING: TrainingPhase
TRAINING_PHASE_EVALUATING: TrainingPhase
TRAINING_PHASE_REGISTERING: TrainingPhase
TRAINING_PHASE_SUCCEEDED: TrainingPhase
TRAINING_PHASE_FAILED: TrainingPhase
TRAINING_PHASE_CANCELLED: TrainingPhase

class ValidationIssue(_message.Message):
    __slots__ = ("line", "code", "message")
    LINE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    line: int
    code: str
    message: str
    def __init__(self, line: _Optional[int] = ..., code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ValidationReport(_message.Message):
    __slots__ = ("valid", "total_records", "valid_records", "duplicate_records", "empty_records", "too_long_records", "malformed_records", "issues", "near_duplicate_records", "train_records", "validation_records", "overlap_records", "token_lengths", "unknown_token_share", "low_coverage_share", "tokenizer")
    VALID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    VALID_RECORDS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    EMPTY_RECORDS_FIELD_NUMBER: _ClassVar[int]
    TOO_LONG_RECORDS_FIELD_NUMBER: _ClassVar[int]
    MALFORMED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_RECORDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_RECORDS_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_RECORDS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_TOKEN_SHARE_FIELD_NUMBER: _ClassVar[int]
    LOW_COVERAGE_SHARE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    total_records: int
    valid_records: int
    duplicate_records: int
    empty_records: int
    too_long_records: int
    malformed_records: int
    issues: _containers.RepeatedCompositeFieldContainer[ValidationIssue]
    near_duplicate_records: int
    train_records: int
    validation_records: int
    overlap_records: int
    token_lengths: TokenLengthStats
    unknown_token_share: float
    low_coverage_share: float
    tokenizer: str
    def __init__(self, valid: _Optional[bool] = ..., total_records: _Optional[int] = ..., valid_records: _Optional[int] = ..., duplicate_records: _Optional[int] = ..., empty_records: _Optional[int] = ..., too_long_records: _Optional[int] = ..., malformed_records: _Optional[int] = ..., issues: _Optional[_Iterable[_Union[ValidationIssue, _Mapping]]] = ..., near_duplicate_records: _Optional[int] = ..., train_records: _Optional[int] = ..., validation_records: _Optional[int] = ..., overlap_records: _Optional[int] = ..., token_lengths: _Optional[_Union[TokenLengthStats, _Mapping]] = ..., unknown_token_share: _Optional[float] = ..., low_coverage_share: _Optional[float] = ..., tokenizer: _Optional[str] = ...) -> None: ...

class TokenLengthStats(_message.Message):
    __slots__ = ("min", "mean", "p50", "p95", "max", "total")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    min: int
    mean: float
    p50: int
    p95: int
    max: int
    total: int
    def __init__(self, min: _Optional[int] = ..., mean: _Optional[float] = ..., p50: _Optional[int] = ..., p95: _Optional[int] = ..., max: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class DatasetRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("dataset_id", "name", "version", "kind", "format", "sha256", "size_bytes", "record_count", "state", "validation", "description", "created_by", "create_time")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    name: str
    version: int
    kind: _adapters_pb2.AdapterKind
    format: DatasetFormat
    sha256: str
    size_bytes: int
    record_count: int
    state: DatasetState
    validation: ValidationReport
    description: str
    created_by: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, dataset_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[_Union[_adapters_pb2.AdapterKind, str]] = ..., format: _Optional[_Union[DatasetFormat, str]] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., record_count: _Optional[int] = ..., state: _Optional[_Union[DatasetState, str]] = ..., validation: _Optional[_Union[ValidationReport, _Mapping]] = ..., description: _Optional[str] = ..., created_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Hyperparameters(_message.Message):
    __slots__ = ("rank", "alpha", "dropout", "target_modules", "learning_rate", "epochs", "batch_size", "max_steps", "general_data_ratio", "seed")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    GENERAL_DATA_RATIO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    dropout: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    learning_rate: float
    epochs: int
    batch_size: int
    max_steps: int
    general_data_ratio: float
    seed: int
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., dropout: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., learning_rate: _Optional[float] = ..., epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., max_steps: _Optional[int] = ..., general_data_ratio: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("job_id", "adapter_name", "kind", "base_model", "dataset_id", "dataset", "hyperparameters", "phase", "last_event", "set_canary", "canary_weight", "canary_set", "result_version_id", "result_version", "metrics", "error_message", "created_by", "create_time", "start_time", "end_time")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_FIELD_NUMBER: _ClassVar[int]
    SET_CANARY_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    CANARY_SET_FIELD_NUMBER: _ClassVar[int]
    RESULT_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    adapter_name: str
    kind: _adapters_pb2.AdapterKind
    base_model: str
    dataset_id: str
    dataset: DatasetRef
    hyperparameters: Hyperparameters
    phase: TrainingPhase
    last_event: TrainingJobEvent
    set_canary: bool
    canary_weight: int
    canary_set: bool
    result_version_id: str
    result_version: int
    metrics: _containers.ScalarMap[str, float]
    error_message: str
    created_by: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., adapter_name: _Optional[str] = ..., kind: _Optional[_Union[_adapters_pb2.AdapterKind, str]] = ..., base_model: _Optional[str] = ..., dataset_id: _Optional[str] = ..., dataset: _Optional[_Union[DatasetRef, _Mapping]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., phase: _Optional[_Union[TrainingPhase, str]] = ..., last_event: _Optional[_Union[TrainingJobEvent, _Mapping]] = ..., set_canary: _Optional[bool] = ..., canary_weight: _Optional[int] = ..., canary_set: _Optional[bool] = ..., result_version_id: _Optional[str] = ..., result_version: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., error_message: _Optional[str] = ..., created_by: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrainingJobEvent(_message.Message):
    __slots__ = ("job_id", "sequence", "phase", "step", "total_steps", "loss", "eval_metrics", "eta_seconds", "message", "event_time")
    class EvalMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    EVAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sequence: int
    phase: TrainingPhase
    step: int
    total_steps: int
    loss: float
    eval_metrics: _containers.ScalarMap[str, float]
    eta_seconds: float
    message: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., sequence: _Optional[int] = ..., phase: _Optional[_Union[TrainingPhase, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., eval_metrics: _Optional[_Mapping[str, float]] = ..., eta_seconds: _Optional[float] = ..., message: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DatasetUploadMetadata(_message.Message):
    __slots__ = ("name", "kind", "format", "description", "expected_sha256", "total_size", "dry_run")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _adapters_pb2.AdapterKind
    format: DatasetFormat
    description: str
    expected_sha256: str
    total_size: int
    dry_run: bool
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_adapters_pb2.AdapterKind, str]] = ..., format: _Optional[_Union[DatasetFormat, str]] = ..., description: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., total_size: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class UploadDatasetRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: DatasetUploadMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[DatasetUploadMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id", "ref")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    ref: DatasetRef
    def __init__(self, dataset_id: _Optional[str] = ..., ref: _Optional[_Union[DatasetRef, _Mapping]] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page", "name", "kind")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    name: str
    kind: _adapters_pb2.AdapterKind
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[_adapters_pb2.AdapterKind, str]] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "page")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    page: _common_pb2.PageResponse
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("adapter_name", "kind", "base_model", "dataset", "hyperparameters", "parent_version_id", "set_canary", "canary_weight", "description")
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PARENT_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SET_CANARY_FIELD_NUMBER: _ClassVar[int]
    CANARY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    adapter_name: str
    kind: _adapters_pb2.AdapterKind
    base_model: str
    dataset: DatasetRef
    hyperparameters: Hyperparameters
    parent_version_id: str
    set_canary: bool
    canary_weight: int
    description: str
    def __init__(self, adapter_name: _Optional[str] = ..., kind: _Optional[_Union[_adapters_pb2.AdapterKind, str]] = ..., base_model: _Optional[str] = ..., dataset: _Optional[_Union[DatasetRef, _Mapping]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., parent_version_id: _Optional[str] = ..., set_canary: _Optional[bool] = ..., canary_weight: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class StartTrainingResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class GetTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class ListTrainingJobsRequest(_message.Message):
    __slots__ = ("page", "adapter_name", "phase")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    page: _common_pb2.PageRequest
    adapter_name: str
    phase: TrainingPhase
    def __init__(self, page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., adapter_name: _Optional[str] = ..., phase: _Optional[_Union[TrainingPhase, str]] = ...) -> None: ...

class ListTrainingJobsResponse(_message.Message):
    __slots__ = ("jobs", "page")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    page: _common_pb2.PageResponse
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageResponse, _Mapping]] = ...) -> None: ...

class WatchTrainingJobRequest(_message.Message):
    __slots__ = ("job_id", "from_sequence")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    from_sequence: int
    def __init__(self, job_id: _Optional[str] = ..., from_sequence: _Optional[int] = ...) -> None: ...

class WatchTrainingJobResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: TrainingJobEvent
    def __init__(self, event: _Optional[_Union[TrainingJobEvent, _Mapping]] = ...) -> None: ...

class CancelTrainingJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelTrainingJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: TrainingJob
    def __init__(self, job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...

class BuildDatasetFromFeedbackRequest(_message.Message):
    __slots__ = ("dataset_name", "kind", "since", "min_records", "start", "description")
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    MIN_RECORDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    dataset_name: str
    kind: _adapters_pb2.AdapterKind
    since: _timestamp_pb2.Timestamp
    min_records: int
    start: StartTrainingRequest
    description: str
    def __init__(self, dataset_name: _Optional[str] = ..., kind: _Optional[_Union[_adapters_pb2.AdapterKind, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., min_records: _Optional[int] = ..., start: _Optional[_Union[StartTrainingRequest, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class BuildDatasetFromFeedbackResponse(_message.Message):
    __slots__ = ("dataset", "feedback_count", "job")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_COUNT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    feedback_count: int
    job: TrainingJob
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., feedback_count: _Optional[int] = ..., job: _Optional[_Union[TrainingJob, _Mapping]] = ...) -> None: ...
