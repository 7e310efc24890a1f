"""CHASE_DB1 few-shot benchmark: train on 6 images from scratch, test on the other 22.

Measures mean F1 / AUC against the first observer inside the FOV (after the full budget and at
the checkpoints of the last epochs ending before 5, 10 and 15 wall-clock minutes), the second observer's F1 as the
human baseline, inference seconds per 999x960 image with PyTorch and with ONNX Runtime, patches/s,
peak memory, library versions, threads and the machine. Writes benchmarks/results/chase_fewshot.json
(or --json) and prints a table. Evaluation never runs inside the training budget: checkpoints
are copied at each epoch's end before a mark and scored after training. The budget is wall-clock
and counts everything up to the written model and its ONNX export (medloop_ml.budget).

    .venv/bin/python benchmarks/chase_fewshot.py [--config ml/configs/chase_default.json]
        [--minutes 15] [--marks 5,10,15] [--run-dir DIR] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see medloop_ml/__init__

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import monai
import numpy as np
import onnxruntime
import torch
from medloop_ml.chase import chase_split
from medloop_ml.data import Sample
from medloop_ml.infer import Predictor
from medloop_ml.metrics import mean_metrics, segmentation_metrics
from medloop_ml.onnx_export import OnnxPredictor
from medloop_ml.train import EpochReport, TrainConfig, best_f1_threshold, train_model

ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def score(predictor: Predictor, test: list[Sample]) -> dict[str, Any]:
    rows = []
    for s in test:
        pred = predictor.predict(s.image, s.fov)
        assert s.mask is not None
        m = segmentation_metrics(pred.mask, s.mask, prob=pred.prob, fov=s.fov)
        rows.append({"image": s.stem, **m, "uncertainty": pred.uncertainty})
    return {"mean": mean_metrics(rows), "per_image": rows}


def train_threshold(predictor: Predictor, train: list[Sample]) -> float:
    """The F1-maximising threshold on the training images, as train_model chooses it."""
    probs = [predictor.probability(s.image)[s.fov] for s in train]
    return best_f1_threshold(probs, [s.mask[s.fov] for s in train])[0]  # type: ignore[index]


def second_observer(test: list[Sample], second: dict[str, np.ndarray]) -> dict[str, float]:
    rows = [
        segmentation_metrics(second[s.stem], s.mask, fov=s.fov)  # type: ignore[arg-type]
        for s in test
        if s.stem in second
    ]
    return mean_metrics(rows)


def time_inference(predict: Any, image: np.ndarray, repeats: int = 5) -> float:
    predict(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "ml/configs/chase_default.json"))
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--marks", default="5,10,15",
                        help="training minutes at which checkpoints are scored")
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/chase_fewshot.json"))
    parser.add_argument("--set", action="append", default=[], help="config override key=json")
    parser.add_argument("--test-limit", type=int, default=None,
                        help="score only the first N test images (quick checks; not a result)")
    args = parser.parse_args()

    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = TrainConfig.from_file(args.config, minutes=args.minutes, **overrides)
    torch.set_num_threads(config.threads)
    started = time.monotonic()  # the budget counts reading the images too
    split = chase_split()
    if args.test_limit is not None:
        split.test[:] = split.test[: args.test_limit]
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="chase_run_"))
    if run_dir.exists() and any(run_dir.iterdir()):
        shutil.rmtree(run_dir)
    marks = sorted(float(m) for m in args.marks.split(",") if m and float(m) <= args.minutes)
    mark_ckpts: dict[float, tuple[Path, float]] = {}

    def on_epoch(report: EpochReport) -> None:
        elapsed = time.monotonic() - started
        for mark in marks:  # the latest state that existed before the mark, in wall-clock time
            if elapsed <= mark * 60:
                target = run_dir / f"at_{mark:g}min.pt"
                shutil.copyfile(report.checkpoint_path, target)
                mark_ckpts[mark] = (target, elapsed)
        print(f"epoch {report.epoch}: loss {report.loss:.4f} at {report.seconds:.0f}s of steps, "
              f"{elapsed:.0f}s wall", flush=True)

    result = train_model(split.train, [], config, run_dir, on_epoch=on_epoch,
                         preview=split.test[0], started=started, export_onnx=True)
    wall = time.monotonic() - started
    predictor = Predictor.from_run(run_dir, device=config.device)
    final = score(predictor, split.test)
    at_marks = {}
    for mark, (ckpt, seconds) in mark_ckpts.items():
        p = Predictor.from_run(ckpt, device=config.device)
        p.threshold = train_threshold(p, split.train)
        at_marks[f"{mark:g}"] = {**score(p, split.test)["mean"], "wall_seconds": seconds,
                                 "threshold": p.threshold}
    image = split.test[0].image
    assert result.onnx_path is not None
    onnx_predictor = OnnxPredictor(result.onnx_path, threads=config.threads)
    patches = result.history[-1]["patches"] if result.history else 0
    report = {
        "benchmark": "chase_fewshot",
        "split": {"train": [s.stem for s in split.train], "test": len(split.test)},
        "config": config.model_dump(),
        # The config above is the one asked for; the plan fills what it leaves unset
        # (medloop_ml.plan), and this is what the run used in the end.
        "plan": json.loads((run_dir / "model.json").read_text()).get("plan"),
        "training": {
            "seconds": result.seconds,
            "wall_seconds": wall,
            "budget_seconds": config.minutes * 60 if config.minutes else None,
            "epochs": result.epochs,
            "patches": patches,
            "patches_per_second": patches / result.seconds if result.seconds else None,
            "replicas": result.replicas,
            "threshold": result.threshold,
            "threshold_source": config.threshold_on,
        },
        "test_mean": final["mean"],
        "test_per_image": final["per_image"],
        "f1_at_minutes": {k: v["f1"] for k, v in at_marks.items()},
        "auc_at_minutes": {k: v["auc"] for k, v in at_marks.items()},
        "at_minutes": at_marks,
        "second_observer_mean": second_observer(split.test, split.second_observer),
        "inference_seconds_per_image": {
            "image_size": list(image.shape[:2]),
            "pytorch": time_inference(predictor.probability, image),
            "onnxruntime": time_inference(onnx_predictor.probability, image),
            "onnx_max_abs_diff": result.onnx_max_abs_diff,
        },
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "monai": monai.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
        },
        "machine": {"platform": platform.platform(), "cpu": cpu_model(),
                    "logical_cpus": __import__("os").cpu_count()},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 0


def print_table(r: dict[str, Any]) -> None:
    t, m, h = r["training"], r["test_mean"], r["second_observer_mean"]
    inf = r["inference_seconds_per_image"]
    rows = [
        ("training seconds (budget)", f"{t['seconds']:.0f} (wall {t['wall_seconds']:.0f})"),
        ("epochs / patches / patches/s",
         f"{t['epochs']} / {t['patches']} / {t['patches_per_second']:.1f}"),
        ("threshold", f"{t['threshold']:.3f}"),
        (f"test F1 / AUC ({r['split']['test']} images)", f"{m['f1']:.4f} / {m['auc']:.4f}"),
        ("test clDice / sens / spec / acc",
         " / ".join(f"{m[k]:.4f}" for k in ("cldice", "sensitivity", "specificity", "accuracy"))),
        ("F1 at minutes", ", ".join(f"{k}: {v:.4f}" for k, v in r["f1_at_minutes"].items())),
        ("2nd observer F1", f"{h['f1']:.4f}"),
        ("inference s/image torch / onnxruntime",
         f"{inf['pytorch']:.3f} / {inf['onnxruntime']:.3f}"),
        ("ONNX max |dprob|", f"{inf['onnx_max_abs_diff']:.2e}"),
        ("peak memory MB / threads", f"{r['peak_memory_mb']:.0f} / {r['threads']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")


if __name__ == "__main__":
    raise SystemExit(main())
