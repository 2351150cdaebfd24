"""Metric functions of the evaluation harness on hand-computed cases."""

import math

import pytest

from lorag.evaluation import metrics as m


def test_ndcg_single_relevant_doc_is_one_over_log2_of_rank_plus_one():
    rel = {"gold": 1.0}
    assert m.ndcg_at_k(["gold", "x", "y"], rel) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x", "gold"], rel) == pytest.approx(1 / math.log2(3))  # 0.6309
    assert m.ndcg_at_k(["x", "y", "z", "gold"], rel) == pytest.approx(1 / math.log2(5))  # 0.4307
    assert m.ndcg_at_k([f"d{i}" for i in range(10)] + ["gold"], rel, k=10) == 0.0
    assert m.ndcg_at_k([], rel) == 0.0


def test_ndcg_graded_against_the_ideal_order():
    rel = {"a": 3.0, "b": 1.0}
    # DCG = 1/log2(2) + 3/log2(3) = 1 + 1.8928 = 2.8928; IDCG = 3 + 1/log2(3) = 3.6309
    assert m.ndcg_at_k(["b", "a"], rel) == pytest.approx((1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))
    assert m.ndcg_at_k(["a", "b"], rel) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x"], {}) == 0.0


def test_mrr_and_recall_at_k():
    rel = {"a": 1.0, "b": 1.0}
    assert m.mrr_at_k(["x", "y", "b", "a"], rel) == pytest.approx(1 / 3)
    assert m.mrr_at_k(["x", "y", "b"], rel, k=2) == 0.0
    assert m.recall_at_k(["a", "x", "y"], rel, k=3) == 0.5
    assert m.recall_at_k(["a", "x", "b"], rel, k=2) == 0.5
    assert m.recall_at_k(["a", "x", "b"], rel, k=3) == 1.0
    assert m.recall_at_k(["a"], {}) == 0.0
    assert m.unique_docs(["a", "a", "b", "a", "c"]) == ["a", "b", "c"]


def test_squad_normalisation_exact_match_and_f1():
    assert m.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert m.exact_match("the eiffel tower.", ["Eiffel Tower"]) == 1.0
    assert m.exact_match("Eiffel", ["Eiffel Tower"]) == 0.0
    # prediction "eiffel tower in paris" vs gold "eiffel tower": overlap 2, P = 2/4, R = 2/2 -> F1 = 2/3
    assert m.f1_score("Eiffel Tower in Paris", ["Eiffel Tower"]) == pytest.approx(2 / 3)
    # best over golds: vs "1889" F1 = 0; vs "in 1889" overlap 1, P = 1/1, R = 1/2 -> 2/3
    assert m.f1_score("1889", ["the tower", "in 1889"]) == pytest.approx(2 / 3)
    assert m.f1_score("", ["x"]) == 0.0
    assert m.f1_score("x", []) == 0.0


def test_answer_contained_respects_word_boundaries():
    assert m.answer_contained("It opened in 1889, they say.", ["1889"]) == 1.0
    assert m.answer_contained("It opened in 18890.", ["1889"]) == 0.0
    assert m.answer_contained("Denver Broncos won", ["the Denver Broncos"]) == 1.0
    assert m.answer_contained("anything", [""]) == 0.0


def test_citation_precision_needs_the_gold_doc_and_its_answer():
    golds = ["Denver Broncos"]
    cited = [
        ("p1", "The Denver Broncos won Super Bowl 50."),  # right doc, contains the answer
        ("p1", "The game was played in Santa Clara."),  # right doc, other chunk: no answer
        ("p2", "The Denver Broncos are a team."),  # contains it, wrong doc
        ("p3", "Unrelated."),
    ]
    assert m.citation_precision(cited, gold_doc="p1", golds=golds) == 0.25
    assert m.citation_precision(cited[:1], gold_doc="p1", golds=golds) == 1.0
    assert m.citation_precision([], gold_doc="p1", golds=golds) is None


def test_context_precision():
    assert m.context_precision(["p1", "p2", "p1", "p3"], gold_doc="p1") == 0.5
    assert m.context_precision([], gold_doc="p1") is None


def test_sentences_drop_markers_and_faithfulness_counts_supported_ones():
    answer = "Paris is the capital [1]. It has 2 million people [2]! Bananas are blue."
    assert m.sentences(answer) == ["Paris is the capital.", "It has 2 million people!", "Bananas are blue."]

    def judge(sentence, context):  # supported when a context mentions the sentence's first word
        return 1.0 if any(sentence.split()[0] in c for c in context) else 0.0

    context = ["Paris is the capital of France.", "It has about 2 million inhabitants."]
    assert m.faithfulness(answer, context, judge, threshold=0.5) == pytest.approx(2 / 3)
    assert m.faithfulness("  ", context, judge, threshold=0.5) is None


