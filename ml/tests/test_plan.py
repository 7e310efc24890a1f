"""Self-configuration (medloop_ml.plan): the fingerprint tells thin from blob-shaped targets,
thin targets keep today's defaults, the user's settings win, and a blob-shaped set made in code
trains to fill its objects' interiors without marking the skin's texture."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi
from synthetic import synthetic_fundus, synthetic_lesion

from medloop_ml.chase import chase_split
from medloop_ml.data import Sample
from medloop_ml.infer import Predictor
from medloop_ml.plan import (
    DIHEDRAL_MAX_PIXELS,
    derive_plan,
    fingerprint,
    plan_config,
    with_plan_fov,
)
from medloop_ml.train import TrainConfig, dice_at, train_model

DEFAULTS = TrainConfig(epochs=1)
THIN_DEFAULTS = {"patch_size": 128, "depth": 4, "local_contrast": True, "vessel_fraction": 0.5,
                 "batch_size": 16, "dice_weight": 0.0, "dihedral_average": True}


def fundus_set(n: int, size: int = 160) -> list[Sample]:
    out = []
    for i in range(n):
        rgb, vessels, _ = synthetic_fundus(size, seed=i)
        from medloop_ml.fov import derive_fov

        out.append(Sample(f"f{i}", rgb, vessels, derive_fov(rgb), fov_derived=True))
    return out


def lesion_set(seeds: range, size: int = 192) -> list[Sample]:
    out = []
    for i in seeds:
        rgb, lesion = synthetic_lesion(size, seed=i)
        from medloop_ml.fov import derive_fov

        out.append(Sample(f"l{i}", rgb, lesion, derive_fov(rgb), fov_derived=True))
    return out


def test_thin_targets_with_an_aperture_keep_todays_defaults() -> None:
    fp = fingerprint(fundus_set(6))
    assert fp.thickness_px <= 4 and fp.circular_fov and fp.foreground_fraction < 0.2
    plan = derive_plan(fp, DEFAULTS)
    assert plan.target == "thin"
    assert plan.settings == {**THIN_DEFAULTS, "fov": "derived"}
    assert {k: getattr(DEFAULTS, k) for k in THIN_DEFAULTS} == {**THIN_DEFAULTS,
                                                                 "dihedral_average": False}


def test_chase_training_images_get_the_thin_plan(chase_dir: Path) -> None:
    """The reference data set keeps the settings it was measured with."""
    fp = fingerprint(chase_split(chase_dir).train)
    assert fp.images == 6 and (fp.median_height, fp.median_width) == (960, 999)
    assert fp.circular_fov and 2 <= fp.thickness_px <= 8
    assert derive_plan(fp, DEFAULTS).settings == {**THIN_DEFAULTS, "fov": "derived"}


def test_eight_test_time_views_only_for_images_that_stay_fast() -> None:
    fp = fingerprint(fundus_set(6))
    small = derive_plan(replace(fp, median_height=960, median_width=999), DEFAULTS)
    large = derive_plan(replace(fp, median_height=2336, median_width=3504), DEFAULTS)
    assert small.settings["dihedral_average"] is True
    assert large.settings["dihedral_average"] is False
    assert any("three views" in reason for reason in large.reasons)
    assert DIHEDRAL_MAX_PIXELS < 2336 * 3504
    planned, plan = plan_config(fundus_set(6), TrainConfig(epochs=1))
    assert planned.dihedral_average is True
    # the eight views add to flip_average's mirrors: without them, one view, whatever the size
    planned, plan = plan_config(fundus_set(6), TrainConfig(epochs=1, flip_average=False))
    assert planned.dihedral_average is False and plan is not None
    assert any("flip_average" in reason for reason in plan.reasons)


def test_blob_targets_get_large_patches_no_local_contrast_and_the_whole_image() -> None:
    fp = fingerprint(lesion_set(range(6)))
    assert not fp.circular_fov
    assert fp.thickness_px > 30 and fp.object_size_px > 80 and fp.foreground_fraction > 0.15
    plan = derive_plan(fp, DEFAULTS)
    assert plan.target == "blob"
    s = plan.settings
    assert s["local_contrast"] is False and s["fov"] == "whole"
    assert s["patch_size"] >= 1.2 * fp.object_size_px or s["patch_size"] == 192
    assert s["patch_size"] % 2 ** s["depth"] == 0 and s["patch_size"] <= 192
    assert 0 < s["vessel_fraction"] < 0.5 and s["batch_size"] < 16
    assert s["dice_weight"] == 1.0  # BCE + Dice for objects that fill the image


def test_settings_the_user_gave_win_over_the_plan() -> None:
    samples = lesion_set(range(3))
    config = TrainConfig(epochs=1, local_contrast=True, patch_size=64)
    planned, plan = plan_config(samples, config)
    assert plan is not None and plan.target == "blob"
    assert planned.local_contrast is True and planned.patch_size == 64  # the user's
    assert planned.fov == "whole" and planned.depth == plan.settings["depth"]  # the plan's
    assert sorted(plan.overridden) == ["local_contrast", "patch_size"]
    assert "patch_size" in planned.model_fields_set and "depth" not in planned.model_fields_set
    off, none = plan_config(samples, TrainConfig(epochs=1, plan="off"))
    assert none is None and off.local_contrast is True and off.fov == "derived"


def test_whole_image_fov_replaces_only_derived_fovs() -> None:
    derived, given = lesion_set(range(2))
    given = Sample(given.stem, given.image, given.mask, np.zeros_like(given.fov))
    out = with_plan_fov([derived, given], "whole")
    assert out[0].fov.all() and not out[1].fov.any()
    assert with_plan_fov([derived], "derived")[0] is derived


def test_a_blob_shaped_set_trains_from_six_images_interiors_included(tmp_path: Path) -> None:
    """Six 384×384 lesion images (objects of 200-300 px whose colour alone does not tell them
    from another image's skin), the plan decides the rest; on six unseen images the lesions are
    found whole, interiors included, and the skin's hairs and speckles are not marked. An epochs
    budget, so the run is the same on every run of the suite."""
    train, test = lesion_set(range(6), size=384), lesion_set(range(20, 26), size=384)
    config = TrainConfig(epochs=20, patches_per_epoch=96, lr=3e-3, channels=8, threads=2,
                         infer_patch=384, progress=False, seed=1)
    result = train_model(train, [], config, tmp_path / "run")
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["plan"]["target"] == "blob" and model["fov"] == "whole"
    assert model["network"]["local_contrast"] is False and model["network"]["depth"] == 5
    assert model["train_patch_size"] == 256
    predictor = Predictor.from_run(result.run_dir)
    assert predictor.fov == "whole"
    dice, interior, skin = [], [], []
    for s in test:
        assert s.mask is not None
        pred = predictor.predict(s.image, predictor.fov_of(s))
        dice.append(dice_at(pred.prob, s.mask, predictor.threshold))
        interior.append(pred.mask[ndi.binary_erosion(s.mask, iterations=12)].mean())
        skin.append(pred.mask[~ndi.binary_dilation(s.mask, iterations=6)].mean())
    assert np.mean(dice) >= 0.9, dice
    assert min(interior) >= 0.95, interior  # the interior, not only the rim
    assert np.mean(skin) <= 0.05, skin  # hairs and speckles are not lesion


@pytest.mark.parametrize("fov", ["derived", "whole"])
def test_the_plan_is_written_into_model_json(tmp_path: Path, fov: str) -> None:
    samples = fundus_set(2, size=64) if fov == "derived" else lesion_set(range(2), size=64)
    config = TrainConfig(epochs=1, patches_per_epoch=8, batch_size=4, infer_patch=64,
                         threads=2, progress=False)
    train_model(samples, [], config, tmp_path / "run")
    model = json.loads((tmp_path / "run" / "model.json").read_text())
    assert model["fov"] == fov
    assert set(model["plan"]) == {"target", "settings", "reasons", "fingerprint", "overridden",
                                  "used"}
    assert model["plan"]["used"]["patch_size"] == model["train_patch_size"]
    assert model["plan"]["fingerprint"]["images"] == 2
    assert model["train_patch_size"] == min(model["plan"]["settings"]["patch_size"], 64)


def test_crops_of_fundus_images_keep_the_aperture_of_their_originals() -> None:
    """A campaign trains on augmented crops, whose corners rarely all fall outside the aperture;
    the aperture vote takes the whole images (the validation set) instead."""
    whole = fundus_set(4, size=256)
    crops = [Sample(s.stem, s.image[40:200, 60:220], s.mask[40:200, 60:220],  # type: ignore[index]
                    s.fov[40:200, 60:220], fov_derived=True) for s in whole]
    alone = plan_config(crops, TrainConfig(epochs=1))[0]
    assert alone.fov == "whole"  # crops alone show no aperture
    planned, plan = plan_config(crops, TrainConfig(epochs=1), originals=whole)
    assert plan is not None and plan.fingerprint.circular_fov and planned.fov == "derived"


def test_fine_tuning_keeps_the_network_of_the_model_it_starts_from() -> None:
    """The labelled set of a campaign grows; the network of its first round stays."""
    blobs = lesion_set(range(3), size=384)
    first = {"depth": 4, "local_contrast": True, "channels": 8, "res_units": 1, "fov": "derived"}
    planned, plan = plan_config(blobs, TrainConfig(epochs=1), inherited=first)
    assert plan is not None and plan.target == "blob"
    assert (planned.depth, planned.local_contrast, planned.fov) == (4, True, "derived")
    assert planned.patch_size % 16 == 0 and planned.patch_size == plan.settings["patch_size"]


def test_a_planned_depth_never_breaks_a_patch_the_user_set() -> None:
    blobs = lesion_set(range(3), size=384)  # the plan wants depth 5 (multiples of 32)
    planned, plan = plan_config(blobs, TrainConfig(epochs=1, patch_size=144))
    assert plan is not None and plan.settings["depth"] == 5
    assert planned.depth == 4 and planned.patch_size == 144
    assert planned.batch_size == round(16 * (128 / 144) ** 2)  # the batch follows the patch used
    assert any("depth kept at 4" in reason for reason in plan.reasons)


def test_images_without_target_and_small_images_do_not_make_blobs_thin() -> None:
    """Background-only images count for the foreground fraction, not for the target's shape; a
    blob in a small image is thick for its image even when it is few pixels across."""
    blobs = lesion_set(range(2), size=384)
    empty = [Sample(f"e{i}", s.image, np.zeros_like(s.mask), s.fov, fov_derived=True)  # type: ignore[arg-type]
             for i, s in enumerate(lesion_set(range(10, 14), size=384))]
    fp = fingerprint(blobs + empty)
    assert fp.thickness_px > 30 and derive_plan(fp, DEFAULTS).target == "blob"
    small = lesion_set(range(6), size=48)
    fp_small = fingerprint(small)
    assert fp_small.thickness_px <= 12
    assert derive_plan(fp_small, DEFAULTS).target == "blob"
