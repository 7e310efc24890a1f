"""Test-time choices on CHASE_DB1: the threshold, and views beyond the dihedral average (issue 11).

Trains nothing: give it a run folder of `chase_fewshot.py` (its `at_5min.pt`, `at_10min.pt`,
`at_15min.pt` and `best.pt`). Two questions, both scored inside the derived FOV against 1stHO
on the 22 test images:

1. **How much of the F1 is the threshold?** For each checkpoint: the threshold the engine
   chooses (F1-maximising on the six training images, as `train_model` does), the test F1 at it,
   its AUC, the test F1 at the threshold that maximises the mean test F1 itself (an upper bound
   that no method can choose, not a result), and the mean probability against the annotated
   vessel fraction on the training and test images (a shift between them moves the best
   threshold).
2. **Do more views help?** The final model's probabilities averaged with those of (a) the image
   moved by an odd number of pixels (`GRID_SHIFT`) against the network's windows, so the grid of
   every pooling level falls elsewhere (`grid_shift`), and (b) the image enlarged by 1.25 and the
   result scaled back (`scale_1.25`), each alone and with the plain prediction; each variant
   chooses its threshold on the training images as the engine would.

    .venv/bin/python benchmarks/test_time.py --model RUN_DIR [--chase-dir DIR] [--json PATH]

Writes benchmarks/results/test_time.json (or --json) and prints both tables.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see medloop_ml/__init__

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from medloop_ml.chase import chase_root, chase_split
from medloop_ml.data import Sample
from medloop_ml.infer import Predictor
from medloop_ml.metrics import mean_metrics, segmentation_metrics
from medloop_ml.train import best_f1_threshold
from report import ROOT, environment, shown_path

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "test_time.json"
CHECKPOINTS = ("at_5min.pt", "at_10min.pt", "at_15min.pt")
GRID_SHIFT = 7  # odd: the 2-, 4-, 8- and 16-pixel pooling grids all fall elsewhere
ProbabilityOf = Callable[[np.ndarray], np.ndarray]  # uint8 H×W×3 → float32 H×W


def plain_offset(side: int, patch: int, multiple: int) -> int:
    """Where the image's first pixel lies in the network's window along one side: MONAI's
    sliding window pads a side shorter than the window by half the difference before it
    (the window is the side rounded up to `multiple`, infer.fitted_window); longer sides slide
    from 0."""
    window = min(patch, -(-side // multiple) * multiple)
    return (window - side) // 2 if side < window else 0


def shifted_padding(side: int, shift: int, patch: int, multiple: int) -> tuple[int, int]:
    """Mirrored pixels (before, after) that put the image `shift` pixels further into the window
    than the plain prediction does, padded to a whole `multiple` so MONAI adds nothing."""
    before = plain_offset(side, patch, multiple) + shift
    padded = -(-(side + before) // multiple) * multiple
    return before, (padded - side - before) if padded <= patch else 0


def shifted(probability: ProbabilityOf, shift: int, patch: int, multiple: int) -> ProbabilityOf:
    """`probability` of the image moved `shift` pixels down and right against the network's
    windows (mirrored padding, cropped back): an odd shift moves every pooling level's grid."""
    def run(image: np.ndarray) -> np.ndarray:
        (top, bottom), (left, right) = (shifted_padding(n, shift, patch, multiple)
                                        for n in image.shape[:2])
        padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
        return probability(padded)[top:top + image.shape[0], left:left + image.shape[1]]
    return run


