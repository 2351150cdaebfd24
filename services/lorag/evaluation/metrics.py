"""Metric functions of the evaluation harness, pure Python (no model, no I/O).

Ranking: nDCG@k, MRR@k and recall@k over ranked doc ids with graded relevance. Answers: SQuAD's
exact match and token F1 (the official v1.1 normalisation: lower case, no punctuation, no articles
a/an/the, single spaces; the best score over the gold answers). RAG: citation precision, context
precision/recall, faithfulness with a pluggable judge, negative rejection and the threshold sweep.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

# ---- ranking ------------------------------------------------------------------------------------


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the first ``k`` ranked ids (gain = grade)."""
    dcg = sum(relevant.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    """Reciprocal rank of the first relevant id within the first ``k``, else 0."""
    for i, d in enumerate(ranked[:k]):
        if relevant.get(d, 0.0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float:
    """Share of the relevant ids found within the first ``k`` (0 when nothing is relevant)."""
    wanted = {d for d, g in relevant.items() if g > 0}
    if not wanted:
        return 0.0
    return len(wanted & set(ranked[:k])) / len(wanted)


def unique_docs(doc_ids: Iterable[str]) -> list[str]:
    """Doc ids in rank order, each once (its best-ranked chunk)."""
    seen: dict[str, None] = {}
    for d in doc_ids:
        seen.setdefault(d, None)
    return list(seen)


# ---- answers (SQuAD v1.1 official definitions) --------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Token-overlap F1 against the best-matching gold answer."""
    return max((_f1(prediction, g) for g in golds), default=0.0)


_CITATIONS = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")


def without_citations(text: str) -> str:
    """The answer with its citation markers (``[1]``, ``[2][3]``, ``[1, 2]``) removed: what exact
    match and F1 compare with the gold answers (citations are scored on their own)."""
    return " ".join(_CITATIONS.sub("", text).split())


def answer_contained(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when a normalised gold answer occurs, on word boundaries, in the normalised prediction
    (the lenient accuracy of long-form answers, as in RGB's noise-robustness test)."""
    p = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(g) and f" {normalize_answer(g)} " in p for g in golds))


# ---- RAG ------------------------------------------------------------------------------------------


def supports(passage_text: str, golds: Sequence[str]) -> bool:
    """Whether a passage contains a gold answer (normalised, on word boundaries)."""
    return bool(answer_contained(passage_text, golds))


def citation_precision(
    cited: Sequence[tuple[str, str]], *, gold_doc: str, golds: Sequence[str]
) -> float | None:
    """Share of citations ``(doc_id, chunk text)`` that point at the supporting passage: a chunk
    of the gold document that contains a gold answer. None when the answer cites nothing."""
    if not cited:
        return None
    good = sum(1 for doc, text in cited if doc == gold_doc and supports(text, golds))
    return good / len(cited)


def context_precision(contexts: Sequence[str], *, gold_doc: str) -> float | None:
    """Share of the passages put in the prompt that come from the gold document (None if none)."""
    if not contexts:
        return None
    return sum(1 for doc in contexts if doc == gold_doc) / len(contexts)


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_MARKER = re.compile(r"\s*\[\d+\]")


def sentences(text: str) -> list[str]:
    """Answer sentences (citation markers removed, empty ones dropped)."""
    out = []
    for s in _SENTENCE.split(text.strip()):
        s = _MARKER.sub("", s).strip()
        if re.search(r"\w", s):
            out.append(s)
    return out


def faithfulness(
    answer: str, context: Sequence[str], judge: Callable[[str, Sequence[str]], float], *, threshold: float
) -> float | None:
    """Share of answer sentences the judge finds supported by the context: a sentence counts when
    ``judge(sentence, context) >= threshold``. None for an empty answer."""
    parts = sentences(answer)
    if not parts:
        return None
    return sum(1 for s in parts if judge(s, context) >= threshold) / len(parts)


@dataclass(frozen=True)
class ThresholdPoint:
    """One threshold of the sweep: answerable questions kept, unanswerable ones rejected."""

    threshold: float
    answer_rate: float  # answerable questions that pass (best score >= threshold)
    rejection_rate: float  # unanswerable questions rejected (best score < threshold)

    @property
    def balanced_accuracy(self) -> float:
        return (self.answer_rate + self.rejection_rate) / 2


def sweep_thresholds(
    answerable: Sequence[float], unanswerable: Sequence[float], thresholds: Sequence[float]
) -> list[ThresholdPoint]:
    """Rates at each threshold, from the best rerank score of each question."""
    if not answerable or not unanswerable:
        raise ValueError("the sweep needs answerable and unanswerable questions")
    return [
        ThresholdPoint(
            threshold=t,
            answer_rate=sum(1 for s in answerable if s >= t) / len(answerable),
            rejection_rate=sum(1 for s in unanswerable if s < t) / len(unanswerable),
        )
        for t in thresholds
    ]


def choose_threshold(points: Sequence[ThresholdPoint], *, min_answer_rate: float = 0.0) -> ThresholdPoint:
    """The point of highest balanced accuracy among those keeping at least ``min_answer_rate`` of
    the answerable questions; ties go to the lowest threshold (reject as little as possible)."""
    allowed = [p for p in points if p.answer_rate >= min_answer_rate] or list(points)
    return max(allowed, key=lambda p: (round(p.balanced_accuracy, 9), -p.threshold))


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None
