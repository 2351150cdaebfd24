"""Dataset validation, the deterministic split, the general-data mix and the evaluation gates."""

from __future__ import annotations

import json

import pytest

from lorag.common.errors import FailedPrecondition, InvalidArgument
from lorag.training import evaluation, general, trainer, validation
from lorag.training.settings import TrainingSettings

SETTINGS = TrainingSettings(min_records=4)


def jsonl(*records) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def qa(i: int) -> dict:
    return {"prompt": f"question number {i} about topic {i * 13}?", "completion": f"answer {i} is {i * 17}"}


class CharTokenizer:
    """One token per character, or per word; unknown words map to id 0 (the unk token)."""

    unk_token_id = 0
    eos_token_id = bos_token_id = pad_token_id = 1

    def __init__(self, per_char: bool = False, vocab: set[str] | None = None) -> None:
        self.per_char = per_char
        self.vocab = vocab

    def __call__(self, texts, add_special_tokens=False):
        out = []
        for t in texts:
            if self.per_char:
                out.append([2] * len(t))
            else:
                out.append([0 if self.vocab is not None and w not in self.vocab else 2 for w in t.split()])
        return {"input_ids": out}


def test_schema_errors_are_reported_with_line_numbers():
    data = jsonl(
        qa(1),
        "{not json",
        {"prompt": "only a prompt"},
        {"prompt": 3, "completion": "x"},
        [1, 2],
        {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]},
        {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]},
        qa(2),
    )
    report = validation.validate(data, "generation", settings=SETTINGS).report
    codes = {i.line: i.code for i in report.issues if i.line}
    assert codes == {
        2: "invalid_json",
        3: "missing_field",
        4: "wrong_type",
        5: "not_object",
        6: "bad_role",
        7: "bad_role",
    }
    assert report.malformed_records == 6 and report.total_records == 8 and not report.valid
    assert "malformed" in report.failure


def test_empty_too_long_and_duplicates_are_dropped_but_do_not_fail():
    settings = TrainingSettings(min_records=4, max_record_chars=200)
    records = [qa(i) for i in range(10)]
    records.append({"prompt": "  ", "completion": "x"})  # line 11: empty
    records.append({"prompt": "y" * 300, "completion": "x"})  # line 12: too long
    records.append(qa(3))  # line 13: exact duplicate of line 4
    near = dict(qa(5))
    near["completion"] = near["completion"] + "."  # line 14: same words as line 6
    records.append(near)
    checked = validation.validate(jsonl(*records), "generation", settings=settings)
    r = checked.report
    by_line = {i.line: i.code for i in r.issues if i.line}
    assert by_line == {11: "empty", 12: "too_long", 13: "duplicate", 14: "near_duplicate"}
    assert r.valid and r.valid_records == 10 and r.duplicate_records == 2 and r.near_duplicate_records == 1
    assert r.train_records + r.validation_records == 10 and len(checked.validation) == r.validation_records


def test_near_duplicates_need_high_similarity():
    a = "the quick brown fox jumps over the lazy dog near the river bank today"
    assert validation.near_duplicates([a, a.replace("today", "tonight")], 0.8) == {1: 0}
    assert (
        validation.near_duplicates([a, "a completely different sentence about training adapters"], 0.5) == {}
    )


def test_records_sharing_context_passages_but_not_answers_are_not_near_duplicates():
    """RAG-style records: the same long passages, a different question and answer each."""
    passages = " ".join(f"passage sentence {i} says that item {i} weighs {i * 7} grams." for i in range(40))
    records = [
        {"prompt": f"{passages}\nQuestion: how much does item {i} weigh?", "completion": f"{i * 7} grams [1]"}
        for i in range(12)
    ]
    texts = [r["prompt"] + "\n" + r["completion"] for r in records]
    assert len(validation.near_duplicates(texts, 0.9)) == 11  # on the whole text alone: all alike
    checked = validation.validate(jsonl(*records), "generation", settings=SETTINGS)
    assert checked.report.near_duplicate_records == 0 and checked.report.valid_records == 12
    again = dict(records[3], prompt=records[3]["prompt"].replace("how much", "how much, roughly,"))
    checked = validation.validate(jsonl(*records, again), "generation", settings=SETTINGS)
    assert checked.report.near_duplicate_records == 1  # same passages, same answer: a duplicate
    (issue,) = [i for i in checked.report.issues if i.code == "near_duplicate"]
    assert issue.line == 13 and "answer as line 4" in issue.message


