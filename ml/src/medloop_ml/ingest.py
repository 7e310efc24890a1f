"""The ingest contract, Python side: how every image and mask file is read (docs/ingest.md).

The TypeScript side (``services/ingest/decode.ts``) implements the same rules; both read their
numbers from ``ingest_contract.json`` and a conformance test checks that they give identical
pixels on every field case and on generated variants. The pipeline, the same for every format:

1. **decode** the file to its native samples (1, 2, 3 or 4 channels: grey, grey+alpha, RGB,
   RGBA; 8 or 16 bits, or a PNM ``maxval``), refusing multi-page files and sizes outside the
   contract (``min_side``, ``max_pixels``) from the header, before the pixels are decoded;
2. **orient**: apply the EXIF Orientation tag, so the result is upright;
3. **scale** to 8 bits as ``round(v · 255 / maxval)`` (16 bits: ``round(v / 257)``);
4. **composite** alpha on black: ``round(c · a / 255)``;
5. images: grey expanded to three channels. Masks: binarised (see :func:`mask_from_samples`).

Libraries: Pillow decodes PNG, JPEG, TIFF, GIF, BMP and WebP; Pillow keeps only the high byte of
16-bit colour PNG/TIFF samples, so 16-bit PNG and TIFF are decoded by imagecodecs instead. PNM
(PPM/PGM) is parsed here: its format is a few lines of header and raw samples, and Pillow's
scaling of ``maxval`` other than 255 is not the contract's rule. All rounding is done in
integers, so both languages give the same bytes.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

_CONTRACT = json.loads(
    resources.files("medloop_ml").joinpath("ingest_contract.json").read_text("utf-8")
)
IMAGE_EXTENSIONS: tuple[str, ...] = tuple(_CONTRACT["extensions"])
SUPPORTED: str = _CONTRACT["formats_text"]
LOSSY_FORMATS: tuple[str, ...] = tuple(_CONTRACT["lossy_formats"])
MIN_SIDE: int = int(_CONTRACT["min_side"])
MAX_PIXELS: int = int(_CONTRACT["max_pixels"])
MASK_THRESHOLD: int = int(_CONTRACT["mask_threshold"])

EXIF_ORIENTATION = 0x0112
TIFF_EXTRA_SAMPLES = 338
_MAGIC: list[bytes] = [bytes.fromhex(m) for ms in _CONTRACT["magic_numbers"].values() for m in ms]


class IngestError(ValueError):
    """A file the contract refuses. ``kind`` names the rule; the message names file and reason.

    Kinds: ``missing``, ``unreadable``, ``unsupported``, ``pages``, ``too_small``, ``too_large``,
    ``size_mismatch``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Samples:
    """Decoded, upright native samples of one file."""

    data: np.ndarray  # H×W×C, uint8 or uint16; C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
    maxval: int  # the largest sample value of the format: 1, 255, 65535 or a PNM maxval
    format: str  # png, jpeg, tiff, gif, bmp, pnm, webp

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])


@dataclass(frozen=True)
class Mask:
    """A binarised mask and whether its file was lossy (then its edges were thresholded)."""

    mask: np.ndarray  # bool H×W
    lossy: bool

    @property
    def foreground(self) -> int:
        return int(self.mask.sum())


# --------------------------------------------------------------------------- limits


def check_limits(width: int, height: int, name: str) -> None:
    """Refuse a size outside the contract, naming the limit (the same everywhere)."""
    if width < MIN_SIDE or height < MIN_SIDE:
        raise IngestError(
            "too_small",
            f"{name}: {width}x{height} is too small; the minimum side is {MIN_SIDE} pixels",
        )
    if width * height > MAX_PIXELS:
        raise IngestError(
            "too_large",
            f"{name}: {width}x{height} = {width * height} pixels is too large; "
            f"the limit is {MAX_PIXELS} pixels",
        )


def check_same_size(mask: Samples | np.ndarray, width: int, height: int, name: str) -> None:
    """A mask must have exactly the upright image's size; it is never resized or cropped."""
    mh, mw = (mask.height, mask.width) if isinstance(mask, Samples) else mask.shape[:2]
    if (mw, mh) != (width, height):
        raise IngestError(
            "size_mismatch", f"{name}: mask is {mw}x{mh} but the image is {width}x{height}"
        )


# --------------------------------------------------------------------------- decoding


