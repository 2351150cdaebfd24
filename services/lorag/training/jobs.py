"""Training jobs: start, follow, cancel, and the pipeline a job runs (pure logic, no grpc).

A job moves through QUEUED -> VALIDATING -> PREPROCESSING -> TRAINING -> EVALUATING ->
REGISTERING -> SUCCEEDED, or ends in FAILED (with the reason) or CANCELLED. Every change is an
event row (sequence, phase, step, loss, metrics, ETA) that WatchTrainingJob replays; the job row
holds the latest state. Nothing reaches the adapter registry before REGISTERING, so a failed or
cancelled job leaves the registry unchanged.

A runner thread (or Ray task) claims a job by setting its heartbeat; a job whose heartbeat went
stale (its process died) is claimed again on the next start of the training service and resumes
from its last checkpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from lorag.adapters.core import AdapterRegistry
from lorag.adapters.routing import CANARY, check_adapter_name
from lorag.common.auth import require_role
from lorag.common.db import Database, utcnow
from lorag.common.errors import (
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    LoragError,
    NotFound,
    ResourceExhausted,
)
from lorag.common.paging import decode_token, encode_token, page_size
from lorag.common.tenancy import Principal, Role, _audit, validate_text
from lorag.training import evaluation, general, trainer, validation
from lorag.training.datasets import DatasetInfo, DatasetMeta, DatasetStore, check_dataset_name, check_kind
from lorag.training.models import TrainingEventRow, TrainingJobRow
from lorag.training.settings import TrainingSettings

log = logging.getLogger("lorag.training.jobs")

QUEUED, VALIDATING, PREPROCESSING, TRAINING = "QUEUED", "VALIDATING", "PREPROCESSING", "TRAINING"
EVALUATING, REGISTERING = "EVALUATING", "REGISTERING"
SUCCEEDED, FAILED, CANCELLED = "SUCCEEDED", "FAILED", "CANCELLED"
PHASES = (QUEUED, VALIDATING, PREPROCESSING, TRAINING, EVALUATING, REGISTERING, SUCCEEDED, FAILED, CANCELLED)
FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STALE_AFTER_S = 120.0
_PROGRESS_INTERVAL_S = 0.5
_CANCEL_POLL_S = 0.5


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


# -- base models ----------------------------------------------------------------------------------


class ModelLocator:
    """Local directories and tokenizers of the registry's base models (never downloaded)."""

    def __init__(self, settings: TrainingSettings, *, data_dir: Path, registry: AdapterRegistry) -> None:
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.registry = registry
        self._tokenizers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def model_dir(self, kind: str, base_model: str) -> Path:
        name, _ = self.registry.base_model_for(kind, base_model)
        if kind == "generation":
            if name in self.settings.generation_model_dirs:
                return Path(self.settings.generation_model_dirs[name])
            from lorag.generation import models as gen_models
            from lorag.generation.settings import GenerationSettings

            try:
                return Path(gen_models.resolve(GenerationSettings(), name).path)
            except NotFound:
                raise FailedPrecondition(
                    f"no local model directory for base model {name!r} (LORAG_TRAINING_GENERATION_MODEL_DIRS)"
                ) from None
        if name in self.settings.reranking_model_dirs:
            return Path(self.settings.reranking_model_dirs[name])
        from lorag.embedding import models as model_files
        from lorag.reranking import prepare
        from lorag.reranking.settings import BUILT_PREFIX, RerankingSettings

        rs = RerankingSettings()
        spec = rs.models[rs.default_model]
        if spec.path.startswith(BUILT_PREFIX):
            built = prepare.find_built(
                spec.path.removeprefix(BUILT_PREFIX),
                root=rs.resolved_artifacts_dir(self.data_dir),
                settings=rs,
            )
            if built is None:
                raise FailedPrecondition(
                    "the default reranker is not built yet: run `lorag prepare-models` (or set "
                    "LORAG_TRAINING_RERANKING_MODEL_DIRS)"
                )
            return built
        return model_files.resolve_model_path(spec.path)

    def tokenizer(self, kind: str, base_model: str) -> tuple[Any, str]:
        """(tokenizer or None when the model is not available here, registry name)."""
        name, _ = self.registry.base_model_for(kind, base_model)
        key = (kind, name)
        with self._lock:
            if key not in self._tokenizers:
                try:
                    from transformers import AutoTokenizer

                    path = self.model_dir(kind, name)
                    self._tokenizers[key] = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
                except (LoragError, OSError, ValueError) as exc:
                    log.warning("no tokenizer for %s base model %s: %s", kind, name, exc)
                    return None, name
            return self._tokenizers[key], name