def test_split_is_deterministic_keeps_prompt_groups_together_and_never_overlaps():
    records = [qa(i) for i in range(40)]
    records += [{"prompt": qa(i)["prompt"], "completion": f"another answer {i}"} for i in range(0, 40, 4)]
    first = validation.validate(jsonl(*records), "generation", settings=SETTINGS)
    shuffled = list(reversed(records))
    second = validation.validate(jsonl(*shuffled), "generation", settings=SETTINGS)
    keys = lambda rs: sorted(validation.normalize(r.key) for r in rs)  # noqa: E731
    assert keys(first.validation) == keys(second.validation) and first.validation
    assert validation.overlap(first.train, first.validation) == 0
    assert first.report.overlap_records == 0
    assert len(first.validation) >= 0.1 * len(records)


def test_too_few_records_or_one_prompt_fail():
    assert not validation.validate(jsonl(qa(1), qa(2)), "generation", settings=SETTINGS).report.valid
    same = [{"prompt": "same?", "completion": f"answer {i} {'x ' * i}"} for i in range(6)]
    report = validation.validate(jsonl(*same), "generation", settings=SETTINGS).report
    assert not report.valid and "validation" in report.failure


def test_reranking_records():
    rows = [
        {"query": f"q{i} about {i * 3}", "positive": f"pos text {i}", "negative": [f"neg {i}", f"other {i}"]}
        for i in range(8)
    ]
    rows.append({"query": "q", "positive": "p", "negative": []})  # line 9
    rows.append({"query": "q", "positive": "p"})  # line 10
    checked = validation.validate(jsonl(*rows), "reranking", settings=SETTINGS)
    codes = {i.line: i.code for i in checked.report.issues if i.line}
    assert codes == {9: "wrong_type", 10: "missing_field"}
    assert checked.train[0].negatives and checked.train[0].kind == "reranking"


def test_tokenizer_checks_lengths_unknown_tokens_and_language():
    settings = TrainingSettings(min_records=4, max_record_tokens=12)
    records = [qa(i) for i in range(8)] + [{"prompt": "word " * 20, "completion": "x"}]
    r = validation.validate(
        jsonl(*records), "generation", settings=settings, tokenizer=CharTokenizer(), tokenizer_name="t"
    ).report
    assert r.too_long_records == 1 and r.token_lengths["max"] <= 12 and r.tokenizer == "t"
    assert r.valid
    unknown = validation.validate(
        jsonl(*records[:8]),
        "generation",
        settings=settings,
        tokenizer=CharTokenizer(vocab={"question"}),
        tokenizer_name="t",
    ).report
    assert not unknown.valid and unknown.unknown_token_share > 0.5 and "unknown" in unknown.failure
    foreign = [{"prompt": f"这是第{i}个问题吗", "completion": f"这是答案{i}"} for i in range(8)]
    lang = validation.validate(
        jsonl(*foreign),
        "generation",
        settings=SETTINGS,
        tokenizer=CharTokenizer(per_char=True),
        tokenizer_name="t",
    ).report
    assert not lang.valid and lang.low_coverage_share == 1.0 and "language" in lang.failure


def test_report_round_trips_through_json():
    r = validation.validate(jsonl(*[qa(i) for i in range(8)]), "generation", settings=SETTINGS).report
    again = validation.Report.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r


