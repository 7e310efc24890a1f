"""Inference: the sliding window agrees with one pass; uncertainty and folder outputs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from synthetic import synthetic_fundus

from medloop_ml.infer import (
    FolderItem,
    Predictor,
    image_tensor,
    mean_entropy,
    predict_folder,
    probability_fn,
    sliding_probability,
)
from medloop_ml.network import build_network


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network(SimpleNamespace(channels=8, depth=2, res_units=1, dropout=0.0))
    # give BatchNorm non-trivial running statistics, as after training
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(4, 3, 32, 32))
    return net.eval()


def test_window_covering_the_image_equals_a_single_pass(model: torch.nn.Module) -> None:
    image, _, _ = synthetic_fundus(64, seed=1)
    prob = sliding_probability(probability_fn(model), image, patch=64, overlap=0.25)
    with torch.no_grad():
        single = torch.sigmoid(model(image_tensor(image)))[0, 0].numpy()
    assert prob.shape == (64, 64)
    np.testing.assert_allclose(prob, single, atol=1e-6)


def test_overlapping_windows_agree_with_a_single_pass_away_from_window_borders(
    model: torch.nn.Module,
) -> None:
    image, _, _ = synthetic_fundus(96, seed=2)
    prob = sliding_probability(probability_fn(model), image, patch=64, overlap=0.5)
    with torch.no_grad():
        single = torch.sigmoid(model(image_tensor(image)))[0, 0].numpy()
    # Gaussian blending of fully convolutional windows: differences come only from the
    # windows' zero-padded borders, so they stay small everywhere
    assert prob.shape == single.shape
    assert np.abs(prob - single).mean() < 0.02
    assert np.corrcoef(prob.ravel(), single.ravel())[0, 1] > 0.98


def test_mean_entropy_is_in_bits_and_bounded() -> None:
    assert mean_entropy(np.full((4, 4), 0.5, np.float32)) == pytest.approx(1.0)
    assert mean_entropy(np.zeros((4, 4), np.float32)) == pytest.approx(0.0, abs=1e-5)
    fov = np.zeros((4, 4), bool)
    fov[:2] = True
    prob = np.zeros((4, 4), np.float32)
    prob[2:] = 0.5  # uncertain pixels outside the FOV do not count
    assert mean_entropy(prob, fov) == pytest.approx(0.0, abs=1e-5)


def test_predict_and_predict_folder(model: torch.nn.Module, tmp_path: Path) -> None:
    predictor = Predictor(model, threshold=0.5, patch=32, overlap=0.25)
    image, _, disc = synthetic_fundus(64, seed=3)
    result = predictor.predict(image, disc)
    assert result.prob.shape == (64, 64) and result.prob.dtype == np.float32
    assert result.prob.min() >= 0.0 and result.prob.max() <= 1.0
    assert not result.mask[~disc].any()
    np.testing.assert_array_equal(result.mask, (result.prob >= 0.5) & disc)
    assert 0.0 <= result.uncertainty <= 1.0
    with pytest.raises(ValueError, match="FOV shape"):
        predictor.predict(image, disc[:10])

    out = tmp_path / "pred"
    scores = predict_folder(predictor, [FolderItem("a", image, disc), FolderItem("b", image)], out)
    assert sorted(p.name for p in out.iterdir()) == [
        "a.png", "a_prob.png", "b.png", "b_prob.png", "uncertainty.json"]
    mask = np.asarray(Image.open(out / "a.png"))
    assert set(np.unique(mask)) <= {0, 255}
    assert json.loads((out / "uncertainty.json").read_text()) == pytest.approx(scores)
    prob16 = np.asarray(Image.open(out / "a_prob.png"))
    assert prob16.dtype == np.uint16  # 16-bit maps: round(p·65535)
    np.testing.assert_allclose(prob16 / 65535.0, result.prob, atol=0.5 / 65535 + 1e-7)


def test_checkpoint_from_before_flip_averaging_loads_with_a_single_view() -> None:
    from medloop_ml.infer import model_from_checkpoint
    from medloop_ml.train import TrainConfig

    config = TrainConfig(epochs=1, channels=4, depth=2).model_dump()
    model = build_network(TrainConfig.model_validate(config))
    weights = model.state_dict()
    legacy = {k: v for k, v in config.items() if k != "flip_average"}
    assert model_from_checkpoint({"config": legacy, "model": weights}).flip_average is False
    assert model_from_checkpoint({"config": config, "model": weights}).flip_average is True