# -- value types ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    adapter_name: str
    kind: str
    dataset_name: str
    dataset_version: int | None = None
    base_model: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    parent_version_id: str = ""
    set_canary: bool = False
    canary_weight: int = 0
    description: str = ""


@dataclass(frozen=True)
class JobInfo:
    row: TrainingJobRow
    last_event: TrainingEventRow | None


# -- the core -------------------------------------------------------------------------------------


class TrainingCore:
    """Datasets and jobs of the TrainingService; every method acts in the caller's tenant."""

    def __init__(
        self,
        db: Database,
        registry: AdapterRegistry,
        settings: TrainingSettings,
        *,
        data_dir: Path,
        runner: Any = None,
        models: ModelLocator | None = None,
        corpus: general.GeneralCorpus | None = None,
        where: str | None = None,
    ) -> None:
        self.db = db
        #: Where this core runs jobs, named in each job's first progress message.
        self.where = where or f"thread of process {os.getpid()} on {socket.gethostname()}"
        self.registry = registry
        self.settings = settings
        self.data_dir = Path(data_dir)
        self.workdir = settings.resolved_workdir(data_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.models = models or ModelLocator(settings, data_dir=data_dir, registry=registry)
        self.corpus = corpus or general.GeneralCorpus(settings.general_source)
        self.datasets = DatasetStore(
            db,
            registry.blobs,
            settings,
            staging_root=self.workdir / "staging",
            tokenizers=lambda kind, base: self.models.tokenizer(kind, base),
        )
        self.runner = runner
        self.changes = threading.Condition()

    # -- datasets -----------------------------------------------------------------------------
    def dataset_for_job(self, principal: Principal, name: str, version: int | None) -> DatasetInfo:
        return self.datasets.get(principal, name=name, version=version)

    # -- starting -----------------------------------------------------------------------------
    def check_request(self, principal: Principal, req: JobRequest) -> tuple[str, Any, int]:
        """The checks of ``req`` that need no stored state: (kind, hyperparameters, canary weight)."""
        require_role(principal, Role.ADMIN)
        check_adapter_name(req.adapter_name, field="adapter_name")
        kind = check_kind(req.kind)
        check_dataset_name(req.dataset_name, field="dataset.name")
        validate_text(req.description, field="description", max_len=1000)
        hp = trainer.check_hyperparameters(
            kind, max_rank=self.registry.settings.max_rank, **req.hyperparameters
        )
        canary_weight = req.canary_weight or self.settings.default_canary_weight
        if req.set_canary and not 1 <= canary_weight <= 100:
            raise InvalidArgument(
                f"must be 1-100 (0 means {self.settings.default_canary_weight})", field="canary_weight"
            )
        if req.dataset_version is not None and req.dataset_version < 1:
            raise InvalidArgument("must be >= 1", field="dataset.version")
        return kind, hp, canary_weight

    def start(self, principal: Principal, req: JobRequest, *, trace_id: str = "") -> JobInfo:
        kind, hp, canary_weight = self.check_request(principal, req)
        ds = self.datasets.get(principal, name=req.dataset_name, version=req.dataset_version)
        if ds.row.state != "READY":
            raise FailedPrecondition(
                f"dataset {ds.row.name!r} version {ds.row.version} is INVALID and cannot train: "
                f"{ds.report.failure}"
            )
        if ds.row.kind != kind:
            raise FailedPrecondition(f"dataset {ds.row.name!r} holds {ds.row.kind} data, not {kind}")
        base_model = self.registry.training_target(
            principal.tenant_id, req.adapter_name, kind, req.base_model
        )
        if req.parent_version_id:
            parent = self.registry.version_by_id(principal.tenant_id, req.parent_version_id)
            if parent.adapter_name != req.adapter_name:
                raise InvalidArgument(
                    f"{req.parent_version_id!r} is not a version of adapter {req.adapter_name!r}",
                    field="parent_version_id",
                )
        now = utcnow()
        job_id = f"tj_{secrets.token_hex(12)}"
        with self.db.session.begin() as s:
            active = s.scalar(
                select(func.count())
                .select_from(TrainingJobRow)
                .where(
                    TrainingJobRow.tenant_id == principal.tenant_id, TrainingJobRow.phase.not_in(list(FINAL))
                )
            )
            if active >= self.settings.max_active_jobs:
                raise ResourceExhausted(
                    f"the tenant already has {active} active training job(s); the limit is "
                    f"{self.settings.max_active_jobs} (LORAG_TRAINING_MAX_ACTIVE_JOBS)"
                )
            row = TrainingJobRow(
                job_id=job_id,
                tenant_id=principal.tenant_id,
                adapter_name=req.adapter_name,
                kind=kind,
                base_model=base_model,
                dataset_id=ds.row.dataset_id,
                dataset_name=ds.row.name,
                dataset_version=ds.row.version,
                hyperparameters=hp.to_dict(),
                phase=QUEUED,
                parent_version_id=req.parent_version_id,
                set_canary=req.set_canary,
                canary_weight=canary_weight if req.set_canary else 0,
                metrics={},
                description=req.description,
                created_by=principal.key_id,
                created_at=now,
            )
            s.add(row)
            s.add(
                _audit(
                    principal.tenant_id,
                    principal.key_id,
                    "training.start",
                    f"training/jobs/{job_id}",
                    {
                        "adapter": req.adapter_name,
                        "dataset_id": ds.row.dataset_id,
                        "dataset_sha256": ds.row.sha256,
                        "hyperparameters": hp.to_dict(),
                    },
                    trace_id,
                )
            )
        self._event(
            job_id,
            QUEUED,
            message=f"queued: {kind} adapter {req.adapter_name!r} on {ds.row.name} v{ds.row.version}",
        )
        if self.runner is not None:
            self.runner.submit(job_id)
        return self.get(principal, job_id)

    # -- reads --------------------------------------------------------------------------------
    def get(self, principal: Principal, job_id: str) -> JobInfo:
        if not job_id:
            raise InvalidArgument("is required", field="job_id")
        with self.db.session() as s:
            row = s.get(TrainingJobRow, job_id) if job_id and len(job_id) <= 40 else None
            if row is None or row.tenant_id != principal.tenant_id:
                raise NotFound(f"training job {job_id!r} not found")
            return JobInfo(row, self._last_event(s, job_id))

    def list(
        self, principal: Principal, *, adapter_name: str = "", phase: str = "", size: int = 0, token: str = ""
    ) -> tuple[list[JobInfo], str]:
        limit = page_size(size)
        after = decode_token(token)
        if after and not after.isdigit():
            raise InvalidArgument("malformed page token", field="page.page_token")
        offset = int(after or 0)
        q = select(TrainingJobRow).where(TrainingJobRow.tenant_id == principal.tenant_id)
        if adapter_name:
            q = q.where(TrainingJobRow.adapter_name == check_adapter_name(adapter_name, field="adapter_name"))
        if phase:
            q = q.where(TrainingJobRow.phase == phase)
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    q.order_by(TrainingJobRow.created_at.desc(), TrainingJobRow.job_id.desc())
                    .offset(offset)
                    .limit(limit)
                )
            )
            items = [JobInfo(r, self._last_event(s, r.job_id)) for r in rows]
        return items, encode_token(str(offset + limit)) if len(rows) == limit else ""

    def events_after(
        self, principal: Principal, job_id: str, sequence: int, *, limit: int = 500
    ) -> list[TrainingEventRow]:
        self.get(principal, job_id)  # NOT_FOUND for foreign jobs
        with self.db.session() as s:
            return list(
                s.scalars(
                    select(TrainingEventRow)
                    .where(TrainingEventRow.job_id == job_id, TrainingEventRow.sequence > sequence)
                    .order_by(TrainingEventRow.sequence)
                    .limit(limit)
                )
            )

    def wait_change(self, timeout: float) -> None:
        """Block until an event is recorded in this process, or ``timeout`` seconds pass."""
        with self.changes:
            self.changes.wait(timeout)

    # -- cancel -------------------------------------------------------------------------------
    def cancel(self, principal: Principal, job_id: str, *, trace_id: str = "") -> JobInfo:
        require_role(principal, Role.ADMIN)
        info = self.get(principal, job_id)
        if info.row.phase in FINAL:
            raise FailedPrecondition(f"training job {job_id} already ended ({info.row.phase})")
        with self.db.session.begin() as s:
            s.execute(
                update(TrainingJobRow).where(TrainingJobRow.job_id == job_id).values(cancel_requested=True)
            )
            s.add(
                _audit(
                    principal.tenant_id,
                    principal.key_id,
                    "training.cancel",
                    f"training/jobs/{job_id}",
                    {},
                    trace_id,
                )
            )
        if info.row.phase == QUEUED and info.row.heartbeat_at is None:
            self._finish(job_id, CANCELLED, message="cancelled before it started", only_if_unclaimed=True)
        return self.get(principal, job_id)

    # -- events -------------------------------------------------------------------------------
    def _event(
        self,
        job_id: str,
        phase: str,
        *,
        step: int = 0,
        total_steps: int = 0,
        loss: float | None = None,
        metrics: dict[str, float] | None = None,
        eta: float | None = None,
        message: str = "",
        **updates: Any,
    ) -> None:
        now = utcnow()
        if "job_metrics" in updates:  # the job row's final metrics (``metrics`` is the event's)
            updates["metrics"] = updates.pop("job_metrics")
        with self.db.session.begin() as s:
            seq = s.execute(
                update(TrainingJobRow)
                .where(TrainingJobRow.job_id == job_id)
                .values(last_sequence=TrainingJobRow.last_sequence + 1, phase=phase, **updates)
                .returning(TrainingJobRow.last_sequence)
            ).scalar_one()
            s.add(
                TrainingEventRow(
                    job_id=job_id,
                    sequence=seq,
                    phase=phase,
                    step=step,
                    total_steps=total_steps,
                    loss=loss,
                    eval_metrics=dict(metrics or {}),
                    eta_seconds=eta,
                    message=message[:2000],
                    created_at=now,
                )
            )
        with self.changes:
            self.changes.notify_all()

    def _finish(
        self,
        job_id: str,
        phase: str,
        *,
        message: str,
        only_if_unclaimed: bool = False,
        metrics: dict[str, float] | None = None,
        **updates: Any,
    ) -> None:
        with self.db.session() as s:
            row = s.get(TrainingJobRow, job_id)
            if row is None or row.phase in FINAL:
                return
            if only_if_unclaimed and row.heartbeat_at is not None:
                return
            last = self._last_event(s, job_id)
        if phase == FAILED:
            updates["error_message"] = message[:2000]
        if metrics is not None:
            updates["job_metrics"] = metrics
        self._event(
            job_id,
            phase,
            step=last.step if last else 0,
            total_steps=last.total_steps if last else 0,
            loss=last.loss if last else None,
            metrics=metrics if metrics is not None else (last.eval_metrics if last else {}),
            eta=0.0,
            message=message,
            ended_at=utcnow(),
            **updates,
        )

    @staticmethod
    def _last_event(s, job_id: str) -> TrainingEventRow | None:
        return s.scalar(
            select(TrainingEventRow)
            .where(TrainingEventRow.job_id == job_id)
            .order_by(TrainingEventRow.sequence.desc())
            .limit(1)
        )

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Submit again the unfinished jobs whose runner died (stale heartbeat); they resume."""
        if self.runner is None:
            return []
        cutoff = utcnow() - dt.timedelta(seconds=STALE_AFTER_S)
        with self.db.session() as s:
            rows = list(s.scalars(select(TrainingJobRow).where(TrainingJobRow.phase.not_in(list(FINAL)))))
        stale = [r.job_id for r in rows if r.heartbeat_at is None or _aware(r.heartbeat_at) < cutoff]
        for job_id in stale:
            log.info("resubmitting training job %s", job_id)
            self.runner.submit(job_id)
        return stale

    def _claim(self, job_id: str) -> TrainingJobRow | None:
        """Take the job for this runner (None when it ended or another live runner has it)."""
        now = utcnow()
        cutoff = now - dt.timedelta(seconds=STALE_AFTER_S)
        with self.db.session.begin() as s:
            row = s.get(TrainingJobRow, job_id)
            if row is None or row.phase in FINAL:
                return None
            if row.heartbeat_at is not None and _aware(row.heartbeat_at) >= cutoff:
                return None
            row.heartbeat_at = now
            row.attempts += 1
            row.started_at = row.started_at or now
            s.flush()
            return row

    def _heartbeat(self, job_id: str) -> bool:
        """Refresh the heartbeat; True when a cancel was requested."""
        with self.db.session.begin() as s:
            row = s.get(TrainingJobRow, job_id)
            row.heartbeat_at = utcnow()
            return bool(row.cancel_requested)

    # -- the pipeline -------------------------------------------------------------------------
    def run_job(self, job_id: str) -> None:
        """Run one job to a final phase (called by a runner)."""
        row = self._claim(job_id)
        if row is None:
            return
        workdir = self.workdir / "jobs" / job_id
        try:
            if row.cancel_requested:
                raise Cancelled("the job was cancelled")
            self._pipeline(row, workdir)
        except Cancelled:
            self._finish(job_id, CANCELLED, message="cancelled; nothing was registered")
            shutil.rmtree(workdir, ignore_errors=True)
        except LoragError as exc:
            log.info("training job %s failed: %s", job_id, exc)
            self._finish(job_id, FAILED, message=str(exc))
            shutil.rmtree(workdir, ignore_errors=True)
        except Exception:
            log.exception("training job %s failed", job_id)
            self._finish(job_id, FAILED, message="internal error while training; see the service log")
            shutil.rmtree(workdir, ignore_errors=True)

    def _pipeline(self, row: TrainingJobRow, workdir: Path) -> None:
        job_id, kind = row.job_id, row.kind
        principal = Principal(tenant_id=row.tenant_id, role=Role.ADMIN, key_id=f"training:{job_id}")
        hp = trainer.Hyperparameters.from_dict(row.hyperparameters)
        started = time.monotonic()
        cancel = _CancelCheck(self, job_id)

        # VALIDATING: the stored file again, with the tokenizer of the job's base model
        self._event(
            job_id,
            VALIDATING,
            message=f"validating {row.dataset_name} v{row.dataset_version} (attempt {row.attempts}, "
            f"in {self.where})",
        )
        ds = self.datasets.get(principal, dataset_id=row.dataset_id)
        tokenizer, tok_name = self.models.tokenizer(kind, row.base_model)
        if tokenizer is None:
            raise FailedPrecondition(f"base model {row.base_model!r} is not available on this machine")
        checked = validation.validate(
            self.datasets.read(ds), kind, settings=self.settings, tokenizer=tokenizer, tokenizer_name=tok_name
        )
        if not checked.report.valid:
            raise FailedPrecondition(f"the dataset failed validation: {checked.report.failure}")
        cancel.check()

        # PREPROCESSING: general-data mix and the held-out sets
        self._event(job_id, PREPROCESSING, message="mixing general data")
        n_general = general.general_count(len(checked.train), hp.general_data_ratio)
        general_train = self.corpus.train_records(kind, n_general, seed=hp.seed) if n_general else []
        try:
            general_eval = self.corpus.eval_records(kind, self.settings.general_eval_records)
        except FailedPrecondition:
            if n_general:
                raise
            general_eval = []  # no corpus and no mix asked for: the forgetting gate is skipped
        mixed = general.mix(checked.train, general_train, seed=hp.seed)
        total = trainer.total_steps(len(mixed), hp)
        self._event(
            job_id,
            PREPROCESSING,
            total_steps=total,
            message=f"{len(checked.train)} task + {len(general_train)} general training examples; "
            f"{len(checked.validation)} task and {len(general_eval)} general held out",
        )
        parent_dir = None
        if row.parent_version_id:
            parent_dir = self._download(principal, row.parent_version_id, workdir / "parent")
        cancel.check()

        # TRAINING
        last_sent = [0.0]
        step_times: list[float] = []

        def progress(step: int, total_: int, loss: float, seconds: float) -> None:
            step_times.append(seconds)
            now = time.monotonic()
            if step < total_ and now - last_sent[0] < _PROGRESS_INTERVAL_S:
                return
            last_sent[0] = now
            recent = step_times[-10:]
            eta = (total_ - step) * sum(recent) / len(recent) + 0.1 * sum(step_times)
            self._event(
                job_id, TRAINING, step=step, total_steps=total_, loss=loss, eta=eta, heartbeat_at=utcnow()
            )

        self._event(job_id, TRAINING, total_steps=total, message="training")
        qlora = trainer.qlora_possible(kind, self.settings.qlora)
        if self.settings.torch_threads:
            import torch

            torch.set_num_threads(self.settings.torch_threads)
        result = trainer.train(
            kind,
            model_dir=self.models.model_dir(kind, row.base_model),
            records=mixed,
            hp=hp,
            workdir=workdir,
            max_length=self.settings.max_seq_length,
            checkpoint_every=self.settings.checkpoint_every,
            parent_dir=parent_dir,
            qlora=qlora,
            progress=progress,
            should_stop=cancel.requested,
        )
        cancel.check()

        # EVALUATING
        self._event(
            job_id,
            EVALUATING,
            step=result.steps,
            total_steps=total,
            loss=result.losses[-1],
            message="evaluating adapter and base model",
        )
        metrics = evaluation.evaluate(
            kind,
            result.model,
            result.tokenizer,
            task=checked.validation,
            general=general_eval,
            max_length=self.settings.max_seq_length,
        )
        metrics.update(
            {
                "train_loss_first": result.first_loss,
                "train_loss_last": result.last_loss,
                "train_steps": float(result.steps),
                "train_seconds": result.seconds,
                "train_examples": float(len(mixed)),
                "general_examples": float(len(general_train)),
                "validation_examples": float(len(checked.validation)),
                "resumed_from_step": float(result.resumed_from),
            }
        )
        verdict = evaluation.gate(
            kind,
            metrics,
            min_task_improvement=self.settings.min_task_improvement,
            generation_tolerance=self.settings.generation_forgetting_tolerance,
            reranking_tolerance=self.settings.reranking_forgetting_tolerance,
        )
        self._event(
            job_id,
            EVALUATING,
            step=result.steps,
            total_steps=total,
            loss=result.losses[-1],
            metrics=metrics,
            message=("passed: " if verdict.passed else "rejected: ") + verdict.reason,
        )
        if not verdict.passed:
            raise FailedPrecondition(f"the candidate was rejected: {verdict.reason}; nothing was registered")
        cancel.check()

        # REGISTERING
        self._event(
            job_id,
            REGISTERING,
            step=result.steps,
            total_steps=total,
            loss=result.losses[-1],
            metrics=metrics,
            message="registering",
        )
        files = trainer.save_adapter(result, workdir / "adapter", base_model=row.base_model)
        del result
        lineage = {
            "dataset_id": ds.row.dataset_id,
            "dataset": f"{ds.row.name}@{ds.row.version}",
            "dataset_sha256": ds.row.sha256,
            "base_model": row.base_model,
            "parent_version_id": row.parent_version_id,
            "hyperparameters": hp.to_dict(),
            "general_source": self.settings.general_source if general_train else "",
            "qlora": qlora,
        }
        description = row.description or (
            f"trained by {job_id} on dataset {ds.row.name} v{ds.row.version} (sha256 {ds.row.sha256[:12]})"
        )
        version, _created = self.registry.register_trained(
            principal,
            adapter_name=row.adapter_name,
            kind=kind,
            base_model=row.base_model,
            files=files,
            metrics=metrics,
            parent_version_id=row.parent_version_id,
            training_job_id=job_id,
            description=description[:1000],
            lineage=lineage,
        )
        canary_set = False
        message = f"registered {row.adapter_name} v{version.row.version} ({version.version_id})"
        if row.set_canary:
            self.registry.set_alias(
                principal,
                adapter_name=row.adapter_name,
                alias=CANARY,
                version=version.row.version,
                traffic_weight=row.canary_weight,
            )
            canary_set = True
            message += f"; canary at {row.canary_weight}%"
        self._finish(
            job_id,
            SUCCEEDED,
            message=f"{message} in {time.monotonic() - started:.1f} s",
            metrics=metrics,
            result_version_id=version.version_id,
            result_version=version.row.version,
            canary_set=canary_set,
        )
        shutil.rmtree(workdir, ignore_errors=True)

    def _download(self, principal: Principal, version_id: str, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        info, chunks = self.registry.download(principal.tenant_id, version_id)
        handles: dict[str, Any] = {}
        try:
            for name, data in chunks:
                if name not in handles:
                    handles[name] = open(target / name, "wb")  # noqa: SIM115 - closed below
                handles[name].write(data)
        finally:
            for fh in handles.values():
                fh.close()
        return target

    # -- continuous training ------------------------------------------------------------------
    def build_from_feedback(
        self,
        principal: Principal,
        *,
        dataset_name: str,
        kind: str,
        since: dt.datetime | None = None,
        min_records: int = 0,
        description: str = "",
        trace_id: str = "",
    ) -> tuple[DatasetInfo, int]:
        """Store the next version of ``dataset_name`` built from the tenant's feedback."""
        from lorag.rag.models import AnswerRow, FeedbackRow

        require_role(principal, Role.ADMIN)
        check_dataset_name(dataset_name, field="dataset_name")
        kind = check_kind(kind)
        if not 0 <= min_records <= 100_000:
            raise InvalidArgument("must be 1-100000 (0 means 8)", field="min_records")
        min_records = min_records or 8
        q = (
            select(FeedbackRow, AnswerRow)
            .join(AnswerRow, AnswerRow.answer_id == FeedbackRow.answer_id)
            .where(FeedbackRow.tenant_id == principal.tenant_id, AnswerRow.tenant_id == principal.tenant_id)
        )
        if since is not None:
            q = q.where(FeedbackRow.created_at >= since)
        with self.db.session() as s:
            pairs = s.execute(q.order_by(FeedbackRow.created_at)).all()
        records = feedback_records(kind, [(fb, ans) for fb, ans in pairs])
        if len(records) < min_records:
            raise FailedPrecondition(
                f"the tenant's feedback gives {len(records)} {kind} record(s) from {len(pairs)} feedback "
                f"entries; at least {min_records} are needed"
            )
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
        meta = DatasetMeta(
            name=dataset_name,
            kind=kind,
            description=description or f"built from {len(pairs)} feedback entries",
            total_size=len(data),
        )
        # the same checks as an upload (name, kind of earlier versions, description)
        upload = self.datasets.begin_upload(principal, meta)
        upload.abort()
        info, _ = self.datasets.store(principal, meta, data, source="feedback", trace_id=trace_id)
        return info, len(pairs)


