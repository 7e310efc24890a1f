from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import synthetic_fundus, write_tiny_set

from medloop_ml.blobs import BlobUriError, path_to_uri, uri_to_path
from medloop_ml.chase import CHASE_TRAIN_STEMS, chase_split
from medloop_ml.data import DataError, load_images, load_pairs, load_sample
from medloop_ml.io import read_mask, read_rgb, write_png_atomic


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".gif", ".ppm"])
def test_read_rgb_every_format(tmp_path: Path, ext: str) -> None:
    rgb, _, _ = synthetic_fundus(32)
    path = tmp_path / f"x{ext}"
    Image.fromarray(rgb).save(path)
    out = read_rgb(path)
    assert out.dtype == np.uint8 and out.shape == (32, 32, 3)
    if ext in (".png", ".tif", ".ppm"):  # lossless formats round-trip exactly
        assert np.array_equal(out, rgb)
    else:
        assert np.abs(out.astype(int) - rgb.astype(int)).mean() < 25


def test_read_rgb_expands_grey(tmp_path: Path) -> None:
    grey = np.arange(32 * 40, dtype=np.uint16).reshape(32, 40).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_rgb(tmp_path / "g.png")
    assert out.shape == (32, 40, 3) and np.array_equal(out[..., 1], grey)


def test_read_mask_follows_the_contract(tmp_path: Path) -> None:
    """Grey masks at half scale, 0/1 masks as 0/255, colour masks any non-black (docs/ingest.md)."""
    arr = np.zeros((32, 32), np.uint8)
    arr[0, :4] = [1, 127, 128, 255]
    Image.fromarray(arr).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png")[0, :4].tolist() == [False, False, True, True]
    Image.fromarray((arr > 127).astype(np.uint8)).save(tmp_path / "01.png")
    assert read_mask(tmp_path / "01.png")[0, :4].tolist() == [False, False, True, True]
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[0, 1, 2] = 3
    Image.fromarray(rgb).save(tmp_path / "c.png")
    assert read_mask(tmp_path / "c.png")[0, :2].tolist() == [False, True]


def test_write_png_atomic_leaves_no_temp(tmp_path: Path) -> None:
    mask = np.eye(5, dtype=bool)
    out = write_png_atomic(tmp_path / "sub" / "m.png", mask)
    assert os.listdir(out.parent) == ["m.png"]
    assert np.array_equal(np.asarray(Image.open(out)), mask.astype(np.uint8) * 255)
    write_png_atomic(out, np.full((5, 5), 0.5))  # replaces in place
    assert np.asarray(Image.open(out))[0, 0] == 128


def test_blob_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDLOOP_BLOB_ROOT", str(tmp_path / "blobs"))
    path = uri_to_path("blob://runs/r1/best.pt")
    assert path == (tmp_path / "blobs" / "runs" / "r1" / "best.pt").resolve()
    assert path_to_uri(path) == "blob://runs/r1/best.pt"
    assert uri_to_path("file:///tmp/a%20b.png") == Path("/tmp/a b.png")
    assert path_to_uri("/opt/x y.png") == "file:///opt/x%20y.png"
    for bad in ("blob://../etc/passwd", "blob://a/../../b", "blob://", "http://x/y", "file://h/x"):
        with pytest.raises(BlobUriError):
            uri_to_path(bad)


def test_load_pairs_matches_stems_with_suffix(tmp_path: Path) -> None:
    ts = write_tiny_set(tmp_path, n=3, mask_suffix="_1stHO", image_ext=".jpg")
    (ts.masks / "orphan_1stHO.png").write_bytes((ts.masks / "img_00_1stHO.png").read_bytes())
    samples = load_pairs(ts.images, ts.masks, mask_suffix="_1stHO", fov_dir=ts.fov)
    assert [s.stem for s in samples] == ["img_00", "img_01", "img_02"]
    s0 = samples[0]
    assert s0.image.shape == (64, 64, 3) and s0.mask is not None and s0.mask.dtype == bool
    assert np.array_equal(s0.mask, synthetic_fundus(64, 0)[1])
    assert np.array_equal(s0.fov, synthetic_fundus(64, 0)[2])


def test_load_without_fov_dir_derives_fov(tiny_set) -> None:
    samples = load_images(tiny_set.images)
    disc = synthetic_fundus(64, 0)[2]
    fov = samples[0].fov
    assert samples[0].mask is None
    assert not fov[0, 0] and fov[32, 32]
    assert (fov & disc).sum() / disc.sum() > 0.85 and (fov & ~disc).sum() == 0


def test_data_errors_name_the_file(tiny_set, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="images folder not found: .*nope"):
        load_pairs(tmp_path / "nope", tiny_set.masks)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images in .*empty"):
        load_pairs(empty, tiny_set.masks)
    (tiny_set.masks / "img_02.png").unlink()
    with pytest.raises(DataError, match="no mask for image img_02.png"):
        load_pairs(tiny_set.images, tiny_set.masks)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(tiny_set.masks / "img_02.png")
    with pytest.raises(DataError, match=r"img_02.png: mask is 48x40 but the image is 64x64"):
        load_pairs(tiny_set.images, tiny_set.masks)
    (tiny_set.images / "img_01.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="img_01.png: not an image file of a supported format"):
        load_images(tiny_set.images)
    with pytest.raises(DataError) as info:
        load_sample(tiny_set.images / "img_01.png")
    assert "\n" not in str(info.value)


def test_chase_split(chase_dir: Path) -> None:
    split = chase_split(chase_dir)
    assert [s.stem for s in split.train] == list(CHASE_TRAIN_STEMS)
    assert len(split.test) == 22 and not {s.stem for s in split.test} & set(CHASE_TRAIN_STEMS)
    assert set(split.second_observer) == {s.stem for s in split.test}
    s = split.test[0]
    assert s.image.shape == (960, 999, 3) and s.mask is not None and s.mask.shape == (960, 999)
    assert 0.03 < s.mask[s.fov].mean() < 0.2  # vessels are a small fraction of the FOV
    assert split.second_observer[s.stem].shape == (960, 999)


def test_chase_root_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medloop_ml.chase import chase_root, repo_root

    monkeypatch.delenv("MEDLOOP_CHASE_DIR", raising=False)
    assert chase_root() == (repo_root().parent / "shared" / "data" / "chase_db1").resolve()
    assert (repo_root() / "ml" / "pyproject.toml").is_file()
    monkeypatch.setenv("MEDLOOP_CHASE_DIR", str(tmp_path))
    assert chase_root() == tmp_path
    with pytest.raises(DataError, match="images folder not found"):
        chase_split()  # an empty folder is not CHASE_DB1
    with pytest.raises(DataError, match="CHASE_DB1 folder not found"):
        chase_split(tmp_path / "missing")
