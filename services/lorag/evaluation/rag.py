"""``lorag eval rag``: answer quality, grounding and negative rejection of Ask on SQuAD.

One fresh tenant of an in-process platform ingests the set's paragraphs (the normal ingest path),
then, in order:

1. **Score pass (answerable).** Each sampled question is asked with ``min_relevance=1.0`` (every
   answer is rejected, so the model is not run) and ``return_contexts``: the response carries the
   reranked passages Ask kept, with their reranker scores. The best score is the rejection signal
   Ask compares with its threshold; whether the gold paragraph is among the kept passages is
   the context recall.
2. **Generation pass.** A subset is asked for real (``min_relevance=0``: never rejected, so the
   answers do not depend on the threshold): exact match and token F1 against the gold answers
   (SQuAD's definitions, on the answer with its ``[n]`` citation markers removed), answer
   containment, citation precision (share of citations pointing at a chunk of the gold
   paragraph that contains a gold answer), context precision (share of the prompt's passages
   from the gold paragraph) and faithfulness (share of answer sentences that the judge finds
   supported by the prompt's passages).
3. **Noise robustness.** The generation model answers from the gold paragraph plus 0, 2, 4 …
   paragraphs of other articles (positions shuffled), with the same template Ask uses; answer
   containment and F1 per noise level (RGB's protocol, Chen et al. 2024).
4. **Unanswerable pass.** The gold paragraphs of other sampled questions are deleted
   (``DeleteDocuments``); a question stays only when none of its gold answers occurs in any
   remaining paragraph. Each is asked as in 1.
5. **Threshold sweep.** For thresholds 0.00 … 0.99 (step 0.01, then 0.001 and 0.0001 up to 1.00,
   where a cross-encoder's scores crowd): the share of answerable questions
   Ask would answer and of unanswerable ones it would reject; the chosen threshold maximises
   balanced accuracy (the mean of the two) while answering at least ``min_answer_rate`` of the
   answerable ones; ties go to the lower threshold.

Adapter evaluation: with ``adapter_dir`` — a peft adapter directory such as the training
pipeline registers — the adapter is uploaded into the evaluation tenant and the generation pass
runs twice, without and with it (``answers`` and ``answers_with_adapter``, same questions, same
retrieval). ``lorag eval adapter`` (:mod:`lorag.evaluation.adapter`) trains the adapter itself,
through the training pipeline, on a domain split, and compares the two on held-out domain and
general questions.

Judge of faithfulness: no NLI model ships in any package this platform can install offline, so
the judge is the platform's reranker (the cross-encoder): a sentence is supported when its best
score against the prompt's passages (sentence as the query) is at least ``judge_threshold``.
The reranker was trained for question-paragraph relevance, not entailment: it detects answers
about something else than the passages, not subtle contradictions.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from lorag.evaluation import metrics
from lorag.evaluation.data import QA, EvalSet
from lorag.evaluation.retrieval import ingest

#: 0.00 … 0.99 by 0.01, then finer towards 1: a cross-encoder's sigmoid scores crowd there.
THRESHOLDS = (
    tuple(round(i / 100, 2) for i in range(100))
    + tuple(round(0.99 + i / 1000, 3) for i in range(1, 10))
    + tuple(round(0.999 + i / 10_000, 4) for i in range(1, 10))
    + (1.0,)
)


def _best(answer) -> tuple[float, list[str]]:
    scores = [c.score for c in answer.contexts]
    return (max(scores) if scores else 0.0), [c.doc_id for c in answer.contexts]


def score_pass(client, questions: Sequence[QA]) -> list[dict]:
    """Best rerank score and kept documents of each question, as Ask computes them."""
    rows = []
    for q in questions:
        a = client.rag.ask(
            q.question, min_relevance=1.0, return_contexts=True, max_new_tokens=1, temperature=0.0
        )
        best, docs = _best(a)
        rows.append({"qid": q.qid, "best_score": best, "gold_in_context": q.gold_doc in docs})
    return rows


def reranker_judge(client) -> Callable[[str, Sequence[str]], float]:
    """judge(sentence, passages) = the reranker's best score of the sentence against them."""

    def judge(sentence: str, passages: Sequence[str]) -> float:
        if not passages:
            return 0.0
        return max(r.score for r in client.reranking.rerank(sentence, list(passages)).results)

    return judge


