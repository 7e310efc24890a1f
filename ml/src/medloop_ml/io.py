"""Image file input/output: RGB images, binary masks and atomic PNG writes.

Reading follows the ingest contract (:mod:`medloop_ml.ingest`, docs/ingest.md). Writers put the
bytes under a temporary name in the destination folder and ``os.replace`` it, so a reader
never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .ingest import IMAGE_EXTENSIONS, IngestError, read_image, upright_size
from .ingest import read_mask as _read_mask

IMAGE_SUFFIXES = tuple(f".{ext}" for ext in IMAGE_EXTENSIONS)

# Every reader raises IngestError; the old name stays for the callers that catch it.
ImageReadError = IngestError


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of the upright image, from the file header."""
    return upright_size(path)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` H×W×3 RGB under the ingest contract (``ingest.read_image``)."""
    return read_image(path)


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` H×W greyscale (e.g. an 8-bit probability map)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise IngestError("missing", f"{path}: file not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise IngestError("unreadable", f"{path}: cannot read image ({exc})") from exc


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as ``bool`` H×W under the ingest contract's mask rule (``ingest.read_mask``)."""
    return _read_mask(path).mask


def to_uint8_image(array: np.ndarray) -> np.ndarray:
    """Convert bool (0/255), float in [0, 1] or uint8 arrays to uint8 for saving."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        return (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if arr.dtype != np.uint8:
        return np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def write_png_atomic(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (H×W or H×W×3/4; bool, float in [0, 1] or uint8) as a PNG atomically."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(to_uint8_image(array))
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            img.save(fh, format="PNG")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write raw bytes atomically (temporary name in the same folder, then rename)."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; other processes (the API, a viewer) read these
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))
