"""Segmentation metrics inside the field of view.

All counts are taken over the pixels where ``fov`` is true (the whole image when ``fov`` is
None). With TP, FP, FN, TN the confusion counts:

- ``f1`` (= Dice) = 2TP / (2TP + FP + FN); ``iou`` = TP / (TP + FP + FN)
- ``sensitivity`` = TP / (TP + FN); ``specificity`` = TN / (TN + FP)
- ``accuracy`` = (TP + TN) / (TP + FP + FN + TN)
- ``cldice`` (Shit et al., 2021) = 2·Tprec·Tsens / (Tprec + Tsens), with
  Tprec = |skel(pred) ∩ truth| / |skel(pred)| and Tsens = |skel(truth) ∩ pred| / |skel(truth)|;
  skeletons by scikit-image's ``skeletonize`` (Zhang's thinning) of the masks inside the FOV.
- ``auc``: area under the ROC curve of ``prob`` against ``truth``, computed exactly as the
  Mann–Whitney rank statistic (ties count one half). Without ``prob`` the binary prediction is the
  score, which gives (sensitivity + specificity) / 2.

Empty cases (a ratio whose denominator is zero) are defined, never NaN:

- truth and prediction both empty: f1 = iou = cldice = 1 (perfect agreement), sensitivity = 1.
- exactly one of them empty: f1 = iou = cldice = 0.
- no positive truth pixel: sensitivity = 1 (nothing to miss); no negative: specificity = 1.
- AUC when the truth inside the FOV has only one class: 0.5 — the ranking is undefined, and
  0.5 is the "no information" value, so a mean over images is not pulled either way.
- An empty FOV is an error (``ValueError``): there is nothing to score.

MONAI offers ``compute_roc_auc`` and ``DiceMetric``; its ROC AUC walks the sorted pixels in a
Python loop (seconds for one 999×960 image), so the rank statistic is computed with NumPy here and
cross-checked against MONAI in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy.stats import rankdata
from skimage.morphology import skeletonize

METRIC_KEYS: tuple[str, ...] = (
    "f1",
    "iou",
    "cldice",
    "auc",
    "sensitivity",
    "specificity",
    "accuracy",
)


def _ratio(num: float, den: float, empty: float) -> float:
    return float(num) / float(den) if den > 0 else empty


def _as_bool(name: str, arr: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    out = np.asarray(arr)
    if out.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask, got shape {out.shape}")
    if shape is not None and out.shape != shape:
        raise ValueError(f"{name} shape {out.shape} differs from {shape}")
    return out.astype(bool) if out.dtype != bool else out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the rank statistic; 0.5 when ``labels`` holds only one class."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=bool).ravel()
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(s, method="average")
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (float(n_pos) * float(n_neg))


def cldice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Centreline Dice of two boolean masks (1 when both are empty, 0 when one is)."""
    p_any, t_any = bool(pred.any()), bool(truth.any())
    if not p_any and not t_any:
        return 1.0
    if not p_any or not t_any:
        return 0.0
    skel_p = skeletonize(pred)
    skel_t = skeletonize(truth)
    t_prec = _ratio(np.logical_and(skel_p, truth).sum(), skel_p.sum(), 0.0)
    t_sens = _ratio(np.logical_and(skel_t, pred).sum(), skel_t.sum(), 0.0)
    return _ratio(2.0 * t_prec * t_sens, t_prec + t_sens, 0.0)


def segmentation_metrics(
    pred: np.ndarray,
    truth: np.ndarray,
    prob: np.ndarray | None = None,
    fov: np.ndarray | None = None,
) -> dict[str, float]:
    """F1, IoU, clDice, AUC, sensitivity, specificity and accuracy of ``pred`` inside ``fov``.

    ``pred`` and ``truth`` are boolean H×W masks; ``prob`` (optional) is an H×W probability map
    used for the AUC: floats in [0, 1], or the integer levels of a stored map (uint8 or uint16),
    since only the ranking counts. Read stored maps with :func:`medloop_ml.probmap.read_prob_png`:
    8-bit maps tie pixels that a 16-bit or float map ranks apart, which changes the AUC.
    ``fov`` (optional) restricts every count. Raises ``ValueError`` for shapes that differ and for
    an empty FOV.
    """
    truth_b = _as_bool("truth", truth, None)
    pred_b = _as_bool("pred", pred, truth_b.shape)
    fov_b = (
        np.ones(truth_b.shape, dtype=bool) if fov is None else _as_bool("fov", fov, truth_b.shape)
    )
    n = int(fov_b.sum())
    if n == 0:
        raise ValueError("the field of view is empty: nothing to score")
    p = pred_b & fov_b
    t = truth_b & fov_b
    tp = int(np.logical_and(p, t).sum())
    fp = int(p.sum()) - tp
    fn = int(t.sum()) - tp
    tn = n - tp - fp - fn
    both_empty = tp + fp + fn == 0
    if prob is not None:
        prob_arr = np.asarray(prob)
        if prob_arr.shape != truth_b.shape:
            raise ValueError(f"prob shape {prob_arr.shape} differs from {truth_b.shape}")
        scores = prob_arr[fov_b]
    else:
        scores = p[fov_b]
    return {
        "f1": 1.0 if both_empty else 2.0 * tp / (2 * tp + fp + fn),
        "iou": 1.0 if both_empty else tp / (tp + fp + fn),
        "cldice": cldice(p, t),
        "auc": roc_auc(scores, t[fov_b]),
        "sensitivity": _ratio(tp, tp + fn, 1.0),
        "specificity": _ratio(tn, tn + fp, 1.0),
        "accuracy": (tp + tn) / n,
    }


def mean_metrics(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per-key mean over images (keys of :data:`METRIC_KEYS`); NaN only when ``rows`` is empty."""
    items = list(rows)
    out: dict[str, float] = {}
    for key in METRIC_KEYS:
        values = [float(r[key]) for r in items if key in r]
        out[key] = float(np.mean(values)) if values else math.nan
    return out
