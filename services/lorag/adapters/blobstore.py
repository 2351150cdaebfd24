"""Blob store of adapter files through fsspec: a local directory by default, S3-compatible in production.

Layout under the root: ``<tenant>/<adapter>/<version id>/<file>``. A version's prefix is written once,
before its registry row exists, and never changed afterwards. Every method is blocking; call them
off the event loop.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.utils import infer_storage_options

from lorag.common.errors import InvalidArgument, NotFound

_PROTOCOL_ALIASES = {"s3a": "s3", "local": "file"}


class BlobStore:
    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **(options or {}))
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        self.protocol = _PROTOCOL_ALIASES.get(protocol, protocol)
        self.root = root.rstrip("/") or "/"
        if self.protocol == "file":
            Path(self.root).mkdir(parents=True, exist_ok=True)

    # -- paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def uri(self, path: str) -> str:
        """A URI for ``path`` that :meth:`resolve_uri` accepts back (shown to users)."""
        return path if self.protocol == "file" else f"{self.protocol}://{path}"

    def version_prefix(self, tenant_id: str, adapter: str, version_id: str) -> str:
        return self.path(tenant_id, adapter, version_id)

    def tenant_prefix(self, tenant_id: str) -> str:
        return self.path(tenant_id)

    def resolve_uri(self, uri: str) -> str:
        """The store path of a user-given URI inside this store; InvalidArgument otherwise."""
        if not uri:
            raise InvalidArgument("is required", field="uri")
        opts = infer_storage_options(uri)
        protocol = _PROTOCOL_ALIASES.get(opts.get("protocol", "file"), opts.get("protocol", "file"))
        if protocol != self.protocol:
            raise InvalidArgument(
                f"{uri!r} is not in the adapter blob store ({self.uri(self.root)})", field="uri"
            )
        raw = self.fs._strip_protocol(uri)
        if any(part == ".." for part in raw.split("/")):
            raise InvalidArgument("must not contain '..'", field="uri")
        path = posixpath.normpath(raw).rstrip("/")
        if not path.startswith(self.root.rstrip("/") + "/"):
            raise InvalidArgument(
                f"{uri!r} is not in the adapter blob store ({self.uri(self.root)})", field="uri"
            )
        return path

    # -- files -------------------------------------------------------------------------------
    def list_files(self, prefix: str) -> list[dict[str, Any]]:
        """Entries directly under ``prefix`` (name, size, type, islink); NotFound if none."""
        self.fs.invalidate_cache()
        try:
            entries = self.fs.ls(prefix, detail=True)
        except FileNotFoundError:
            raise NotFound(f"no adapter files at {self.uri(prefix)!r}") from None
        if not entries:
            raise NotFound(f"no adapter files at {self.uri(prefix)!r}")
        out = []
        for e in entries:
            name = posixpath.basename(e["name"].rstrip("/"))
            out.append({**e, "name": name, "path": e["name"], "size": int(e.get("size") or 0)})
        return out

    def put_files(self, files: dict[str, Path], prefix: str) -> None:
        if self.protocol == "file":
            Path(prefix).mkdir(parents=True, exist_ok=True)
        for name, local in files.items():
            self.fs.put_file(str(local), posixpath.join(prefix, name))

    def get_file(self, path: str, local: Path) -> None:
        self.fs.get_file(path, str(local))

    def open_chunks(self, path: str, chunk_bytes: int) -> Iterator[bytes]:
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(chunk_bytes):
                yield chunk

    def open(self, path: str):
        return self.fs.open(path, "rb")

    def exists(self, path: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.exists(path)

    def delete_prefix(self, prefix: str) -> None:
        self.fs.invalidate_cache()
        try:
            self.fs.rm(prefix, recursive=True)
        except FileNotFoundError:
            pass
