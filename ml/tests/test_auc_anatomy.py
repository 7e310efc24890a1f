"""benchmarks/auc_anatomy.py: its split of 1 − AUC adds up to the engine's AUC and puts the
discordant pairs where they are."""

from __future__ import annotations

import numpy as np
from benchmark_scripts import load_benchmark

from medloop_ml.metrics import roc_auc


def vessel_image() -> np.ndarray:
    """A 64×64 mask with a 7-pixel-wide vessel and a 1-pixel-wide one."""
    truth = np.zeros((64, 64), dtype=bool)
    truth[10:17, 5:60] = True
    truth[30:60, 40] = True
    return truth


def test_the_cells_add_up_to_one_minus_the_auc() -> None:
    anatomy = load_benchmark("auc_anatomy")
    truth = vessel_image()
    rng = np.random.default_rng(0)
    prob = np.clip(truth * 0.6 + rng.normal(0.2, 0.2, truth.shape), 0, 1).round(2)  # ties too
    fov = np.ones_like(truth)
    fov[:, :3] = False
    row = anatomy.score_image(prob, truth, fov, second=None)
    assert row["auc"] == roc_auc(prob[fov], truth[fov])
    assert abs(sum(row["cells"].values()) - (1 - row["auc"])) < 1e-12
    assert abs(sum(row["vessel_share"].values()) - 1) < 1e-12


def test_a_missed_thin_vessel_is_charged_to_the_thin_row() -> None:
    anatomy = load_benchmark("auc_anatomy")
    truth = vessel_image()
    prob = truth.astype(float) * 0.9 + 0.05
    prob[30:60, 40] = 0.01  # the 1-pixel vessel scored below every background pixel
    second = truth.copy()
    second[30:60, 40] = False  # the second observer did not draw it either
    row = anatomy.score_image(prob, truth, np.ones_like(truth), second=second)
    thin = sum(v for k, v in row["cells"].items() if k.startswith("thin/"))
    assert thin > 0 and abs(thin - (1 - row["auc"])) < 1e-12
    assert row["auc_where_observers_agree"] == 1.0 and row["auc_vs_2ndHO"] == 1.0
