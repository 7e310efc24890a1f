"""Where the AUC is lost: 1 − AUC on CHASE_DB1, split by kind of pixel (issue 11).

The ROC AUC is the probability that a vessel pixel scores above a background pixel (Hanley and
McNeil 1982), so 1 − AUC is the share of (vessel, background) pairs in the wrong order, ties
counted half. This script counts those discordant pairs per image inside the FOV, against the
first observer (1stHO), and splits them by the kind of pixel on each side:

- vessel pixels: **thin** (removed by a 3×3 opening: vessels under 3 pixels wide), **edge** (the
  rest of the vessel pixels that touch the background, 4-connected) and **core**;
- background pixels: **rim** (touching a vessel pixel, 8-connected), **near** (2–4 pixels from a
  vessel) and **far**.

Each cell of the table is that pair of kinds' part of 1 − AUC (mean over the test images, in
thousandths); the cells add up to 1 − mean AUC. It also scores the same probabilities on the
pixels where the two observers agree (1stHO = 2ndHO), against the second observer, and without
the one-pixel band on both sides of the vessel outline, which says how much of the gap lies where
the annotators themselves differ, and over the whole photograph (FOV and black surround), the
measure some published figures use. Trains nothing: give it a run folder (`best.pt`).

    .venv/bin/python benchmarks/auc_anatomy.py --model RUN_DIR [--chase-dir DIR] [--json PATH]

Writes benchmarks/results/auc_anatomy.json (or --json) and prints the table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see medloop_ml/__init__

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from medloop_ml.chase import chase_root, chase_split
from medloop_ml.infer import Predictor
from medloop_ml.metrics import roc_auc
from report import ROOT, environment, shown_path
from scipy import ndimage as ndi

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "auc_anatomy.json"
VESSEL_KINDS = ("thin", "edge", "core")
BACKGROUND_KINDS = ("rim", "near", "far")
CROSS = ndi.generate_binary_structure(2, 1)
SQUARE = np.ones((3, 3), dtype=bool)


def vessel_kinds(truth: np.ndarray) -> dict[str, np.ndarray]:
    """Partition the vessel pixels into thin / edge / core (see the module docstring)."""
    thin = truth & ~ndi.binary_opening(truth, structure=SQUARE)
    edge = truth & ~thin & ~ndi.binary_erosion(truth, structure=CROSS, border_value=1)
    return {"thin": thin, "edge": edge, "core": truth & ~thin & ~edge}


def background_kinds(truth: np.ndarray) -> dict[str, np.ndarray]:
    """Partition the background pixels by distance to the nearest vessel pixel."""
    distance = ndi.distance_transform_edt(~truth)
    background = ~truth
    rim = background & (distance < 1.5)  # 8-neighbours of a vessel pixel
    near = background & (distance >= 1.5) & (distance <= 4.0)
    return {"rim": rim, "near": near, "far": background & (distance > 4.0)}


def discordant(pos: np.ndarray, neg_sorted: np.ndarray) -> float:
    """Pairs (p in pos, n in neg) with n > p, plus half the ties."""
    if pos.size == 0 or neg_sorted.size == 0:
        return 0.0
    left = np.searchsorted(neg_sorted, pos, side="left")
    right = np.searchsorted(neg_sorted, pos, side="right")
    return float(np.sum(neg_sorted.size - right) + 0.5 * np.sum(right - left))


def anatomy(prob: np.ndarray, truth: np.ndarray, fov: np.ndarray) -> dict[str, Any]:
    """One image: each (vessel kind, background kind) pair's part of 1 − AUC inside the FOV."""
    vessels = {k: m & fov for k, m in vessel_kinds(truth).items()}
    backgrounds = {k: m & fov for k, m in background_kinds(truth).items()}
    n_pos = sum(int(m.sum()) for m in vessels.values())
    n_neg = sum(int(m.sum()) for m in backgrounds.values())
    sorted_neg = {k: np.sort(prob[m].astype(np.float64)) for k, m in backgrounds.items()}
    cells = {
        f"{v}/{b}": discordant(prob[vm].astype(np.float64), sorted_neg[b]) / (n_pos * n_neg)
        for v, vm in vessels.items() for b in backgrounds
    }
    return {
        "cells": cells,
        "vessel_share": {k: int(m.sum()) / n_pos for k, m in vessels.items()},
        "background_share": {k: int(m.sum()) / n_neg for k, m in backgrounds.items()},
    }