@dataclass(frozen=True)
class CanaryDecision:
    promoted: bool
    reason: str
    canary_version_id: str
    production_version_id: str
    canary_feedback: int
    production_feedback: int
    canary_positive_rate: float
    production_positive_rate: float


def _feedback_stats(db: Database, tenant_id: str, version_id: str) -> tuple[int, int]:
    """(rated answers, positively rated answers) of one adapter version; the newest feedback of an
    answer counts."""
    from lorag.rag.models import AnswerRow, FeedbackRow

    with db.session() as s:
        rows = s.execute(
            select(FeedbackRow.answer_id, FeedbackRow.rating, FeedbackRow.score)
            .join(AnswerRow, AnswerRow.answer_id == FeedbackRow.answer_id)
            .where(
                FeedbackRow.tenant_id == tenant_id,
                AnswerRow.tenant_id == tenant_id,
                AnswerRow.adapter_version_id == version_id,
            )
            .order_by(FeedbackRow.created_at)
        ).all()
    verdict: dict[str, bool] = {}
    for answer_id, rating, score in rows:
        if rating in ("up", "down"):
            verdict[answer_id] = rating == "up"
        elif score is not None:
            verdict[answer_id] = score >= 0.5
    return len(verdict), sum(verdict.values())


def promote_canary(
    core: TrainingCore,
    principal: Principal,
    *,
    adapter_name: str,
    min_feedback: int = 0,
    dry_run: bool = False,
    trace_id: str = "",
) -> CanaryDecision:
    """Online A/B: promote the canary when its feedback is at least as good as production's."""
    from lorag.adapters.routing import PRODUCTION

    require_role(principal, Role.ADMIN)
    if not adapter_name:
        raise InvalidArgument("is required", field="adapter_name")
    if not 0 <= min_feedback <= 1_000_000:
        raise InvalidArgument("must be 1-1000000 (0 means 20)", field="min_feedback")
    min_feedback = min_feedback or 20
    aliases = {a.name: a for a in core.registry.list_aliases(principal, adapter_name=adapter_name).items}
    for needed in (CANARY, PRODUCTION):
        if needed not in aliases:
            raise NotFound(f"adapter {adapter_name!r} has no alias {needed!r}")
    canary, production = aliases[CANARY], aliases[PRODUCTION]
    c_n, c_pos = _feedback_stats(core.db, principal.tenant_id, canary.version_id)
    p_n, p_pos = _feedback_stats(core.db, principal.tenant_id, production.version_id)
    c_rate, p_rate = (c_pos / c_n if c_n else 0.0), (p_pos / p_n if p_n else 0.0)
    decision = dict(
        canary_version_id=canary.version_id,
        production_version_id=production.version_id,
        canary_feedback=c_n,
        production_feedback=p_n,
        canary_positive_rate=c_rate,
        production_positive_rate=p_rate,
    )
    if canary.version_id == production.version_id:
        return CanaryDecision(False, "canary and production are the same version", **decision)
    if min(c_n, p_n) < min_feedback:
        return CanaryDecision(
            False,
            f"not enough feedback yet: canary {c_n}, production {p_n}, need {min_feedback} each",
            **decision,
        )
    if c_rate < p_rate:
        return CanaryDecision(
            False, f"the canary is rated worse: {c_rate:.1%} positive vs production {p_rate:.1%}", **decision
        )
    reason = f"canary {c_rate:.1%} positive vs production {p_rate:.1%} over {c_n} / {p_n} rated answers"
    if dry_run:
        return CanaryDecision(False, "would promote: " + reason, **decision)
    core.registry.set_alias(
        principal, adapter_name=adapter_name, alias=PRODUCTION, version=canary.version, trace_id=trace_id
    )
    core.registry.delete_alias(principal, adapter_name=adapter_name, alias=CANARY, trace_id=trace_id)
    return CanaryDecision(True, "promoted: " + reason, **decision)


