"""Blob URIs shared with the TypeScript side (see docs/architecture.md "Blob URIs").

``blob://<key>`` is a file at ``$MEDLOOP_BLOB_ROOT/<key>``; ``file:///absolute/path`` is a
file anywhere. ``MEDLOOP_BLOB_ROOT`` defaults to ``$MEDLOOP_DATA_DIR/blobs`` and
``MEDLOOP_DATA_DIR`` to ``.data`` (relative to the working directory). Folder URIs end with
``/`` and file URIs never do; :func:`join_uri` is the one way to write a URI inside a folder
(TypeScript: ``joinUri`` in ``services/blobs.ts``, same rules).
"""

from __future__ import annotations

import os
import re
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


# One segment of a blob key: the TypeScript blob store's key alphabet (services/blobs.ts).
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


def join_uri(folder: str, name: str = "") -> str:
    """The one way to write a URI inside a folder URI (docs/architecture.md "Blob URIs").

    ``join_uri(folder)`` is the folder's normal form with exactly one trailing ``/``
    (``blob://runs/1/model``, ``blob://runs/1/model/`` and ``blob://runs/1/model//`` all give
    ``blob://runs/1/model/``); ``join_uri(folder, "best.pt")`` the file inside it;
    ``join_uri(folder, "previews/")`` a sub-folder. ``folder`` is ``blob://<key>`` or
    ``file:///absolute/path``. ``name`` is relative: ``/``-separated segments, none empty, ``.``
    or ``..``; inside ``blob://`` every segment is of the key alphabet (A-Z a-z 0-9 . _ -), inside
    ``file://`` segments are percent-encoded.

    Raises:
        BlobUriError: naming the URI or the name and what is wrong with it.
    """
    if folder.startswith("blob://"):
        blob = True
        key = folder[len("blob://") :].rstrip("/")
        # The TypeScript store's checkKey: segments of the key alphabet, none "." or "..".
        parts = key.split("/")
        if not key or any(p in (".", "..") or not _SEGMENT.fullmatch(p) for p in parts):
            raise BlobUriError(f'invalid blob key "{key}"')
        base = f"blob://{key}/"
    elif folder.startswith("file:///"):
        blob = False
        base = "file://" + folder[len("file://") :].rstrip("/") + "/"
    else:
        raise BlobUriError(
            f'unsupported folder URI "{folder}" (expected blob://key/ or file:///path/)'
        )
    if name == "":
        return base
    sub_folder = name.endswith("/")
    segments = (name[:-1] if sub_folder else name).split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise BlobUriError(
                f'cannot join "{name}" to {base}: '
                'a relative name has no empty, "." or ".." segments'
            )
        if blob and not _SEGMENT.fullmatch(segment):
            raise BlobUriError(
                f'cannot join "{name}" to {base}: blob keys use only A-Z a-z 0-9 . _ -'
            )
    joined = "/".join(segments if blob else (quote(s, safe="") for s in segments))
    return base + joined + ("/" if sub_folder else "")


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
