"""Ranking evaluation on SQuAD: BM25, nDCG@k, and the candidate pools rerankers are judged on.

Pure Python + numpy. The held-out protocol: every question of a held-out article is a query whose
only relevant passage is its gold paragraph; each method ranks the same candidate pool (the gold
paragraph and the hardest other paragraphs of the same article, taken alternately from BM25's and
the bi-encoder's ranking), and nDCG@10 is averaged over the questions.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lorag.datasets.squad import Article

_WORD = re.compile(r"\w+")
STOPWORDS = frozenset(
    "a an and are as at be by did do does for from how in is it its of on or that the these this those "
    "to was were what when where which who whom why with".split()
)


def terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25:
    """Okapi BM25 over a small corpus (k1 = 1.2, b = 0.75)."""

    def __init__(self, docs: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tfs = [Counter(terms(d)) for d in docs]
        self.lengths = np.array([sum(tf.values()) for tf in self.tfs], dtype=np.float64)
        self.avg = float(self.lengths.mean()) if len(docs) else 0.0
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {w: math.log(1 + (n - c + 0.5) / (c + 0.5)) for w, c in df.items()}

    def scores(self, query: str) -> np.ndarray:
        q = terms(query)
        norm = self.k1 * (1 - self.b + self.b * self.lengths / max(self.avg, 1e-9))
        out = np.zeros(len(self.tfs))
        for i, tf in enumerate(self.tfs):
            s = 0.0
            for w in q:
                f = tf.get(w)
                if f:
                    s += self.idf[w] * f * (self.k1 + 1) / (f + norm[i])
            out[i] = s
        return out


def ndcg_at_k(scores: Sequence[float], relevant: int, *, k: int = 10) -> float:
    """nDCG@k with one relevant item: 1/log2(rank+1) when it ranks within k (ties: input order)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    rank = int(np.nonzero(order == relevant)[0][0]) + 1
    return 1.0 / math.log2(rank + 1) if rank <= k else 0.0


@dataclass(frozen=True)
class Query:
    """A question, its article's paragraphs and the index of its gold paragraph."""

    text: str
    gold: int
    paragraphs: tuple[str, ...]


def questions(articles: Sequence[Article]) -> list[Query]:
    out = []
    for article in articles:
        paragraphs = tuple(p.context for p in article.paragraphs)
        for i, paragraph in enumerate(article.paragraphs):
            out.extend(Query(q.text, i, paragraphs) for q in paragraph.questions)
    return out


@dataclass(frozen=True)
class PoolItem:
    """One evaluation query: candidates (gold at ``gold``) and the baselines' scores for them."""

    query: str
    candidates: tuple[str, ...]
    gold: int
    bm25: tuple[float, ...]
    bi_encoder: tuple[float, ...]


def build_pools(
    queries: Sequence[Query],
    *,
    embed: Callable[[list[str], str], np.ndarray],
    pool_size: int = 16,
    seed: int = 0,
) -> list[PoolItem]:
    """Candidate pools of ``pool_size`` per query, scored by BM25 and the bi-encoder.

    ``embed(texts, input_type)`` returns L2-normalised vectors (input_type "query"/"passage").
    """
    rng = random.Random(seed)
    by_article: dict[tuple[str, ...], list[Query]] = {}
    for q in queries:
        by_article.setdefault(q.paragraphs, []).append(q)
    items: list[PoolItem] = []
    for paragraphs, group in by_article.items():
        bm25 = BM25(paragraphs)
        passage_vecs = embed(list(paragraphs), "passage")
        query_vecs = embed([q.text for q in group], "query")
        for q, qv in zip(group, query_vecs, strict=True):
            lexical = bm25.scores(q.text)
            dense = passage_vecs @ qv
            pool = [q.gold]
            by_bm25 = [int(i) for i in np.argsort(-lexical, kind="stable") if i != q.gold]
            by_dense = [int(i) for i in np.argsort(-dense, kind="stable") if i != q.gold]
            for a, b in zip(by_bm25, by_dense, strict=True):
                for i in (a, b):
                    if i not in pool and len(pool) < pool_size:
                        pool.append(i)
            rng.shuffle(pool)
            items.append(
                PoolItem(
                    query=q.text,
                    candidates=tuple(paragraphs[i] for i in pool),
                    gold=pool.index(q.gold),
                    bm25=tuple(float(lexical[i]) for i in pool),
                    bi_encoder=tuple(float(dense[i]) for i in pool),
                )
            )
    return items


def mean_ndcg(items: Sequence[PoolItem], scores: Sequence[Sequence[float]], *, k: int = 10) -> float:
    return float(np.mean([ndcg_at_k(s, it.gold, k=k) for it, s in zip(items, scores, strict=True)]))
