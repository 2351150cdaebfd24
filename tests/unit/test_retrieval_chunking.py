"""Token-aware chunking with the embedding model's tokenizer, and content parsing."""

import re

import pytest

from lorag.common.errors import InvalidArgument
from lorag.retrieval import parsing
from lorag.retrieval.chunking import chunk_text, tokenizer_token_starts
from tests.retrieval_helpers import load_tokenizer, minimal_pdf


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def starts(tokenizer):
    return tokenizer_token_starts(tokenizer)


def ntokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


SENTENCES = [
    "Solar panels convert sunlight into electricity.",
    "Photovoltaic cells are usually made of crystalline silicon.",
    "Their efficiency has risen steadily for decades.",
    "Inverters turn the direct current into alternating current.",
    "Batteries store the surplus for the evening hours.",
    "Grid operators balance supply and demand every second.",
    "Wind turbines complement solar power in winter.",
    "Hydropower can ramp up quickly when clouds pass.",
]


def test_chunks_respect_the_token_limit_and_are_exact_slices(tokenizer, starts):
    text = " ".join(SENTENCES * 4)
    chunks = chunk_text(text, chunk_tokens=40, overlap_tokens=0, token_starts=starts)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.token_count == ntokens(tokenizer, c.text) <= 40
    # no overlap: spans are ordered and disjoint, and together they hold every sentence
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))
    joined = " ".join(c.text for c in chunks)
    assert joined == text


def test_chunks_end_at_sentence_boundaries(starts):
    text = " ".join(SENTENCES * 3)
    chunks = chunk_text(text, chunk_tokens=30, overlap_tokens=0, token_starts=starts)
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.text[0].isupper() for c in chunks)


def test_a_paragraph_that_fits_a_chunk_is_not_split(tokenizer, starts):
    para1 = " ".join(SENTENCES[:3])
    para2 = " ".join(SENTENCES[3:6])
    text = f"{para1}\n\n{para2}"
    limit = max(ntokens(tokenizer, para1), ntokens(tokenizer, para2)) + 5
    assert ntokens(tokenizer, para1 + " " + para2) > limit
    chunks = chunk_text(text, chunk_tokens=limit, overlap_tokens=0, token_starts=starts)
    assert [c.text for c in chunks] == [para1, para2]


def test_overlap_repeats_whole_trailing_sentences(tokenizer, starts):
    text = " ".join(SENTENCES * 2)
    chunks = chunk_text(text, chunk_tokens=40, overlap_tokens=12, token_starts=starts)
    assert len(chunks) > 2
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # they overlap ...
        shared = text[b.start : a.end]
        assert shared in SENTENCES or " ".join(SENTENCES).find(shared) >= 0
        assert ntokens(tokenizer, shared) <= 12  # ... by whole sentences within the budget
        assert shared.endswith(".")


def test_a_sentence_longer_than_a_chunk_is_cut_at_word_boundaries(tokenizer, starts):
    words = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_text(words, chunk_tokens=50, overlap_tokens=0, token_starts=starts)
    assert len(chunks) >= 8
    for c in chunks:
        assert ntokens(tokenizer, c.text) <= 50
        assert re.fullmatch(r"word\d+( word\d+)*", c.text), c.text  # no word cut in half
    assert " ".join(c.text for c in chunks) == words


def test_markdown_headings_start_chunks_and_code_blocks_stay_together(starts):
    text = (
        "# Guide\n\nIntro sentence one. Intro sentence two.\n\n"
        "## Install\n\nRun the installer.\n\n```sh\npip install lorag\nlorag serve\n```\n\n"
        "## Use\n\n- first item\n- second item\n"
    )
    chunks = chunk_text(text, chunk_tokens=200, overlap_tokens=20, token_starts=starts, markdown=True)
    assert [c.text.splitlines()[0] for c in chunks] == ["# Guide", "## Install", "## Use"]
    assert "```sh\npip install lorag\nlorag serve\n```" in chunks[1].text
    assert chunks[2].text.endswith("- second item")


def test_blank_text_makes_no_chunks(starts):
    assert chunk_text("  \n\n \t ", chunk_tokens=50, overlap_tokens=5, token_starts=starts) == []


# -- parsing --------------------------------------------------------------------------------------
def test_html_gives_visible_text_in_paragraphs_and_the_title():
    html = """<!doctype html><html><head><title>The  Title</title><style>p{color:red}</style>
    <script>var secret = "do not index";</script></head><body>
    <h1>Heading</h1><p>First &amp; second paragraph.</p><div>Another <b>block</b></div>
    <noscript>enable js</noscript></body></html>"""
    parsed = parsing.parse(html.encode(), parsing.HTML)
    assert parsed.title == "The Title"
    assert parsed.text == "Heading\n\nFirst & second paragraph.\n\nAnother block"
    assert not parsed.markdown


def test_markdown_title_is_the_first_level_one_heading():
    parsed = parsing.parse("Intro line\n\n# Real Title #\n\ntext", parsing.MARKDOWN)
    assert parsed.title == "Real Title" and parsed.markdown


def test_plain_text_bytes_must_be_utf8():
    assert parsing.parse("caf\u00e9\r\nbar".encode(), parsing.PLAIN).text == "caf\u00e9\nbar"
    with pytest.raises(parsing.ParseError, match="not valid UTF-8"):
        parsing.parse(b"\xff\xfe\xfa", parsing.PLAIN)


def test_pdf_text_and_title_are_extracted():
    parsed = parsing.parse(
        minimal_pdf(["Hello PDF world.", "Second line here."], title="Doc Title"), parsing.PDF
    )
    assert "Hello PDF world." in parsed.text and "Second line here." in parsed.text
    assert parsed.title == "Doc Title"


def test_broken_pdf_is_a_parse_error():
    with pytest.raises(parsing.ParseError, match="not a readable PDF"):
        parsing.parse(b"%PDF-1.4 this is not really a pdf", parsing.PDF)


def test_unknown_media_types_are_invalid_argument():
    assert parsing.normalize_mime("", field="m") == parsing.PLAIN
    assert parsing.normalize_mime("text/markdown; charset=utf-8", field="m") == parsing.MARKDOWN
    with pytest.raises(InvalidArgument, match="documents\\[0\\].mime_type: unsupported type 'image/png'"):
        parsing.normalize_mime("image/png", field="documents[0].mime_type")
