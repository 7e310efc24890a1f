"""Synthetic fundus-like images and tiny image/mask folders written as real image files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_fundus(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A reddish disc on black with dark 'vessel' lines: returns (rgb uint8, vessels, disc)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    c = (size - 1) / 2.0
    disc = (yy - c) ** 2 + (xx - c) ** 2 <= (0.45 * size) ** 2
    vessels = np.zeros((size, size), dtype=bool)
    for _ in range(3):
        # Random straight lines, 2 px thick, through the disc.
        angle = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.25, 0.25) * size
        dist = (xx - c) * np.sin(angle) - (yy - c) * np.cos(angle) - offset
        vessels |= np.abs(dist) <= 1.0
    vessels &= disc
    img = np.zeros((size, size, 3), dtype=np.float64)
    img[disc] = [190.0, 90.0, 40.0]
    img[vessels] = [110.0, 40.0, 20.0]
    img[disc] += rng.normal(0, 6, size=(int(disc.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8), vessels, disc


@dataclass
class TinySet:
    """Folders of a tiny generated data set."""

    root: Path
    images: Path
    masks: Path
    fov: Path
    stems: list[str]


def write_tiny_set(
    root: Path, n: int = 4, size: int = 64, mask_suffix: str = "", image_ext: str = ".png"
) -> TinySet:
    images, masks, fov = root / "images", root / "masks", root / "fov"
    for d in (images, masks, fov):
        d.mkdir(parents=True, exist_ok=True)
    stems = [f"img_{i:02d}" for i in range(n)]
    for i, stem in enumerate(stems):
        rgb, vessels, disc = synthetic_fundus(size, seed=i)
        Image.fromarray(rgb).save(images / f"{stem}{image_ext}")
        Image.fromarray(vessels.astype(np.uint8) * 255).save(masks / f"{stem}{mask_suffix}.png")
        Image.fromarray(disc.astype(np.uint8) * 255).save(fov / f"{stem}.png")
    return TinySet(root=root, images=images, masks=masks, fov=fov, stems=stems)