def rescaled(probability: ProbabilityOf, scale: float) -> ProbabilityOf:
    """`probability` of the image resized by `scale` (bilinear, antialiased), resized back."""
    def run(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        big = resize(image.astype(np.float32), round(h * scale), round(w * scale))
        prob = probability(np.clip(big.round(), 0, 255).astype(np.uint8))
        return resize(prob, h, w)
    return run


def resize(array: np.ndarray, h: int, w: int) -> np.ndarray:
    """H×W or H×W×C float32 resized bilinearly (antialiased when shrinking)."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    out = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    return out[0].numpy() if array.ndim == 2 else out.permute(1, 2, 0).numpy()


def averaged(*views: ProbabilityOf) -> ProbabilityOf:
    return lambda image: np.mean([view(image) for view in views], axis=0)


def train_threshold(probs: Sequence[np.ndarray], samples: Sequence[Sample]) -> float:
    """The F1-maximising threshold inside the FOV, as train_model chooses it."""
    return best_f1_threshold([p[s.fov] for p, s in zip(probs, samples, strict=True)],
                             [s.mask[s.fov] for s in samples])[0]  # type: ignore[index]


def best_mean_f1_threshold(probs: Sequence[np.ndarray], samples: Sequence[Sample]) -> float:
    """The threshold on best_f1_threshold's 1/256 grid that maximises the mean per-image F1
    inside the FOV (the figure reported), not the pooled F1."""
    bins = 256
    scores = np.zeros(bins)
    for p, s in zip(probs, samples, strict=True):
        idx = np.minimum((p[s.fov] * bins).astype(np.int64), bins - 1)
        truth = s.mask[s.fov]  # type: ignore[index]
        tp = np.cumsum(np.bincount(idx[truth], minlength=bins)[::-1])[::-1]
        fp = np.cumsum(np.bincount(idx[~truth], minlength=bins)[::-1])[::-1]
        fn = truth.sum() - tp
        scores += np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 1.0)
    return int(np.argmax(scores[1:]) + 1) / bins  # never 0 (everything positive)


def mean_scores(probs: Sequence[np.ndarray], samples: Sequence[Sample], threshold: float,
                auc: bool = True) -> dict[str, float]:
    """Mean metrics over the images at `threshold` inside the FOV (the AUC only with `auc`)."""
    rows = [segmentation_metrics((p >= threshold) & s.fov, s.mask,  # type: ignore[arg-type]
                                 prob=p if auc else None, fov=s.fov)
            for p, s in zip(probs, samples, strict=True)]
    return mean_metrics(rows)


def f1_at(probs: Sequence[np.ndarray], samples: Sequence[Sample], threshold: float) -> float:
    return mean_scores(probs, samples, threshold, auc=False)["f1"]


def mean_vessel_fraction(probs: Sequence[np.ndarray], samples: Sequence[Sample]) -> dict[str, float]:
    """Mean predicted probability and annotated vessel fraction inside the FOV."""
    return {"predicted": float(np.mean([p[s.fov].mean() for p, s in zip(probs, samples, strict=True)])),
            "annotated": float(np.mean([s.mask[s.fov].mean() for s in samples]))}  # type: ignore[index]


def threshold_row(probability: ProbabilityOf, train: list[Sample], test: list[Sample]) -> dict[str, Any]:
    train_probs = [probability(s.image) for s in train]
    test_probs = [probability(s.image) for s in test]
    chosen = train_threshold(train_probs, train)
    best_on_test = best_mean_f1_threshold(test_probs, test)
    mean = mean_scores(test_probs, test, chosen)
    return {"threshold": chosen, "f1": mean["f1"], "auc": mean["auc"],
            "test_best_threshold": best_on_test,
            "f1_at_test_best_threshold": f1_at(test_probs, test, best_on_test),
            "f1_at_0.5": f1_at(test_probs, test, 0.5),
            "train_fraction": mean_vessel_fraction(train_probs, train),
            "test_fraction": mean_vessel_fraction(test_probs, test)}


def variant_row(probability: ProbabilityOf, train: list[Sample], test: list[Sample]) -> dict[str, Any]:
    started = time.perf_counter()
    test_probs = [probability(s.image) for s in test]
    seconds = (time.perf_counter() - started) / len(test)
    chosen = train_threshold([probability(s.image) for s in train], train)
    mean = mean_scores(test_probs, test, chosen)
    return {"threshold": chosen, "f1": mean["f1"], "auc": mean["auc"],
            "seconds_per_image": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="chase_fewshot.py run folder")
    parser.add_argument("--chase-dir", help="CHASE_DB1 folder (default: $MEDLOOP_CHASE_DIR)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="result file to write")
    args = parser.parse_args()
    run = Path(args.model)
    try:
        split = chase_split(args.chase_dir)
        final = Predictor.from_run(run)
        checkpoints = {name: Predictor.from_run(run / name) for name in CHECKPOINTS}
    except (FileNotFoundError, ValueError) as err:  # one line, not a traceback
        print(f"test_time: error: {err}", file=sys.stderr)
        return 2

    thresholds = {}
    for name, predictor in checkpoints.items():
        thresholds[name] = threshold_row(predictor.probability, split.train, split.test)
        print(name, json.dumps(thresholds[name]), flush=True)
    plain = final.probability
    grid = shifted(plain, GRID_SHIFT, final.patch, final.multiple or 1)
    big = rescaled(plain, 1.25)
    variants = {}
    for name, probability in (("plain", plain), ("grid_shift", grid), ("plain+grid_shift", averaged(plain, grid)),
                              ("scale_1.25", big), ("plain+scale_1.25", averaged(plain, big))):
        variants[name] = variant_row(probability, split.train, split.test)
        print(name, json.dumps(variants[name]), flush=True)

    report = {
        "benchmark": "test_time",
        "what": "test F1 (mean over the 22 test images, derived FOV, 1stHO) at the threshold "
                "chosen on the six training images vs the threshold maximising it on the test "
                "images themselves (an upper bound, not a result); test-time views beyond the "
                f"model's own (grid shift {GRID_SHIFT} pixels, scale 1.25)",
        "model": shown_path(run),
        "chase_dir": shown_path(chase_root() if args.chase_dir is None else Path(args.chase_dir)),
        "thresholds": thresholds,
        "variants": variants,
        **environment(),
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(thresholds, variants)
    print(f"wrote {shown_path(out)}")
    return 0


def print_tables(thresholds: dict[str, Any], variants: dict[str, Any]) -> None:
    print("| checkpoint | chosen threshold | test F1 | test AUC | best test threshold | its F1 "
          "| F1 at 0.5 | mean p / vessels, train | test |")
    print("|---" * 9 + "|")
    for name, r in thresholds.items():
        tr, te = r["train_fraction"], r["test_fraction"]
        print(f"| {name} | {r['threshold']:.3f} | {r['f1']:.4f} | {r['auc']:.4f} "
              f"| {r['test_best_threshold']:.3f} "
              f"| {r['f1_at_test_best_threshold']:.4f} | {r['f1_at_0.5']:.4f} "
              f"| {tr['predicted']:.4f} / {tr['annotated']:.4f} "
              f"| {te['predicted']:.4f} / {te['annotated']:.4f} |")
    print("| views | threshold | test F1 | test AUC | s/image |")
    print("|---" * 5 + "|")
    for name, r in variants.items():
        print(f"| {name} | {r['threshold']:.3f} | {r['f1']:.4f} | {r['auc']:.4f} "
              f"| {r['seconds_per_image']:.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())
