"""The ingest contract, Python side (docs/ingest.md): the generated corpus' stated values, the
field cases' right results, and the pixel rules on hand-made arrays.

The cross-language half — TypeScript must give identical answers — is
``test/conformance/ingest.test.ts``, which runs ``ingest_conformance.py`` from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ingest_conformance import describe, fieldcases_dir, write_variants

from medloop_ml import ingest
from medloop_ml.data import DataError, load_pairs, pair_files

CASES = json.loads((fieldcases_dir() / "cases.json").read_text("utf-8"))["cases"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    manifest_path = write_variants(tmp_path_factory.mktemp("corpus"))
    return json.loads(manifest_path.read_text("utf-8")), describe(manifest_path)


def test_corpus_values_are_met(corpus: tuple[dict, dict]) -> None:
    manifest, answers = corpus
    wrong = []
    for entry in (e for e in manifest["files"] if "case" not in e):  # cases: the tests below
        expect = dict(entry["expect"])
        expect.pop("pages", None)
        answer = answers["files"][entry["file"]]
        if "error" in expect:
            ok = answer == {"ok": False, "error": expect["error"]}
        else:
            ok = answer["ok"] and all(answer.get(k) == v for k, v in expect.items())
        if not ok:
            wrong.append((entry["file"], expect, answer))
    assert wrong == []
    assert answers["pairing"] == manifest["pairing"]["expected"]


def _file_items() -> list[tuple[str, dict]]:
    """Items judged file by file (fc15's are judged by folder: test_field_case_folders)."""
    return [(c["id"], i) for c in CASES for i in c["items"] if "duplicate" not in i]


def _item_id(value: object) -> str:
    return value if isinstance(value, str) else Path(value["image"]).name  # type: ignore[index]


@pytest.mark.parametrize(("case_id", "item"), _file_items(), ids=_item_id)
def test_field_case_per_file(case_id: str, item: dict) -> None:
    """Each case file read by the contract gives the case's stated size, count or refusal."""
    folder = fieldcases_dir() / case_id
    try:
        image = ingest.read_image(folder / item["image"])
        size = (image.shape[1], image.shape[0])
        mask = ingest.read_mask(folder / item["mask"], size)
    except ingest.IngestError as exc:
        assert item["expected"] == "refuse", str(exc)
        assert str(folder) in str(exc)
        return
    assert item["expected"] == "accept"
    assert size == (item["width"], item["height"])
    assert image.dtype == np.uint8 and image.shape[2] == 3
    tolerance = item.get("mask_foreground_tolerance", 0)
    assert abs(mask.foreground - item["mask_foreground"]) <= tolerance
    if "fov" in item:
        assert ingest.read_mask(folder / item["fov"], size).foreground == item["fov_foreground"]
    checks = item.get("checks", {})
    if "bright_block" in checks:
        x0, y0, x1, y1 = checks["bright_block"]
        assert image[y0:y1, x0:x1].mean() >= checks["bright_min_mean"]
        for bx0, by0, bx1, by1 in checks["dark_blocks"]:
            assert image[by0:by1, bx0:bx1].mean() <= checks["dark_max_mean"]
    if "mean_8bit" in checks:
        means = image.reshape(-1, 3).mean(axis=0)[: len(checks["mean_8bit"])]
        assert np.allclose(means, checks["mean_8bit"], atol=checks["mean_tolerance"])


def test_field_case_folders() -> None:
    """Folder rules: a stem twice in one folder is refused by name (fc15); suffixes pair."""
    with pytest.raises(DataError, match="eye_03"):
        pair_files(fieldcases_dir() / "fc15/images", fieldcases_dir() / "fc15/masks")
    for case in (c for c in CASES if c["expected"] == "accept"):
        folder = fieldcases_dir() / case["id"]
        pairs = pair_files(folder / "images", folder / "masks", case["mask_suffix"])
        expected = sorted(Path(i["image"]).name for i in case["items"])
        assert [Path(p[1]).name for p in pairs] == expected
    fc03 = fieldcases_dir() / "fc03"
    samples = load_pairs(fc03 / "images", fc03 / "masks", "_manual1", fov_dir=fc03 / "fov")
    assert [int(s.fov.sum()) for s in samples] == [3704, 3704]


def test_sixteen_bits_scale_as_v_over_257() -> None:
    values = np.array([0, 128, 129, 385, 386, 32767, 32896, 65535], dtype=np.uint16)
    expected = [round(v / 257) for v in values.tolist()]
    assert ingest.to_8_bit(values, 65535).tolist() == expected


def test_alpha_is_composited_on_black() -> None:
    rgba = np.array([[[255, 255, 255, 0], [255, 128, 0, 128], [10, 20, 30, 255]]], dtype=np.uint8)
    assert ingest.composite_on_black(rgba).tolist() == [[[0, 0, 0], [128, 64, 0], [10, 20, 30]]]


def test_mask_rules() -> None:
    def mask_of(array: np.ndarray, maxval: int = 255, fmt: str = "png") -> list[list[bool]]:
        data = array if array.ndim == 3 else array[..., None]
        return ingest.mask_from_samples(ingest.Samples(data, maxval, fmt)).mask.tolist()

    grey = np.array([[0, 1, 127, 128, 255]], dtype=np.uint8)
    assert mask_of(grey) == [[False, False, False, True, True]]  # grey: >= 128
    assert mask_of(np.array([[0, 1, 1, 0]], dtype=np.uint8)) == [[False, True, True, False]]  # 0/1
    colour = np.array([[[0, 0, 0], [40, 0, 0], [0, 0, 1]]], dtype=np.uint8)
    assert mask_of(colour) == [[False, True, True]]  # lossless colour: any non-black
    assert mask_of(colour, fmt="jpeg") == [[False, False, False]]  # lossy: brightest >= 128


def test_refusals_name_the_file_and_the_limit(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((20, 300, 3), np.uint8)).save(tmp_path / "thin.png")
    too_small = r"thin\.png: 300x20 is too small; the minimum side is 32"
    with pytest.raises(ingest.IngestError, match=too_small):
        ingest.read_image(tmp_path / "thin.png")
    with pytest.raises(ingest.IngestError, match="file not found"):
        ingest.read_image(tmp_path / "missing.png")


def test_upright_size_from_the_header_matches_the_decoded_image(corpus: tuple[dict, dict]) -> None:
    """``upright_size`` (evaluate's size checks) agrees with the pixels for every readable file."""
    manifest, answers = corpus
    root = Path(manifest["root"])
    wrong = []
    for entry in manifest["files"]:
        answer = answers["files"][entry["file"]]
        if answer["ok"]:
            size = ingest.upright_size(root / entry["file"])
            if size != (answer["height"], answer["width"]):
                wrong.append((entry["file"], size, answer))
    assert wrong == []
