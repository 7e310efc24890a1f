"""Loading image/mask pairs from folders into :class:`Sample` objects.

Pairs are matched by file stem: the mask of ``Image_01L.jpg`` is the file whose stem is
``Image_01L`` + ``mask_suffix`` (e.g. ``Image_01L_1stHO.png``) in the masks folder. The FOV comes
from ``fov_dir`` (same matching, no suffix) when given, else it is derived from the image
(:func:`medloop_ml.fov.derive_fov`). Every problem raises :class:`DataError` with one line that
names the file or folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fov import derive_fov
from .io import IMAGE_SUFFIXES, ImageReadError, read_mask, read_rgb


class DataError(ValueError):
    """Bad input data: missing folder, empty set, missing mask, size mismatch, unreadable file."""


@dataclass
class Sample:
    """One image with its (optional) truth mask and its field of view."""

    stem: str
    image: np.ndarray  # uint8 H×W×3
    mask: np.ndarray | None  # bool H×W, None when unannotated
    fov: np.ndarray  # bool H×W


def _is_image(path: Path) -> bool:
    visible = path.is_file() and not path.name.startswith(".")
    return visible and path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | Path, what: str = "images") -> list[Path]:
    """Image files of a folder sorted by name; DataError when the folder is missing."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{what} folder not found: {root}")
    return sorted((p for p in root.iterdir() if _is_image(p)), key=lambda p: p.name)


def index_by_stem(folder: str | Path, what: str) -> dict[str, Path]:
    """Map file stem → path for the images of a folder; DataError on two files with one stem."""
    index: dict[str, Path] = {}
    for path in list_images(folder, what):
        if path.stem in index:
            first = index[path.stem].name
            raise DataError(f"two {what} files share the stem {path.stem!r}: {first}, {path.name}")
        index[path.stem] = path
    return index


def _read(reader: Callable[[Path], np.ndarray], path: Path) -> np.ndarray:
    try:
        return reader(path)
    except ImageReadError as exc:
        raise DataError(f"unreadable file: {path} ({exc.__cause__ or exc})") from exc


def _check_size(image: np.ndarray, other: np.ndarray, image_path: Path, other_path: Path) -> None:
    if other.shape[:2] != image.shape[:2]:
        ih, iw = image.shape[:2]
        oh, ow = other.shape[:2]
        raise DataError(
            f"size mismatch: {other_path} is {ow}x{oh} but image {image_path.name} is {iw}x{ih}"
        )


def load_sample(
    image_path: str | Path,
    mask_path: str | Path | None = None,
    fov_path: str | Path | None = None,
    *,
    stem: str | None = None,
) -> Sample:
    """Load one image, its optional mask and FOV (derived from the image when no file is given)."""
    ipath = Path(image_path)
    image = _read(read_rgb, ipath)
    mask = None
    if mask_path is not None:
        mpath = Path(mask_path)
        mask = _read(read_mask, mpath)
        _check_size(image, mask, ipath, mpath)
    if fov_path is not None:
        fpath = Path(fov_path)
        fov = _read(read_mask, fpath)
        _check_size(image, fov, ipath, fpath)
    else:
        fov = derive_fov(image)
    return Sample(stem=stem or ipath.stem, image=image, mask=mask, fov=fov)


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
    images = index_by_stem(images_dir, "images")
    if not images:
        raise DataError(f"no images in {images_dir}")
    masks = index_by_stem(masks_dir, "masks")
    fovs = _fov_index(fov_dir)
    samples = []
    for stem in sorted(images):
        mask_path = masks.get(stem + mask_suffix)
        if mask_path is None:
            name, expected = images[stem].name, f"{stem}{mask_suffix}.*"
            raise DataError(f"no mask for image {name}: expected {expected} in {masks_dir}")
        samples.append(load_sample(images[stem], mask_path, _fov_for(fovs, stem, fov_dir)))
    return samples


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
