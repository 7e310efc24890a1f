"""benchmarks/test_time.py: its extra views undo what they do to the image, and its threshold
table scores the chosen and the test-best thresholds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from medloop_ml.data import Sample

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    if str(ROOT / "benchmarks") not in sys.path:  # as when run as a script: its helper module
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("test_time", ROOT / "benchmarks/test_time.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def red(image: np.ndarray) -> np.ndarray:
    """A per-pixel 'network': the red channel as a probability."""
    return image[..., 0].astype(np.float32) / 255


def top_left_marker(image: np.ndarray) -> np.ndarray:
    """A 'network' that depends on position: it marks the first pixel of what it sees."""
    out = np.zeros(image.shape[:2], np.float32)
    out[0, 0] = 1.0
    return out


def test_the_grid_shift_returns_the_image_own_pixels_and_moves_the_grid() -> None:
    script = load_script()
    image = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(script.shifted(red, 8)(image), red(image))
    assert script.shifted(top_left_marker, 8)(image).sum() == 0  # the network saw padding first


def test_the_rescaled_view_comes_back_at_the_image_size() -> None:
    script = load_script()
    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([(xx * 4).astype(np.uint8)] * 3, axis=-1)  # a smooth ramp
    prob = script.rescaled(red, 1.25)(image)
    assert prob.shape == (48, 64)
    assert np.abs(prob[:, 2:-2] - red(image)[:, 2:-2]).max() < 0.02


def test_the_threshold_row_finds_the_shifted_best_threshold_on_the_test_images() -> None:
    script = load_script()
    truth = np.zeros((20, 20), bool)
    truth[5:10, :] = True
    fov = np.ones_like(truth)

    def sample(background: int, vessel: int) -> Sample:
        # the perfect threshold lies between the two levels
        image = np.full((20, 20, 3), background, np.uint8)
        image[truth] = vessel
        return Sample("s", image, truth, fov)

    train, test = [sample(200, 250)], [sample(100, 160)]
    row = script.threshold_row(red, train, test)
    assert row["threshold"] > 200 / 255  # chosen on the training levels: misses the test vessels
    assert row["f1"] == 0.0
    assert 100 / 255 < row["test_best_threshold"] <= 160 / 255
    assert row["f1_at_test_best_threshold"] == 1.0
    assert row["test_fraction"]["annotated"] == truth.mean()
