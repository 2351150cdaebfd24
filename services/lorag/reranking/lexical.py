"""The reranker's lexical-match feature: BM25 of a passage for a query, with corpus statistics
fitted once on training paragraphs and stored with the model.

A cross-encoder trained briefly on a few thousand questions matches words less reliably than BM25
does on data whose questions share many words with their passage (SQuAD's were written with the
paragraph in view). The built default reranker therefore scores ``logit + weight * bm25(query,
passage)``, where the document frequencies, average length and ``weight`` are part of the model:
fitted on training articles only (the weight on a validation split of them that the cross-encoder
never trained on) and saved next to the weights. The feature depends on the query and the one
passage only, never on the other passages of a request.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lorag.reranking.evaluation import terms

#: File of the lexical feature inside a built reranker's directory.
FILE = "lorag-lexical.json"


@dataclass(frozen=True)
class LexicalMatch:
    """Okapi BM25 with fixed statistics: ``idf`` per term (terms never seen get ``unseen_idf``)."""

    idf: dict[str, float] = field(repr=False)
    unseen_idf: float
    avg_length: float
    weight: float = 0.0
    k1: float = 1.2
    b: float = 0.75

    @classmethod
    def fit(cls, docs: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> LexicalMatch:
        """Statistics of ``docs`` (the training paragraphs); weight 0 until :meth:`with_weight`."""
        df: Counter[str] = Counter()
        total = 0
        for d in docs:
            words = terms(d)
            total += len(words)
            df.update(set(words))
        n = len(docs)
        idf = {w: round(math.log(1 + (n - c + 0.5) / (c + 0.5)), 5) for w, c in sorted(df.items())}
        return cls(
            idf=idf,
            unseen_idf=math.log(1 + (n + 0.5) / 0.5),
            avg_length=total / max(n, 1),
            k1=k1,
            b=b,
        )

    def with_weight(self, weight: float) -> LexicalMatch:
        return LexicalMatch(self.idf, self.unseen_idf, self.avg_length, float(weight), self.k1, self.b)

    def scores(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """BM25 of each passage for ``query`` (not weighted)."""
        q = terms(query)
        out = np.zeros(len(passages), dtype=np.float64)
        for i, passage in enumerate(passages):
            tf = Counter(terms(passage))
            norm = self.k1 * (1 - self.b + self.b * sum(tf.values()) / max(self.avg_length, 1e-9))
            s = 0.0
            for w in q:
                f = tf.get(w)
                if f:
                    s += self.idf.get(w, self.unseen_idf) * f * (self.k1 + 1) / (f + norm)
            out[i] = s
        return out

    def save(self, directory: Path) -> None:
        (Path(directory) / FILE).write_text(json.dumps(asdict(self), sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path) -> LexicalMatch | None:
        """The feature stored in a model directory, or None when the model has none."""
        path = Path(directory) / FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: data[k] for k in ("idf", "unseen_idf", "avg_length", "weight", "k1", "b")})


def fit_weight(
    logits: Sequence[Sequence[float]], lexical: Sequence[Sequence[float]], gold: Sequence[int]
) -> float:
    """The weight ``w >= 0`` minimising the listwise loss of ``logits + w * lexical`` (1-D search).

    Each row is one question's candidates, ``gold[i]`` the index of its relevant one. The loss
    (softmax cross-entropy of the gold candidate) is convex in ``w``; a golden-section search on
    [0, 10] finds its minimum.
    """

    def loss(w: float) -> float:
        total = 0.0
        for lg, lx, g in zip(logits, lexical, gold, strict=True):
            s = np.asarray(lg, dtype=np.float64) + w * np.asarray(lx, dtype=np.float64)
            m = s.max()
            total += m + math.log(float(np.exp(s - m).sum())) - s[g]
        return total / max(len(gold), 1)

    lo, hi = 0.0, 10.0
    phi = (math.sqrt(5) - 1) / 2
    a, b = hi - phi * (hi - lo), lo + phi * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - phi * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + phi * (hi - lo)
            fb = loss(b)
    w = (lo + hi) / 2
    return round(w if loss(w) < loss(0.0) else 0.0, 4)
