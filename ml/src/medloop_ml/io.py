"""Image file input/output: RGB images, binary masks and atomic PNG writes.

Pillow reads every format the engine accepts (PNG, JPEG, TIFF, GIF, PPM). Writers put the
bytes under a temporary name in the destination folder and ``os.replace`` it, so a reader
never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm", ".bmp")


class ImageReadError(ValueError):
    """A file could not be decoded as an image."""


def _open(path: str | Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.seek(0)  # first frame of an animated GIF / multi-page TIFF
            img.load()
            return img.copy()
    except FileNotFoundError as exc:
        raise ImageReadError(f"file not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from the file header without decoding the pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except FileNotFoundError as exc:
        raise ImageReadError(f"file not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` H×W×3 RGB (grey and palette images are expanded)."""
    img = _open(path)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float greyscale: rescale to 8 bit before converting to RGB.
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        arr8 = (arr / hi * 255.0).round().astype(np.uint8) if hi > 0 else arr.astype(np.uint8)
        return np.stack([arr8] * 3, axis=-1)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def read_grey(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` H×W greyscale (e.g. an 8-bit probability map)."""
    img = _open(path)
    return np.asarray(img.convert("L"), dtype=np.uint8).copy()


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as ``bool`` H×W: a pixel is foreground when any channel is > 0."""
    img = _open(path)
    if img.mode == "1":
        return np.asarray(img, dtype=bool).copy()
    if img.mode == "P":
        img = img.convert("RGB")
    arr = np.asarray(img)
    if arr.ndim == 3:
        # Ignore an alpha channel: a transparent-black pixel is background either way.
        channels = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
        return np.asarray((channels > 0).any(axis=-1), dtype=bool)
    return np.asarray(arr > 0, dtype=bool)


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
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))
