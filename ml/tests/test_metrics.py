from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import compute_roc_auc

from medloop_ml.metrics import METRIC_KEYS, cldice, mean_metrics, roc_auc, segmentation_metrics


def _m(rows: list[str]) -> np.ndarray:
    return np.array([[c == "1" for c in r] for r in rows], dtype=bool)


def test_hand_computed_counts() -> None:
    # truth: 4 positives; pred: 3 positives, 2 of them correct -> TP=2, FP=1, FN=2, TN=11
    truth = _m(["1100", "1100", "0000", "0000"])
    pred = _m(["1000", "0100", "0010", "0000"])
    m = segmentation_metrics(pred, truth)
    assert set(m) == set(METRIC_KEYS)
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # 4/7
    assert m["iou"] == pytest.approx(2 / 5)
    assert m["sensitivity"] == pytest.approx(2 / 4)
    assert m["specificity"] == pytest.approx(11 / 12)
    assert m["accuracy"] == pytest.approx(13 / 16)
    # Without prob the binary prediction is the score: AUC = (sens + spec) / 2.
    assert m["auc"] == pytest.approx((0.5 + 11 / 12) / 2)


def test_fov_restricts_every_count() -> None:
    truth = _m(["1100", "1100", "0000", "0000"])
    pred = _m(["1000", "0100", "0010", "0001"])
    fov = _m(["1111", "1111", "1111", "1110"])  # the false positive at (3, 3) is outside
    m = segmentation_metrics(pred, truth, fov=fov)
    assert m["f1"] == pytest.approx(4 / 7)
    assert m["specificity"] == pytest.approx(10 / 11)
    assert m["accuracy"] == pytest.approx(12 / 15)


def test_auc_rank_statistic_with_ties() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1], dtype=bool)
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.4])
    # Pairs (pos, neg): 9 in all. pos 0.35 beats 0.1 only (1); pos 0.8 beats all 3 (3);
    # pos 0.4 beats 0.1 (1) and ties two 0.4s (2 × 0.5) -> (1 + 3 + 2) / 9.
    assert roc_auc(scores, labels) == pytest.approx(6 / 9)
    monai = compute_roc_auc(torch.tensor(scores), torch.tensor(labels.astype(np.float64)))
    assert roc_auc(scores, labels) == pytest.approx(float(monai))


def test_auc_matches_monai_on_random_data() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(500) < 0.1
    scores = np.round(rng.random(500) * 0.6 + labels * 0.3, 2)  # rounded: many ties
    expected = compute_roc_auc(torch.tensor(scores), torch.tensor(labels.astype(np.float64)))
    assert roc_auc(scores, labels) == pytest.approx(float(expected), abs=1e-12)


def test_auc_uses_prob_inside_fov() -> None:
    truth = _m(["10", "01"])
    prob = np.array([[0.9, 0.2], [0.95, 0.7]], dtype=np.float32)
    pred = prob > 0.5
    # Positives 0.9, 0.7 vs negatives 0.2, 0.95: 2 of 4 pairs ranked right.
    assert segmentation_metrics(pred, truth, prob=prob)["auc"] == pytest.approx(2 / 4)
    fov = _m(["11", "01"])  # drop the 0.95 negative -> perfect ranking
    assert segmentation_metrics(pred, truth, prob=prob, fov=fov)["auc"] == 1.0


def test_both_empty_is_perfect() -> None:
    empty = np.zeros((5, 5), bool)
    m = segmentation_metrics(empty, empty)
    assert m == {
        "f1": 1.0,
        "iou": 1.0,
        "cldice": 1.0,
        "auc": 0.5,  # one class only: documented "no information" value
        "sensitivity": 1.0,
        "specificity": 1.0,
        "accuracy": 1.0,
    }


def test_one_side_empty() -> None:
    empty = np.zeros((4, 4), bool)
    some = _m(["0110", "0000", "0000", "0000"])
    m = segmentation_metrics(empty, some)  # missed everything
    assert (m["f1"], m["iou"], m["cldice"], m["sensitivity"]) == (0.0, 0.0, 0.0, 0.0)
    assert m["specificity"] == 1.0 and m["accuracy"] == pytest.approx(14 / 16)
    m = segmentation_metrics(some, empty)  # predicted vessels where there are none
    assert (m["f1"], m["iou"], m["cldice"]) == (0.0, 0.0, 0.0)
    assert m["sensitivity"] == 1.0 and m["specificity"] == pytest.approx(14 / 16)
    assert m["auc"] == 0.5
    assert not any(np.isnan(v) for v in m.values())


def test_cldice_rewards_topology() -> None:
    # A 3-px-wide horizontal vessel; its skeleton is the middle row.
    truth = np.zeros((9, 20), bool)
    truth[3:6, 2:18] = True
    assert cldice(truth, truth) == 1.0
    # A thinner prediction (2 of the 3 rows): its skeleton lies inside the truth and the truth's
    # skeleton inside it -> clDice 1 although Dice is 2·32 / (32 + 48) = 0.8.
    thin = np.zeros_like(truth)
    thin[3:5, 2:18] = True
    assert cldice(thin, truth) == pytest.approx(1.0)
    assert segmentation_metrics(thin, truth)["f1"] == pytest.approx(0.8)
    # Breaking the vessel in the middle lowers topology sensitivity.
    broken = truth.copy()
    broken[:, 8:12] = False
    assert cldice(broken, truth) < 0.95


def test_errors_and_mean() -> None:
    with pytest.raises(ValueError, match="field of view is empty"):
        segmentation_metrics(np.ones((2, 2), bool), np.ones((2, 2), bool), fov=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        segmentation_metrics(np.ones((2, 3), bool), np.ones((2, 2), bool))
    rows = [dict.fromkeys(METRIC_KEYS, 1.0), dict.fromkeys(METRIC_KEYS, 0.5)]
    assert mean_metrics(rows) == dict.fromkeys(METRIC_KEYS, 0.75)
