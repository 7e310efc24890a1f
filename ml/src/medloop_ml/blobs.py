"""Blob URIs shared with the TypeScript side (see docs/architecture.md "Blob URIs").

``blob://<key>`` is a file at ``$MEDLOOP_BLOB_ROOT/<key>``; ``file:///absolute/path`` is a
file anywhere. ``MEDLOOP_BLOB_ROOT`` defaults to ``$MEDLOOP_DATA_DIR/blobs`` and
``MEDLOOP_DATA_DIR`` to ``.data`` (relative to the working directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit


class BlobUriError(ValueError):
    """A URI that is not a valid blob:// or file:// URI."""


def blob_root() -> Path:
    """The local blob store root from the settings."""
    root = os.environ.get("MEDLOOP_BLOB_ROOT")
    if root:
        return Path(root).resolve()
    data_dir = os.environ.get("MEDLOOP_DATA_DIR") or ".data"
    return (Path(data_dir) / "blobs").resolve()


def _check_key(key: str, uri: str) -> None:
    if not key or key.startswith("/") or "\\" in key:
        raise BlobUriError(f"invalid blob key in {uri!r}")
    parts = key.split("/")
    if any(p == ".." for p in parts) or any(p == "." for p in parts):
        raise BlobUriError(f"blob key may not contain '.' or '..' segments: {uri!r}")


def uri_to_path(uri: str) -> Path:
    """Resolve a ``blob://key`` or ``file:///abs`` URI to a local path.

    A key ending in ``/`` (a folder prefix such as ``blob://runs/r1/``) resolves to the folder.
    """
    if uri.startswith("blob://"):
        key = unquote(uri[len("blob://") :])
        _check_key(key.rstrip("/") or key, uri)
        root = blob_root()
        path = (root / key).resolve()
        if path != root and root not in path.parents:
            raise BlobUriError(f"blob key escapes the blob root: {uri!r}")
        return path
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise BlobUriError(f"file URI must be local (file:///abs/path): {uri!r}")
        path_str = unquote(parts.path)
        if not path_str.startswith("/"):
            raise BlobUriError(f"file URI must hold an absolute path: {uri!r}")
        return Path(path_str)
    raise BlobUriError(f"unsupported URI (expected blob:// or file://): {uri!r}")


def path_to_uri(path: str | Path) -> str:
    """The URI for a local path: ``blob://key`` inside the blob root, else ``file:///abs``."""
    resolved = Path(path).resolve()
    root = blob_root()
    if root in resolved.parents:
        key = resolved.relative_to(root).as_posix()
        return "blob://" + quote(key, safe="/")
    return "file://" + quote(resolved.as_posix(), safe="/")