def _pnm(data: bytes, name: str) -> Samples:
    """PGM/PPM, binary (P5/P6) or plain (P2/P3), ``#`` comments anywhere in the header."""
    magic = data[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        kind = magic.decode("latin-1", "replace")
        raise IngestError(
            "unsupported", f"{name}: PNM type {kind} is not supported (P2, P3, P5, P6)"
        )
    fields: list[int] = []
    pos = 2
    while len(fields) < 3:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            end = data.find(b"\n", pos)
            pos = len(data) if end < 0 else end + 1
            continue
        start = pos
        while pos < len(data) and data[pos : pos + 1].isdigit():
            pos += 1
        if start == pos:
            raise IngestError("unreadable", f"{name}: malformed PNM header")
        fields.append(int(data[start:pos]))
    width, height, maxval = fields
    if not 1 <= maxval <= 65535:
        raise IngestError("unreadable", f"{name}: PNM maxval {maxval} is outside 1..65535")
    check_limits(width, height, name)
    channels = 3 if magic in (b"P3", b"P6") else 1
    count = width * height * channels
    if magic in (b"P5", b"P6"):
        body = data[pos + 1 :]  # exactly one whitespace byte ends the header
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
        if len(body) < count * dtype.itemsize:
            raise IngestError("unreadable", f"{name}: truncated PNM data")
        values = np.frombuffer(body, dtype=dtype, count=count).astype(np.uint16)
    else:
        tokens = data[pos:].split()
        if len(tokens) < count:
            raise IngestError("unreadable", f"{name}: truncated PNM data")
        bad = next((t for t in tokens[:count] if not t.isdigit()), None)
        if bad is not None:
            text = bad.decode("latin-1")
            raise IngestError("unreadable", f"{name}: PNM sample {text!r} is not a number")
        values = np.array([int(t) for t in tokens[:count]], dtype=np.int64)
    if int(values.max(initial=0)) > maxval:
        raise IngestError("unreadable", f"{name}: a PNM sample exceeds maxval {maxval}")
    dtype_out = np.uint8 if maxval <= 255 else np.uint16
    array = values.astype(dtype_out).reshape(height, width, channels)
    return Samples(array, maxval, "pnm")


# 32-bit BI_BITFIELDS masks (R, G, B, A) the contract reads (the TypeScript side reads the same).
_BMP_MASKS_32 = {tuple(int(m, 16) for m in masks) for masks in _CONTRACT["bmp_bitfield_masks_32"]}


def _check_bmp_variant(data: bytes, name: str) -> None:
    """Refuse the BMP variants the contract does not list (RLE, 16-bit, other bitfields).

    Pillow reads more of them than the TypeScript side does; the contract is the intersection,
    so both sides refuse the same files.
    """
    def u32(at: int) -> int:
        return int.from_bytes(data[at : at + 4], "little")

    header_size = u32(14)
    if header_size == 12:
        return
    bits, compression = int.from_bytes(data[28:30], "little"), u32(30)
    masks = tuple(u32(54 + 4 * k) for k in range(4 if header_size >= 56 else 3))
    masks = masks if len(masks) == 4 else (*masks, 0)
    ok = (
        (compression == 0 and bits in (1, 4, 8, 24, 32))
        or (compression == 3 and bits == 32 and masks in _BMP_MASKS_32)
        or (compression == 3 and bits == 24 and masks[:3] == (0xFF0000, 0xFF00, 0xFF))
    )
    if not ok:
        raise IngestError(
            "unsupported",
            f"{name}: {bits}-bit BMP with compression {compression} is not supported "
            "(1, 4, 8, 24 or 32 bits, uncompressed)",
        )


_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff", "GIF": "gif",
            "BMP": "bmp", "DIB": "bmp", "WEBP": "webp"}


def _open(data: bytes, name: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        message = f"{name}: too large; the limit is {MAX_PIXELS} pixels"
        raise IngestError("too_large", message) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if looks_like_supported_format(data):  # e.g. a BMP whose header is cut short
            raise IngestError("unreadable", f"{name}: the image file is damaged ({exc})") from exc
        raise IngestError("unsupported", f"{name}: not an image file of a supported format "
                          f"({SUPPORTED})") from exc
    if img.format not in _FORMATS:
        message = f"{name}: {img.format} files are not supported ({SUPPORTED})"
        raise IngestError("unsupported", message)
    return img


def looks_like_supported_format(data: bytes) -> bool:
    """Whether a file starts with the magic number of a contract format (damaged, not foreign)."""
    return any(data.startswith(magic) for magic in _MAGIC)


def _page_count(img: Image.Image) -> int:
    # An MPO is a JPEG followed by extra pictures (phones store depth maps there); its first
    # picture is the JPEG itself, which is what every other reader shows, so it counts as one.
    return 1 if img.format == "MPO" else int(getattr(img, "n_frames", 1))


def _as_tuple(value: object) -> tuple[object, ...]:
    return value if isinstance(value, tuple) else (value,)


def _is_16_bit(img: Image.Image, data: bytes) -> bool:
    if img.format == "PNG":
        return data[24] == 16  # IHDR bit depth
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))  # BitsPerSample
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _decode_16_bit(img: Image.Image, data: bytes, name: str) -> np.ndarray:
    import imagecodecs  # imported here: large, and only 16-bit files need it

    try:
        decode = imagecodecs.png_decode if img.format == "PNG" else imagecodecs.tiff_decode
        array = decode(data)
    except Exception as exc:  # imagecodecs raises its own per-codec error classes
        raise IngestError("unreadable", f"{name}: cannot decode the 16-bit image ({exc})") from exc
    array = np.asarray(array)
    if array.dtype != np.uint16:
        raise IngestError("unsupported", f"{name}: unsupported sample type {array.dtype}")
    return array


