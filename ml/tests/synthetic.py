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


def synthetic_lesion(size: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dermoscopy-like picture: one large irregular brown lesion on textured skin.

    The lesion fills 20-50 % of the image; its outline is irregular and its rim soft. Skin tone
    varies from image to image, and a lesion is only darker than its own skin: the lesion of a
    fair-skinned image has the colour of the skin of a dark one, so colour alone does not tell
    lesion from skin — the lesion's extent and its border do. Inside and outside share the same
    texture (mottling, fine noise, dark speckles, thin dark hairs), the kind of detail a network
    tuned to thin lines responds to. No camera aperture: the image is lit to its corners.
    Returns (rgb uint8, lesion mask).
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1000 + seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.38, 0.62, 2) * size
    ry, rx = rng.uniform(0.26, 0.4, 2) * size
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    theta = np.arctan2(v, u)
    wobble = 1.0 + 0.12 * np.sin(3 * theta + rng.uniform(0, 6.3)) + 0.06 * np.sin(
        5 * theta + rng.uniform(0, 6.3))
    radius = np.hypot(u, v) / wobble
    lesion = radius <= 1.0

    def smooth_noise(cells: int) -> np.ndarray:
        coarse = rng.normal(0, 1, (cells, cells))
        big = np.kron(coarse, np.ones((size // cells + 1, size // cells + 1)))[:size, :size]
        return ndi.gaussian_filter(big, size / cells / 2)

    tone = rng.uniform(0.55, 1.0)  # this image's skin brightness
    darker = rng.uniform(0.55, 0.7)  # the lesion against its own skin
    rim = np.clip((radius - 0.85) / 0.15, 0.0, 1.0)  # the outer 15 % fades into the skin
    shade = np.where(lesion, darker + (1 - darker) * rim * 0.5, 1.0)
    light = (1.0 + 0.1 * (xx / size - 0.5) + 0.06 * smooth_noise(4)) * tone
    mottle = 1.0 + 0.1 * smooth_noise(12)
    base = np.array([215.0, 160.0, 140.0]) * np.where(lesion, 1.0, 1.0)[..., None]
    brown = np.array([1.0, 0.97, 0.95])  # barely another hue: darker than its own skin, that is all
    colour = np.where(lesion[..., None], base * brown, base)
    img = colour * (light * shade * mottle)[..., None]
    img += rng.normal(0, 6, img.shape)
    for _ in range(int(rng.integers(30, 60))):  # dark speckles, inside and outside
        py, px = rng.uniform(0, size, 2)
        img[(yy - py) ** 2 + (xx - px) ** 2 <= rng.uniform(1, 6)] *= 0.7
    for _ in range(int(rng.integers(3, 7))):  # thin hairs across skin and lesion alike
        a, off = rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4) * size
        hair = np.abs((xx - size / 2) * np.sin(a) - (yy - size / 2) * np.cos(a) - off) <= 0.8
        img[hair] *= 0.55
    return np.clip(img, 0, 255).astype(np.uint8), lesion


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