def feedback_records(kind: str, pairs: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Training records from (feedback, answer) rows.

    GENERATION: the prompt the model saw (template, passages, question) -> the corrected answer,
    or the answer itself when it was rated up (score >= 0.5) and not a rejection.
    RERANKING: the question -> each passage marked relevant vs those marked irrelevant (or, when
    none is marked irrelevant, the passages not marked relevant).
    """
    from lorag.rag import templates

    out: list[dict[str, Any]] = []
    for fb, ans in pairs:
        contexts = list(ans.contexts or [])
        if kind == "generation":
            good = fb.rating == "up" or (fb.score is not None and fb.score >= 0.5)
            completion = fb.corrected_answer.strip() or (ans.answer if good and not ans.rejected else "")
            if not completion:
                continue
            template = templates.BUILTIN.get(ans.template or "default", templates.BUILTIN["default"])
            context = "\n\n".join(
                f"[{c.get('index', i + 1)}] {c.get('text', '')}" for i, c in enumerate(contexts)
            )
            system, user = template.render(context=context, question=ans.question)
            out.append(
                {
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": completion},
                    ]
                }
            )
        else:
            by_id = {c.get("chunk_id"): c.get("text", "") for c in contexts}
            relevant = [by_id[c] for c in fb.relevant_chunk_ids if c in by_id]
            irrelevant = [by_id[c] for c in fb.irrelevant_chunk_ids if c in by_id]
            if not irrelevant:
                irrelevant = [t for c, t in by_id.items() if c not in set(fb.relevant_chunk_ids)]
            for passage in relevant:
                if irrelevant:
                    out.append({"query": ans.question, "positive": passage, "negative": irrelevant[:7]})
    return out


class _CancelCheck:
    """Polls the job's cancel flag (and refreshes its heartbeat) at most every 0.5 s."""

    def __init__(self, core: TrainingCore, job_id: str) -> None:
        self.core = core
        self.job_id = job_id
        self._at = 0.0
        self._flag = False

    def requested(self) -> bool:
        now = time.monotonic()
        if not self._flag and now - self._at >= _CANCEL_POLL_S:
            self._at = now
            self._flag = self.core._heartbeat(self.job_id)
        return self._flag

    def check(self) -> None:
        self._at = 0.0
        if self.requested():
            raise Cancelled("the job was cancelled")


def run_standalone(job_id: str, *, registry_url: str, data_dir: str, where: str | None = None) -> None:
    """Run one job in a process of its own (a Ray task or a RayJob pod)."""
    from lorag.adapters.settings import load_adapter_settings
    from lorag.training.settings import load_training_settings

    db = Database(registry_url)
    registry = AdapterRegistry.build(db, data_dir=Path(data_dir), settings=load_adapter_settings())
    where = where or f"process {os.getpid()} on {socket.gethostname()}"
    core = TrainingCore(db, registry, load_training_settings(), data_dir=Path(data_dir), where=where)
    try:
        core.run_job(job_id)
    finally:
        db.dispose()
