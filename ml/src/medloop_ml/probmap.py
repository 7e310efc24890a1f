"""Probability maps on disk: one-channel 16-bit PNG holding round(p · 65535).

Why 16 bits: the AUC ranks every pixel by its probability. An 8-bit map rounds probabilities to
steps of 1/255, so a confident network piles thousands of vessel and background pixels onto the
same few levels near 0 and 1; every vessel/background pair on one level counts one half in the
Mann–Whitney statistic instead of 0 or 1; on CHASE_DB1 issue 9 measured the AUC understated by
0.001–0.008 per image. Steps of 1/65535 keep the ranking of the float map except for pixels
closer than 1/65535 (error at most 0.5/65535 per pixel). Those remaining ties are mostly
saturated pixels: a trained network puts a few per cent of the field of view within 0.5/65535
of 1, where they all become 65535, so the AUC of a 16-bit map can still sit slightly below the
float map's (``benchmarks/auc_bits.py`` measures both).

Readers accept the 16-bit maps and the 8-bit ones written before (and by other tools): the file's
bit depth decides the scale, /65535 or /255. Other kinds of file (colour heat maps, 32-bit or
float images) are refused with :class:`ProbMapError` naming the file, never guessed at.

Writers put the bytes under a temporary name in the destination folder and rename it, like every
other output of the engine, so a reader never sees half a file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medloop_ml.io import write_bytes_atomic

LEVELS_16 = 65535  # the largest value of a 16-bit sample: probability 1
LEVELS_8 = 255  # the same for the older 8-bit maps

# Pillow's modes of one-channel 16-bit images (byte orders differ, the values do not).
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ProbMapError(ValueError):
    """A file that is not a readable one-channel 8- or 16-bit probability map."""


def encode_prob16(prob: np.ndarray) -> np.ndarray:
    """Probabilities (float H×W in [0, 1]) → uint16 H×W levels round(p · 65535).

    The product is taken in float64: in float32 it would round p · 65535 to about 0.004 of a
    level, enough to flip the rounding of values near a half level. Raises ``ValueError`` for a
    map that is not 2-D, holds NaN or leaves [0, 1] (a broken model, not something to clip).
    """
    p = np.asarray(prob, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"a probability map must be H×W, got shape {p.shape}")
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("a probability map must hold finite values in [0, 1]")
    return np.rint(p * LEVELS_16).astype(np.uint16)


def decode_prob(levels: np.ndarray, bits: int) -> np.ndarray:
    """Stored levels (uint8 or uint16 H×W) → float64 probabilities in [0, 1].

    ``bits`` is the file's bit depth, 8 or 16: the scale is 1/255 or 1/65535.
    """
    if bits not in (8, 16):
        raise ValueError(f"probability maps have 8 or 16 bits per sample, not {bits}")
    return np.asarray(levels, dtype=np.float64) / (LEVELS_16 if bits == 16 else LEVELS_8)


def prob16_png_bytes(prob: np.ndarray) -> bytes:
    """The PNG file (one channel, 16 bits per sample) of a float H×W probability map."""
    buffer = io.BytesIO()
    # A uint16 array becomes Pillow mode "I;16", which the PNG encoder writes as 16-bit grey.
    Image.fromarray(encode_prob16(prob)).save(buffer, format="PNG")
    return buffer.getvalue()


def _one_frame(img: Image.Image, source: Path) -> None:
    frames = getattr(img, "n_frames", 1)
    if frames != 1:
        raise ProbMapError(f"probability map {source} has {frames} frames; expected one")


def write_prob_png(path: str | Path, prob: np.ndarray) -> Path:
    """Write a float H×W probability map as a 16-bit PNG at ``path`` atomically; returns it."""
    return write_bytes_atomic(path, prob16_png_bytes(prob))


def _levels_and_bits(img: Image.Image, path: Path) -> tuple[np.ndarray, int]:
    """The samples of a one-channel map and its bit depth, from the decoded Pillow image."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(img, dtype=np.uint16), 16
    if mode == "I" and img.format == "PNG":
        # Older Pillow versions decode 16-bit grey PNGs as 32-bit "I"; a PNG has no other way to
        # reach this mode, so the samples are 16-bit.
        return np.asarray(img, dtype=np.int64).astype(np.uint16), 16
    if mode in ("L", "LA"):
        return np.asarray(img.getchannel(0), dtype=np.uint8), 8
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        # A grey map saved as RGB (some viewers do): equal channels mean one value per pixel.
        if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
            return rgb[..., 0].copy(), 8
        raise ProbMapError(
            f"probability map {path} is a colour image; expected one-channel 8- or 16-bit grey"
        )
    raise ProbMapError(
        f"probability map {path} has pixel mode {mode}; expected one-channel 8- or 16-bit grey"
    )


_ACCEPTED_MODES = (*_SIXTEEN_BIT_MODES, "L", "LA", "RGB", "RGBA")


def prob_png_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of a probability map from its header, refusing what no reader accepts
    (several frames, modes other than one-channel grey or RGB) without decoding the pixels.

    A cheap up-front check, so a bad map in a large folder fails before any work; whether an RGB
    file is really grey is only known from its pixels (:func:`read_prob_png`).
    """
    source = Path(path)
    try:
        with Image.open(source) as img:
            _one_frame(img, source)
            if img.mode not in _ACCEPTED_MODES and not (img.mode == "I" and img.format == "PNG"):
                raise ProbMapError(
                    f"probability map {source} has pixel mode {img.mode}; expected one-channel "
                    "8- or 16-bit grey"
                )
            return img.height, img.width
    except ProbMapError:
        raise
    except FileNotFoundError as exc:
        raise ProbMapError(f"probability map not found: {source}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ProbMapError(f"cannot read probability map {source}: {exc}") from exc


def read_prob_png_levels(path: str | Path) -> tuple[np.ndarray, int]:
    """The raw samples (uint8 or uint16 H×W) of a probability map file and its bit depth (8/16).

    Raises :class:`ProbMapError` (one line naming the file) when the file is missing, cannot be
    decoded, has several frames or is not a one-channel grey map.
    """
    source = Path(path)
    try:
        with Image.open(source) as img:
            _one_frame(img, source)
            img.load()
            return _levels_and_bits(img, source)
    except ProbMapError:
        raise
    except FileNotFoundError as exc:
        raise ProbMapError(f"probability map not found: {source}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ProbMapError(f"cannot read probability map {source}: {exc}") from exc


def read_prob_png(path: str | Path) -> np.ndarray:
    """Read a probability map as float64 H×W in [0, 1], scaled by the file's bit depth.

    16-bit maps (what the engine writes) are divided by 65535, 8-bit ones by 255. Errors as in
    :func:`read_prob_png_levels`.
    """
    levels, bits = read_prob_png_levels(path)
    return decode_prob(levels, bits)