def test_threshold_sweep_and_choice():
    answerable = [0.9, 0.8, 0.6, 0.2]
    unanswerable = [0.1, 0.3, 0.7]
    points = m.sweep_thresholds(answerable, unanswerable, [0.0, 0.25, 0.5, 0.75, 1.0])
    got = [(p.threshold, p.answer_rate, round(p.rejection_rate, 4)) for p in points]
    assert got == [
        (0.0, 1.0, 0.0),
        (0.25, 0.75, 0.3333),
        (0.5, 0.75, 0.6667),
        (0.75, 0.5, 1.0),
        (1.0, 0.0, 1.0),
    ]
    best = m.choose_threshold(points)  # balanced accuracy: .5, .5417, .7083, .75, .5
    assert best.threshold == 0.75 and best.balanced_accuracy == pytest.approx(0.75)
    assert m.choose_threshold(points, min_answer_rate=0.7).threshold == 0.5
    # ties go to the lower threshold
    tie = m.sweep_thresholds([0.9], [0.1], [0.2, 0.5, 0.8])
    assert m.choose_threshold(tie).threshold == 0.2
    with pytest.raises(ValueError):
        m.sweep_thresholds([], [0.1], [0.5])


def test_mean_skips_missing_values():
    assert m.mean([1.0, None, 0.0]) == 0.5
    assert m.mean([None]) is None


def test_unanswerable_questions_keep_only_those_no_remaining_paragraph_answers():
    from lorag.evaluation.data import QA, Doc, EvalSet
    from lorag.evaluation.rag import unanswerable

    docs = (
        Doc("d1", "The Broncos won Super Bowl 50 in Santa Clara.", "a"),
        Doc("d2", "Santa Clara hosted the game at Levi's Stadium.", "a"),
        Doc("d3", "Warsaw is the capital of Poland.", "b"),
    )
    q1 = QA("q1", "Where was Super Bowl 50 played?", "d1", ("Santa Clara",))  # d2 still says it
    q2 = QA("q2", "What is the capital of Poland?", "d3", ("Warsaw",))  # nothing else does
    evalset = EvalSet("t", docs, (q1, q2), "test")
    deleted, kept = unanswerable(evalset, [q1, q2])
    assert deleted == ["d1", "d3"]
    assert kept == [q2]


