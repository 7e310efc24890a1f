"""The engine on images smaller than its default training patch and inference window.

Real image files throughout: PNGs written with Pillow into tmp_path, and the field cases read in
place (``../shared/fieldcases``: fc01 holds 64×48 images, fc14 a 99×67 and a 999×960 one).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import synthetic_fundus
from temporalio.testing import ActivityEnvironment

from medloop_ml.augment import AugmentError, AugmentPipeline
from medloop_ml.chase import repo_root
from medloop_ml.cli import main
from medloop_ml.data import Sample, load_pairs
from medloop_ml.infer import (
    Predictor,
    fitted_window,
    image_tensor,
    probability_fn,
    sliding_probability,
)
from medloop_ml.io import read_mask, read_rgb
from medloop_ml.metrics import roc_auc
from medloop_ml.network import build_network
from medloop_ml.probmap import read_prob_png, read_prob_png_levels
from medloop_ml.train import TrainConfig, fit_patch_size, min_image_side, train_model
from medloop_ml.worker import GpuActivities

# A network small enough for seconds per run on two shared cores; the default depth 4 (patches
# and windows in multiples of 16), so the sizes below are the ones users get.
SMALL = {"channels": 4, "res_units": 0, "batch_size": 4, "patches_per_epoch": 16, "threads": 2,
         "seed": 1, "progress": False}

FIELD_SIZES = {"fc01/images/v01.png": (48, 64), "fc14/images/q01.png": (67, 99),
               "fc14/images/q02.png": (960, 999)}


@pytest.fixture(scope="module")
def fieldcases() -> Path:
    """The field cases, read in place (they are part of the shared data on every machine)."""
    root = repo_root().parent / "shared" / "fieldcases"
    for name in FIELD_SIZES:
        assert (root / name).is_file(), f"field case {name} not found under {root}"
    return root


def rect_fundus(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fundus-like RGB image and its vessel mask, height × width (cut from a square one)."""
    rgb, vessels, _ = synthetic_fundus(max(height, width), seed=seed)
    return rgb[:height, :width].copy(), vessels[:height, :width].copy()


