"""The training pipeline over real gRPC: dataset upload -> validation report -> LoRA training with
the loss going down -> evaluation against the base -> registered version -> canary -> served.

The generation job trains a real LoRA on SmolLM2-135M (few steps); the reranking job trains the
test build of the default cross-encoder. Both run in the in-process host's thread runner.
"""

from __future__ import annotations

import json
import time

import grpc
import pytest

from lorag.adapters.v1 import adapters_pb2 as apb
from lorag.adapters.v1 import training_pb2 as tpb
from lorag.admin.v1 import admin_pb2
from lorag.client import AsyncClient
from lorag.client.errors import LoragClientError
from lorag.common.v1 import common_pb2
from lorag.generation.v1 import generation_pb2 as gpb
from tests.support.reranking import quick_reranker

CITIES = [
    "Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Warsaw", "Prague",
    "Oslo", "Dublin", "Athens", "Helsinki", "Budapest", "Brussels", "Amsterdam", "Stockholm",
]  # fmt: skip


def ticket_codes() -> list[dict]:
    """A toy task the base model cannot know: a made-up code per city, asked two ways."""
    out = []
    for i, city in enumerate(CITIES):
        answer = f"The ticket code for {city} is ZX-{i * 7 + 3:03d}."
        out.append({"prompt": f"What is the ticket code for {city}?", "completion": answer})
        out.append({"messages": [{"role": "user", "content": f"Ticket code of {city}, please."},
                                 {"role": "assistant", "content": answer}]})  # fmt: skip
    return out


async def expect_status(awaitable, code: grpc.StatusCode) -> str:
    """Await an SDK or raw-stub call that must fail with ``code``; the details."""
    with pytest.raises((LoragClientError, grpc.aio.AioRpcError)) as info:
        await awaitable
    exc = info.value
    got, details = (
        (exc.code, exc.message) if isinstance(exc, LoragClientError) else (exc.code(), exc.details())
    )
    assert got == code, details
    return details


