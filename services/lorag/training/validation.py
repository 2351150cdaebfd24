"""Dataset validation and pre-processing (pure logic: bytes in, records and a report out).

Checks, in order, each with line numbers in the report:

* schema: every line is a JSON object of the kind's format (``invalid_json``, ``not_object``,
  ``missing_field``, ``wrong_type``, ``bad_role``); GENERATION is ``{"prompt", "completion"}`` or
  ``{"messages": [{"role", "content"}, ...]}`` ending with an assistant message, RERANKING is
  ``{"query", "positive", "negative"}`` with ``negative`` a string or a list of strings;
* ``empty`` text fields and ``too_long`` records (characters, then base-model tokens);
* exact ``duplicate`` records and ``near_duplicate`` ones (MinHash over word 3-shingles, verified
  with the exact Jaccard similarity of the whole text and of what the record teaches — the answer,
  or the positive passage — so records sharing context passages but answering different questions
  all stay);
* the base tokenizer's coverage: the share of unknown tokens and of records with fewer than 1.5
  characters per token (text in a language or script the model was not trained on);
* a deterministic train/validation split by a hash of the prompt (or query), so records sharing a
  prompt never straddle the split, and token-length statistics.

A dataset is valid (READY) when no line is malformed, at least ``min_records`` records survive,
both splits are non-empty and the tokenizer covers the text. Empty, too long and duplicate records
are dropped with an issue each but do not fail the dataset.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lorag.training.settings import TrainingSettings

MAX_ISSUES = 100
LOW_COVERAGE_CHARS_PER_TOKEN = 1.5
ROLES = ("system", "user", "assistant")
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_NUM_PERM = 64
_BANDS = 16
_PRIME = (1 << 31) - 1


@dataclass(frozen=True)
class Record:
    """One valid record. GENERATION: ``messages`` (the last one is the assistant's answer);
    RERANKING: ``query``, ``positive`` and ``negatives``."""

    line: int
    kind: str
    messages: tuple[tuple[str, str], ...] = ()
    query: str = ""
    positive: str = ""
    negatives: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """What the split and the overlap check compare: the prompt (all but the answer) or query."""
        if self.kind == "generation":
            return "\n".join(f"{r}: {c}" for r, c in self.messages[:-1])
        return self.query

    @property
    def target(self) -> str:
        """What the record teaches: the answer (last message) or the positive passage."""
        return self.messages[-1][1] if self.kind == "generation" else self.positive

    @property
    def text(self) -> str:
        if self.kind == "generation":
            return "\n".join(c for _, c in self.messages)
        return "\n".join((self.query, self.positive, *self.negatives))

    def to_json(self) -> dict[str, Any]:
        if self.kind == "generation":
            return {"messages": [{"role": r, "content": c} for r, c in self.messages]}
        return {"query": self.query, "positive": self.positive, "negative": list(self.negatives)}


@dataclass
class Issue:
    line: int
    code: str
    message: str


@dataclass
class Report:
    valid: bool = False
    total_records: int = 0
    valid_records: int = 0
    duplicate_records: int = 0
    near_duplicate_records: int = 0
    empty_records: int = 0
    too_long_records: int = 0
    malformed_records: int = 0
    train_records: int = 0
    validation_records: int = 0
    overlap_records: int = 0
    unknown_token_share: float = 0.0
    low_coverage_share: float = 0.0
    tokenizer: str = ""
    token_lengths: dict[str, float] | None = None
    issues: list[Issue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        data = dict(data)
        issues = [Issue(**i) for i in data.pop("issues", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known, issues=issues)

    @property
    def failure(self) -> str:
        """Why the dataset is not valid ('' when it is): the file-level issues."""
        reasons = [i.message for i in self.issues if i.line == 0 and i.code in FAILING_CODES]
        return "; ".join(reasons)


FAILING_CODES = frozenset(
    {"malformed", "too_few_records", "no_validation", "no_train", "unknown_tokens", "language", "empty_file"}
)


@dataclass
class ValidatedDataset:
    report: Report
    train: list[Record]
    validation: list[Record]


# -- parsing --------------------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _text(obj: dict[str, Any], key: str) -> str:
    if key not in obj:
        raise _Bad("missing_field", f'missing field "{key}"')
    value = obj[key]
    if not isinstance(value, str):
        raise _Bad("wrong_type", f'field "{key}" must be a string, not {type(value).__name__}')
    return value


def parse_record(obj: Any, kind: str, line: int) -> Record:
    """A Record from one decoded JSON value; raises _Bad with a code and message."""
    if not isinstance(obj, dict):
        raise _Bad("not_object", f"each line must be a JSON object, not {type(obj).__name__}")
    if kind == "generation":
        if "messages" in obj:
            msgs = obj["messages"]
            if not isinstance(msgs, list) or not msgs:
                raise _Bad("wrong_type", 'field "messages" must be a non-empty list')
            out = []
            for i, m in enumerate(msgs):
                if not isinstance(m, dict):
                    raise _Bad("wrong_type", f"messages[{i}] must be an object with role and content")
                role, content = _text(m, "role"), _text(m, "content")
                if role not in ROLES:
                    raise _Bad("bad_role", f"messages[{i}].role {role!r} is not one of {', '.join(ROLES)}")
                out.append((role, content))
            if out[-1][0] != "assistant":
                raise _Bad("bad_role", "the last message must be the assistant's (the answer to learn)")
            if len(out) < 2:
                raise _Bad("missing_field", "messages need a prompt before the assistant's answer")
            return Record(line=line, kind=kind, messages=tuple(out))
        if "prompt" not in obj and "completion" not in obj:
            raise _Bad("missing_field", 'a generation record needs "prompt" and "completion", or "messages"')
        prompt, completion = _text(obj, "prompt"), _text(obj, "completion")
        return Record(line=line, kind=kind, messages=(("user", prompt), ("assistant", completion)))
    query, positive = _text(obj, "query"), _text(obj, "positive")
    if "negative" not in obj:
        raise _Bad("missing_field", 'missing field "negative"')
    neg = obj["negative"]
    if isinstance(neg, str):
        negatives: tuple[str, ...] = (neg,)
    elif isinstance(neg, list) and neg and all(isinstance(n, str) for n in neg):
        negatives = tuple(neg)
    else:
        raise _Bad("wrong_type", 'field "negative" must be a string or a non-empty list of strings')
    return Record(line=line, kind=kind, query=query, positive=positive, negatives=negatives)


def _is_empty(r: Record) -> bool:
    if r.kind == "generation":
        return any(not c.strip() for _, c in r.messages if _ != "system")
    return not r.query.strip() or not r.positive.strip() or any(not n.strip() for n in r.negatives)


def normalize(text: str) -> str:
    return " ".join(_WORD_RE.findall(text.lower()))


# -- near duplicates ------------------------------------------------------------------------------


def _shingles(text: str) -> set[int]:
    words = _WORD_RE.findall(text.lower())
    if len(words) < 3:
        grams = [" ".join(words)] if words else [""]
    else:
        grams = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
    return {zlib.crc32(g.encode()) % _PRIME for g in grams}


_RNG = np.random.default_rng(20261203)
_A = _RNG.integers(1, _PRIME, size=_NUM_PERM, dtype=np.uint64)
_B = _RNG.integers(0, _PRIME, size=_NUM_PERM, dtype=np.uint64)


def _jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / max(1, len(a | b))


def _minhash(shingles: set[int]) -> np.ndarray:
    x = np.fromiter(shingles, dtype=np.uint64, count=len(shingles))
    return ((np.outer(x, _A) + _B) % _PRIME).min(axis=0)


def near_duplicates(
    texts: Sequence[str], threshold: float, targets: Sequence[str] | None = None
) -> dict[int, int]:
    """index -> index of an earlier text it nearly duplicates (Jaccard of word 3-shingles).

    With ``targets`` (what each record teaches: its answer), a pair counts only when the targets
    are as similar too: records that share long context passages but answer different questions
    are distinct examples, not duplicates.
    """
    sets = [_shingles(t) for t in texts]
    target_sets = [_shingles(t) for t in targets] if targets is not None else None
    rows = _NUM_PERM // _BANDS
    buckets: dict[tuple[int, bytes], list[int]] = {}
    found: dict[int, int] = {}
    for i, s in enumerate(sets):
        sig = _minhash(s)
        candidates: set[int] = set()
        for b in range(_BANDS):
            key = (b, sig[b * rows : (b + 1) * rows].tobytes())
            candidates.update(buckets.setdefault(key, []))
            buckets[key].append(i)
        for j in sorted(candidates):
            if j in found:
                continue  # compare with kept records only
            if _jaccard(s, sets[j]) >= threshold and (
                target_sets is None or _jaccard(target_sets[i], target_sets[j]) >= threshold
            ):
                found[i] = j
                break
    return found


# -- split ----------------------------------------------------------------------------------------


def split_bucket(key: str) -> float:
    """A number in [0, 1) fixed by the record's key: the deterministic split."""
    digest = hashlib.sha256(normalize(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(
    records: Sequence[Record], *, fraction: float, min_validation: int, max_validation: int
) -> tuple[list[Record], list[Record]]:
    """(train, validation): whole prompt groups in order of their hash go to validation until it
    holds ``fraction`` of the records (at least ``min_validation``, at most ``max_validation``)."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        groups.setdefault(normalize(r.key), []).append(r)
    if len(groups) < 2:
        return list(records), []
    target = min(max_validation, max(min_validation, math.ceil(fraction * len(records))))
    order = sorted(groups, key=lambda k: (split_bucket(k), k))
    held: set[str] = set()
    count = 0
    for k in order[:-1]:  # keep at least one group for training
        if count >= target:
            break
        held.add(k)
        count += len(groups[k])
    train = [r for r in records if normalize(r.key) not in held]
    validation = [r for r in records if normalize(r.key) in held]
    return train, validation


def overlap(train: Sequence[Record], validation: Sequence[Record]) -> int:
    keys = {normalize(r.key) for r in train}
    return sum(1 for r in validation if normalize(r.key) in keys)


# -- the whole check ------------------------------------------------------------------------------


def _stats(counts: list[int]) -> dict[str, float]:
    arr = np.asarray(counts, dtype=np.int64)
    return {
        "min": int(arr.min()),
        "mean": float(arr.mean()),
        "p50": int(np.percentile(arr, 50, method="lower")),
        "p95": int(np.percentile(arr, 95, method="lower")),
        "max": int(arr.max()),
        "total": int(arr.sum()),
    }


def token_counts(tokenizer: Any, records: Sequence[Record]) -> tuple[list[int], int]:
    """Tokens per record and unknown tokens over all (the unknown token only when it is distinct
    from the special tokens a byte-level tokenizer reuses as ``unk``)."""
    if not records:
        return [], 0
    enc = tokenizer([r.text for r in records], add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    special = {getattr(tokenizer, a, None) for a in ("eos_token_id", "bos_token_id", "pad_token_id")}
    unknown = 0
    if unk is not None and unk not in special:
        unknown = sum(ids.count(unk) for ids in enc)
    return [len(ids) for ids in enc], unknown


def validate(
    data: bytes,
    kind: str,
    *,
    settings: TrainingSettings,
    tokenizer: Any = None,
    tokenizer_name: str = "",
) -> ValidatedDataset:
    """Validate a JSONL file of ``kind``: the report and the train/validation records."""
    report = Report(tokenizer=tokenizer_name if tokenizer is not None else "")
    issues: list[Issue] = []
    records: list[Record] = []
    seen: dict[str, int] = {}
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue  # blank lines carry no record
        report.total_records += 1
        try:
            obj = json.loads(raw.decode("utf-8"))
            record = parse_record(obj, kind, number)
        except UnicodeDecodeError:
            report.malformed_records += 1
            issues.append(Issue(number, "invalid_utf8", "the line is not valid UTF-8"))
            continue
        except json.JSONDecodeError as exc:
            report.malformed_records += 1
            issues.append(Issue(number, "invalid_json", f"not valid JSON: {exc.msg} at column {exc.colno}"))
            continue
        except _Bad as bad:
            report.malformed_records += 1
            issues.append(Issue(number, bad.code, bad.message))
            continue
        if _is_empty(record):
            report.empty_records += 1
            issues.append(Issue(number, "empty", "a text field is empty or only whitespace"))
            continue
        if len(record.text) > settings.max_record_chars:
            report.too_long_records += 1
            issues.append(
                Issue(
                    number,
                    "too_long",
                    f"{len(record.text)} characters; the limit is {settings.max_record_chars}",
                )
            )
            continue
        canon = json.dumps(record.to_json(), sort_keys=True)
        if canon in seen:
            report.duplicate_records += 1
            issues.append(Issue(number, "duplicate", f"the same record as line {seen[canon]}"))
            continue
        seen[canon] = number
        records.append(record)
    near = near_duplicates(
        [r.text for r in records], settings.near_duplicate_threshold, [r.target for r in records]
    )
    for i, j in near.items():
        report.duplicate_records += 1
        report.near_duplicate_records += 1
        issues.append(
            Issue(
                records[i].line,
                "near_duplicate",
                f"nearly the same text and {'answer' if records[i].kind == 'generation' else 'positive'} "
                f"as line {records[j].line}",
            )
        )
    records = [r for i, r in enumerate(records) if i not in near]
    if tokenizer is not None and records:
        counts, unknown = token_counts(tokenizer, records)
        kept, kept_counts, low = [], [], 0
        for r, n in zip(records, counts, strict=True):
            if n > settings.max_record_tokens:
                report.too_long_records += 1
                issues.append(
                    Issue(r.line, "too_long", f"{n} tokens; the limit is {settings.max_record_tokens}")
                )
                continue
            if n and len(r.text) / n < LOW_COVERAGE_CHARS_PER_TOKEN:
                low += 1
            kept.append(r)
            kept_counts.append(n)
        records = kept
        total_tokens = sum(counts)
        report.unknown_token_share = unknown / total_tokens if total_tokens else 0.0
        report.low_coverage_share = low / len(records) if records else 0.0
        if kept_counts:
            report.token_lengths = _stats(kept_counts)
    elif tokenizer is None:
        issues.append(
            Issue(
                0,
                "tokenizer_unavailable",
                "the base model's tokenizer is not available here; "
                "token checks run again when a job validates the dataset",
            )
        )
    train, held = split(
        records,
        fraction=settings.validation_fraction,
        min_validation=settings.min_validation_records,
        max_validation=settings.max_validation_records,
    )
    report.valid_records = len(records)
    report.train_records, report.validation_records = len(train), len(held)
    report.overlap_records = overlap(train, held)
    # -- file-level verdicts
    if report.total_records == 0:
        issues.append(Issue(0, "empty_file", "the file holds no records"))
    if report.malformed_records:
        issues.append(
            Issue(0, "malformed", f"{report.malformed_records} malformed line(s); fix them and upload again")
        )
    if report.valid_records < settings.min_records:
        issues.append(
            Issue(
                0,
                "too_few_records",
                f"{report.valid_records} valid record(s); at least {settings.min_records} are needed",
            )
        )
    elif len(held) < settings.min_validation_records:
        issues.append(Issue(0, "no_validation", "too few distinct prompts to hold some out for validation"))
    if records and not train:
        issues.append(Issue(0, "no_train", "no record is left for training"))
    if report.unknown_token_share > settings.max_unknown_token_share:
        issues.append(
            Issue(
                0,
                "unknown_tokens",
                f"{report.unknown_token_share:.1%} of the tokens are unknown to the base tokenizer "
                f"(limit {settings.max_unknown_token_share:.0%})",
            )
        )
    if report.low_coverage_share > settings.max_low_coverage_share:
        issues.append(
            Issue(
                0,
                "language",
                f"{report.low_coverage_share:.0%} of the records are in a language or script the base "
                f"tokenizer covers poorly (limit {settings.max_low_coverage_share:.0%})",
            )
        )
    issues.sort(key=lambda i: i.line)  # file-level verdicts (line 0) first, then in line order
    report.valid = not any(i.line == 0 and i.code in FAILING_CODES for i in issues)
    report.issues = issues[:MAX_ISSUES]
    return ValidatedDataset(report=report, train=train, validation=held)


def dumps_records(records: Sequence[Record]) -> bytes:
    """Records as JSONL (the normalised form)."""
    return "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records).encode()