def outline_band(truth: np.ndarray) -> np.ndarray:
    """The one-pixel band on both sides of the vessel outline: rim and edge pixels, and every
    vessel under 3 pixels wide (thin), which has no pixel off its outline."""
    return ndi.binary_dilation(truth, structure=SQUARE) & ~ndi.binary_erosion(
        truth, structure=CROSS, border_value=1)


def score_image(prob: np.ndarray, truth: np.ndarray, fov: np.ndarray,
                second: np.ndarray | None) -> dict[str, Any]:
    row: dict[str, Any] = {"auc": roc_auc(prob[fov], truth[fov])}
    row.update(anatomy(prob, truth, fov))
    keep = fov & ~outline_band(truth)
    row["auc_without_outline_band"] = roc_auc(prob[keep], truth[keep])
    # Not the target's measure: what papers that score every pixel of the photograph report
    # (the black surround outside the FOV is easy background and raises the AUC).
    row["auc_whole_image"] = roc_auc(prob, truth)
    if second is not None:
        agree = fov & (truth == second)
        row["auc_vs_2ndHO"] = roc_auc(prob[fov], second[fov])
        row["auc_where_observers_agree"] = roc_auc(prob[agree], truth[agree])
        row["observers_disagree_fraction"] = float(1.0 - agree.sum() / fov.sum())
    return row


def mean_of(rows: list[dict[str, Any]], key: str) -> Any:
    first = rows[0][key]
    if isinstance(first, dict):
        return {k: float(np.mean([r[key][k] for r in rows])) for k in first}
    return float(np.mean([r[key] for r in rows]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained run folder (best.pt) or checkpoint")
    parser.add_argument("--chase-dir", help="CHASE_DB1 folder (default: $MEDLOOP_CHASE_DIR)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="result file to write")
    args = parser.parse_args()
    try:
        predictor = Predictor.from_run(Path(args.model))
        split = chase_split(args.chase_dir)
    except (FileNotFoundError, ValueError) as err:  # one line, not a traceback
        print(f"auc_anatomy: error: {err}", file=sys.stderr)
        return 2

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for sample in split.test:
        assert sample.mask is not None
        prob = predictor.predict(sample.image, sample.fov).prob
        row = {"image": sample.stem,
               **score_image(prob, sample.mask, sample.fov,
                             split.second_observer.get(sample.stem))}
        rows.append(row)
        print(f"{sample.stem}: AUC {row['auc']:.4f}", flush=True)

    keys = [k for k in rows[0] if k != "image"]
    report = {
        "benchmark": "auc_anatomy",
        "what": "1 − AUC inside the derived FOV vs 1stHO, split by vessel kind × background "
                f"kind (mean over the {len(rows)} test images of each pair's share of "
                "discordant pairs)",
        "model": shown_path(Path(args.model)),
        "chase_dir": shown_path(chase_root() if args.chase_dir is None else Path(args.chase_dir)),
        "images": len(rows),
        "mean": {k: mean_of(rows, k) for k in keys},
        "per_image": rows,
        "seconds": time.perf_counter() - started,
        **environment(),
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report["mean"])
    print(f"wrote {shown_path(out)}")
    return 0


def print_table(mean: dict[str, Any]) -> None:
    """The mean 1 − AUC split, in thousandths, with each kind's share of its pixels."""
    cells, vshare, bshare = mean["cells"], mean["vessel_share"], mean["background_share"]
    print("| vessel \\ background (pixel share) | "
          + " | ".join(f"{b} ({bshare[b]:.1%})" for b in BACKGROUND_KINDS) + " | all |")
    print("|---" * (len(BACKGROUND_KINDS) + 2) + "|")
    for v in VESSEL_KINDS:
        row = [cells[f"{v}/{b}"] * 1000 for b in BACKGROUND_KINDS]
        print(f"| {v} ({vshare[v]:.1%}) | " + " | ".join(f"{x:.2f}" for x in row)
              + f" | {sum(row):.2f} |")
    totals = [sum(cells[f"{v}/{b}"] for v in VESSEL_KINDS) * 1000 for b in BACKGROUND_KINDS]
    print("| all | " + " | ".join(f"{x:.2f}" for x in totals) + f" | {sum(totals):.2f} |")
    nan = float("nan")
    print(f"mean AUC {mean['auc']:.4f}; whole image {mean['auc_whole_image']:.4f}; "
          f"without the outline band {mean['auc_without_outline_band']:.4f}; "
          f"vs 2ndHO {mean.get('auc_vs_2ndHO', nan):.4f}; "
          f"where the observers agree {mean.get('auc_where_observers_agree', nan):.4f} "
          f"({mean.get('observers_disagree_fraction', nan):.1%} of FOV pixels disputed)")


if __name__ == "__main__":
    raise SystemExit(main())