def generation_pass(
    client,
    questions: Sequence[QA],
    *,
    template: str,
    max_new_tokens: int,
    judge: Callable[[str, Sequence[str]], float],
    judge_threshold: float,
    adapter: str | None = None,
) -> list[dict]:
    rows = []
    for q in questions:
        started = time.perf_counter()
        a = client.rag.ask(
            q.question,
            adapter=adapter,
            min_relevance=0.0,
            return_contexts=True,
            template=template,
            max_new_tokens=max_new_tokens,
            temperature=0.0,
        )
        seconds = time.perf_counter() - started
        context = [c.text for c in a.contexts]
        plain = metrics.without_citations(a.answer)
        rows.append(
            {
                "qid": q.qid,
                "question": q.question,
                "answer": a.answer,
                "gold": list(q.answers),
                "gold_doc": q.gold_doc,
                "contexts": [c.doc_id for c in a.contexts],
                "em": metrics.exact_match(plain, q.answers),
                "f1": metrics.f1_score(plain, q.answers),
                "contained": metrics.answer_contained(plain, q.answers),
                "citation_precision": metrics.citation_precision(
                    [(c.doc_id, c.text) for c in a.citations], gold_doc=q.gold_doc, golds=q.answers
                ),
                "context_precision": metrics.context_precision(
                    [c.doc_id for c in a.contexts], gold_doc=q.gold_doc
                ),
                "gold_in_context": any(
                    c.doc_id == q.gold_doc and metrics.supports(c.text, q.answers) for c in a.contexts
                ),
                "faithfulness": metrics.faithfulness(a.answer, context, judge, threshold=judge_threshold),
                "seconds": round(seconds, 2),
            }
        )
    return rows


def answer_summary(rows: Sequence[dict], *, judge_label: str, judge_threshold: float) -> dict:
    """Means of the generation pass's per-answer figures."""

    def avg(key: str) -> float | None:
        return metrics.mean(r[key] for r in rows)

    return {
        "questions": len(rows),
        "exact_match": avg("em"),
        "f1": avg("f1"),
        "answer_contained": avg("contained"),
        "citation_precision": avg("citation_precision"),
        "answers_with_citations": sum(r["citation_precision"] is not None for r in rows),
        "context_relevance": avg("context_precision"),
        "supporting_passage_in_context": avg("gold_in_context"),
        "faithfulness": avg("faithfulness"),
        "judge": f"{judge_label}, supported when score >= {judge_threshold}",
        "mean_seconds": avg("seconds"),
    }


def noise_pass(
    client,
    evalset: EvalSet,
    questions: Sequence[QA],
    *,
    levels: Sequence[int],
    template: str,
    max_new_tokens: int,
    seed: int,
) -> list[dict]:
    """Answers from the gold paragraph plus ``level`` paragraphs of other articles."""
    from lorag.rag import templates

    tmpl = templates.lookup(template, {})
    rng = random.Random(seed)
    out = []
    for level in levels:
        contained, f1 = [], []
        for q in questions:
            gold = evalset.doc(q.gold_doc)
            others = [d for d in evalset.docs if d.article != gold.article]
            passages = [gold.text, *(d.text for d in rng.sample(others, min(level, len(others))))]
            rng.shuffle(passages)
            context = "\n\n".join(f"[{i}] {text}" for i, text in enumerate(passages, start=1))
            system, user = tmpl.render(context=context, question=q.question)
            g = client.generation.generate(
                messages=[("system", system), ("user", user)], max_new_tokens=max_new_tokens, temperature=0.0
            )
            plain = metrics.without_citations(g.text)
            contained.append(metrics.answer_contained(plain, q.answers))
            f1.append(metrics.f1_score(plain, q.answers))
        out.append(
            {
                "noise_passages": level,
                "questions": len(questions),
                "accuracy": sum(contained) / len(contained),
                "f1": sum(f1) / len(f1),
            }
        )
    return out


def unanswerable(evalset: EvalSet, questions: Sequence[QA]) -> tuple[list[str], list[QA]]:
    """(documents to delete, questions no remaining document answers)."""
    removed = {q.gold_doc for q in questions}
    remaining = [d.text for d in evalset.docs if d.doc_id not in removed]
    keep = [q for q in questions if not any(metrics.supports(text, q.answers) for text in remaining)]
    return sorted(removed), keep


