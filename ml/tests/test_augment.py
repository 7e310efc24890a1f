from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import synthetic_fundus

from medloop_ml.augment import AugmentError, AugmentPipeline, ConfigError, contact_sheet
from medloop_ml.data import Sample

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _samples(n: int, size: int = 64) -> list[Sample]:
    out = []
    for i in range(n):
        rgb, vessels, disc = synthetic_fundus(size, seed=i)
        out.append(Sample(stem=f"s{i}", image=rgb, mask=vessels, fov=disc))
    return out


def test_published_recipe_turns_6_images_into_264() -> None:
    pipe = AugmentPipeline.from_file(CONFIGS / "chase_augment.json")
    assert pipe.factor() == 44
    small = AugmentPipeline.from_config(
        {"seed": 7, "steps": [{"op": "flip", "modes": ["none", "h", "v", "hv"]},
                              {"op": "random_crop", "size": [48, 48], "count": 11}]}
    )
    examples = small.expand(_samples(6))
    assert len(examples) == 6 * 4 * 11 == 264
    assert len({e.stem for e in examples}) == 264
    assert all(e.image.shape == (48, 48, 3) and e.mask.shape == e.fov.shape == (48, 48)
               for e in examples)


def test_counts_multiply_and_per_example_steps_keep_count() -> None:
    pipe = AugmentPipeline.from_config({"seed": 1, "steps": [
        {"op": "rotate90", "ks": [0, 1, 2]},
        {"op": "random_crop", "size": 32, "count": 2},
        {"op": "intensity", "brightness": 0.1, "contrast": 0.1, "p": 1.0},
        {"op": "elastic", "alpha": 10, "sigma": 4, "p": 0.5},
        {"op": "gamma", "gamma": 0.2, "p": 0.5},
        {"op": "noise", "std": 0.02, "p": 0.5},
    ]})
    assert len(pipe.expand(_samples(5))) == 5 * 3 * 2 == pipe.factor() * 5


def test_same_seed_same_examples_other_seed_differs() -> None:
    cfg = {"seed": 3, "steps": [
        {"op": "random_crop", "size": [40, 40], "count": 3},
        {"op": "intensity", "brightness": 0.2, "contrast": 0.2, "p": 0.5},
        {"op": "elastic", "alpha": 20, "sigma": 4, "p": 0.5},
    ]}
    a = AugmentPipeline.from_config(cfg).expand(_samples(2))
    b = AugmentPipeline.from_config(cfg).expand(_samples(2))
    assert [x.stem for x in a] == [x.stem for x in b]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask)
    c = AugmentPipeline.from_config(cfg).expand(_samples(2), seed=4)
    assert any(not np.array_equal(x.image, y.image) for x, y in zip(a, c, strict=True))


def test_geometry_moves_image_mask_and_fov_together() -> None:
    s = _samples(1)[0]
    out = AugmentPipeline.from_config({"steps": [
        {"op": "flip", "modes": ["none", "h", "v", "hv"]}, {"op": "rotate90", "ks": [1]}]}
    ).expand([s])
    assert [e.stem for e in out] == ["s0_none_r90", "s0_h_r90", "s0_v_r90", "s0_hv_r90"]
    h = out[1]
    assert np.array_equal(h.image, np.rot90(s.image[:, ::-1]))
    assert np.array_equal(h.mask, np.rot90(s.mask[:, ::-1]))
    assert np.array_equal(h.fov, np.rot90(s.fov[:, ::-1]))
    hv = out[3]
    assert np.array_equal(hv.mask, np.rot90(s.mask[::-1, ::-1]))
    # A crop is a window of the source at the same place in image and mask.
    crop = AugmentPipeline.from_config(
        {"steps": [{"op": "random_crop", "size": [20, 30], "count": 1}]}).expand([s])[0]
    hits = [(y, x) for y in range(45) for x in range(35)
            if np.array_equal(s.image[y:y + 20, x:x + 30], crop.image)]
    assert hits and any(np.array_equal(s.mask[y:y + 20, x:x + 30], crop.mask) for y, x in hits)


