"""Client-side helpers to stream adapter files: build an upload stream, write a download stream.

Used by the CLI, the AdapterCache's gRPC client and tests. Pure Python on top of the generated
messages; no server code.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from lorag.adapters.v1 import adapters_pb2 as pb
from lorag.adapters.validation import manifest_sha256
from lorag.common.errors import DataLoss, InvalidArgument

DEFAULT_CHUNK_BYTES = 1024 * 1024
#: Files ``save_pretrained`` writes that are not part of an adapter version.
SKIPPED_FILES = ("README.md", ".gitattributes")


def adapter_files(directory: Path) -> dict[str, Path]:
    """The files of a local adapter directory to upload (everything but SKIPPED_FILES)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidArgument(f"{directory} is not a directory", field="directory")
    return {p.name: p for p in sorted(directory.iterdir()) if p.name not in SKIPPED_FILES}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(DEFAULT_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def upload_requests(
    directory: Path,
    *,
    adapter_name: str,
    kind: int = pb.ADAPTER_KIND_GENERATION,
    base_model: str = "",
    description: str = "",
    parent_version_id: str = "",
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    files: dict[str, Path] | None = None,
) -> Iterator[pb.UploadAdapterVersionRequest]:
    """The UploadAdapterVersion stream for a directory: metadata (with the expected manifest hash
    and total size), then each file in ~``chunk_bytes`` chunks."""
    files = files if files is not None else adapter_files(directory)
    total = sum(p.stat().st_size for p in files.values())
    expected = manifest_sha256({name: file_sha256(p) for name, p in files.items()})
    yield pb.UploadAdapterVersionRequest(
        metadata=pb.AdapterUploadMetadata(
            adapter_name=adapter_name,
            kind=kind,
            base_model=base_model,
            description=description,
            expected_sha256=expected,
            total_size=total,
            parent_version_id=parent_version_id,
        )
    )
    for name, path in files.items():
        with open(path, "rb") as fh:
            while data := fh.read(chunk_bytes):
                yield pb.UploadAdapterVersionRequest(chunk=pb.AdapterFileChunk(file_name=name, data=data))


def _writer(dest: Path):
    dest.mkdir(parents=True, exist_ok=True)
    state: dict = {"version": None, "handles": {}, "hashes": {}}

    def handle(message: pb.DownloadResponse) -> None:
        if message.WhichOneof("payload") == "version":
            state["version"] = message.version
            return
        if state["version"] is None:
            raise DataLoss("download stream did not start with the version")
        name = message.chunk.file_name
        allowed = {f.name for f in state["version"].files}
        if name not in allowed:  # never write a name the version does not list (path safety)
            raise DataLoss(f"download stream sent an unexpected file {name!r}")
        if name not in state["handles"]:
            state["handles"][name] = open(dest / name, "wb")  # noqa: SIM115 - closed in finish
            state["hashes"][name] = hashlib.sha256()
        state["handles"][name].write(message.chunk.data)
        state["hashes"][name].update(message.chunk.data)

    def finish() -> pb.AdapterVersion:
        for fh in state["handles"].values():
            fh.close()
        version = state["version"]
        if version is None:
            raise DataLoss("download stream was empty")
        got = {name: h.hexdigest() for name, h in state["hashes"].items()}
        for f in version.files:
            if got.get(f.name) != f.sha256:
                raise DataLoss(f"{f.name} of version {version.version_id} failed its SHA-256 check")
        if manifest_sha256(got) != version.sha256:
            raise DataLoss(f"version {version.version_id} failed its manifest SHA-256 check")
        return version

    return handle, finish


def write_download(messages: Iterable[pb.DownloadResponse], dest: Path) -> pb.AdapterVersion:
    """Write a Download stream into ``dest`` and verify every hash; returns the version."""
    handle, finish = _writer(Path(dest))
    for message in messages:
        handle(message)
    return finish()


async def awrite_download(messages: AsyncIterator[pb.DownloadResponse], dest: Path) -> pb.AdapterVersion:
    """:func:`write_download` for an asyncio stream."""
    handle, finish = _writer(Path(dest))
    async for message in messages:
        handle(message)
    return finish()
