"""Raw document content -> plain text (and a title) for chunking.

Plain text and Markdown are used as they are (Markdown structure guides chunking). HTML is
reduced to its visible text with the standard library's parser (block elements become
paragraphs; scripts, styles and other non-content elements are dropped). PDF needs the optional
``pypdf`` package (``pip install 'lorag[documents]'``).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from lorag.common.errors import FailedPrecondition, InvalidArgument

PLAIN, MARKDOWN, HTML, PDF = "text/plain", "text/markdown", "text/html", "application/pdf"
MIME_TYPES = (PLAIN, MARKDOWN, HTML, PDF)
_ALIASES = {"": PLAIN, "text/x-markdown": MARKDOWN, "application/xhtml+xml": HTML}


class ParseError(Exception):
    """The content could not be read as its declared type (the message is safe to show)."""


@dataclass(frozen=True)
class ParsedText:
    text: str
    title: str
    markdown: bool


def normalize_mime(mime_type: str, *, field: str) -> str:
    base = (mime_type or "").split(";")[0].strip().lower()
    base = _ALIASES.get(base, base)
    if base not in MIME_TYPES:
        raise InvalidArgument(
            f"unsupported type {mime_type[:100]!r}; use one of {', '.join(MIME_TYPES)}", field=field
        )
    return base


def pdf_available() -> bool:
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return False
    return True


def check_supported(mime: str, *, field: str) -> None:
    if mime == PDF and not pdf_available():
        raise FailedPrecondition(
            f"{field}: PDF needs the optional parser: pip install 'lorag[documents]' (pypdf)"
        )


def parse(content: str | bytes, mime: str) -> ParsedText:
    """Text and title of ``content`` of type ``mime`` (one of MIME_TYPES)."""
    if mime == PDF:
        if isinstance(content, str):
            raise ParseError("PDF content must be sent as bytes (`data`)")
        return _parse_pdf(content)
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ParseError("content is not valid UTF-8") from None
    content = content.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if mime == HTML:
        return _parse_html(content)
    if mime == MARKDOWN:
        return ParsedText(content, _markdown_title(content), True)
    return ParsedText(content, "", False)


_MD_TITLE = re.compile(r"^ {0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _markdown_title(text: str) -> str:
    m = _MD_TITLE.search(text[:10000])
    return m.group(1).strip()[:1024] if m else ""


class _HtmlText(HTMLParser):
    BLOCK = frozenset(
        "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 "
        "h5 h6 header hr li main nav ol p pre section table tbody td tfoot th thead tr ul".split()
    )
    SKIP = frozenset("script style noscript template svg head iframe object canvas".split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.heading_parts: list[str] = []
        self._skip = 0
        self._in_title = False
        self._in_h1 = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skip += 1
        elif tag == "h1":
            self._in_h1 = True
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "h1":
            self._in_h1 = False
        if tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._in_title:
            self.title_parts.append(data)
            return
        if self._skip:
            return
        if self._in_h1:
            self.heading_parts.append(data)
        self.parts.append(data)


def _parse_html(html: str) -> ParsedText:
    p = _HtmlText()
    try:
        p.feed(html)
        p.close()
    except Exception as exc:  # noqa: BLE001 - the stdlib parser is lenient; be safe
        raise ParseError("content is not readable HTML") from exc
    raw = "".join(p.parts)
    paragraphs = [re.sub(r"[ \t\f\v\n]+", " ", para).strip() for para in re.split(r"\n\s*\n", raw)]
    text = "\n\n".join(x for x in paragraphs if x)
    title = " ".join("".join(p.title_parts).split()) or " ".join("".join(p.heading_parts).split())
    return ParsedText(text, title[:1024], False)


def _parse_pdf(data: bytes) -> ParsedText:
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = ""
        if reader.metadata is not None and reader.metadata.title:
            title = str(reader.metadata.title)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad document
        raise ParseError("content is not a readable PDF") from exc
    text = "\n\n".join(p.replace("\r\n", "\n") for p in pages if p)
    return ParsedText(text, " ".join(title.split())[:1024], False)
