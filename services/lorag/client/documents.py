"""Documents to ingest: from text, from files, and file discovery (directories, globs).

>>> Document("faq/reset", text="To reset your password ...", metadata={"lang": "en"})
>>> document_from_path("docs/intro.md")          # doc id "docs/intro.md", type text/markdown
>>> [f.doc_id for f in find_files(["docs", "notes/**/*.txt"])]
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

from lorag.retrieval.parsing import HTML, MARKDOWN, PDF, PLAIN

#: File extension -> media type of the files ``ingest`` reads; others are skipped in directories.
MIME_BY_EXTENSION: dict[str, str] = {
    ".txt": PLAIN,
    ".text": PLAIN,
    ".rst": PLAIN,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
}
#: Largest content the server accepts per document.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Document:
    """A document to ingest: ``text`` or raw ``data`` (parsed by ``mime_type``), id and metadata."""

    doc_id: str
    text: str | None = None
    data: bytes | None = None
    title: str = ""
    mime_type: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.text is None) == (self.data is None):
            raise ValueError(f"document {self.doc_id!r}: give exactly one of text and data")

    def to_proto(self):
        from lorag.rag.v1 import rag_pb2

        meta = struct_pb2.Struct()
        if self.metadata:
            meta.update(dict(self.metadata))
        doc = rag_pb2.Document(doc_id=self.doc_id, title=self.title, mime_type=self.mime_type)
        if self.metadata:
            doc.metadata.CopyFrom(meta)
        if self.text is not None:
            doc.text = self.text
        else:
            doc.data = self.data
        return doc


@dataclass(frozen=True)
class FoundFile:
    """A file to ingest and the document id it gets (its path relative to its root)."""

    path: Path
    doc_id: str
    mime_type: str


def mime_type_of(path: str | os.PathLike) -> str | None:
    """The media type ``ingest`` uses for a file name, None for unsupported extensions."""
    return MIME_BY_EXTENSION.get(Path(path).suffix.lower())


def document_from_path(
    path: str | os.PathLike,
    *,
    doc_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    mime_type: str | None = None,
) -> Document:
    """A Document from a file: text types are sent as UTF-8 text, PDF (and undecodable files) as
    bytes. ``doc_id`` defaults to the path as given; ``mime_type`` to the one of its extension."""
    path = Path(path)
    mime = mime_type or mime_type_of(path) or PLAIN
    raw = path.read_bytes()
    doc_id = doc_id or path.as_posix()
    meta = dict(metadata or {})
    if mime != PDF:
        try:
            return Document(doc_id, text=raw.decode("utf-8-sig"), mime_type=mime, metadata=meta)
        except UnicodeDecodeError:
            pass
    return Document(doc_id, data=raw, mime_type=mime, metadata=meta)


def _has_magic(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _static_root(pattern: str) -> Path:
    parts = []
    for part in Path(pattern).parts:
        if _has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _hidden(relative: Path) -> bool:
    return any(p.startswith(".") and p not in (".", "..") for p in relative.parts)


def _doc_id(path: Path, root: Path, prefix: str) -> str:
    """The path relative to the current directory when it lies inside it, else to ``root``."""
    resolved = path.resolve()
    try:
        rel = resolved.relative_to(Path.cwd().resolve())
    except ValueError:
        base = root.resolve() if root.resolve() != resolved else resolved.parent
        rel = resolved.relative_to(base)
    return prefix + rel.as_posix()


def find_files(
    paths: Iterable[str | os.PathLike],
    *,
    recursive: bool = True,
    include_hidden: bool = False,
    id_prefix: str = "",
) -> list[FoundFile]:
    """Files named by ``paths`` (files, directories, glob patterns such as ``docs/**/*.md``).

    Directories are walked (recursively unless ``recursive=False``) for files with a known
    extension (MIME_BY_EXTENSION); hidden files and directories are left out unless
    ``include_hidden``. A file named directly is taken whatever its extension (as text/plain when
    unknown). Document ids are the paths relative to the current directory (or to the directory
    or pattern root when outside it), with ``/`` separators and ``id_prefix`` prepended; each
    file appears once, in sorted order per argument. FileNotFoundError names a path that matches
    nothing.
    """
    found: dict[Path, FoundFile] = {}

    def add(path: Path, root: Path, *, explicit: bool) -> None:
        mime = mime_type_of(path)
        if mime is None and not explicit:
            return
        key = path.resolve()
        if key not in found:
            found[key] = FoundFile(path, _doc_id(path, root, id_prefix), mime or PLAIN)

    for arg in paths:
        text = os.fspath(arg)
        p = Path(text)
        if _has_magic(text):
            root = _static_root(text)
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True, include_hidden=include_hidden))
            if not matches:
                raise FileNotFoundError(f"{text}: no file matches")
            for m in matches:
                if m.is_file():
                    add(m, root, explicit=False)
                elif m.is_dir() and recursive:
                    for f in _walk(m, recursive=recursive, include_hidden=include_hidden):
                        add(f, root, explicit=False)
        elif p.is_dir():
            for f in _walk(p, recursive=recursive, include_hidden=include_hidden):
                add(f, p, explicit=False)
        elif p.is_file():
            add(p, p.parent, explicit=True)
        else:
            raise FileNotFoundError(f"{text}: no such file or directory")
    return list(found.values())


def _walk(directory: Path, *, recursive: bool, include_hidden: bool) -> list[Path]:
    files = directory.rglob("*") if recursive else directory.glob("*")
    out = []
    for f in files:
        if not f.is_file():
            continue
        if not include_hidden and _hidden(f.relative_to(directory)):
            continue
        out.append(f)
    return sorted(out)