def _pillow_samples(img: Image.Image, name: str) -> tuple[np.ndarray, int]:
    """Native samples of an 8-bit (or 1-bit) Pillow image and their maxval."""
    mode = img.mode
    if mode in ("1", "L", "RGB") and "transparency" in img.info:
        # A PNG's tRNS colour: those pixels are transparent (sharp makes it an alpha channel).
        return np.asarray(img.convert("RGBA" if mode == "RGB" else "LA"), dtype=np.uint8), 255
    if mode == "1":
        return np.asarray(img, dtype=np.uint8), 1
    if mode in ("L", "LA", "RGB", "RGBA", "RGBa"):
        # RGBa (premultiplied, e.g. a TIFF with associated alpha): its samples as stored, as
        # sharp reads them.
        return np.asarray(img, dtype=np.uint8), 255
    if mode == "P":
        rgb = "RGBA" if "transparency" in img.info else "RGB"
        return np.asarray(img.convert(rgb), dtype=np.uint8), 255
    if mode in ("PA", "RGBX"):
        return np.asarray(img.convert("RGBA" if mode != "RGBX" else "RGB"), dtype=np.uint8), 255
    if mode == "La":
        return np.asarray(img.convert("LA"), dtype=np.uint8), 255
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img, dtype=np.uint16), 65535
    what = {"CMYK": "CMYK colour", "F": "floating-point samples", "I": "32-bit samples"}
    raise IngestError(
        "unsupported", f"{name}: {what.get(mode, f'image mode {mode}')} is not supported "
        "(grey or RGB, 8 or 16 bits)"
    )


def _orientation(img: Image.Image) -> int:
    """The EXIF Orientation tag (0x0112) of a file as opened, before its pixels are loaded.

    Only the EXIF block counts (a TIFF's own tag, the APP1/eXIf/EXIF chunk of the others), as on
    the TypeScript side: Pillow's ``getexif()`` would also take an XMP ``tiff:Orientation``, and
    Pillow drops a TIFF's tag once it has turned the loaded pixels upright itself.
    """
    try:
        if img.format == "TIFF":
            value = img.tag_v2.get(EXIF_ORIENTATION, 1)
        else:
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
            value = exif.get(EXIF_ORIENTATION, 1)
        value = int(value)
    except Exception:  # a broken EXIF block: the pixels are still good, stored as they are
        return 1
    return value if 1 <= value <= 8 else 1


def _stored_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the pixels as stored. Pillow reports a TIFF's upright size instead."""
    if img.format == "TIFF" and 256 in img.tag_v2 and 257 in img.tag_v2:
        return int(img.tag_v2[256]), int(img.tag_v2[257])  # ImageWidth, ImageLength
    return img.width, img.height


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF Orientation (1–8) to H×W×C samples, giving the upright view.

    Values from the EXIF 2.3 specification, tag 0x0112: 2 mirror horizontally, 3 rotate 180°,
    4 mirror vertically, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90°
    counter-clockwise.
    """
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(ops[orientation](array))


def decode_samples(data: bytes, name: str) -> Samples:
    """Decode a file's bytes to upright native samples (steps 1–2); IngestError when refused."""
    if not data:
        raise IngestError("unreadable", f"{name}: the file is empty")
    if data[:1] == b"P" and data[1:2] in b"123456":
        return _pnm(data, name)
    img = _open(data, name)
    check_limits(img.width, img.height, name)
    if img.format in ("BMP", "DIB"):
        _check_bmp_variant(data, name)
    if img.format == "TIFF" and 1 in _as_tuple(img.tag_v2.get(TIFF_EXTRA_SAMPLES, ())):
        # Premultiplied colour: Pillow and sharp un-premultiply it with different rounding.
        raise IngestError("unsupported", f"{name}: TIFF with premultiplied (associated) alpha "
                          "is not supported; save it with unassociated alpha or none")
    pages = _page_count(img)
    if pages > 1:
        raise IngestError(
            "pages", f"{name}: the file holds {pages} pages (or frames); send one image per file"
        )
    orientation = _orientation(img)
    try:
        if _is_16_bit(img, data):
            array, maxval = _decode_16_bit(img, data, name), 65535
        else:
            img.load()
            array, maxval = _pillow_samples(img, name)
            if img.format == "TIFF" and EXIF_ORIENTATION not in img.tag_v2:
                orientation = 1  # Pillow turned the loaded TIFF upright and dropped the tag
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError("unreadable", f"{name}: the image could not be decoded ({exc})") from exc
    if array.ndim == 2:
        array = array[:, :, None]
    return Samples(orient(array, orientation), maxval, _FORMATS[str(img.format)])


