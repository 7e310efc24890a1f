"""Loading image/mask pairs from folders into :class:`Sample` objects.

Files are read under the ingest contract (:mod:`medloop_ml.ingest`, docs/ingest.md), names too:
stems are compared in Unicode NFC, extensions case-insensitively, hidden files (``.DS_Store``,
``._name.png``) are ignored, and a stem that two files of one folder share is refused by name.
Pairs are matched by file stem: the mask of ``Image_01L.jpg`` is the file whose stem is
``Image_01L`` + ``mask_suffix`` (e.g. ``Image_01L_1stHO.png``) in the masks folder. The FOV comes
from ``fov_dir`` (same matching, no suffix) when given, else it is derived from the image
(:func:`medloop_ml.fov.derive_fov`). Every problem raises :class:`DataError` with one line that
names the file or folder.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from .fov import derive_fov
from .ingest import IngestError, is_image_file, read_image
from .ingest import read_mask as read_contract_mask

T = TypeVar("T")


class DataError(ValueError):
    """Bad input data: missing folder, empty set, missing mask, size mismatch, unreadable file."""


@dataclass
class Sample:
    """One image with its (optional) truth mask and its field of view."""

    stem: str
    image: np.ndarray  # uint8 H×W×3
    mask: np.ndarray | None  # bool H×W, None when unannotated
    fov: np.ndarray  # bool H×W
    fov_derived: bool = False  # True when derived from the image rather than given as a file


def nfc_stem(path: Path) -> str:
    """A file's stem in Unicode NFC (macOS writes names decomposed, NFD)."""
    return unicodedata.normalize("NFC", path.stem)


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """Image files of a folder sorted by name; DataError when the folder is missing."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{what} folder not found: {root}")
    return sorted((p for p in root.iterdir() if is_image_file(p)), key=lambda p: p.name)


def index_by_stem(folder: str | Path, what: str) -> dict[str, Path]:
    """Map file stem → path for the images of a folder; DataError on two files with one stem."""
    index: dict[str, Path] = {}
    for path in list_images(folder, what):
        stem = nfc_stem(path)
        if stem in index:
            first = index[stem].name
            raise DataError(f"{what} stem {stem!r} has 2 files in {folder}: {first}, {path.name}")
        index[stem] = path
    return index


def _read(reader: Callable[[Path], T], path: Path) -> T:
    try:
        return reader(path)
    except IngestError as exc:
        raise DataError(str(exc)) from exc


def load_sample(
    image_path: str | Path,
    mask_path: str | Path | None = None,
    fov_path: str | Path | None = None,
    *,
    stem: str | None = None,
) -> Sample:
    """Load one image, its optional mask and FOV (derived from the image when no file is given)."""
    ipath = Path(image_path)
    image = _read(read_image, ipath)
    size = (image.shape[1], image.shape[0])
    mask = None
    if mask_path is not None:
        mask = _read(lambda p: read_contract_mask(p, size).mask, Path(mask_path))
    if fov_path is not None:
        fov = _read(lambda p: read_contract_mask(p, size).mask, Path(fov_path))
    else:
        fov = derive_fov(image)
    return Sample(stem=stem or nfc_stem(ipath), image=image, mask=mask, fov=fov,
                  fov_derived=fov_path is None)


def _fov_index(fov_dir: str | Path | None) -> dict[str, Path] | None:
    return None if fov_dir is None else index_by_stem(fov_dir, "FOV")


def _fov_for(
    fov_index: dict[str, Path] | None, stem: str, fov_dir: str | Path | None
) -> Path | None:
    if fov_index is None:
        return None
    if stem not in fov_index:
        raise DataError(f"no FOV mask for image {stem!r} in {fov_dir}")
    return fov_index[stem]


def load_pairs(
    images_dir: str | Path,
    masks_dir: str | Path,
    mask_suffix: str = "",
    fov_dir: str | Path | None = None,
) -> list[Sample]:
    """Load each image of ``images_dir`` with its mask ``<stem><mask_suffix>.*`` in ``masks_dir``.

    Sorted by stem. Masks without an image are ignored; an image without a mask is an error.
    """
    fovs = _fov_index(fov_dir)
    return [
        load_sample(image, mask, _fov_for(fovs, stem, fov_dir))
        for stem, image, mask in pair_files(images_dir, masks_dir, mask_suffix)
    ]


def pair_files(
    images_dir: str | Path, masks_dir: str | Path, mask_suffix: str = ""
) -> list[tuple[str, Path, Path]]:
    """(stem, image, mask) for each image of a folder, sorted by stem, without reading pixels.

    The mask of image ``<stem>.<ext>`` is the file whose NFC stem is ``<stem><mask_suffix>``.
    DataError when a folder is missing or empty, a stem has two files, or an image has no mask.
    """
    images = index_by_stem(images_dir, "images")
    if not images:
        raise DataError(f"no images in {images_dir}")
    masks = index_by_stem(masks_dir, "masks")
    suffix = unicodedata.normalize("NFC", mask_suffix)
    pairs = []
    for stem in sorted(images):
        mask_path = masks.get(stem + suffix)
        if mask_path is None:
            name, expected = images[stem].name, f"{stem}{suffix}.*"
            raise DataError(f"no mask for image {name}: expected {expected} in {masks_dir}")
        pairs.append((stem, images[stem], mask_path))
    return pairs


def load_images(images_dir: str | Path, fov_dir: str | Path | None = None) -> list[Sample]:
    """Load every image of a folder (no masks), sorted by stem."""
    images = index_by_stem(images_dir, "images")
    if not images:
        raise DataError(f"no images in {images_dir}")
    fovs = _fov_index(fov_dir)
    return [load_sample(images[s], None, _fov_for(fovs, s, fov_dir)) for s in sorted(images)]


def stems(samples: Iterable[Sample]) -> list[str]:
    """The stems of some samples, in order."""
    return [s.stem for s in samples]
