from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medloop_ml.data import DataError
from medloop_ml.evaluate import (
    FN_COLOUR,
    FP_COLOUR,
    OUTSIDE_COLOUR,
    TP_COLOUR,
    error_overlay,
    evaluate_folders,
)
from medloop_ml.metrics import METRIC_KEYS, segmentation_metrics


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8) * 255 if arr.dtype == bool else arr).save(path)


def _pred_set(tiny_set, tmp_path: Path) -> Path:
    """Predictions: truth with a 2-px shift (errors on both sides) and a probability map."""
    pred = tmp_path / "pred"
    for stem in tiny_set.stems:
        truth = np.asarray(Image.open(tiny_set.masks / f"{stem}.png")) > 0
        shifted = np.roll(truth, 2, axis=1)
        _save(pred / f"{stem}.png", shifted)
        prob = (shifted * 150 + truth * 100).astype(np.uint8)
        _save(pred / f"{stem}_prob.png", prob)
    (pred / "uncertainty.json").write_text("{}")  # not an image: ignored
    return pred


def test_evaluate_folders_writes_all_reports(tiny_set, tmp_path: Path) -> None:
    pred = _pred_set(tiny_set, tmp_path)
    out = tmp_path / "eval"
    report = evaluate_folders(pred, tiny_set.masks, out, fov_dir=tiny_set.fov)
    assert [r["stem"] for r in report["per_image"]] == tiny_set.stems
    assert set(report["mean"]) == set(METRIC_KEYS)
    # Every row equals the metrics computed directly from the files.
    stem = tiny_set.stems[1]
    truth = np.asarray(Image.open(tiny_set.masks / f"{stem}.png")) > 0
    p = np.asarray(Image.open(pred / f"{stem}.png")) > 0
    prob = np.asarray(Image.open(pred / f"{stem}_prob.png")).astype(np.float32) / 255
    fov = np.asarray(Image.open(tiny_set.fov / f"{stem}.png")) > 0
    expected = segmentation_metrics(p, truth, prob=prob, fov=fov)
    counts = {"pred_pixels": int(p.sum()), "truth_pixels": int(truth.sum())}
    assert report["per_image"][1] == pytest.approx({"stem": stem, **expected, **counts})
    assert 0.0 < report["mean"]["f1"] < 1.0
    assert report["mean"]["auc"] > report["mean"]["f1"]  # prob ranks truth pixels highest
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["per_image"] == report["per_image"] and on_disk["mean"] == report["mean"]
    rows = list(csv.reader((out / "report.csv").open()))
    assert rows[0] == ["stem", *METRIC_KEYS] and rows[-1][0] == "mean" and len(rows) == 6
    assert float(rows[-1][1]) == pytest.approx(report["mean"]["f1"], abs=1e-6)
    md = (out / "report.md").read_text()
    assert "| **mean** |" in md and stem in md and "false positive red" in md
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == [f"{s}.png" for s in tiny_set.stems]


def test_overlay_colours(tmp_path: Path) -> None:
    truth = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 0]], bool)
    fov = np.array([[1, 1, 1, 0]], bool)
    img = error_overlay(pred, truth, fov)
    assert [tuple(c) for c in img[0]] == [TP_COLOUR, FN_COLOUR, FP_COLOUR, OUTSIDE_COLOUR]
    assert len({TP_COLOUR, FP_COLOUR, FN_COLOUR, OUTSIDE_COLOUR, (0, 0, 0)}) == 5


def test_fov_sources(tiny_set, tmp_path: Path) -> None:
    pred = _pred_set(tiny_set, tmp_path)
    whole = evaluate_folders(pred, tiny_set.masks, None)
    derived = evaluate_folders(pred, tiny_set.masks, None, images_dir=tiny_set.images)
    given = evaluate_folders(pred, tiny_set.masks, None, fov_dir=tiny_set.fov)
    assert whole["fov_source"] == "whole image" and derived["fov_source"].startswith("FOV derived")
    # Restricting to the FOV removes easy background pixels (accuracy drops) and the shifted
    # vessel ends that stick out of the disc (false positives: F1 rises).
    assert whole["mean"]["accuracy"] > given["mean"]["accuracy"]
    assert given["mean"]["f1"] > whole["mean"]["f1"]
    assert derived["mean"]["accuracy"] == pytest.approx(given["mean"]["accuracy"], abs=0.03)


def test_auc_falls_back_to_masks_without_prob(tiny_set, tmp_path: Path) -> None:
    pred = _pred_set(tiny_set, tmp_path)
    for f in pred.glob("*_prob.png"):
        f.unlink()
    report = evaluate_folders(pred, tiny_set.masks, None)
    row = report["per_image"][0]
    assert row["auc"] == pytest.approx((row["sensitivity"] + row["specificity"]) / 2)
    assert report["auc_source"] == "binary masks"


def test_truth_suffix_and_errors(tmp_path: Path) -> None:
    from synthetic import write_tiny_set

    ts = write_tiny_set(tmp_path / "s", n=2, mask_suffix="_1stHO")
    pred = tmp_path / "pred"
    for stem in ts.stems:
        _save(pred / f"{stem}.png", np.asarray(Image.open(ts.masks / f"{stem}_1stHO.png")) > 0)
    report = evaluate_folders(pred, ts.masks, None, truth_suffix="_1stHO")
    assert report["mean"]["f1"] == 1.0
    with pytest.raises(DataError, match="no truth mask for prediction img_00.png"):
        evaluate_folders(pred, ts.masks, None)
    _save(pred / "img_01.png", np.zeros((10, 10), bool))
    with pytest.raises(DataError, match=r"size mismatch: .*img_01.png is 10x10"):
        evaluate_folders(pred, ts.masks, None, truth_suffix="_1stHO")
    (pred / "img_01.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"unreadable file: .*img_01.png"):
        evaluate_folders(pred, ts.masks, None, truth_suffix="_1stHO")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no predicted masks"):
        evaluate_folders(empty, ts.masks, None)
    with pytest.raises(DataError, match="truth folder not found"):
        evaluate_folders(pred, tmp_path / "missing", None)
