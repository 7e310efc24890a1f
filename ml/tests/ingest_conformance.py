"""The ingest contract's conformance corpus and the Python side's answers (docs/ingest.md).

Both languages must read every file the same way. This script writes generated variants of
every kind of file the contract covers (formats, bit depths, EXIF orientations, palettes, alpha,
sizes at the limits, mask encodings, name forms) next to a manifest, and describes how the
Python side reads each one. The TypeScript conformance test (``test/conformance/ingest.test.ts``)
runs it, reads the same files with ``services/ingest/`` and requires identical answers; the
pytest side (``test_ingest.py``) checks the answers against values computed independently here.

Usage::

    python ingest_conformance.py variants OUT_DIR      # writes OUT_DIR/manifest.json + files
    python ingest_conformance.py describe MANIFEST     # JSON answers for every file, on stdout

The field cases (``../shared/fieldcases``, read in place) are added to the manifest when the
folder exists; ``MEDLOOP_FIELDCASES`` overrides where it is.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

from medloop_ml import ingest
from medloop_ml.data import DataError, pair_files

REPO = Path(__file__).resolve().parents[2]


def fieldcases_dir() -> Path:
    return Path(os.environ.get("MEDLOOP_FIELDCASES", REPO.parent / "shared" / "fieldcases"))


# --------------------------------------------------------------------------- generated files


def _rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with a bright 12×12 block in the top-left corner."""
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    img = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1),
                    (xx + yy) * 127 // max(width + height - 2, 1)], axis=-1).astype(np.int64)
    img += rng.integers(0, 8, size=img.shape)
    img[:12, :12] = 250
    return np.clip(img, 0, 255).astype(np.uint8)


