"""SQuAD-derived evaluation sets, BEIR style: each paragraph is a document, each question a
query whose single relevant document is its paragraph; its gold answers are kept for RAG.

``dev``: the held-out articles of SQuAD v1.1 dev (one in four by title hash, the split the
default reranker was *not* trained on). ``nyt`` / ``new_wiki``: SQuADShifts sets (no article of
them was ever trained on). Subsets are deterministic: the first ``max_docs`` paragraphs in file
order, then ``max_questions`` questions of those paragraphs sampled with ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lorag.datasets import squad

SETS = ("dev", "nyt", "new_wiki")


@dataclass(frozen=True)
class Doc:
    doc_id: str
    text: str
    article: str


@dataclass(frozen=True)
class QA:
    qid: str
    question: str
    gold_doc: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class EvalSet:
    name: str
    docs: tuple[Doc, ...]
    questions: tuple[QA, ...]
    licence: str

    def doc(self, doc_id: str) -> Doc:
        return self._by_id()[doc_id]

    def _by_id(self) -> dict[str, Doc]:
        cache = self.__dict__.get("_index")
        if cache is None:
            cache = {d.doc_id: d for d in self.docs}
            object.__setattr__(self, "_index", cache)
        return cache


def load_set(
    name: str,
    *,
    max_docs: int = 0,
    max_questions: int = 0,
    seed: int = 0,
    cache_dir: Path | None = None,
) -> EvalSet:
    """The evaluation set ``name`` (see :data:`SETS`); 0 = no limit."""
    if name not in SETS:
        raise ValueError(f"unknown evaluation set {name!r}; known: {', '.join(SETS)}")
    articles = squad.load(name, cache_dir)
    if name == "dev":
        _, articles = squad.split_articles(articles)
    docs: list[Doc] = []
    questions: list[QA] = []
    for a, article in enumerate(articles):
        for p, paragraph in enumerate(article.paragraphs):
            if max_docs and len(docs) >= max_docs:
                break
            doc_id = f"{name}-{a:04d}-{p:03d}"
            docs.append(Doc(doc_id, paragraph.context, article.title))
            questions.extend(
                QA(q.id, q.text, doc_id, q.answers)
                for q in paragraph.questions
                if q.text.strip() and q.answers
            )
    if max_questions and len(questions) > max_questions:
        questions = sorted(random.Random(seed).sample(questions, max_questions), key=lambda q: q.gold_doc)
    licence = squad.LICENSE if name == "dev" else squad.SHIFTS_LICENSE
    return EvalSet(name, tuple(docs), tuple(questions), licence)