def test_rag_report_renders_table_and_chart(tmp_path):
    from rich.console import Console

    from lorag.evaluation import report

    point = {
        "threshold": 0.4,
        "answer_rate": 0.9,
        "negative_rejection_rate": 0.7,
        "false_rejection_rate": 0.1,
        "balanced_accuracy": 0.8,
    }
    answers = {
        "questions": 2,
        "exact_match": 0.5,
        "f1": 0.6,
        "answer_contained": 1.0,
        "citation_precision": None,
        "answers_with_citations": 0,
        "context_relevance": 0.2,
        "supporting_passage_in_context": 1.0,
        "faithfulness": 0.5,
        "judge": "reranker",
        "mean_seconds": 1.0,
    }
    rep = {
        "set": "dev",
        "documents": 10,
        "answerable_questions": 10,
        "unanswerable_questions": 10,
        "context_recall": 0.9,
        "answers": answers,
        "answers_with_adapter": answers,
        "noise_robustness": [{"noise_passages": 0, "questions": 2, "accuracy": 1.0, "f1": 0.5}],
        "reranker": {"scoring_method": "cross_encoder"},
        "rejection": {
            "chosen": point,
            "current_default": {**point, "threshold": 0.3},
            "sweep": [
                {"threshold": t / 10, "answer_rate": 1 - t / 10, "rejection_rate": t / 10} for t in range(11)
            ],
        },
    }
    console = Console(record=True, width=140)
    console.print(report.rag_table(rep))
    text = console.export_text()
    assert "citation precision" in text and "n/a" in text and "chosen threshold 0.4:" in text
    assert "with adapter: F1" in text
    path = report.rag_chart(rep, tmp_path / "rag.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_exact_match_and_f1_compare_the_answer_without_citation_markers():
    assert m.without_citations("Denver Broncos [2].") == "Denver Broncos."
    assert m.without_citations("It was [1][3] in 1889 [2, 4]") == "It was in 1889"
    assert m.exact_match(m.without_citations("the Denver Broncos [1]"), ["Denver Broncos"]) == 1.0
    assert m.exact_match("the Denver Broncos [1]", ["Denver Broncos"]) == 0.0  # "1" is a token
    assert m.without_citations("see [a] and [1234]") == "see [a] and [1234]"


def _domain_set():
    from lorag.evaluation.data import QA, Doc, EvalSet

    docs = tuple(Doc(f"d{i}", f"paragraph {i} about topic {i // 2}", f"article {i // 2}") for i in range(6))
    questions = tuple(
        QA(f"q{i}-{k}", f"question {k} on {i}?", f"d{i}", (f"answer {i}-{k}",))
        for i in range(6)
        for k in range(3)
    )
    return EvalSet("dom", docs, questions, "test")


def test_domain_split_keeps_each_paragraph_on_one_side():
    from lorag.evaluation.adapter import split_domain

    evalset = _domain_set()
    train_q, heldout_q, train_docs, held_docs = split_domain(evalset, heldout=2, seed=3)
    assert len(held_docs) == 2 and len(train_docs) == 4 and not set(train_docs) & set(held_docs)
    assert [q.gold_doc for q in heldout_q] == held_docs  # one question per held-out paragraph
    assert {q.gold_doc for q in train_q} == set(train_docs) and len(train_q) == 12
    assert split_domain(evalset, heldout=2, seed=3)[1] == heldout_q  # seeded
    with pytest.raises(ValueError, match="need at least 7"):
        split_domain(evalset, heldout=5, seed=0)


def test_training_records_are_asks_prompt_with_the_cited_gold_answer():
    from lorag.evaluation.adapter import training_records
    from lorag.rag import templates

    evalset = _domain_set()
    questions = [q for q in evalset.questions if q.gold_doc in ("d0", "d3")]
    records = training_records(evalset, questions, template="concise", seed=0)
    assert len(records) == len(questions)
    system = templates.BUILTIN["concise"].system
    for q, r in zip(questions, records, strict=True):
        (s, role_s), (u, role_u), (a, role_a) = ((x["content"], x["role"]) for x in r["messages"])
        assert (role_s, role_u, role_a) == ("system", "user", "assistant") and s == system
        gold = evalset.doc(q.gold_doc).text
        context = u.removeprefix("Passages:\n").split("\n\nQuestion: ")[0]
        passages = dict(p.split(" ", 1) for p in context.split("\n\n"))  # "[n]" -> text
        assert sorted(passages) == ["[1]", "[2]"] and gold in passages.values()
        number = next(k for k, v in passages.items() if v == gold)
        assert a == f"{q.answers[0]} {number}"
        assert u.endswith(f"Question: {q.question}\nShort answer with citations:")
        distractor = next(v for v in passages.values() if v != gold)
        assert distractor.split()[-1] == gold.split()[-1]  # another paragraph of the same article


def test_adapter_report_renders_table_and_chart(tmp_path):
    from rich.console import Console

    from lorag.evaluation import report

    def arm(f1):
        return {
            "questions": 3,
            "exact_match": f1 / 2,
            "f1": f1,
            "answer_contained": f1,
            "citation_precision": None,
            "faithfulness": 0.5,
        }

    rep = {
        "domain": {"set": "nyt", "train_questions": 40, "train_paragraphs": 8},
        "general": {"set": "dev"},
        "training": {
            "job": {
                "phase": "succeeded",
                "message": "registered eval-domain v1",
                "metrics": {
                    "task_loss": 0.5,
                    "base_task_loss": 2.0,
                    "general_loss": 1.1,
                    "base_general_loss": 1.0,
                },
            }
        },
        "summary": {
            "base": {"domain": arm(0.2), "general": arm(0.3)},
            "adapter": {"domain": arm(0.6), "general": arm(0.28)},
        },
        "deltas": {
            "domain": {
                "exact_match": 0.2,
                "f1": 0.4,
                "answer_contained": 0.4,
                "citation_precision": None,
                "faithfulness": 0.0,
            },
            "general": {
                "exact_match": -0.01,
                "f1": -0.02,
                "answer_contained": -0.02,
                "citation_precision": None,
                "faithfulness": 0.0,
            },
        },
        "verdict": {"helps_domain": True, "general_within_tolerance": True, "rule": "domain F1 up"},
    }
    console = Console(record=True, width=160)
    console.print(report.adapter_table(rep))
    text = console.export_text()
    assert "nyt held out (3 q)" in text and "+0.400" in text and "-0.020" in text and "n/a" in text
    assert "held-out task loss" in text and "helps domain: True" in text
    assert report.adapter_chart(rep, tmp_path / "adapter.png").read_bytes()[:4] == b"\x89PNG"
    rep["summary"].pop("adapter")
    rep.update(deltas=None, verdict=None)
    console.print(report.adapter_table(rep))  # a job the gate rejected: the base arm only
    assert report.adapter_chart(rep, tmp_path / "base.png").exists()
