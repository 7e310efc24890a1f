"""Blob URIs as the activities use them: inputs that must exist, outputs under ``out_prefix``."""

from __future__ import annotations

from pathlib import Path

from medloop_ml.blobs import join_uri, path_to_uri, uri_to_path
from medloop_ml.worker.errors import bad_input


def existing_file(uri: str, what: str) -> Path:
    """The local path of an input blob; a missing one is bad input, not a retryable error."""
    path = uri_to_path(uri)
    if not path.is_file():
        raise bad_input(f"missing blob for {what}: {uri}")
    return path


def existing_dir(uri: str, what: str) -> Path:
    # join_uri checks the folder URI's form here, before any work, not when a result is named.
    path = uri_to_path(join_uri(uri))
    if not path.is_dir():
        raise bad_input(f"missing folder for {what}: {uri}")
    return path


def prefix_dir(out_prefix: str) -> Path:
    """The folder an ``out_prefix`` URI names (created on demand)."""
    path = uri_to_path(join_uri(out_prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path


def uri_for(path: Path, out_prefix: str, root: Path) -> str:
    """The URI of a file written below ``root`` (the folder of ``out_prefix``)."""
    try:
        return join_uri(out_prefix, Path(path).resolve().relative_to(root.resolve()).as_posix())
    except ValueError:
        return path_to_uri(path)