def test_photometric_steps_leave_masks_alone() -> None:
    s = _samples(1)[0]
    out = AugmentPipeline.from_config({"steps": [
        {"op": "intensity", "brightness": 0.3, "contrast": 0.3, "p": 1.0}]}).expand([s])[0]
    assert out.mask is s.mask and not np.array_equal(out.image, s.image)
    untouched = AugmentPipeline.from_config({"steps": [
        {"op": "noise", "std": 0.2, "p": 0.0}]}).expand([s])[0]
    assert np.array_equal(untouched.image, s.image)
    warped = AugmentPipeline.from_config({"steps": [
        {"op": "elastic", "alpha": 40, "sigma": 3, "p": 1.0}]}).expand([s])[0]
    assert warped.mask.dtype == bool and not np.array_equal(warped.mask, s.mask)
    assert abs(int(warped.mask.sum()) - int(s.mask.sum())) < 0.5 * s.mask.sum()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"steps": [{"op": "flip", "modes": ["x"]}]}, r"step 0 \(flip\): field 'modes.0'"),
        ({"steps": [{"op": "flip", "modes": []}]}, r"step 0 \(flip\): field 'modes'"),
        ({"steps": [{"op": "flip", "modes": ["h"]}, {"op": "random_crop", "size": [0, 4]}]},
         r"step 1 \(random_crop\): field 'size.0'"),
        ({"steps": [{"op": "random_crop", "size": 8, "count": 0}]},
         r"step 0 \(random_crop\): field 'count'"),
        ({"steps": [{"op": "rotate90", "ks": [4]}]}, r"step 0 \(rotate90\): field 'ks.0'"),
        ({"steps": [{"op": "intensity", "p": 1.5}]}, r"step 0 \(intensity\): field 'p'"),
        ({"steps": [{"op": "elastic", "alpha": 3}]}, r"step 0 \(elastic\): field 'sigma'"),
        ({"steps": [{"op": "elastic", "alpha": 3, "sigma": 2, "bogus": 1}]},
         r"step 0 \(elastic\): field 'bogus'"),
        ({"steps": [{"op": "mirror"}]}, r"step 0: field 'op': unknown op 'mirror'"),
        ({"steps": []}, r"field 'steps'"),
        ({"seed": -1, "steps": [{"op": "flip", "modes": ["h"]}]}, r"field 'seed'"),
    ],
)
def test_bad_config_names_step_op_and_field(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        AugmentPipeline.from_config(config)
    assert "\n" not in str(info.value)


def test_crop_larger_than_image_fails_clearly() -> None:
    pipe = AugmentPipeline.from_config({"steps": [{"op": "random_crop", "size": 100}]})
    with pytest.raises(AugmentError, match=r"step 0 \(random_crop\).*larger than image s0"):
        pipe.expand(_samples(1))


def test_contact_sheet_png(tmp_path: Path) -> None:
    examples = AugmentPipeline.from_config(
        {"steps": [{"op": "flip", "modes": ["none", "h", "v", "hv"]}]}).expand(_samples(3))
    out = contact_sheet(examples, tmp_path / "sheet.png", tile=64)
    sheet = np.asarray(Image.open(out).convert("RGB"))
    assert sheet.shape == (3 * 66 + 2, 4 * 66 + 2, 3)  # 12 tiles: 4 cols x 3 rows of 64 + 2 px
    green = (sheet[..., 1] > 150) & (sheet[..., 0] < 120)
    assert green.sum() > 100  # mask overlay is visible


def test_published_recipe_file_is_valid_json() -> None:
    config = json.loads((CONFIGS / "chase_augment.json").read_text())
    assert [s["op"] for s in config["steps"]] == ["flip", "random_crop"]
