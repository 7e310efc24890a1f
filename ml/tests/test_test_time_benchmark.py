"""benchmarks/test_time.py: the grid shift moves the image by its odd shift against the
network's windows, the rescaled view predicts the enlarged image, and the threshold table scores
the chosen threshold and the one that maximises the reported mean F1."""

from __future__ import annotations

import numpy as np
import torch
from benchmark_scripts import load_benchmark

from medloop_ml.data import Sample
from medloop_ml.infer import sliding_probability


def red(image: np.ndarray) -> np.ndarray:
    """A per-pixel 'network': the red channel as a probability."""
    return image[..., 0].astype(np.float32) / 255


MULTIPLE, PATCH = 16, 1280


def grid_phase(batch: torch.Tensor) -> torch.Tensor:
    """A fake window model that answers, at each pixel, where in the window's 16-pixel grid it
    lies: (row mod 16, column mod 16) coded in (0, 1)."""
    n, _, h, w = batch.shape
    rows = torch.arange(h).view(h, 1) % MULTIPLE
    cols = torch.arange(w).view(1, w) % MULTIPLE
    return ((rows * MULTIPLE + cols + 0.5) / MULTIPLE**2).expand(n, 1, h, w).float()


def phases(prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    code = np.floor(prob * MULTIPLE**2).astype(int)
    return code // MULTIPLE, code % MULTIPLE


def test_the_grid_shift_moves_the_image_by_its_odd_shift_against_the_network_windows() -> None:
    script = load_benchmark("test_time")

    def probability(image: np.ndarray) -> np.ndarray:
        return sliding_probability(grid_phase, image, PATCH, 0.125, multiple=MULTIPLE)

    for h, w in ((40, 30), (960, 999), (48, 32)):  # MONAI pads the first two, not the third
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        plain_rows, plain_cols = phases(probability(image))
        moved = script.shifted(probability, script.GRID_SHIFT, PATCH, MULTIPLE)(image)
        assert moved.shape == (h, w)
        rows, cols = phases(moved)
        np.testing.assert_array_equal((rows - plain_rows) % MULTIPLE, script.GRID_SHIFT)
        np.testing.assert_array_equal((cols - plain_cols) % MULTIPLE, script.GRID_SHIFT)
    # and the pixels themselves come back where they were
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(script.shifted(red, 7, PATCH, MULTIPLE)(image), red(image))


def test_the_rescaled_view_predicts_the_enlarged_image_and_comes_back_at_its_size() -> None:
    script = load_benchmark("test_time")
    seen: list[tuple[int, ...]] = []

    def probability(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return red(image)

    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([(xx * 4).astype(np.uint8)] * 3, axis=-1)  # a smooth ramp
    prob = script.rescaled(probability, 1.25)(image)
    assert seen == [(60, 80, 3)]
    assert prob.shape == (48, 64)
    assert np.abs(prob[:, 2:-2] - red(image)[:, 2:-2]).max() < 0.02


def test_the_test_best_threshold_maximises_the_mean_f1_it_reports() -> None:
    script = load_benchmark("test_time")
    rng = np.random.default_rng(3)
    samples, probs = [], []
    for fraction in (0.05, 0.3, 0.6):  # images of very different vessel fractions
        truth = rng.random((30, 30)) < fraction
        fov = np.ones_like(truth)
        fov[:, :5] = False
        samples.append(Sample("s", np.zeros((30, 30, 3), np.uint8), truth, fov))
        probs.append(np.clip(truth * 0.3 + rng.random((30, 30)) * 0.7, 0, 1).astype(np.float32))
    best = script.best_mean_f1_threshold(probs, samples)
    best_f1 = script.f1_at(probs, samples, best)
    assert all(best_f1 >= script.f1_at(probs, samples, k / 256) - 1e-12 for k in range(1, 256))


def test_the_threshold_row_finds_the_shifted_best_threshold_on_the_test_images() -> None:
    script = load_benchmark("test_time")
    truth = np.zeros((20, 20), bool)
    truth[5:10, :] = True
    fov = np.ones_like(truth)
    fov[15:, :] = False  # outside: a background block as bright as the vessels

    def sample(background: int, vessel: int) -> Sample:
        # the perfect threshold lies between the two levels
        image = np.full((20, 20, 3), background, np.uint8)
        image[truth] = vessel
        image[15:] = vessel
        return Sample("s", image, truth, fov)

    train, test = [sample(200, 250)], [sample(100, 160)]
    row = script.threshold_row(red, train, test)
    assert row["threshold"] > 200 / 255  # chosen on the training levels: misses the test vessels
    assert row["f1"] == 0.0
    assert 100 / 255 < row["test_best_threshold"] <= 160 / 255
    assert row["f1_at_test_best_threshold"] == 1.0
    assert row["auc"] == 1.0  # the ranking inside the FOV is perfect; only the threshold is off
    assert row["test_fraction"]["annotated"] == truth[fov].mean()