def _vessels(width: int, height: int) -> np.ndarray:
    """A bool mask with a few thin lines."""
    yy, xx = np.mgrid[0:height, 0:width]
    lines = (np.abs(yy - xx * height // width) <= 1) | (np.abs(xx - width // 3) <= 0)
    lines |= np.abs(yy - height // 2) <= 1
    return lines


def _save(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ingest.EXIF_ORIENTATION] = orientation
    return exif


def _stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that ``orientation`` shows ``upright`` (the inverse)."""
    inverse = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}[orientation]
    return ingest.orient(upright, inverse)


def _pnm(magic: str, array: np.ndarray, maxval: int, comment: bool = True) -> bytes:
    h, w = array.shape[:2]
    head = f"{magic}\n" + ("# written by medloop's conformance corpus\n" if comment else "")
    head += f"{w} {h}\n# a comment between fields\n{maxval}\n"
    if magic in ("P2", "P3"):
        return head.encode() + " ".join(str(int(v)) for v in array.reshape(-1)).encode() + b"\n"
    dtype = ">u2" if maxval > 255 else "u1"
    return head.encode() + array.astype(dtype).tobytes()


def _bmp_with_header(data: bytes, bits: int, compression: int) -> bytes:
    out = bytearray(data)
    out[28:30] = bits.to_bytes(2, "little")
    out[30:34] = compression.to_bytes(4, "little")
    return bytes(out)


Entry = dict[str, Any]


def image_variants() -> list[tuple[str, bytes, Entry]]:
    """(file name, bytes, expectations) for image files."""
    out: list[tuple[str, bytes, Entry]] = []
    rgb = _rgb(67, 45)
    grey = rgb[..., 0]
    add = lambda name, data, **e: out.append((name, data, {"kind": "image", **e}))  # noqa: E731
    base = Image.fromarray(rgb)
    add("png_rgb8.png", _save(base, "PNG"), rgb=rgb)
    add("png_grey8.png", _save(Image.fromarray(grey), "PNG"), rgb=np.repeat(grey[..., None], 3, 2))
    alpha = np.tile(np.linspace(0, 255, 67).astype(np.uint8), (45, 1))
    rgba = np.dstack([rgb, alpha])
    composited = ((2 * rgb.astype(np.int64) * alpha[..., None] + 255) // 510).astype(np.uint8)
    add("png_rgba8.png", _save(Image.fromarray(rgba, "RGBA"), "PNG"), rgb=composited)
    add("png_la8.png", _save(Image.fromarray(np.dstack([grey, alpha]), "LA"), "PNG"))
    add("png_palette.png", _save(base.quantize(37), "PNG"))
    pal_t = base.quantize(16)
    add("png_palette_trns.png", _save(pal_t, "PNG", transparency=3))
    add("png_1bit.png", _save(Image.fromarray(grey > 128), "PNG"))
    wide = (rgb.astype(np.uint32) * 257 + np.arange(67)[None, :, None] * 3).astype(np.uint16)
    wide8 = ((2 * 255 * wide.astype(np.int64) + 65535) // (2 * 65535)).astype(np.uint8)
    add("png_rgb16.png", imagecodecs.png_encode(wide), rgb=wide8)
    grey16 = np.ascontiguousarray(wide[..., 0])
    add("png_grey16.png", imagecodecs.png_encode(grey16), rgb=np.repeat(wide8[..., :1], 3, 2))
    rgba16 = np.ascontiguousarray(np.dstack([wide, wide[..., :1]]))
    add("png_rgba16.png", imagecodecs.png_encode(rgba16))
    upright = _rgb(40, 56, seed=3)
    for o in range(1, 9):
        stored = Image.fromarray(_stored_for(upright, o))
        add(f"jpeg_exif{o}.jpg", _save(stored, "JPEG", quality=92, exif=_exif(o)),
            width=40, height=56)
    add("png_exif6.png", _save(Image.fromarray(_stored_for(upright, 6)), "PNG", exif=_exif(6)),
        rgb=upright)
    add("webp_exif8.webp", _save(Image.fromarray(_stored_for(upright, 8)), "WEBP",
                                 lossless=True, exif=_exif(8)), rgb=upright)
    for o in range(2, 9):
        add(f"tiff_exif{o}.tif", _save(Image.fromarray(_stored_for(upright, o)), "TIFF",
                                       exif=_exif(o)), rgb=upright)
    wide_upright = (upright.astype(np.uint16) * 257 + 3)
    for o in (3, 6, 8):
        buf = io.BytesIO()
        tifffile.imwrite(buf, _stored_for(wide_upright, o), photometric="rgb",
                         extratags=[(ingest.EXIF_ORIENTATION, "H", 1, o, True)])
        add(f"tiff16_exif{o}.tif", buf.getvalue(), width=40, height=56)
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
           b'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    # Only EXIF orientation counts (an XMP tiff:Orientation is not applied, on either side).
    add("jpeg_xmp_only6.jpg", _save(Image.fromarray(upright), "JPEG", quality=95, xmp=xmp),
        width=40, height=56)
    add("png_rgb_trns.png", _save(base, "PNG", transparency=tuple(int(v) for v in rgb[0, 0])))
    add("png_grey_trns.png", _save(Image.fromarray(grey), "PNG", transparency=int(grey[5, 5])))
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgba, photometric="rgb", extrasamples=[1])  # associated alpha
    add("tiff_assoc_alpha.tif", buf.getvalue(), error="unsupported")
    add("jpeg_grey.jpg", _save(Image.fromarray(grey), "JPEG", quality=80))
    add("jpeg_q60.JPEG", _save(base, "JPEG", quality=60))
    for comp in ("tiff_lzw", "tiff_deflate", "packbits", "raw"):
        add(f"tiff_{comp}.tiff", _save(base, "TIFF", compression=comp), rgb=rgb)
    buf = io.BytesIO()
    tifffile.imwrite(buf, wide, compression="lzw", photometric="rgb")
    add("tiff_rgb16_lzw.tif", buf.getvalue(), rgb=wide8)
    buf = io.BytesIO()
    tifffile.imwrite(buf, wide[..., 0], photometric="minisblack")
    add("tiff_grey16.tif", buf.getvalue(), rgb=np.repeat(wide8[..., :1], 3, 2))
    add("tiff_1bit.tif", _save(Image.fromarray(grey > 100), "TIFF"))
    add("gif_palette.gif", _save(base.quantize(64), "GIF"))
    add("gif_grey.gif", _save(Image.fromarray(grey), "GIF"))
    add("gif_transparent.gif", _save(base.quantize(32), "GIF", transparency=5))
    add("bmp_rgb24.bmp", _save(base, "BMP"), rgb=rgb)
    add("bmp_grey8.bmp", _save(Image.fromarray(grey), "BMP"), rgb=np.repeat(grey[..., None], 3, 2))
    add("bmp_palette8.bmp", _save(base.quantize(50), "BMP"))
    add("bmp_1bit.bmp", _save(Image.fromarray(grey > 90), "BMP"))
    add("bmp_rgbx32.bmp", _save(Image.fromarray(rgba, "RGBA"), "BMP"), rgb=rgb)
    add("pgm_p5.pgm", _pnm("P5", grey, 255), rgb=np.repeat(grey[..., None], 3, 2))
    add("ppm_p6.ppm", _pnm("P6", rgb, 255), rgb=rgb)
    add("ppm_p6_16.ppm", _pnm("P6", wide, 65535), rgb=wide8)
    add("pgm_p5_16.pgm", _pnm("P5", wide[..., 0], 65535), rgb=np.repeat(wide8[..., :1], 3, 2))
    ten = (rgb.astype(np.int64) * 4).clip(0, 1023)
    ten8 = ((2 * 255 * ten + 1023) // (2 * 1023)).astype(np.uint8)
    add("ppm_p6_maxval1023.ppm", _pnm("P6", ten, 1023), rgb=ten8)
    add("pgm_p2_ascii.pgm", _pnm("P2", grey, 255), rgb=np.repeat(grey[..., None], 3, 2))
    add("ppm_p3_ascii.pnm", _pnm("P3", rgb, 255), rgb=rgb)
    add("webp_lossless.webp", _save(base, "WEBP", lossless=True), rgb=rgb)
    add("webp_lossy.webp", _save(base, "WEBP", quality=80))
    add("webp_alpha.webp", _save(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True),
        rgb=composited)
    add("side_32.png", _save(Image.fromarray(_rgb(32, 33)), "PNG"), width=32, height=33)
    add("odd_999x960.png", _save(Image.fromarray(_rgb(999, 960)), "PNG"), width=999, height=960)
    # Refused kinds.
    add("side_31.png", _save(Image.fromarray(_rgb(31, 80)), "PNG"), error="too_small")
    add("thin_700x1.png", _save(Image.fromarray(_rgb(700, 1)), "PNG"), error="too_small")
    frames = [Image.fromarray(_rgb(40, 40, seed=s)) for s in range(3)]
    add("tiff_3pages.tif", _save(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        error="pages", pages=3)
    add("gif_animated.gif", _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        error="pages", pages=3)
    add("apng_2frames.png", _save(frames[0], "PNG", save_all=True, append_images=frames[1:2]),
        error="pages", pages=2)
    add("webp_animated.webp", _save(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        error="pages", pages=3)
    add("cmyk.jpg", _save(base.convert("CMYK"), "JPEG"), error="unsupported")
    add("bmp_16bit.bmp", _bmp_with_header(_save(base, "BMP"), 16, 0), error="unsupported")
    add("bmp_rle8.bmp", _bmp_with_header(_save(base.quantize(8), "BMP"), 8, 1),
        error="unsupported")
    add("pbm_p4.pbm", b"P4\n40 40\n" + bytes(200), error="unsupported")
    add("pgm_p2_over_maxval.pgm", b"P2\n32 32\n255\n" + b"300 " * 1024, error="unreadable")
    add("bmp_truncated_header.bmp", _save(base, "BMP")[:38], error="unreadable")
    add("bmp_truncated_pixels.bmp", _save(base, "BMP")[:2000], error="unreadable")
    add("truncated.png", _save(base, "PNG")[:400], error="unreadable")
    add("not_an_image.png", b"this is text, not a picture\n" * 4, error="unsupported")
    add("empty.png", b"", error="unreadable")
    add("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>',
        error="unsupported")
    return out


def mask_variants() -> list[tuple[str, bytes, Entry]]:
    """(file name, bytes, expectations) for mask files, each 67×45 like the images."""
    vessels = _vessels(67, 45)
    fg = int(vessels.sum())
    out: list[tuple[str, bytes, Entry]] = []
    add = lambda name, data, **e: out.append((name, data, {"kind": "mask", **e}))  # noqa: E731
    u8 = vessels.astype(np.uint8)
    add("mask_01.png", _save(Image.fromarray(u8), "PNG"), foreground=fg)
    add("mask_0255.png", _save(Image.fromarray(u8 * 255), "PNG"), foreground=fg)
    add("mask_1bit.png", _save(Image.fromarray(vessels), "PNG"), foreground=fg)
    add("mask_16bit_01.png", imagecodecs.png_encode(u8.astype(np.uint16)), foreground=fg)
    add("mask_16bit_full.png", imagecodecs.png_encode(u8.astype(np.uint16) * 65535), foreground=fg)
    red = np.zeros((45, 67, 3), np.uint8)
    red[vessels] = (200, 0, 0)
    add("mask_red.png", _save(Image.fromarray(red), "PNG"), foreground=fg)
    dark_red = np.zeros((45, 67, 3), np.uint8)
    dark_red[vessels] = (40, 0, 0)
    add("mask_dark_red.png", _save(Image.fromarray(dark_red), "PNG"), foreground=fg)
    grey_label = np.where(vessels, 100, 0).astype(np.uint8)
    add("mask_grey100.png", _save(Image.fromarray(grey_label), "PNG"), foreground=0)
    pal = Image.fromarray(u8, "P")
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    add("mask_palette_green.png", _save(pal, "PNG"), foreground=fg)
    add("mask_palette.gif", _save(pal, "GIF"), foreground=fg)
    overlay = np.zeros((45, 67, 4), np.uint8)
    overlay[vessels] = (255, 255, 255, 255)
    add("mask_overlay_rgba.png", _save(Image.fromarray(overlay, "RGBA"), "PNG"), foreground=fg)
    add("mask_grey.jpg", _save(Image.fromarray(u8 * 255), "JPEG", quality=75), lossy=True)
    white = np.repeat((u8 * 255)[..., None], 3, 2)
    add("mask_rgb.jpg", _save(Image.fromarray(white), "JPEG", quality=90), lossy=True)
    add("mask_lossy.webp", _save(Image.fromarray(white), "WEBP", quality=70), lossy=True)
    add("mask_manual.gif", _save(Image.fromarray(u8 * 255), "GIF"), foreground=fg)
    add("mask_tiff_lzw.tif", _save(Image.fromarray(u8 * 255), "TIFF", compression="tiff_lzw"),
        foreground=fg)
    add("mask_bmp_1bit.bmp", _save(Image.fromarray(vessels), "BMP"), foreground=fg)
    add("mask.ah.ppm", _pnm("P6", white, 255), foreground=fg)
    add("mask_pgm_01.pgm", _pnm("P5", u8, 1), foreground=fg)
    add("mask_empty.png", _save(Image.fromarray(np.zeros((45, 67), np.uint8)), "PNG"), foreground=0)
    add("mask_full.png", _save(Image.fromarray(np.full((45, 67), 255, np.uint8)), "PNG"),
        foreground=67 * 45)
    upright = np.zeros((67, 45), bool)
    upright[:10, :10] = True
    stored = _stored_for(upright[..., None].astype(np.uint8) * 255, 6)[..., 0]
    add("mask_exif6.jpg", _save(Image.fromarray(stored), "JPEG", quality=95, exif=_exif(6)),
        width=45, height=67, lossy=True)
    return out


# Name forms: images and masks whose names pair only under the contract's rules.
NAME_FORMS: list[tuple[str, str]] = [
    ("images/Caf\u00e9_01.png", "masks/Cafe\u0301_01_mask.png"),  # NFC image, NFD mask
    ("images/Ojo\u0301 2.PNG", "masks/Ojo\u0301 2_mask.png"),  # NFD both, upper-case extension
    ("images/im0081.ppm", "masks/im0081_mask.PPM"),
    ("images/scan.v2.tif", "masks/scan.v2_mask.gif"),
    ("images/\u773c\u5e95.jpeg", "masks/\u773c\u5e95_mask.bmp"),
]


def write_variants(out_dir: Path) -> Path:
    """Writes the corpus under ``out_dir``; returns the manifest's path."""
    entries: list[Entry] = []
    for folder, variants in (("images", image_variants()), ("masks", mask_variants())):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for name, data, expect in variants:
            (out_dir / folder / name).write_bytes(data)
            entries.append(_entry(f"{folder}/{name}", expect))
    names = out_dir / "names"
    picture = _save(Image.fromarray(_rgb(40, 40)), "PNG")
    label = _save(Image.fromarray(_vessels(40, 40).astype(np.uint8) * 255), "PNG")
    for image, mask in NAME_FORMS:
        for rel, data in ((image, picture), (mask, label)):
            (names / rel).parent.mkdir(parents=True, exist_ok=True)
            (names / rel).write_bytes(data)
    (names / "images" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (names / "images" / "._Caf\u00e9_01.png").write_bytes(b"\0\5\26\7")
    manifest = {
        "root": str(out_dir),
        "files": entries + _fieldcase_entries(),
        "pairing": {"images": "names/images", "masks": "names/masks", "mask_suffix": "_mask",
                    "expected": sorted(unicodedata.normalize("NFC", Path(i).name.rsplit(".", 1)[0])
                                       for i, _ in NAME_FORMS)},
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), "utf-8")
    return path


def _entry(rel: str, expect: Entry) -> Entry:
    entry: Entry = {"file": rel, "kind": expect.pop("kind")}
    if "rgb" in expect:
        rgb = np.ascontiguousarray(expect.pop("rgb"))
        expect["sha256"] = hashlib.sha256(rgb.tobytes()).hexdigest()
        expect["width"], expect["height"] = int(rgb.shape[1]), int(rgb.shape[0])
    entry["expect"] = expect
    return entry


def _fieldcase_entries() -> list[Entry]:
    root = fieldcases_dir()
    if not (root / "cases.json").is_file():
        return []
    entries: list[Entry] = []
    for case in json.loads((root / "cases.json").read_text("utf-8"))["cases"]:
        for item in case["items"]:
            for key, kind in (("image", "image"), ("mask", "mask"), ("fov", "mask")):
                if key in item:
                    entries.append({"file": str(root / case["id"] / item[key]), "kind": kind,
                                    "expect": {}, "case": case["id"]})
    return entries


# --------------------------------------------------------------------------- the answers


def describe_file(path: Path, kind: str) -> Entry:
    """How the Python side reads one file: sizes, a checksum of the pixels, or the refusal."""
    try:
        samples = ingest.decode_samples(ingest.read_file(path), str(path))
    except ingest.IngestError as exc:
        return {"ok": False, "error": exc.kind}
    answer: Entry = {"ok": True, "width": samples.width, "height": samples.height}
    if kind == "image":
        rgb = ingest.image_from_samples(samples)
        answer["sha256"] = hashlib.sha256(rgb.tobytes()).hexdigest()
    else:
        mask = ingest.mask_from_samples(samples)
        answer["sha256"] = hashlib.sha256(mask.mask.astype(np.uint8).tobytes()).hexdigest()
        answer["foreground"] = mask.foreground
        answer["lossy"] = mask.lossy
    return answer


def describe(manifest_path: Path) -> dict[str, Any]:
    manifest = json.loads(manifest_path.read_text("utf-8"))
    root = Path(manifest["root"])
    files = {e["file"]: describe_file(root / e["file"], e["kind"]) for e in manifest["files"]}
    p = manifest["pairing"]
    try:
        pairs = pair_files(root / p["images"], root / p["masks"], p["mask_suffix"])
        pairing: Any = sorted(stem for stem, _image, _mask in pairs)
    except DataError as exc:
        pairing = {"error": str(exc)}
    return {"files": files, "pairing": pairing}


def main(argv: list[str]) -> int:
    commands: dict[str, Callable[[Path], Any]] = {
        "variants": lambda p: print(write_variants(p)),
        "describe": lambda p: print(json.dumps(describe(p), ensure_ascii=False)),
    }
    if len(argv) != 2 or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    commands[argv[0]](Path(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
