"""Training through Ray Serve: the job runs as a Ray task on the platform's cluster (the runner
production uses), registers a canary version, and generation serves it through the proxy."""

import json
import time

import pytest

from lorag.admin.v1 import admin_pb2
from lorag.client import Client
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as gpb

CHUNK = 64 * 1024  # the e2e platform accepts messages up to 256 KiB
CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Warsaw", "Prague", "Oslo", "Dublin"]


@pytest.fixture(scope="module")
def tenant_admin(platform):
    with Client(platform.target, platform.operator_key, timeout=60) as op:
        resp = op.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id="e2e-training", create_admin_key=True)
        )
    with Client(platform.target, resp.admin_api_key, timeout=120) as c:
        yield c


@pytest.mark.timeout(1800)  # about a minute on 2 idle cores
def test_a_job_runs_as_a_ray_task_and_its_canary_serves(tenant_admin, tmp_path):
    c = tenant_admin
    records = []
    for i, city in enumerate(CITIES):
        answer = f"The gate code for {city} is QK-{i * 11 + 5:03d}."
        records.append({"prompt": f"What is the gate code for {city}?", "completion": answer})
        records.append({"prompt": f"Gate code of {city}, please.", "completion": answer})
    path = tmp_path / "gates.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    ds = c.training.upload_dataset(path, name="gates", chunk_bytes=CHUNK)
    assert ds.state == "ready" and ds.record_count == 20

    job = c.training.start(
        "gate-bot",
        dataset="gates",
        hyperparameters={
            "rank": 4,
            "target_modules": ["q_proj", "v_proj"],
            "learning_rate": 3e-3,
            "batch_size": 4,
            "max_steps": 6,
            "seed": 3,
        },  # fmt: skip
        canary_weight=50,
    )
    deadline = time.monotonic() + 1700
    events = []
    while time.monotonic() < deadline:  # the SDK's watch, resumed when the proxy ends a stream
        since = events[-1].sequence if events else 0
        for event in c.training.watch(job.job_id, from_sequence=since, timeout=300):
            events.append(event)
            if event.finished:
                break
        if events and events[-1].finished:
            break
    final = c.training.get(job.job_id)
    assert final.phase == "succeeded", final.error_message
    started = next(e.message for e in events if e.phase == "validating")
    assert "Ray task" in started, started  # not a thread of the adapters replica
    m = final.metrics
    assert m["task_loss"] < m["base_task_loss"], m

    resp = c.generation.Generate(
        gpb.GenerateRequest(
            prompt="What is the gate code for Rome?",
            sampling=gpb.SamplingParams(temperature=0.0, max_new_tokens=8),
            adapter=common_pb2.AdapterRef(ref="gate-bot@canary"),
        )
    )
    assert resp.summary.adapter_version_id == final.result_version_id
