"""Token-aware chunking that keeps paragraphs and sentences whole where it can.

The text is tokenized once with the embedding model's tokenizer (offsets only), cut into units
(sentences; list items, table rows and code lines in Markdown) grouped in paragraphs, and packed
greedily into chunks of at most ``chunk_tokens`` tokens:

* a paragraph that does not fit in what is left of the current chunk but fits in an empty one
  starts a new chunk; a Markdown heading always does;
* a sentence longer than a chunk is cut at token boundaries (preferring whitespace);
* consecutive chunks share whole trailing sentences worth at most ``overlap_tokens`` tokens
  (never across a heading).

Every chunk is an exact slice ``text[start:end]`` of the document text, so its span is exact.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Counts tokens by their start offsets in a text (one call per document).
TokenStarts = Callable[[str], list[int]]


@dataclass(frozen=True)
class TextChunk:
    text: str
    start: int
    end: int
    token_count: int


@dataclass
class _Unit:
    start: int
    end: int
    para: int  # paragraph number
    heading: bool = False  # a Markdown heading: starts a new chunk
    tokens: int = 0


_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def regex_token_starts(text: str) -> list[int]:
    """Fallback when no tokenizer is available: words and punctuation marks."""
    return [m.start() for m in _WORDISH.finditer(text)]


def tokenizer_token_starts(tokenizer: Any) -> TokenStarts:
    """Token start offsets from a Hugging Face fast tokenizer (no special tokens)."""

    def starts(text: str) -> list[int]:
        if not text:
            return []
        enc = tokenizer(
            text,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            truncation=False,
            verbose=False,
        )
        return [a for a, b in enc["offset_mapping"] if b > a]

    return starts


_PARA_SPLIT = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026\u3002\uff01\uff1f])[\"'\u201d\u2019)\]]*\s+")
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}\s")
_MD_LINE_UNIT = re.compile(r"^\s*([-*+]\s|\d{1,9}[.)]\s|\|)")
_MD_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _spans(text: str, pattern: re.Pattern, start: int, end: int) -> list[tuple[int, int]]:
    """Non-blank pieces of text[start:end] separated by ``pattern``, as absolute spans."""
    out, pos = [], start
    for m in pattern.finditer(text, start, end):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, end))
    return [_strip(text, a, b) for a, b in out if text[a:b].strip()]


def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _units(text: str, *, markdown: bool) -> list[_Unit]:
    units: list[_Unit] = []
    if markdown:
        blocks = _markdown_blocks(text)
    else:
        blocks = [(a, b, "text") for a, b in _spans(text, _PARA_SPLIT, 0, len(text))]
    for para, (a, b, kind) in enumerate(blocks):
        if kind == "heading":
            units.append(_Unit(a, b, para, heading=True))
        elif kind == "lines":
            for la, lb in _spans(text, re.compile(r"\n"), a, b):
                units.append(_Unit(la, lb, para))
        else:
            for sa, sb in _spans(text, _SENTENCE_END, a, b):
                units.append(_Unit(sa, sb, para))
    return units


def _markdown_blocks(text: str) -> list[tuple[int, int, str]]:
    """Paragraph-level blocks of Markdown: headings, fenced code / list / table lines, prose."""
    blocks: list[tuple[int, int, str]] = []
    lines = text.splitlines(keepends=True)
    pos, i = 0, 0
    prose_start: int | None = None
    prose_kind = "text"

    def flush(end: int) -> None:
        nonlocal prose_start
        if prose_start is not None and text[prose_start:end].strip():
            a, b = _strip(text, prose_start, end)
            blocks.append((a, b, prose_kind))
        prose_start = None

    while i < len(lines):
        line = lines[i]
        if _MD_FENCE.match(line):
            flush(pos)
            fence = line.strip()[:3]
            start, pos, i = pos, pos + len(line), i + 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                pos, i = pos + len(lines[i]), i + 1
            if i < len(lines):
                pos, i = pos + len(lines[i]), i + 1
            a, b = _strip(text, start, pos)
            blocks.append((a, b, "lines"))
            continue
        if _MD_HEADING.match(line):
            flush(pos)
            a, b = _strip(text, pos, pos + len(line))
            blocks.append((a, b, "heading"))
        elif not line.strip():
            flush(pos)
        else:
            kind = "lines" if _MD_LINE_UNIT.match(line) else "text"
            if prose_start is not None and kind != prose_kind:
                flush(pos)
            if prose_start is None:
                prose_start, prose_kind = pos, kind
        pos, i = pos + len(line), i + 1
    flush(pos)
    return blocks


def chunk_text(
    text: str,
    *,
    chunk_tokens: int,
    overlap_tokens: int,
    token_starts: TokenStarts = regex_token_starts,
    markdown: bool = False,
) -> list[TextChunk]:
    """Cut ``text`` into chunks of at most ``chunk_tokens`` tokens (see the module docstring)."""
    if chunk_tokens < 1:
        raise ValueError("chunk_tokens must be positive")
    overlap_tokens = max(0, min(overlap_tokens, chunk_tokens - 1))
    starts = token_starts(text)

    def count(a: int, b: int) -> int:
        return bisect.bisect_left(starts, b) - bisect.bisect_left(starts, a)

    units: list[_Unit] = []
    for u in _units(text, markdown=markdown):
        u.tokens = count(u.start, u.end)
        if u.tokens <= chunk_tokens:
            units.append(u)
            continue
        units.extend(_split_long(text, u, starts, chunk_tokens))

    para_tokens: dict[int, int] = {}
    for u in units:
        para_tokens[u.para] = para_tokens.get(u.para, 0) + u.tokens

    chunks: list[TextChunk] = []
    current: list[_Unit] = []
    used = 0

    def emit() -> None:
        a, b = current[0].start, current[-1].end
        chunks.append(TextChunk(text[a:b], a, b, count(a, b)))

    for idx, u in enumerate(units):
        new_para = idx == 0 or units[idx - 1].para != u.para
        must_break = bool(current) and (
            u.heading
            or used + u.tokens > chunk_tokens
            or (new_para and used + para_tokens[u.para] > chunk_tokens >= para_tokens[u.para])
        )
        if must_break:
            emit()
            carry: list[_Unit] = []
            if not u.heading and overlap_tokens:
                budget = min(overlap_tokens, chunk_tokens - u.tokens)
                for prev in reversed(current):
                    if prev.heading or prev.tokens > budget:
                        break
                    carry.insert(0, prev)
                    budget -= prev.tokens
            current, used = carry, sum(c.tokens for c in carry)
        current.append(u)
        used += u.tokens
    if current:
        emit()
    return chunks


def _split_long(text: str, u: _Unit, starts: list[int], limit: int) -> list[_Unit]:
    """Cut a unit longer than ``limit`` tokens at token starts, preferring whitespace."""
    first = bisect.bisect_left(starts, u.start)
    last = bisect.bisect_left(starts, u.end)
    pieces: list[_Unit] = []
    i = first
    while i < last:
        j = min(i + limit, last)
        if j < last:
            # back off to a token that follows whitespace, if one is in the second half
            k = j
            while k > i + limit // 2 and not text[starts[k] - 1].isspace():
                k -= 1
            if k > i + limit // 2:
                j = k
        a = starts[i] if i > first else u.start
        b = starts[j] if j < last else u.end
        a, b = _strip(text, a, b)
        if b > a:
            pieces.append(_Unit(a, b, u.para, tokens=j - i))
        i = j
    return pieces
