"""Wall-clock budgets and bounded views (medloop_ml.budget): a ``minutes`` run ends on time at a
large image size, with previews, validation and the threshold choice on bounded views."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import synthetic_fundus

from medloop_ml.budget import PREVIEW_SIDE, WallBudget, bounded_view, preview_period
from medloop_ml.data import Sample
from medloop_ml.train import TrainConfig, train_model


def large_sample(stem: str, height: int, width: int, seed: int) -> Sample:
    """A fundus-like picture tiled up to a large size, with its vessels and a full FOV."""
    rgb, vessels, _ = synthetic_fundus(256, seed=seed)
    reps = (height // 256 + 1, width // 256 + 1)
    image = np.tile(rgb, (*reps, 1))[:height, :width]
    mask = np.tile(vessels, reps)[:height, :width]
    return Sample(stem, np.ascontiguousarray(image), np.ascontiguousarray(mask),
                  np.ones((height, width), bool))


def test_bounded_view_is_a_crop_centred_on_the_foreground() -> None:
    image = np.zeros((3000, 4000, 3), np.uint8)
    mask = np.zeros((3000, 4000), bool)
    mask[2500:2600, 3700:3800] = True  # near the bottom-right corner
    view = bounded_view(Sample("s", image, mask, np.ones_like(mask)), 1024)
    assert view.image.shape == (1024, 1024, 3) and view.mask is not None
    assert view.mask.sum() == mask.sum()  # the foreground is inside the crop, kept whole
    small = Sample("t", image[:500, :600], mask[:500, :600], np.ones((500, 600), bool))
    assert bounded_view(small, 1024) is small


def test_wall_budget_keeps_time_for_the_end_of_epochs_and_the_final_work() -> None:
    now = [100.0]
    budget = WallBudget(60.0, started=100.0, before=5.0, clock=lambda: now[0])
    budget.plan_finish(view_seconds=2.0, views=6, window_seconds=3.0)
    budget.saw_epoch_end(3.0)
    span = budget.optimisation_span()
    assert span == pytest.approx(60.0 - 3.0 - (1.3 * (2.0 * 6 + 2 * 3.0 + 1.0) + 0.5))
    now[0] = 100.0 + span - 5.0 - 0.1  # the earlier attempt's 5 s count too
    assert not budget.done() and budget.progress() < 1.0
    now[0] += 0.2
    assert budget.done() and budget.progress() == 1.0


def test_preview_period_keeps_previews_near_two_percent() -> None:
    assert preview_period(0.01, 10.0) == 1
    assert preview_period(1.0, 10.0) == 5  # 1 s previews, 10 s of steps per epoch
    assert preview_period(1.0, 0.0) == 1


def test_short_budget_ends_on_time_at_a_large_image_size(tmp_path: Path) -> None:
    """18 s for everything, on two 2400×1800 images with a validation image: the run stops its
    steps early enough for the previews, validation, threshold, model files and ONNX export."""
    train = [large_sample(f"t{i}", 1800, 2400, i) for i in range(2)]
    val = [large_sample("v", 1800, 2400, 7)]
    config = TrainConfig(minutes=0.3, channels=4, res_units=0, batch_size=4, patch_size=64,
                         patches_per_epoch=64, infer_patch=256, flip_average=False, threads=2,
                         progress=False)
    started = time.monotonic()
    result = train_model(train, val, config, tmp_path / "run", started=started, export_onnx=True)
    took = time.monotonic() - started
    budget = 0.3 * 60
    # The run's own account and the caller's clock agree, and both end within the budget (the
    # run measures its costs as it goes, so a busy machine shifts time from steps, not past 18 s).
    assert result.wall_seconds is not None and result.wall_seconds <= took
    assert took <= budget * 1.10 + 2.0, (took, result.history)
    assert took >= 0.8 * budget  # and it used its budget rather than stopping at the start
    assert result.epochs >= 2 and result.seconds > 0
    assert result.onnx_path is not None and result.onnx_path.is_file()
    walls = [h["wall_seconds"] for h in result.history]
    assert walls == sorted(walls)
    # Bounded previews: image | probability | overlay of a ≤512-pixel view, at half size.
    for preview in result.preview_paths:
        with Image.open(preview) as picture:
            assert picture.width <= 3 * PREVIEW_SIDE // 2 and picture.height <= PREVIEW_SIDE // 2
    assert json.loads((tmp_path / "run" / "model.json").read_text())["threshold"] > 0


def test_a_budget_shorter_than_the_final_work_still_yields_a_model(tmp_path: Path) -> None:
    train = [large_sample("t", 600, 800, 1)]
    config = TrainConfig(minutes=0.005, channels=4, res_units=0, batch_size=2, patch_size=64,
                         patches_per_epoch=64, infer_patch=256, flip_average=False, threads=2,
                         progress=False)
    # The caller spent 5 s before training (reading images): the 0.3 s budget is gone already.
    result = train_model(train, [], config, tmp_path / "run", started=time.monotonic() - 5)
    assert result.epochs == 1 and result.history[0]["steps"] == 1
    assert result.best_checkpoint.is_file() and (tmp_path / "run" / "model.json").is_file()
    assert any("trained a single step" in notice for notice in result.notices)


def test_the_schedule_runs_from_the_start_of_optimisation() -> None:
    """Loading and set-up before the first step do not eat the learning-rate warm-up."""
    now = [0.0]
    budget = WallBudget(100.0, started=0.0, clock=lambda: now[0])
    now[0] = 20.0  # 20 s of loading
    assert budget.progress() == pytest.approx(0.2)  # before optimisation: plain elapsed share
    budget.begin_optimisation()
    assert budget.progress() == 0.0
    now[0] = 60.0
    assert budget.progress() == pytest.approx(0.5)
    budget.begin_optimisation()  # a second call (a resumed run restored t0) changes nothing
    assert budget.t0 == 20.0 and budget.state() == {"t0": 20.0, "epoch_end": 0.0}