def write_pairs(root: Path, sizes: list[tuple[int, int]]) -> tuple[Path, Path]:
    """PNG images and masks of the given (height, width) sizes under root/images, root/masks."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i, (h, w) in enumerate(sizes):
        rgb, vessels = rect_fundus(h, w, seed=i)
        Image.fromarray(rgb).save(images / f"s{i}.png")
        Image.fromarray(vessels.astype(np.uint8) * 255).save(masks / f"s{i}.png")
    return images, masks


def blank(h: int, w: int, stem: str = "a") -> Sample:
    return Sample(stem, np.zeros((h, w, 3), np.uint8), np.zeros((h, w), bool),
                  np.ones((h, w), bool))


# -- choosing the training patch -------------------------------------------------------------


def test_default_patch_shrinks_to_the_largest_multiple_that_fits_the_smallest_image() -> None:
    config = TrainConfig(epochs=1)
    fitted, notice = fit_patch_size(config, [blank(200, 300, "big"), blank(67, 99, "odd")])
    assert fitted.patch_size == 64  # 67 → the largest multiple of 16 below it
    assert notice is not None and "64 px instead of the default 128" in notice
    assert "odd (99x67)" in notice
    fitted, _ = fit_patch_size(config, [blank(48, 64)])
    assert fitted.patch_size == 48
    # Depth 2 halves twice: multiples of 4, so 67 gives 64 and 50 gives 48.
    assert fit_patch_size(TrainConfig(epochs=1, depth=2), [blank(50, 90)])[0].patch_size == 48
    # Images at least as large as the patch keep it, without a notice.
    same, notice = fit_patch_size(config, [blank(128, 500)])
    assert same is config and notice is None
    # The other settings are kept.
    tuned = TrainConfig(epochs=3, channels=6, lr=0.01)
    fitted, _ = fit_patch_size(tuned, [blank(40, 40)])
    assert (fitted.patch_size, fitted.epochs, fitted.channels, fitted.lr) == (32, 3, 6, 0.01)


def test_patches_that_cannot_fit_are_refused_naming_the_image() -> None:
    explicit = TrainConfig(epochs=1, patch_size=64)
    with pytest.raises(ValueError, match=r"patch_size 64 does not fit training image a \(64x48\)"
                       r": at most 48 fits \(a multiple of 16 for depth 4\)"):
        fit_patch_size(explicit, [blank(48, 64)])
    assert fit_patch_size(explicit, [blank(64, 64)])[0].patch_size == 64
    floor = min_image_side()
    with pytest.raises(ValueError, match=rf"tiny \(40x20\) is smaller than the minimum side of "
                                         rf"{floor} px"):
        fit_patch_size(TrainConfig(epochs=1), [blank(20, 40, "tiny")])
    # Depth 6 needs multiples of 64: nothing of at least 32 px fits a 48-pixel side.
    with pytest.raises(ValueError, match=r"no training patch fits .* multiple of 64 .*"
                                         r"lower the depth"):
        fit_patch_size(TrainConfig(epochs=1, depth=6), [blank(48, 64)])
    with pytest.raises(ValueError, match=r"patch_size 64 does not fit .*lower the depth \(6\)"):
        fit_patch_size(TrainConfig(epochs=1, depth=6, patch_size=64), [blank(48, 64)])


def test_the_smallest_patch_is_the_ingest_contracts_minimum_side() -> None:
    contract = json.loads((repo_root() / "ml/src/medloop_ml/ingest_contract.json").read_text())
    assert min_image_side() == contract["min_side"] == 32


# -- training and inference on small files ----------------------------------------------------


def test_training_on_images_smaller_than_the_default_patch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, masks = write_pairs(tmp_path / "set", [(48, 64), (67, 99), (64, 48)])
    train = load_pairs(images, masks)
    with caplog.at_level(logging.WARNING, logger="medloop_ml.train"):
        result = train_model(train, [], TrainConfig(epochs=1, **SMALL), tmp_path / "run")
    assert result.patch_size == 48
    assert [n for n in result.notices if not n.startswith("plan: ")] == [result.notices[0]]
    assert "training patch 48 px" in caplog.text
    assert json.loads((tmp_path / "run" / "model.json").read_text())["train_patch_size"] == 48
    stored = torch.load(result.best_checkpoint, weights_only=False)["config"]
    assert stored["patch_size"] == 48 and stored["infer_patch"] == 1280
    # The default 1280-pixel window is larger than every image: still exactly the input's size.
    predictor = Predictor.from_run(result.run_dir)
    for sample in train:
        prob = predictor.probability(sample.image)
        assert prob.shape == sample.image.shape[:2]
        assert np.isfinite(prob).all() and 0.0 <= prob.min() <= prob.max() <= 1.0


def test_an_augmentation_crop_larger_than_the_images_is_refused_before_training(
    tmp_path: Path,
) -> None:
    images, masks = write_pairs(tmp_path / "set", [(48, 64), (67, 99)])
    train = load_pairs(images, masks)
    recipe = {"steps": [{"op": "random_crop", "size": [448, 448], "count": 2}]}
    with pytest.raises(AugmentError, match=r"step 0 \(random_crop\): field 'size': \[448, 448\] "
                                           r"is larger than image s0 \(48x64, height x width\); "
                                           r"the largest size that fits every image is \[48, 64\]"):
        train_model(train, [], TrainConfig(epochs=1, augment=recipe, **SMALL), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    # A crop that fits every image works, and the patch adapts to the crops.
    fits = {"seed": 2, "steps": [{"op": "random_crop", "size": [40, 56], "count": 2}]}
    examples = AugmentPipeline.from_config(fits).expand(train)
    assert [e.image.shape[:2] for e in examples] == [(40, 56)] * 4
    config, _ = fit_patch_size(TrainConfig(epochs=1, augment=fits), examples)
    assert config.patch_size == 32


def test_field_cases_predict_at_exactly_their_size_whatever_the_window(fieldcases: Path) -> None:
    torch.manual_seed(0)
    model = build_network(TrainConfig(epochs=1, channels=4)).eval()  # depth 4
    for name, shape in FIELD_SIZES.items():
        image = read_rgb(fieldcases / name)
        assert image.shape == (*shape, 3)
        # Windows larger than both sides, than one side only, and smaller than both.
        for window in (1024, 64, 128):
            if window < 128 and max(shape) > 200:
                continue  # a 64-pixel window over 999×960 adds nothing but time
            prob = Predictor(model, 0.5, window, 0.25).probability(image)
            assert prob.shape == shape, (name, window)
            assert prob.dtype == np.float32 and np.isfinite(prob).all()


def test_a_window_larger_than_the_image_equals_one_pass_on_the_zero_padded_image(
    fieldcases: Path,
) -> None:
    """MONAI's rule, which serving/slidingWindow.ts reproduces: pad with zeros to the window,
    floor(half) before and the rest after, then crop back."""
    torch.manual_seed(0)
    model = build_network(TrainConfig(epochs=1, channels=4)).eval()
    image = read_rgb(fieldcases / "fc14/images/q01.png")  # 99×67 under a 128 window
    prob = sliding_probability(probability_fn(model), image, 128, 0.25)
    top, left = (128 - 67) // 2, (128 - 99) // 2
    padded = np.zeros((128, 128, 3), np.uint8)
    padded[top : top + 67, left : left + 99] = image
    with torch.no_grad():
        single = torch.sigmoid(model(image_tensor(padded)))[0, 0].numpy()
    np.testing.assert_allclose(prob, single[top : top + 67, left : left + 99], atol=1e-6)


def test_the_window_fits_the_image_rounded_up_to_the_size_multiple(fieldcases: Path) -> None:
    """With the network's size multiple, a 99×67 image under a 128 window is one 112×80 pass
    (the window fitted, serving/slidingWindow.ts `fittedWindow` does the same), padded with
    fewer zeros than the multiple; a 999×960 image under 1280 is one 960×1008 pass."""
    assert fitted_window(67, 99, 128, 16) == (80, 112)
    assert fitted_window(960, 999, 1280, 16) == (960, 1008)
    assert fitted_window(2336, 3504, 1280, 16) == (1280, 1280)
    assert fitted_window(67, 99, 128, None) == (128, 128)
    torch.manual_seed(0)
    model = build_network(TrainConfig(epochs=1, channels=4)).eval()  # depth 4: multiple 16
    image = read_rgb(fieldcases / "fc14/images/q01.png")
    shapes: list[tuple[int, ...]] = []
    run = probability_fn(model)

    def window_model(batch: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(batch.shape))
        return run(batch)

    prob = sliding_probability(window_model, image, 128, 0.25, multiple=16)
    assert shapes == [(1, 3, 80, 112)]
    top, left = (80 - 67) // 2, (112 - 99) // 2
    padded = np.zeros((80, 112, 3), np.uint8)
    padded[top : top + 67, left : left + 99] = image
    with torch.no_grad():
        single = torch.sigmoid(model(image_tensor(padded)))[0, 0].numpy()
    np.testing.assert_allclose(prob, single[top : top + 67, left : left + 99], atol=1e-6)
    # Predictor.from_run takes the multiple from the checkpoint's depth (model.json records it).
    assert Predictor(model, 0.5, 128, 0.25, multiple=16).probability(image).shape == (67, 99)


# -- the command line and the worker on the field cases ----------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trains_on_64x48_field_images_and_segments_odd_sizes(
    fieldcases: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "small.json"
    config.write_text(json.dumps({**SMALL, "infer_patch": 128}))
    train = ["train", "--images", str(fieldcases / "fc01/images"), "--masks",
             str(fieldcases / "fc01/masks"), "--config", str(config), "--epochs", "1"]
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, *train, "--out", str(run))
    assert code == 0, err
    assert "note: training patch 48 px instead of the default 128" in out
    assert "on 48-pixel patches" in out
    assert json.loads((run / "model.json").read_text())["train_patch_size"] == 48

    # --patch-size: honoured when it fits, refused in one line when it does not.
    code, out, err = run_cli(capsys, *train, "--patch-size", "32", "--out", str(tmp_path / "r32"))
    assert code == 0, err
    assert "note: training patch" not in out and "on 32-pixel patches" in out
    assert json.loads((tmp_path / "r32" / "model.json").read_text())["train_patch_size"] == 32
    for size, message in (("64", "patch_size 64 does not fit training image v01 (64x48): "
                                 "at most 48 fits"),
                          ("40", "--patch-size 40 must be a multiple of 16"),
                          ("0", "--patch-size 0 must be a multiple of 16")):
        out_dir = tmp_path / f"bad{size}"
        code, _, err = run_cli(capsys, *train, "--patch-size", size, "--out", str(out_dir))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith("medloop-ml: error: ") and message in lines[0], lines[0]
        assert not out_dir.exists()

    # Predict 99×67 and 999×960 (not multiples of 16): masks and 16-bit maps at the input size.
    pred = tmp_path / "pred"
    code, _, err = run_cli(capsys, "predict", "--model", str(run), "--images",
                           str(fieldcases / "fc14/images"), "--out", str(pred))
    assert code == 0, err
    for stem, shape in (("q01", (67, 99)), ("q02", (960, 999))):
        assert np.asarray(Image.open(pred / f"{stem}.png")).shape == shape
        levels, bits = read_prob_png_levels(pred / f"{stem}_prob.png")
        assert levels.shape == shape and bits == 16

    # Evaluate: the AUC is the one of the stored 16-bit map.
    ev = tmp_path / "ev"
    code, _, err = run_cli(capsys, "evaluate", "--pred", str(pred), "--truth",
                           str(fieldcases / "fc14/masks"), "--out", str(ev))
    assert code == 0, err
    rows = {r["stem"]: r for r in json.loads((ev / "report.json").read_text())["per_image"]}
    truth = read_mask(fieldcases / "fc14/masks/q01.png")  # as evaluate reads it
    assert rows["q01"]["auc"] == pytest.approx(roc_auc(read_prob_png(pred / "q01_prob.png"),
                                                       truth), abs=1e-12)


def test_augment_command_refuses_the_chase_recipe_on_small_images(
    fieldcases: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = repo_root() / "ml/configs/chase_augment.json"
    out = tmp_path / "aug"
    code, _, err = run_cli(capsys, "augment", "--images", str(fieldcases / "fc14/images"),
                           "--masks", str(fieldcases / "fc14/masks"), "--config", str(recipe),
                           "--out", str(out))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "[448, 448] is larger than image q01_none (67x99, height x width)" in lines[0]
    assert "the largest size that fits every image is [67, 99]" in lines[0]
    assert not out.exists()


def test_worker_trains_on_small_images_and_predicts_odd_sizes_at_16_bits(
    fieldcases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLOOP_BLOB_ROOT", str(tmp_path / "blobs"))
    pairs = [{"image_uri": (fieldcases / f"fc01/images/v0{i}.png").as_uri(),
              "mask_uri": (fieldcases / f"fc01/masks/v0{i}.png").as_uri()} for i in (1, 2, 3)]
    activities = GpuActivities()
    trained = ActivityEnvironment().run(activities.train_segmentation, {
        "run_id": "small", "train": pairs[:2], "val": pairs[2:],
        "config": {**SMALL, "epochs": 1, "infer_patch": 128}, "out_prefix": "blob://runs/small/",
    })
    run_dir = tmp_path / "blobs" / "runs" / "small"
    assert json.loads((run_dir / "model.json").read_text())["train_patch_size"] == 48
    assert trained["epochs"] == 1

    items = [{"image_id": stem, "image_uri": (fieldcases / f"fc14/images/{stem}.png").as_uri()}
             for stem in ("q01", "q02")]
    predicted = ActivityEnvironment().run(activities.predict_masks, {
        "model_uri": trained["model_uri"], "items": items, "out_prefix": "blob://pred/small/",
    })
    evaluated = ActivityEnvironment().run(activities.evaluate_masks, {"items": [
        {"image_id": p["image_id"], "pred_uri": p["mask_uri"], "prob_uri": p["prob_uri"],
         "truth_uri": (fieldcases / f"fc14/masks/{p['image_id']}.png").as_uri()}
        for p in predicted["items"]]})
    for item, row, shape in zip(predicted["items"], evaluated["per_image"],
                                ((67, 99), (960, 999)), strict=True):
        prob_path = tmp_path / "blobs" / item["prob_uri"][len("blob://"):]
        levels, bits = read_prob_png_levels(prob_path)
        assert bits == 16 and levels.shape == shape
        truth = read_mask(fieldcases / f"fc14/masks/{item['image_id']}.png")
        assert row["auc"] == pytest.approx(roc_auc(read_prob_png(prob_path), truth), abs=1e-12)
