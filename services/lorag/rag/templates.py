"""Prompt templates of Ask: built-in ones and tenant-defined ones.

A template is a system message and a user message; the user message holds ``{context}`` (the
numbered passages) and ``{question}``. Placeholders are replaced literally (never ``str.format``),
so braces in documents or questions are harmless. A template with ``final_marker`` lets the model
reason first: only the text after the last marker is returned (and streamed) as the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lorag.common.errors import InvalidArgument, NotFound


@dataclass(frozen=True)
class Template:
    name: str
    system: str
    user: str
    final_marker: str = ""
    #: Used when retrieval was skipped (routing): no passages, no citations.
    no_context_user: str = "{question}"

    def render(self, *, context: str, question: str) -> tuple[str, str]:
        user = self.user if context else self.no_context_user
        return self.system, user.replace("{context}", context).replace("{question}", question)


_GROUNDED = (
    "You answer questions using only the numbered passages you are given. Cite every passage you "
    "use with its number in square brackets, like [1] or [2][3]. If the passages do not contain the "
    "answer, say that the answer is not in the documents. Do not use outside knowledge."
)

BUILTIN: dict[str, Template] = {
    "default": Template(
        name="default",
        system=_GROUNDED,
        user="Passages:\n{context}\n\nQuestion: {question}\nAnswer with citations:",
    ),
    "concise": Template(
        name="concise",
        system=_GROUNDED + " Answer in one short sentence.",
        user="Passages:\n{context}\n\nQuestion: {question}\nShort answer with citations:",
    ),
    "cot": Template(
        name="cot",
        system=_GROUNDED
        + " First think step by step about which passages answer the question. Then write a line "
        "starting with 'Final answer:' followed by the answer with citations.",
        user="Passages:\n{context}\n\nQuestion: {question}\nThink step by step, then give the final answer.",
        final_marker="Final answer:",
    ),
}

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def tenant_template(name: str, text: str) -> Template:
    """A tenant's template: ``text`` is the user message and must hold both placeholders."""
    if not _NAME.match(name):
        raise InvalidArgument(f"template name {name!r} must match {_NAME.pattern}", field="template")
    for placeholder in ("{context}", "{question}"):
        if placeholder not in text:
            raise InvalidArgument(f"template {name!r} must contain {placeholder}", field="template")
    return Template(name=name, system=_GROUNDED, user=text)


def lookup(name: str, tenant_templates: dict[str, str]) -> Template:
    """The template ``name`` for a tenant: its own templates first, then the built-in ones."""
    if name in tenant_templates:
        return tenant_template(name, tenant_templates[name])
    if name in BUILTIN:
        return BUILTIN[name]
    known = sorted({*BUILTIN, *tenant_templates})
    raise NotFound(f"unknown template {name!r}; known: {', '.join(known)}")


class FinalAnswerFilter:
    """Streams only what follows the first ``marker`` of a reasoning answer.

    Text before the marker is held back; once the marker is seen, later text passes through. When
    the model never writes the marker, :meth:`finish` returns the whole text as the answer.
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker.lower()
        self.buffer = ""
        self.emitted = 0  # characters of the answer part already passed on
        self.start = -1  # where the answer begins in ``buffer``

    def feed(self, text: str) -> str:
        self.buffer += text
        if self.start < 0:
            found = self.buffer.lower().find(self.marker)
            if found < 0:
                return ""
            self.start = found + len(self.marker)
        answer = self.buffer[self.start :].lstrip()
        out = answer[self.emitted :]
        self.emitted += len(out)
        return out

    def finish(self) -> str:
        """What is left to pass on at the end of the stream."""
        if self.start >= 0:
            return ""
        text = self.buffer.strip()
        self.emitted = len(text)
        return text
