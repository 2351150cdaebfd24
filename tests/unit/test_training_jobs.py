"""Training jobs on SQLite: quotas, cancellation, failures that leave the registry unchanged,
claiming (no double runs) and recovery of jobs whose process died."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import update

from lorag.adapters.core import AdapterRegistry
from lorag.adapters.settings import AdapterSettings
from lorag.common.db import Database
from lorag.common.errors import FailedPrecondition, NotFound, PermissionDenied, ResourceExhausted
from lorag.common.tenancy import Principal, Role, TenantStore
from lorag.training.datasets import DatasetMeta
from lorag.training.jobs import JobRequest, TrainingCore
from lorag.training.models import TrainingJobRow
from lorag.training.settings import TrainingSettings

ADMIN = Principal("acme", Role.ADMIN, "k-admin")
USER = Principal("acme", Role.USER, "k-user")
OTHER = Principal("other", Role.ADMIN, "k-other")


class NoModels:
    """No base model on this machine: tokenizer checks are skipped, jobs fail at VALIDATING."""

    def tokenizer(self, kind, base_model):
        return None, ""


class Recorder:
    def __init__(self):
        self.submitted = []

    def submit(self, job_id):
        self.submitted.append(job_id)


@pytest.fixture
def core(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    for tenant in ("acme", "other"):
        TenantStore(db).create_tenant(tenant_id=tenant, actor="test")
    registry = AdapterRegistry.build(db, data_dir=tmp_path, settings=AdapterSettings())
    c = TrainingCore(
        db,
        registry,
        TrainingSettings(max_active_jobs=2),
        data_dir=tmp_path,
        runner=Recorder(),
        models=NoModels(),
    )
    data = "".join(
        json.dumps({"prompt": f"question {i} about {i * 11}?", "completion": f"answer {i}"}) + "\n"
        for i in range(12)
    )
    c.datasets.store(ADMIN, DatasetMeta(name="qa", kind="generation", total_size=len(data)), data.encode())
    yield c
    db.dispose()


def test_start_queues_a_job_and_checks_roles_tenants_and_quota(core):
    job = core.start(ADMIN, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))
    assert job.row.phase == "QUEUED" and core.runner.submitted == [job.row.job_id]
    assert job.row.hyperparameters["rank"] == 8 and job.row.dataset_version == 1
    with pytest.raises(PermissionDenied):
        core.start(USER, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))
    with pytest.raises(NotFound):
        core.start(OTHER, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))
    with pytest.raises(NotFound):
        core.get(OTHER, job.row.job_id)
    with pytest.raises(FailedPrecondition):
        core.start(ADMIN, JobRequest(adapter_name="bot", kind="reranking", dataset_name="qa"))
    core.start(ADMIN, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))
    with pytest.raises(ResourceExhausted):
        core.start(ADMIN, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))


def test_cancel_of_a_queued_job_ends_it_and_a_runner_then_skips_it(core):
    job = core.start(ADMIN, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))
    assert core.cancel(ADMIN, job.row.job_id).row.phase == "CANCELLED"
    core.run_job(job.row.job_id)  # the runner reaches it later: nothing happens
    events = core.events_after(ADMIN, job.row.job_id, 0)
    assert [e.phase for e in events] == ["QUEUED", "CANCELLED"]
    with pytest.raises(FailedPrecondition):
        core.cancel(ADMIN, job.row.job_id)


def test_a_failing_job_ends_failed_with_its_reason_and_registers_nothing(core):
    job = core.start(ADMIN, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa"))
    core.run_job(job.row.job_id)
    done = core.get(ADMIN, job.row.job_id)
    assert done.row.phase == "FAILED" and "not available" in done.row.error_message
    assert done.row.ended_at is not None and done.last_event.phase == "FAILED"
    assert core.registry.list_adapters(ADMIN).items == []


def test_a_claimed_job_is_not_run_twice_and_a_dead_runners_job_is_resubmitted(core):
    job_id = core.start(
        ADMIN, JobRequest(adapter_name="bot", kind="generation", dataset_name="qa")
    ).row.job_id
    assert core._claim(job_id) is not None
    assert core._claim(job_id) is None  # a live runner holds it
    core.runner.submitted.clear()
    assert core.recover() == []  # fresh heartbeat: still running somewhere
    with core.db.session.begin() as s:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        s.execute(update(TrainingJobRow).where(TrainingJobRow.job_id == job_id).values(heartbeat_at=old))
    assert core.recover() == [job_id] and core.runner.submitted == [job_id]
    claimed = core._claim(job_id)
    assert claimed is not None and claimed.attempts == 2


def test_canary_is_promoted_only_with_enough_and_no_worse_feedback(core, tmp_path):
    from lorag.adapters.core import UploadMetadata
    from lorag.rag.store import AnswerStore, FeedbackInput
    from lorag.training.jobs import promote_canary
    from tests.support.adapters import synthetic_llama_adapter

    versions = []
    for seed in (1, 2):
        files = {p.name: p for p in synthetic_llama_adapter(tmp_path / f"a{seed}", seed=seed).iterdir()}
        session = core.registry.begin_upload(
            ADMIN,
            UploadMetadata(
                adapter_name="bot",
                kind="generation",
                total_size=sum(p.stat().st_size for p in files.values()),
            ),
        )
        for name, path in files.items():
            session.write(name, path.read_bytes())
        versions.append(session.finish()[0])
    core.registry.set_alias(ADMIN, adapter_name="bot", alias="production", version=1)
    core.registry.set_alias(ADMIN, adapter_name="bot", alias="canary", version=2, traffic_weight=20)
    store = AnswerStore(core.db)

    def rate(version, ups, downs):
        for i in range(ups + downs):
            answer = store.save_answer(
                "acme",
                question="q",
                answer="a",
                rejected=False,
                contexts=[],
                adapter_version_id=version.version_id,
            )
            store.add_feedback("acme", FeedbackInput(answer_id=answer, rating="up" if i < ups else "down"))

    rate(versions[0], 3, 1)  # production 75 %
    rate(versions[1], 2, 0)
    early = promote_canary(core, ADMIN, adapter_name="bot", min_feedback=3)
    assert not early.promoted and "not enough feedback" in early.reason
    rate(versions[1], 0, 2)  # canary 50 %
    worse = promote_canary(core, ADMIN, adapter_name="bot", min_feedback=3)
    assert not worse.promoted and worse.canary_positive_rate == 0.5 and worse.production_positive_rate == 0.75
    rate(versions[1], 4, 0)  # canary 75 %
    assert not promote_canary(core, ADMIN, adapter_name="bot", min_feedback=3, dry_run=True).promoted
    done = promote_canary(core, ADMIN, adapter_name="bot", min_feedback=3)
    assert done.promoted and done.canary_feedback == 8
    aliases = {a.name: a.version_id for a in core.registry.list_aliases(ADMIN, adapter_name="bot").items}
    assert aliases == {"production": versions[1].version_id}
    with pytest.raises(NotFound):
        promote_canary(core, OTHER, adapter_name="bot")