def evaluate_set(
    client,
    evalset: EvalSet,
    *,
    answerable_n: int,
    unanswerable_n: int,
    generate_n: int,
    noise_n: int,
    noise_levels: Sequence[int] = (0, 2, 4),
    template: str = "concise",
    max_new_tokens: int = 48,
    judge_threshold: float = 0.5,
    min_answer_rate: float = 0.9,
    current_default: float | None = None,
    judge_label: str = "reranker",
    adapter_dir: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict:
    say = progress or (lambda _msg: None)
    rng = random.Random(seed)
    # One question per paragraph, so deleting a paragraph removes exactly one question's support.
    by_doc: dict[str, QA] = {}
    for q in evalset.questions:
        by_doc.setdefault(q.gold_doc, q)
    pool = list(by_doc.values())
    rng.shuffle(pool)
    if len(pool) < answerable_n + unanswerable_n:
        raise ValueError(
            f"{evalset.name}: {len(pool)} paragraphs with questions, need {answerable_n + unanswerable_n}"
        )
    answerable_q = pool[:answerable_n]
    unanswerable_q = pool[answerable_n : answerable_n + unanswerable_n]

    say(f"ingesting {len(evalset.docs)} paragraphs")
    ingested = ingest(client, evalset)
    say(f"score pass: {len(answerable_q)} answerable questions")
    answerable_rows = score_pass(client, answerable_q)
    judge = reranker_judge(client)
    say(f"generation pass: {min(generate_n, len(answerable_q))} questions")
    generated = generation_pass(
        client,
        answerable_q[:generate_n],
        template=template,
        max_new_tokens=max_new_tokens,
        judge=judge,
        judge_threshold=judge_threshold,
    )
    with_adapter = None
    if adapter_dir:
        version = client.adapters.upload(adapter_dir, name="eval-adapter")
        say(f"generation pass with adapter eval-adapter v{version.version}")
        with_adapter = generation_pass(
            client,
            answerable_q[:generate_n],
            template=template,
            max_new_tokens=max_new_tokens,
            judge=judge,
            judge_threshold=judge_threshold,
            adapter="eval-adapter",
        )
    say(f"noise robustness: {min(noise_n, len(answerable_q))} questions x {list(noise_levels)}")
    noise = noise_pass(
        client,
        evalset,
        answerable_q[:noise_n],
        levels=noise_levels,
        template=template,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    deleted, unanswerable_kept = unanswerable(evalset, unanswerable_q)
    client.rag.delete(deleted)
    say(f"unanswerable pass: {len(unanswerable_kept)} questions ({len(deleted)} paragraphs deleted)")
    unanswerable_rows = score_pass(client, unanswerable_kept)

    a_scores = [r["best_score"] for r in answerable_rows]
    u_scores = [r["best_score"] for r in unanswerable_rows]
    points = metrics.sweep_thresholds(a_scores, u_scores, THRESHOLDS)
    chosen = metrics.choose_threshold(points, min_answer_rate=min_answer_rate)

    def at(threshold: float) -> dict:
        (p,) = metrics.sweep_thresholds(a_scores, u_scores, [threshold])
        return {
            "threshold": threshold,
            "answer_rate": p.answer_rate,
            "negative_rejection_rate": p.rejection_rate,
            "false_rejection_rate": 1 - p.answer_rate,
            "balanced_accuracy": p.balanced_accuracy,
        }

    def summary(rows: list[dict]) -> dict:
        return answer_summary(rows, judge_label=judge_label, judge_threshold=judge_threshold)

    return {
        "set": evalset.name,
        "licence": evalset.licence,
        "documents": ingested["documents"],
        "chunks": ingested["chunks"],
        "template": template,
        "max_new_tokens": max_new_tokens,
        "answerable_questions": len(answerable_rows),
        "unanswerable_questions": len(unanswerable_rows),
        "unanswerable_dropped": len(unanswerable_q) - len(unanswerable_kept),
        "context_recall": sum(r["gold_in_context"] for r in answerable_rows) / len(answerable_rows),
        "answers": summary(generated),
        "answers_with_adapter": summary(with_adapter) if with_adapter is not None else None,
        "noise_robustness": noise,
        "rejection": {
            "chosen": at(chosen.threshold),
            "current_default": at(current_default) if current_default is not None else None,
            "min_answer_rate": min_answer_rate,
            "score_quantiles": {
                "answerable": _quantiles(a_scores),
                "unanswerable": _quantiles(u_scores),
            },
            "best_scores": {  # per question, to choose again for another answer-rate floor
                "answerable": [round(x, 6) for x in a_scores],
                "unanswerable": [round(x, 6) for x in u_scores],
            },
            "sweep": [
                {"threshold": p.threshold, "answer_rate": p.answer_rate, "rejection_rate": p.rejection_rate}
                for p in points
            ],
        },
        "examples": generated[:5],
    }


def _quantiles(values: Sequence[float]) -> dict:
    s = sorted(values)

    def q(f: float) -> float:
        return round(s[min(len(s) - 1, int(f * (len(s) - 1) + 0.5))], 4)

    return {"min": round(s[0], 4), "p10": q(0.1), "median": q(0.5), "p90": q(0.9), "max": round(s[-1], 4)}


def run(evalset: EvalSet, *, progress: Callable[[str], None] | None = None, **options) -> dict:
    """The set in a fresh in-process platform; the report (plain JSON types)."""
    from lorag.evaluation.platform import local_platform
    from lorag.rag.settings import RagSettings

    started = time.perf_counter()
    settings = RagSettings()
    with local_platform() as platform:
        probe = platform.client.reranking.rerank("probe", ["probe"])
        cosine = probe.scoring_method == "bi_encoder_cosine"
        # The setting Ask compares with this reranker's scores (README, "Ask").
        setting = "min_relevance_cosine" if cosine else "min_relevance"
        result = evaluate_set(
            platform.client,
            evalset,
            current_default=getattr(settings, setting),
            judge_label=f"reranker ({probe.scoring_method})",
            progress=progress,
            **options,
        )
    result["reranker"] = {"model": probe.model, "scoring_method": probe.scoring_method, "setting": setting}
    return {"kind": "rag", "seconds": round(time.perf_counter() - started, 1), **result}