# --------------------------------------------------------------------------- pixel rules


def to_8_bit(array: np.ndarray, maxval: int) -> np.ndarray:
    """round(v · 255 / maxval), halves rounded up, in integers (16 bits: round(v / 257))."""
    if maxval == 255:
        return array.astype(np.uint8)
    wide = array.astype(np.int64)
    return ((2 * 255 * wide + maxval) // (2 * maxval)).astype(np.uint8)


def composite_on_black(array: np.ndarray) -> np.ndarray:
    """8-bit H×W×C with an alpha channel (C = 2 or 4) → colour channels times alpha/255, rounded."""
    if array.shape[2] not in (2, 4):
        return array
    colour = array[..., :-1].astype(np.int64)
    alpha = array[..., -1:].astype(np.int64)
    return ((2 * colour * alpha + 255) // 510).astype(np.uint8)


def image_from_samples(samples: Samples) -> np.ndarray:
    """Steps 3–5 for an image: uint8 H×W×3 RGB, upright, alpha composited on black."""
    eight = composite_on_black(to_8_bit(samples.data, samples.maxval))
    if eight.shape[2] == 1:
        eight = np.repeat(eight, 3, axis=2)
    return np.ascontiguousarray(eight)


def mask_from_samples(samples: Samples) -> Mask:
    """Steps 3–4, then the mask rule: which pixels are foreground.

    - samples that are all 0 or 1 (a 0/1 mask at any bit depth) scale 1 → 255 first;
    - a lossless colour mask (some pixel whose R, G, B differ; palette colours included):
      foreground = any non-black pixel;
    - a grey mask, or any mask from a lossy format (JPEG, WebP): foreground = the brightest
      channel ≥ 128 on 8 bits, so a JPEG's in-between edge values are binarised at half scale.
    """
    data = samples.data
    has_alpha = data.shape[2] in (2, 4)
    colour = data[..., :-1] if has_alpha else data
    eight = to_8_bit(data, samples.maxval)
    if samples.maxval > 1 and int(colour.max(initial=0)) <= 1:
        eight[..., : colour.shape[2]] = colour.astype(np.uint8) * 255
    eight = composite_on_black(eight)
    lossy = samples.format in LOSSY_FORMATS
    is_colour = eight.shape[2] == 3 and bool(
        ((eight[..., 0] != eight[..., 1]) | (eight[..., 1] != eight[..., 2])).any()
    )
    brightest = eight.max(axis=2)
    mask = brightest > 0 if is_colour and not lossy else brightest >= MASK_THRESHOLD
    return Mask(np.ascontiguousarray(mask), lossy)


# --------------------------------------------------------------------------- files


def read_file(path: str | Path) -> bytes:
    """The bytes of a file; IngestError ``missing`` naming it when it does not exist."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise IngestError("missing", f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise IngestError("unreadable", f"{path}: is a folder, not an image file") from exc


def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 H×W×3 RGB under the contract (upright, 8 bits, no alpha)."""
    return image_from_samples(decode_samples(read_file(path), str(path)))


def read_mask(path: str | Path, size: tuple[int, int] | None = None) -> Mask:
    """A mask file binarised under the contract; ``size`` = the image's (width, height)."""
    samples = decode_samples(read_file(path), str(path))
    if size is not None:
        check_same_size(samples, size[0], size[1], str(path))
    return mask_from_samples(samples)


def upright_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of a file's upright view, from its header (no pixel decoding)."""
    data = read_file(path)
    if data[:1] == b"P" and data[1:2] in b"123456":
        samples = _pnm(data, str(path))
        return samples.height, samples.width
    img = _open(data, str(path))
    width, height = _stored_size(img)
    swapped = _orientation(img) in (5, 6, 7, 8)
    return (width, height) if swapped else (height, width)


def is_image_file(path: Path) -> bool:
    """A visible file with one of the contract's image extensions (matched case-insensitively)."""
    visible = path.is_file() and not path.name.startswith(".")
    return visible and path.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
