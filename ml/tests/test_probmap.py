"""16-bit probability maps: exact round trip, 8-bit maps still read, and an AUC that matches the
float map where 8 bits visibly change it, through every reader (evaluate CLI, evaluate_masks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from medloop_ml.cli import main
from medloop_ml.evaluate import evaluate_folders
from medloop_ml.infer import FolderItem, Predictor, predict_folder
from medloop_ml.metrics import roc_auc
from medloop_ml.network import build_network
from medloop_ml.probmap import (
    ProbMapError,
    encode_prob16,
    read_prob_png,
    read_prob_png_levels,
    write_prob_png,
)
from medloop_ml.train import TrainConfig
from medloop_ml.worker import GpuActivities

HALF_LEVEL = 0.5 / 65535


def png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from the PNG IHDR chunk, independent of any decoder."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def test_sixteen_bit_map_round_trips_within_half_a_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    prob = rng.random((61, 77))
    prob[0, :4] = [0.0, 1.0, 0.5, 1e-9]
    prob[1, :3] = (np.array([7, 30000, 65534]) + 0.5) / 65535  # exact half levels
    path = write_prob_png(tmp_path / "p_prob.png", prob)
    assert png_header(path) == (16, 0)  # 16 bits per sample, colour type 0: one grey channel
    back = read_prob_png(path)
    assert back.shape == prob.shape and back.dtype == np.float64
    assert np.abs(back - prob).max() <= HALF_LEVEL + 1e-12
    assert back[0, 0] == 0.0 and back[0, 1] == 1.0
    levels, bits = read_prob_png_levels(path)
    assert bits == 16 and levels.dtype == np.uint16
    np.testing.assert_array_equal(levels, np.rint(prob * 65535).astype(np.uint16))
    # float32 maps, as the predictor returns them, round in float64: still half a level.
    prob32 = prob.astype(np.float32)
    back32 = read_prob_png(write_prob_png(tmp_path / "q_prob.png", prob32))
    assert np.abs(back32 - prob32.astype(np.float64)).max() <= HALF_LEVEL + 1e-12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_eight_bit_maps_are_scaled_by_their_own_depth(tmp_path: Path) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(levels).save(tmp_path / "old_prob.png")
    assert png_header(tmp_path / "old_prob.png") == (8, 0)
    np.testing.assert_array_equal(read_prob_png(tmp_path / "old_prob.png"), levels / 255.0)
    # A grey map saved as RGB by some viewer reads as its one grey channel.
    Image.fromarray(np.repeat(levels[..., None], 3, axis=2)).save(tmp_path / "rgb_prob.png")
    np.testing.assert_array_equal(read_prob_png(tmp_path / "rgb_prob.png"), levels / 255.0)


def test_bad_maps_are_refused_naming_the_file(tmp_path: Path) -> None:
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200  # a red heat map: not one value per pixel
    Image.fromarray(colour).save(tmp_path / "heat.png")
    with pytest.raises(ProbMapError, match=r"heat\.png is a colour image"):
        read_prob_png(tmp_path / "heat.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ProbMapError, match=r"cannot read probability map .*junk\.png"):
        read_prob_png(tmp_path / "junk.png")
    with pytest.raises(ProbMapError, match=r"not found: .*none\.png"):
        read_prob_png(tmp_path / "none.png")
    with pytest.raises(ValueError, match=r"finite values in \[0, 1\]"):
        encode_prob16(np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match=r"finite values in \[0, 1\]"):
        encode_prob16(np.array([[0.5, 1.5]]))
    with pytest.raises(ValueError, match="H×W"):
        encode_prob16(np.zeros((2, 2, 2)))


def narrow_band_case(shape: tuple[int, int] = (32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Float probabilities squeezed into 0.497–0.516 (a hesitant network) and a truth correlated
    with them. 8 bits leave 6 levels there, so most vessel/background pairs tie; every pixel sits
    on its own 16-bit level (plus under half a level of float jitter), so 16 bits keep the float
    ranking exactly."""
    rng = np.random.default_rng(42)
    n = shape[0] * shape[1]
    levels = rng.choice(np.arange(32600, 33800), size=n, replace=False)
    prob = (levels + rng.uniform(-0.4, 0.4, n)) / 65535
    truth = levels + rng.normal(0, 180, n) > 33200
    return prob.reshape(shape), truth.reshape(shape)


