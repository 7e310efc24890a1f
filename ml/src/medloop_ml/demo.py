"""``demo-chase``: the CHASE_DB1 reference split end to end.

Train on the six training images (``ml/configs/chase_default.json`` unless told otherwise),
predict the 22 test images, evaluate them against the first observer (1stHO) inside the derived
FOV, score the second observer (2ndHO) the same way as the human baseline, and write a summary.

Output folder::

    run/              the training run (best.pt, model.json, curves.png, previews.gif, …)
    predictions/      <stem>.png, <stem>_prob.png (16-bit), uncertainty.json
    eval_model/       report.json|md|csv and overlays/ of the model vs 1stHO
    eval_2ndHO/       the same for the second observer vs 1stHO
    report.md, report.json   the summary of both
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .chase import chase_split
from .evaluate import EvalItem, evaluate_items
from .io import read_mask, write_text_atomic
from .metrics import METRIC_KEYS
from .probmap import read_prob_png


def _summary_markdown(summary: dict[str, Any]) -> str:
    model, human = summary["model_vs_1stHO"], summary["second_observer_vs_1stHO"]
    lines = [
        "# CHASE_DB1 reference split",
        "",
        f"Trained on {summary['train_images']} images ({', '.join(summary['train_stems'])}) for "
        f"{summary['epochs']} epochs in {summary['train_seconds']:.0f} s; tested on "
        f"{summary['test_images']} images against the first observer (1stHO), inside the "
        "derived field of view. Threshold "
        f"{summary['threshold']:.3f}.",
        "",
        "| | " + " | ".join(METRIC_KEYS) + " |",
        "|---|" + "---:|" * len(METRIC_KEYS),
        "| model | " + " | ".join(f"{model[k]:.4f}" for k in METRIC_KEYS) + " |",
        "| 2nd observer | " + " | ".join(f"{human[k]:.4f}" for k in METRIC_KEYS) + " |",
        "",
        "The second observer's masks are binary, so their AUC is (sensitivity + specificity) / 2.",
        "Per-image tables and overlays: `eval_model/`, `eval_2ndHO/`; the run: `run/`.",
        "",
    ]
    return "\n".join(lines)


def run_demo_chase(
    out_dir: Path, config: Any, chase_dir: str | Path | None = None
) -> dict[str, Any]:
    """Run the whole reference split into ``out_dir`` and return the summary."""
    from .infer import FolderItem, Predictor, predict_folder
    from .train import train_model

    started = time.monotonic()  # a minutes budget counts reading the images too
    split = chase_split(chase_dir)
    result = train_model(split.train, [], config, out_dir / "run", started=started)
    predictor = Predictor.from_run(out_dir / "run")
    pred_dir = out_dir / "predictions"
    items = [FolderItem(s.stem, s.image, predictor.fov_of(s)) for s in split.test]
    with tqdm(total=len(items), desc="predict", unit="image") as bar:
        predict_folder(predictor, items, pred_dir, on_image=lambda _d, _t: bar.update(1))

    model_items = [
        EvalItem(
            s.stem,
            pred=read_mask(pred_dir / f"{s.stem}.png"),
            truth=np.asarray(s.mask, dtype=bool),
            prob=read_prob_png(pred_dir / f"{s.stem}_prob.png"),  # 16-bit, as predict writes
            fov=s.fov,
        )
        for s in split.test
    ]
    model_report = evaluate_items(
        model_items, out_dir / "eval_model", title="Model vs 1stHO (CHASE_DB1 test split)",
        progress=True, fov_source="FOV derived from the images", auc_source="probability maps",
    )
    human_items = [
        EvalItem(s.stem, pred=split.second_observer[s.stem], truth=np.asarray(s.mask, dtype=bool),
                 fov=s.fov)
        for s in split.test
        if s.stem in split.second_observer
    ]
    human_report = evaluate_items(
        human_items, out_dir / "eval_2ndHO", title="2nd observer vs 1stHO (human baseline)",
        progress=True, fov_source="FOV derived from the images", auc_source="binary masks",
    )
    summary: dict[str, Any] = {
        "train_images": len(split.train),
        "train_stems": [s.stem for s in split.train],
        "test_images": len(split.test),
        "epochs": result.epochs,
        "train_seconds": result.seconds,
        "threshold": result.threshold,
        "train_metrics": result.metrics,
        "config": config.model_dump(),
        "model_vs_1stHO": model_report["mean"],
        "second_observer_vs_1stHO": human_report["mean"],
        "machine": platform.platform(),
    }
    markdown = _summary_markdown(summary)
    write_text_atomic(out_dir / "report.json", json.dumps(summary, indent=2, default=str) + "\n")
    write_text_atomic(out_dir / "report.md", markdown)
    return {**summary, "markdown": markdown}
