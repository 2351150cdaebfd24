"""Helpers shared by the retrieval tests of every tier (no Ray, no network)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

CORPUS_PATH = Path(__file__).parent / "data" / "retrieval_corpus.json"


def load_corpus() -> dict:
    """Passages on distinct topics plus queries with their relevant doc ids."""
    return json.loads(CORPUS_PATH.read_text())


@lru_cache(maxsize=1)
def embedding_core():
    """The platform's embedding core with its default model (loaded once per process)."""
    from lorag.embedding.core import EmbeddingCore
    from lorag.embedding.settings import EmbeddingSettings

    return EmbeddingCore(EmbeddingSettings())


def load_tokenizer():
    """The default embedding model's tokenizer, as the ingest pipeline uses it."""
    return embedding_core().tokenizer()


def unit(v) -> list[float]:
    a = np.asarray(v, dtype=np.float64)
    return (a / np.linalg.norm(a)).tolist()


class HashEmbedder:
    """A deterministic stand-in embedder (dimension 8) for tests about plumbing, not relevance.

    ``fail_on`` makes ``embed`` raise for any batch containing a text with that substring.
    """

    def __init__(self, model: str = "hash-8", dim: int = 8, fail_on: str | None = None) -> None:
        self.model, self.dim, self.fail_on = model, dim, fail_on
        self.calls: list[list[str]] = []

    async def default_model(self) -> str:
        return self.model

    async def dimension(self, model: str) -> int:
        if model != self.model:
            from lorag.common.errors import NotFound

            raise NotFound(f"unknown embedding model {model!r}")
        return self.dim

    async def embed(self, texts, *, model, input_type):
        self.calls.append(list(texts))
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("embedding backend exploded")
        out = []
        for t in texts:
            rng = np.random.default_rng(abs(hash(t)) % (2**32))
            v = rng.normal(size=self.dim)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)

    def tokenizer(self, model):
        return None


def minimal_pdf(lines: list[str], *, title: str = "") -> bytes:
    """A valid one-page PDF with ``lines`` of Helvetica text (and an optional title)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td"]
    for i, line in enumerate(lines):
        if i:
            ops.append("0 -16 Td")
        ops.append(f"({esc(line)}) Tj")
    ops.append("ET")
    stream = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Title ({esc(title)}) >>".encode(),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


#: Documents of the fault tests: several chunks each at FAULT_CHUNKING (16 tokens, 4 overlap).
FAULT_CHUNK_TOKENS, FAULT_OVERLAP_TOKENS = 16, 4
_FAULT_TOPICS = ["rivers", "volcanoes", "glaciers", "deserts", "forests", "coral reefs", "tundra", "caves"]


def fault_document(i: int, marker: str = "") -> str:
    topic = _FAULT_TOPICS[i % len(_FAULT_TOPICS)]
    body = " ".join(
        f"Sentence {k} of document {i} describes how {topic} change over seasons and centuries."
        for k in range(3 + i % 4)
    )
    return f"{body} {marker}." if marker else body


def expected_chunk_counts(tokenizer, docs: dict[str, str]) -> dict[str, int]:
    """What the chunker makes of each plain-text document at the fault chunking (what a correct
    store holds per document after an ingest)."""
    from lorag.retrieval import parsing
    from lorag.retrieval.chunking import chunk_text, tokenizer_token_starts

    starts = tokenizer_token_starts(tokenizer)
    out = {}
    for doc_id, text in docs.items():
        parsed = parsing.parse(text, parsing.normalize_mime("", field="mime_type"))
        pieces = chunk_text(
            parsed.text,
            chunk_tokens=FAULT_CHUNK_TOKENS,
            overlap_tokens=FAULT_OVERLAP_TOKENS,
            token_starts=starts,
            markdown=parsed.markdown,
        )
        out[doc_id] = len(pieces)
    return out