def test_general_mix_ratio_and_determinism():
    assert general.general_count(80, 0.2) == 20  # 20 of 100 examples are general
    assert general.general_count(80, 0.0) == 0
    task = [
        validation.Record(line=i, kind="generation", messages=(("user", f"q{i}"), ("assistant", "a")))
        for i in range(8)
    ]
    gen = [
        validation.Record(line=0, kind="generation", messages=(("user", f"g{i}"), ("assistant", "b")))
        for i in range(2)
    ]
    assert general.mix(task, gen, seed=3) == general.mix(task, gen, seed=3)
    assert sorted(r.messages[0][1] for r in general.mix(task, gen, seed=3)) == sorted(
        [f"q{i}" for i in range(8)] + ["g0", "g1"]
    )


def test_general_corpus_records_from_squad_articles():
    from lorag.datasets.squad import Article, Paragraph, Question

    def article(title, n):
        return Article(
            title,
            tuple(
                Paragraph(
                    f"{title} fact {k}. The answer {k} is here. Another sentence.",
                    (Question(f"{title}{k}", f"what is {title} {k}?", (f"answer {k}",)),),
                )
                for k in range(n)
            ),
        )

    corpus = general.GeneralCorpus(loader=lambda: [article(f"T{i}", 3) for i in range(12)])
    gen = corpus.train_records("generation", 5, seed=1)
    assert len(gen) == 5 and all(r.messages[1][1].startswith("The answer") for r in gen)
    rer = corpus.eval_records("reranking", 4)
    assert rer and all(r.positive != r.negatives[0] for r in rer)
    with pytest.raises(FailedPrecondition):
        general.GeneralCorpus("none").train_records("generation", 1, seed=0)


def test_hyperparameter_defaults_and_ranges():
    hp = trainer.check_hyperparameters("generation", seed=5)
    assert (hp.rank, hp.alpha, hp.dropout, hp.learning_rate, hp.epochs, hp.batch_size) == (
        8,
        16.0,
        0.05,
        2e-4,
        3,
        8,
    )
    assert hp.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj") and hp.general_data_ratio == 0.2
    assert trainer.check_hyperparameters("reranking", seed=1).target_modules == ("query", "key", "value")
    for bad in ({"rank": 65}, {"alpha": -1.0}, {"dropout": 0.6}, {"learning_rate": 0.02},
                {"epochs": 21}, {"batch_size": 257}, {"general_data_ratio": 0.91},
                {"target_modules": ["query"]}):  # fmt: skip
        with pytest.raises(InvalidArgument) as info:
            trainer.check_hyperparameters("generation", **bad)
        assert next(iter(bad)) in str(info.value)
    assert trainer.total_steps(20, trainer.Hyperparameters(batch_size=8, epochs=2)) == 6
    assert trainer.total_steps(20, trainer.Hyperparameters(batch_size=8, epochs=2, max_steps=4)) == 4


def test_evaluation_gates():
    ok = {"task_loss": 0.5, "base_task_loss": 2.0, "general_loss": 2.05, "base_general_loss": 2.0}
    kw = {"min_task_improvement": 0.0, "generation_tolerance": 0.05, "reranking_tolerance": 0.02}
    assert evaluation.gate("generation", ok, **kw).passed
    assert not evaluation.gate("generation", {**ok, "task_loss": 2.1}, **kw).passed
    forgot = evaluation.gate("generation", {**ok, "general_loss": 2.2}, **kw)
    assert not forgot.passed and "forgetting" in forgot.reason
    r = {"task_ndcg_at_10": 0.9, "base_task_ndcg_at_10": 0.7, "task_loss": 0.1, "base_task_loss": 0.5,
         "general_ndcg_at_10": 0.8, "base_general_ndcg_at_10": 0.81}  # fmt: skip
    assert evaluation.gate("reranking", r, **kw).passed
    assert not evaluation.gate("reranking", {**r, "task_ndcg_at_10": 0.6}, **kw).passed
    assert not evaluation.gate("reranking", {**r, "task_ndcg_at_10": 0.7, "task_loss": 0.6}, **kw).passed
    tie = {**r, "task_ndcg_at_10": 1.0, "base_task_ndcg_at_10": 1.0}  # perfect base: lower loss wins
    assert evaluation.gate("reranking", tie, **kw).passed
    assert not evaluation.gate("reranking", {**r, "general_ndcg_at_10": 0.7}, **kw).passed