def test_auc_from_the_sixteen_bit_map_equals_the_float_auc(tmp_path: Path, capsys) -> None:
    prob, truth = narrow_band_case()
    float_auc = roc_auc(prob, truth)
    auc8 = roc_auc(np.rint(prob * 255) / 255, truth)
    assert abs(auc8 - float_auc) > 0.005, (auc8, float_auc)  # 8 bits visibly change it

    # The evaluate command: 16-bit and old 8-bit maps side by side.
    pred16, pred8, truth_dir = tmp_path / "pred16", tmp_path / "pred8", tmp_path / "truth"
    for folder in (pred16, pred8, truth_dir):
        folder.mkdir()
    mask = (prob >= 0.5).astype(np.uint8) * 255
    for folder in (pred16, pred8):
        Image.fromarray(mask).save(folder / "a.png")
    write_prob_png(pred16 / "a_prob.png", prob)
    Image.fromarray(np.rint(prob * 255).astype(np.uint8)).save(pred8 / "a_prob.png")
    Image.fromarray(truth.astype(np.uint8) * 255).save(truth_dir / "a.png")
    assert read_prob_png_levels(pred16 / "a_prob.png")[1] == 16

    code = main(["evaluate", "--pred", str(pred16), "--truth", str(truth_dir),
                 "--out", str(tmp_path / "ev16")])
    assert code == 0, capsys.readouterr().err
    report16 = json.loads((tmp_path / "ev16" / "report.json").read_text())
    assert report16["per_image"][0]["auc"] == pytest.approx(float_auc, abs=1e-6)
    report8 = evaluate_folders(pred8, truth_dir, None)
    assert report8["per_image"][0]["auc"] == pytest.approx(auc8, abs=1e-9)

    # The evaluate_masks activity reads the same files the same way.
    def activity_auc(pred_dir: Path) -> float:
        item = {"image_id": "a", "pred_uri": (pred_dir / "a.png").as_uri(),
                "truth_uri": (truth_dir / "a.png").as_uri(),
                "prob_uri": (pred_dir / "a_prob.png").as_uri()}
        out = ActivityEnvironment().run(GpuActivities().evaluate_masks, {"items": [item]})
        return float(out["per_image"][0]["auc"])

    assert activity_auc(pred16) == pytest.approx(float_auc, abs=1e-6)
    assert activity_auc(pred8) == pytest.approx(auc8, abs=1e-9)


def test_bad_probability_map_is_one_line_from_evaluate(tmp_path: Path, capsys) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "truth"
    pred.mkdir()
    truth.mkdir()
    blank = np.zeros((40, 40), np.uint8)
    Image.fromarray(blank).save(pred / "a.png")
    Image.fromarray(blank).save(truth / "a.png")
    # A palette image (a coloured heat map) is refused from its header, before any scoring.
    Image.fromarray(blank).convert("P").save(pred / "a_prob.png")
    out = tmp_path / "ev"
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2
    assert err.count("\n") == 0 and err.startswith("medloop-ml: error: probability map ")
    assert "a_prob.png has pixel mode P" in err
    assert not out.exists()


def test_predict_folder_writes_sixteen_bit_maps_of_the_predicted_probability(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    model = build_network(TrainConfig(epochs=1, channels=4, depth=2)).eval()
    predictor = Predictor(model, threshold=0.5, patch=64, overlap=0.25)
    image = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    predict_folder(predictor, [FolderItem("x", image)], tmp_path / "out")
    path = tmp_path / "out" / "x_prob.png"
    assert png_header(path) == (16, 0)
    expected = predictor.predict(image).prob.astype(np.float64)
    # float32 probabilities: half a level plus the float32 rounding of the prediction itself.
    assert np.abs(read_prob_png(path) - expected).max() <= HALF_LEVEL + 1e-7


def test_evaluate_masks_refuses_a_bad_probability_map_as_bad_input(tmp_path: Path) -> None:
    blank = np.zeros((40, 40), np.uint8)
    Image.fromarray(blank).save(tmp_path / "a.png")
    Image.fromarray(blank).convert("P").save(tmp_path / "a_prob.png")
    item = {"pred_uri": (tmp_path / "a.png").as_uri(), "truth_uri": (tmp_path / "a.png").as_uri(),
            "prob_uri": (tmp_path / "a_prob.png").as_uri()}
    with pytest.raises(ApplicationError) as failure:
        ActivityEnvironment().run(GpuActivities().evaluate_masks, {"items": [item]})
    assert failure.value.type == "BadInput" and failure.value.non_retryable
    assert "items[0]" in failure.value.message and "a_prob.png" in failure.value.message
