from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from medloop_ml.fov import derive_fov
from medloop_ml.io import read_mask, read_rgb


def test_fov_on_chase_image(chase_dir: Path) -> None:
    image = read_rgb(chase_dir / "images" / "Image_01L.jpg")
    truth = read_mask(chase_dir / "masks_1stHO" / "Image_01L_1stHO.png")
    fov = derive_fov(image)
    assert fov.shape == image.shape[:2] and fov.dtype == bool
    assert 0.55 < fov.mean() < 0.80  # the aperture disc is about 69 % of the frame
    assert ndi.label(fov)[1] == 1  # one connected disc
    assert ndi.label(~fov)[1] == 1  # no holes: the outside is one region
    h, w = fov.shape
    for y, x in ((0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)):
        assert not fov[y, x]
    assert fov[h // 2, w // 2]
    # Nearly every annotated vessel pixel lies inside the derived FOV.
    assert (truth & ~fov).sum() / truth.sum() < 0.01
    # Background pixels outside the FOV are dark.
    assert image[~fov][:, 0].mean() < 10


def test_fov_fills_dark_holes_and_drops_specks() -> None:
    img = np.zeros((80, 80, 3), np.uint8)
    yy, xx = np.mgrid[0:80, 0:80]
    disc = (yy - 40) ** 2 + (xx - 40) ** 2 <= 30**2
    img[disc] = [180, 80, 40]
    img[35:45, 35:45] = 0  # a dark lesion inside the disc
    img[2:4, 2:4] = 255  # a bright speck in the surround
    fov = derive_fov(img)
    assert fov[40, 40] and not fov[2, 2]
    assert ndi.label(fov)[1] == 1
    assert (fov & ~disc).sum() == 0 and (disc & ~fov).sum() / disc.sum() < 0.15


def test_fov_falls_back_to_whole_image() -> None:
    assert derive_fov(np.zeros((20, 20, 3), np.uint8)).all()
    assert derive_fov(np.full((20, 20, 3), 200, np.uint8)).all()