def jsonl(records: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


@pytest.fixture(scope="module")
async def tenants(operator, host):
    out = {}
    for name in ("train-a", "train-b"):
        resp = await operator.admin.CreateTenant(
            admin_pb2.CreateTenantRequest(tenant_id=name, create_admin_key=True)
        )
        out[name] = AsyncClient(host.target, resp.admin_api_key, timeout=120)
    yield out
    for c in out.values():
        await c.close()


async def upload(client, tmp_path, name, records, kind="generation"):
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(jsonl(records))
    return await client.training.upload_dataset(path, name=name, kind=kind, chunk_bytes=64 * 1024)


async def watch_to_end(client, job_id):
    """Every event of a job; watches again from the last sequence when the server ends a stream
    before the job ends (its request deadline)."""
    events = []
    while not events or not events[-1].finished:  # bounded by the test's timeout
        async for event in client.training.watch(job_id, from_sequence=events[-1].sequence if events else 0):
            events.append(event)
            if event.finished:
                break
    return events


async def test_bad_datasets_are_reported_by_line_and_never_train(tenants, tmp_path):
    a = tenants["train-a"]
    records = ticket_codes()
    bad = [json.dumps(r) for r in records[:10]]
    bad[2] = '{"prompt": "no completion"}'
    bad[4] = "not json at all"
    bad[6] = json.dumps({"prompt": "x", "completion": ""})
    bad.append(bad[0])  # exact duplicate of line 1
    ds = await upload(a, tmp_path, "broken", bad)
    assert ds.state == "invalid"
    report = ds.raw.validation
    by_line = {i.line: i.code for i in report.issues}
    assert by_line[3] == "missing_field" and by_line[5] == "invalid_json" and by_line[7] == "empty"
    assert by_line[11] == "duplicate"
    assert report.malformed_records == 2 and report.empty_records == 1 and report.duplicate_records == 1
    details = await expect_status(
        a.training.StartTraining(
            tpb.StartTrainingRequest(
                adapter_name="bot",
                kind=apb.ADAPTER_KIND_GENERATION,
                dataset=tpb.DatasetRef(name="broken", version=1),
            )  # fmt: skip
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "INVALID" in details and "malformed" in details


async def test_foreign_datasets_and_jobs_are_not_found_and_hyperparameters_checked(tenants, tmp_path):
    a, b = tenants["train-a"], tenants["train-b"]
    ds = await upload(a, tmp_path, "codes-check", ticket_codes())
    assert ds.state == "ready"
    await expect_status(b.training.get_dataset(dataset_id=ds.dataset_id), grpc.StatusCode.NOT_FOUND)
    await expect_status(b.training.get_dataset("codes-check"), grpc.StatusCode.NOT_FOUND)
    await expect_status(b.training.start("bot", dataset="codes-check"), grpc.StatusCode.NOT_FOUND)
    for hp in ({"rank": 65}, {"learning_rate": 0.5}, {"general_data_ratio": 0.95}, {"epochs": 21},
               {"target_modules": ["lm_head"]}):  # fmt: skip
        details = await expect_status(
            a.training.start("bot", dataset="codes-check", hyperparameters=hp),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert f"hyperparameters.{next(iter(hp))}" in details
    await expect_status(a.training.get("tj_missing"), grpc.StatusCode.NOT_FOUND)


async def test_cli_datasets_upload_list_show(operator, host, tmp_path, capsys):
    import asyncio

    from lorag import cli

    resp = await operator.admin.CreateTenant(
        admin_pb2.CreateTenantRequest(tenant_id="train-cli", create_admin_key=True)
    )
    base = ["--target", host.target, "--api-key", resp.admin_api_key]

    async def run(*args, expect=0) -> str:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, [*base, *args])
        out = capsys.readouterr()
        assert code == expect, out.err
        return out.out + out.err

    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_bytes(jsonl(ticket_codes()))
    bad.write_bytes(jsonl([*ticket_codes()[:9], "{oops"]))
    assert "READY" in await run("datasets", "upload", str(good), "--name", "cli-codes", "--dry-run")
    assert "INVALID" in (out := await run("datasets", "upload", str(bad), "--name", "cli-codes", expect=1))
    assert "invalid_json" in out and "10" in out  # the bad line is named
    out = await run("datasets", "upload", str(good), "--name", "cli-codes")
    assert "cli-codes v2" in out and "32 records" in out and "tokens" in out
    listed = await run("datasets", "list")
    assert listed.count("cli-codes") == 2  # the INVALID v1 and the READY v2 (the dry run stored nothing)
    assert "cli-codes v2" in await run("datasets", "show", "cli-codes")  # newest READY
    assert "NOT_FOUND" in await run("train", "status", "tj_nope", expect=1)


@pytest.fixture
def small_general_eval(host):
    """Score 8 general records instead of 24 (the test's time goes to the model, not the data)."""
    core = host.servicers["adapters"].training
    saved = core.settings
    core.settings = saved.model_copy(update={"general_eval_records": 8})
    yield
    core.settings = saved


@pytest.mark.timeout(1800)  # ~30 s on 2 idle cores; far longer on a machine loaded by other work
async def test_generation_adapter_trains_evaluates_registers_and_serves_as_canary(
    tenants, tmp_path, small_general_eval
):
    """The done-when test: a real LoRA on SmolLM2-135M, end to end."""
    a, b = tenants["train-a"], tenants["train-b"]
    ds = await upload(a, tmp_path, "codes", ticket_codes())
    report = ds.raw.validation
    assert ds.state == "ready" and report.valid and ds.record_count == 32
    assert report.train_records + report.validation_records == 32 and report.validation_records >= 2
    assert report.overlap_records == 0 and report.token_lengths.max > 0 and report.tokenizer

    started = time.monotonic()
    job = await a.training.start(
        "bot",
        dataset="codes",
        hyperparameters={
            "rank": 8,
            "target_modules": ["q_proj", "v_proj"],
            "learning_rate": 3e-3,
            "batch_size": 4,
            "max_steps": 8,
            "seed": 7,
            "general_data_ratio": 0.2,
        },  # fmt: skip
        canary_weight=25,
    )
    assert job.phase == "queued"
    # a second job, cancelled while it waits: it ends CANCELLED and registers nothing
    queued = await a.training.start("bot-two", dataset="codes", hyperparameters={"max_steps": 1})
    cancelled = await a.training.cancel(queued.job_id)
    assert cancelled.phase == "cancelled"
    await expect_status(b.training.WatchTrainingJob(tpb.WatchTrainingJobRequest(job_id=job.job_id)).read(),
                        grpc.StatusCode.NOT_FOUND)  # fmt: skip

    events = await watch_to_end(a, job.job_id)
    seconds = time.monotonic() - started
    final = await a.training.get(job.job_id)
    assert final.phase == "succeeded", final.error_message
    phases = [e.phase for e in events]
    for phase in (
        "queued",
        "validating",
        "preprocessing",
        "training",
        "evaluating",
        "registering",
        "succeeded",
    ):
        assert phase in phases
    assert [e.sequence for e in events] == sorted({e.sequence for e in events})
    losses = [e.loss for e in events if e.phase == "training" and e.loss is not None]
    m = final.metrics
    assert m["train_loss_last"] < m["train_loss_first"], m  # the loss goes down (batches mix in general data)
    assert m["task_loss"] < 0.7 * m["base_task_loss"], m  # beats the base on held-out task data
    assert m["general_loss"] <= m["base_general_loss"] * 1.05  # no forgetting beyond the gate
    assert m["general_examples"] > 0  # general data was mixed in
    print(  # the figures the README reports
        f"\ntraining job {seconds:.1f} s ({m['train_seconds']:.1f} s training, "
        f"{int(m['train_steps'])} steps); "
        f"loss {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}; task loss {m['task_loss']:.3f} "
        f"vs base {m['base_task_loss']:.3f}; general loss {m['general_loss']:.3f} vs base "
        f"{m['base_general_loss']:.3f}; progress events {len(losses)}"
    )

    version = (
        await a.adapters.GetAdapterVersion(apb.GetAdapterVersionRequest(version_id=final.result_version_id))
    ).version
    assert version.training_job_id == job.job_id and version.created_by == f"training:{job.job_id}"
    assert version.metrics["task_loss"] == pytest.approx(m["task_loss"]) and version.rank == 8
    aliases = (await a.adapters.ListAliases(apb.ListAliasesRequest(adapter_name="bot"))).aliases
    assert [(x.name, x.version_id, x.traffic_weight) for x in aliases] == [
        ("canary", final.result_version_id, 25)
    ]
    assert final.raw.canary_set
    names = [x.name for x in (await a.adapters.ListAdapters(apb.ListAdaptersRequest())).adapters]
    assert "bot" in names and "bot-two" not in names  # the cancelled job registered nothing

    resp = await a.generation.Generate(
        gpb.GenerateRequest(
            prompt="What is the ticket code for Paris?",
            sampling=gpb.SamplingParams(temperature=0.0, max_new_tokens=12),
            adapter=common_pb2.AdapterRef(ref="bot@canary"),
        )
    )
    assert resp.summary.adapter_version_id == final.result_version_id
    await expect_status(a.training.cancel(job.job_id), grpc.StatusCode.FAILED_PRECONDITION)


@pytest.mark.timeout(1200)
async def test_reranking_adapter_trains_against_keyword_spam(tenants, tmp_path, host):
    """A reranker adapter learns to prefer the answer over a keyword-stuffed passage."""
    core = host.servicers["adapters"].training
    saved = core.models.settings
    core.models.settings = saved.model_copy(
        update={"reranking_model_dirs": {"ms-marco-minilm-l6": quick_reranker()}}
    )
    core.models._tokenizers.clear()
    try:
        a = tenants["train-a"]
        topics = ["refund", "shipping", "warranty", "password reset", "invoice", "delivery delay",
                  "account deletion", "gift card", "subscription", "data export", "login error",
                  "price match"]  # fmt: skip
        records = []
        for i, t in enumerate(topics):
            records.append({
                "query": f"how does {t} work",
                "positive": f"Our team handles this within {i + 2} business days after you contact support.",
                "negative": [f"{t} {t} work {t} how does {t} work {t}", f"{t} works {t} how {t} {t} does"],
            })  # fmt: skip
            records.append({
                "query": f"what is the rule for {t}",
                "positive": f"Customers get a written answer from an agent within {i + 3} days.",
                "negative": f"rule for {t} rule {t} what is the rule {t} for {t}",
            })  # fmt: skip
        ds = await upload(a, tmp_path, "spam", records, kind="reranking")
        assert ds.state == "ready", ds.raw.validation
        job = await a.training.start(
            "ranker", dataset="spam", kind="reranking",
            hyperparameters={"rank": 8, "learning_rate": 1e-3, "batch_size": 8, "max_steps": 30, "seed": 1},
        )  # fmt: skip
        await watch_to_end(a, job.job_id)
        final = await a.training.get(job.job_id)
        assert final.phase == "succeeded", final.error_message
        m = final.metrics
        assert m["train_loss_last"] < m["train_loss_first"]
        assert m["task_ndcg_at_10"] > m["base_task_ndcg_at_10"]
        assert "general_ndcg_at_10" in m and "base_general_ndcg_at_10" in m
        print(
            f"\nreranker job: {m['train_seconds']:.1f} s, {int(m['train_steps'])} steps; loss "
            f"{m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}; "
            f"task nDCG@10 {m['task_ndcg_at_10']:.3f} vs "
            f"base {m['base_task_ndcg_at_10']:.3f}; general nDCG@10 {m['general_ndcg_at_10']:.3f} vs base "
            f"{m['base_general_ndcg_at_10']:.3f}"
        )
        version = (
            await a.adapters.GetAdapterVersion(
                apb.GetAdapterVersionRequest(version_id=final.result_version_id)
            )
        ).version
        assert version.kind == apb.ADAPTER_KIND_RERANKING and "classifier" not in version.target_modules
    finally:
        core.models.settings = saved
        core.models._tokenizers.clear()


async def test_continuous_training_builds_datasets_from_stored_feedback(tenants, runtime):
    from lorag.rag.store import AnswerStore, FeedbackInput

    a, b = tenants["train-a"], tenants["train-b"]
    store = AnswerStore(runtime.db)
    for i, city in enumerate(CITIES[:10]):
        contexts = [
            {
                "index": 1,
                "chunk_id": f"c{i}a",
                "doc_id": "d",
                "score": 0.9,
                "text": f"{city} codes start with ZX.",
                "cited": True,
            },
            {
                "index": 2,
                "chunk_id": f"c{i}b",
                "doc_id": "d",
                "score": 0.5,
                "text": "Opening hours are 9 to 5.",
                "cited": False,
            },
        ]
        answer_id = store.save_answer(
            "train-a", question=f"What is the code for {city}?", answer="I do not know.", rejected=False,
            contexts=contexts, template="default",
        )  # fmt: skip
        store.add_feedback(
            "train-a",
            FeedbackInput(
                answer_id=answer_id,
                rating="down",
                corrected_answer=f"The code for {city} is ZX-{i:03d} [1].",
                relevant_chunk_ids=[f"c{i}a"],
                irrelevant_chunk_ids=[f"c{i}b"],
            ),
        )
    gen, _ = await a.training.from_feedback("from-feedback", kind="generation")
    assert gen.state == "ready" and gen.record_count == 10 and gen.version == 1
    rer, _ = await a.training.from_feedback("from-feedback-rr", kind="reranking")
    assert rer.state == "ready" and rer.record_count == 10
    again, _ = await a.training.from_feedback("from-feedback", kind="generation")
    assert again.version == 2 and again.sha256 == gen.sha256  # a new version of the same name
    await expect_status(
        a.training.from_feedback("x", kind="generation", min_records=11), grpc.StatusCode.FAILED_PRECONDITION
    )
    # another tenant's feedback is never read
    details = await expect_status(
        b.training.from_feedback("mine", kind="generation"), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "0 generation record(s) from 0 feedback" in details
    # with an adapter, a job starts on the new dataset version
    ds, job = await a.training.from_feedback(
        "from-feedback", kind="generation", adapter="fb-bot", hyperparameters={"max_steps": 1}
    )
    assert (
        job is not None
        and job.raw.dataset.name == "from-feedback"
        and job.raw.dataset.version == ds.version == 3
    )
    await a.training.cancel(job.job_id)
    events = await watch_to_end(a, job.job_id)
    assert events[-1].phase == "cancelled"
    names = [x.name for x in (await a.adapters.ListAdapters(apb.ListAdaptersRequest())).adapters]
    assert "fb-bot" not in names
