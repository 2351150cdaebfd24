"""``lorag eval adapter``: answers with and without a tenant adapter that the training pipeline
trains on a domain, on held-out domain questions and on general questions.

1. **Data.** The domain is one SQuAD-derived set (default ``nyt``: New York Times articles of
   SQuADShifts), the general split another (default ``dev``: the held-out Wikipedia articles of
   SQuAD v1.1 dev). The first ``domain_docs`` paragraphs of the domain set are split by paragraph
   (seeded): ``questions`` paragraphs are held out (one question of each is asked), the
   questions of the others become the training data. No held-out paragraph and no general
   article is in the training data.
2. **Index.** Every domain paragraph (training and held-out alike: they are the tenant's
   documents) and the first ``general_docs`` general paragraphs are ingested into the
   evaluation tenant through the normal ingest path.
3. **Training.** Each training question becomes a GENERATION record: Ask's prompt (the
   template's system and user messages; the passages are the gold paragraph and another
   paragraph of the domain, numbered in a seeded order) -> the gold answer with the number of
   its passage, ``"Denver Broncos [2]"``. The records are uploaded as a dataset (UploadDataset,
   with its validation report) and trained by StartTraining: the platform's own pipeline —
   validation with the base model's tokenizer, the general-data mix, LoRA, evaluation of the
   candidate against the base on held-out task records and general records, the forgetting
   gate, registration of a new version — in the host's thread runner. The command follows
   WatchTrainingJob until the job ends; a candidate the gate rejects is reported, not evaluated.
4. **Answers.** The held-out domain questions and ``questions`` general questions (one per
   paragraph) are asked through Ask twice, with the base model and with the registered version
   (``name@vN``), with the same retrieval and ``min_relevance=0`` (nothing is rejected), and
   scored like the generation pass of ``lorag eval rag`` (exact match, F1, containment, citation
   precision, context relevance, faithfulness).
5. **Verdict.** The adapter helps the domain when its F1 there is above the base model's; the
   general split holds when its F1 drops by at most ``max_general_drop`` (absolute). With a few
   dozen questions per split these are estimates: the report carries every answer.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lorag.evaluation.data import QA, EvalSet
from lorag.evaluation.rag import answer_summary, generation_pass, reranker_judge
from lorag.evaluation.retrieval import ingest

ADAPTER = "eval-domain"
DATASET = "eval-domain-qa"
WATCH_LIMIT_S = 6 * 3600.0


def split_domain(
    domain: EvalSet, *, heldout: int, seed: int
) -> tuple[list[QA], list[QA], list[str], list[str]]:
    """(training questions, held-out questions (one per held-out paragraph), training paragraph
    ids, held-out paragraph ids); a paragraph is on one side only."""
    by_doc: dict[str, list[QA]] = {}
    for q in domain.questions:
        by_doc.setdefault(q.gold_doc, []).append(q)
    docs = sorted(by_doc)
    random.Random(seed).shuffle(docs)
    if len(docs) < heldout + 2:
        raise ValueError(
            f"{domain.name}: {len(docs)} paragraphs with questions, need at least {heldout + 2} "
            f"({heldout} held out and two to train on)"
        )
    held, train = sorted(docs[:heldout]), sorted(docs[heldout:])
    rng = random.Random(seed + 1)
    heldout_q = [rng.choice(by_doc[d]) for d in held]
    train_q = [q for d in train for q in by_doc[d]]
    return train_q, heldout_q, train, held


def general_questions(general: EvalSet, *, count: int, seed: int) -> list[QA]:
    """``count`` questions of the general set, one per paragraph (seeded)."""
    by_doc: dict[str, QA] = {}
    for q in general.questions:
        by_doc.setdefault(q.gold_doc, q)
    pool = sorted(by_doc.values(), key=lambda q: q.gold_doc)
    random.Random(seed).shuffle(pool)
    if len(pool) < count:
        raise ValueError(f"{general.name}: {len(pool)} paragraphs with questions, need {count}")
    return sorted(pool[:count], key=lambda q: q.gold_doc)


def training_records(domain: EvalSet, questions: Sequence[QA], *, template: str, seed: int) -> list[dict]:
    """GENERATION records in Ask's prompt format: gold paragraph + a distractor -> cited answer."""
    from lorag.rag import templates

    tmpl = templates.lookup(template, {})
    rng = random.Random(seed)
    docs = list(domain.docs)
    out = []
    for q in questions:
        gold = domain.doc(q.gold_doc)
        same_article = [d for d in docs if d.article == gold.article and d.doc_id != gold.doc_id]
        distractor = rng.choice(same_article or [d for d in docs if d.doc_id != gold.doc_id])
        passages = [gold.text, distractor.text]
        rng.shuffle(passages)
        context = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(passages, start=1))
        system, user = tmpl.render(context=context, question=q.question)
        answer = f"{q.answers[0]} [{passages.index(gold.text) + 1}]"
        out.append(
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return out


def train_adapter(
    client,
    records: Sequence[dict],
    *,
    hyperparameters: dict,
    progress: Callable[[str], None],
) -> dict:
    """Upload the records and train them through StartTraining; the job's outcome."""
    with tempfile.TemporaryDirectory(prefix="lorag-eval-adapter-") as tmp:
        path = Path(tmp) / "domain.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        dataset = client.training.upload_dataset(path, name=DATASET, kind="generation")
    report = dataset.raw.validation
    info = {
        "dataset": {
            "name": dataset.name,
            "version": dataset.version,
            "state": dataset.state,
            "sha256": dataset.sha256,
            "records_uploaded": len(records),
            "records_valid": report.valid_records,
            "train_records": report.train_records,
            "validation_records": report.validation_records,
            "near_duplicate_records": report.near_duplicate_records,
            "too_long_records": report.too_long_records,
            "issues": [f"line {i.line}: {i.code}: {i.message}" for i in report.issues[:5]],
        }
    }
    if dataset.state != "ready":
        raise RuntimeError(f"the domain dataset failed validation: {info['dataset']['issues']}")
    started = time.perf_counter()
    job = client.training.start(
        ADAPTER, dataset=f"{dataset.name}@{dataset.version}", hyperparameters=hyperparameters
    )
    progress(f"training job {job.job_id}: {len(records)} domain records, {hyperparameters}")
    sequence, last_step = 0, -1
    deadline = time.monotonic() + WATCH_LIMIT_S
    while not job.finished and time.monotonic() < deadline:
        for event in client.training.watch(job.job_id, from_sequence=sequence):
            sequence = event.sequence
            if event.phase == "training" and event.step != last_step and event.loss is not None:
                last_step = event.step
                progress(f"  step {event.step}/{event.total_steps} loss {event.loss:.3f}")
            elif event.message:
                progress(f"  {event.phase}: {event.message}")
            if event.finished:
                break
        job = client.training.get(job.job_id)
    info["job"] = {
        "job_id": job.job_id,
        "phase": job.phase,
        "message": job.last_event.message if job.last_event else "",
        "error_message": job.error_message,
        "version": job.result_version or None,
        "version_id": job.result_version_id or None,
        "hyperparameters": hyperparameters,
        "metrics": {k: round(v, 5) for k, v in sorted(job.metrics.items())},
        "seconds": round(time.perf_counter() - started, 1),
    }
    return info


def evaluate(
    client,
    domain: EvalSet,
    general: EvalSet,
    *,
    questions: int,
    template: str = "concise",
    max_new_tokens: int = 32,
    hyperparameters: dict | None = None,
    max_general_drop: float = 0.05,
    judge_threshold: float = 0.5,
    judge_label: str = "reranker",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    say = progress or (lambda _msg: None)
    if domain.name == general.name:
        raise ValueError("the domain and the general split must be different sets")
    train_q, domain_q, train_docs, held_docs = split_domain(domain, heldout=questions, seed=seed)
    general_q = general_questions(general, count=questions, seed=seed)
    say(f"ingesting {len(domain.docs)} {domain.name} + {len(general.docs)} {general.name} paragraphs")
    ingested = {domain.name: ingest(client, domain), general.name: ingest(client, general)}
    records = training_records(domain, train_q, template=template, seed=seed)
    hp = {"seed": seed, **(hyperparameters or {})}
    training = train_adapter(client, records, hyperparameters=hp, progress=say)
    job = training["job"]
    judge = reranker_judge(client)

    def answers(qs: list[QA], adapter: str | None) -> list[dict]:
        return generation_pass(
            client,
            qs,
            template=template,
            max_new_tokens=max_new_tokens,
            judge=judge,
            judge_threshold=judge_threshold,
            adapter=adapter,
        )

    arms: dict[str, dict[str, list[dict]]] = {}
    adapter_ref = f"{ADAPTER}@v{job['version']}" if job["phase"] == "succeeded" else None
    for arm, ref in (("base", None), ("adapter", adapter_ref)):
        if arm == "adapter" and ref is None:
            say(f"no adapter arm: the job ended {job['phase']}: {job['error_message'] or job['message']}")
            continue
        arms[arm] = {}
        for split, qs in (("domain", domain_q), ("general", general_q)):
            say(f"{arm}: {len(qs)} {split} questions")
            arms[arm][split] = answers(qs, ref)

    def summary(rows: list[dict]) -> dict:
        return answer_summary(rows, judge_label=judge_label, judge_threshold=judge_threshold)

    result: dict = {
        "domain": {
            "set": domain.name,
            "licence": domain.licence,
            "documents": len(domain.docs),
            "chunks": ingested[domain.name]["chunks"],
            "train_paragraphs": len(train_docs),
            "heldout_paragraphs": len(held_docs),
            "train_questions": len(train_q),
            "questions": len(domain_q),
            "train_paragraph_ids": train_docs,
            "heldout_paragraph_ids": held_docs,
        },
        "general": {
            "set": general.name,
            "licence": general.licence,
            "documents": len(general.docs),
            "chunks": ingested[general.name]["chunks"],
            "questions": len(general_q),
        },
        "template": template,
        "max_new_tokens": max_new_tokens,
        "training": training,
        "adapter": adapter_ref,
        "summary": {arm: {split: summary(rows) for split, rows in by.items()} for arm, by in arms.items()},
        "answers": arms,
        "max_general_drop": max_general_drop,
        "deltas": None,
        "verdict": None,
    }
    if "adapter" in arms:
        s = result["summary"]
        deltas = {
            split: {
                key: _delta(s["adapter"][split][key], s["base"][split][key])
                for key in ("exact_match", "f1", "answer_contained", "citation_precision", "faithfulness")
            }
            for split in ("domain", "general")
        }
        result["deltas"] = deltas
        result["verdict"] = {
            "helps_domain": deltas["domain"]["f1"] > 0,
            "general_within_tolerance": deltas["general"]["f1"] >= -max_general_drop,
            "rule": f"domain F1 above the base's; general F1 at most {max_general_drop} below it",
        }
    return result


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 4)


def run(
    domain: EvalSet,
    general: EvalSet,
    *,
    max_seq_length: int = 512,
    progress: Callable[[str], None] | None = None,
    **options,
) -> dict:
    """Both sets in a fresh in-process platform; the report (plain JSON types)."""
    from lorag.evaluation.platform import _env, local_platform

    started = time.perf_counter()
    # Ask's prompts hold two passages: the job's sequence limit must fit them (read when the
    # platform's training service starts, i.e. on the first training call).
    with _env({"LORAG_TRAINING_MAX_SEQ_LENGTH": str(max_seq_length)}), local_platform() as platform:
        probe = platform.client.reranking.rerank("probe", ["probe"])
        result = evaluate(
            platform.client,
            domain,
            general,
            judge_label=f"reranker ({probe.scoring_method})",
            progress=progress,
            **options,
        )
    result["reranker"] = {"model": probe.model, "scoring_method": probe.scoring_method}
    result["max_seq_length"] = max_seq_length
    return {"kind": "adapter", "seconds": round(time.perf_counter() - started, 1), **result}
