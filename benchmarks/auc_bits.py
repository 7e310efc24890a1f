"""AUC from float, 16-bit and 8-bit probability maps of one trained model on CHASE_DB1 (issue 9).

Predicts each test image of the reference split once (`medloop_ml.chase.chase_split`: the 22
images Image_04L … Image_14R, truth = 1stHO, FOV derived; `--stems` picks a subset) and scores
the AUC inside the FOV three ways from that one prediction:

- float: the predictor's float32 probability map, as it leaves the network;
- 16 bit: the map after a round trip through the one-channel 16-bit PNG that `predict` and the
  `predict_masks` activity write now (`medloop_ml.probmap`), read back by the engine's reader;
- 8 bit: the map after a round trip through an 8-bit PNG, what they wrote before.

Writes benchmarks/results/auc_bits.json (or --json) and prints a per-image table. Trains
nothing: give it a run folder (`best.pt`), e.g. one of `medloop-ml train` or `demo-chase`'s
`run/`.

    .venv/bin/python benchmarks/auc_bits.py --model RUN_DIR [--chase-dir DIR]
        [--stems Image_11L,Image_11R] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see medloop_ml/__init__

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from medloop_ml.chase import chase_root, chase_split
from medloop_ml.infer import Predictor, resolve_checkpoint
from medloop_ml.metrics import segmentation_metrics
from medloop_ml.probmap import read_prob_png, read_prob_png_levels, write_prob_png
from PIL import Image
from report import ROOT, environment, shown_path

DEFAULT_JSON = ROOT / "benchmarks" / "results" / "auc_bits.json"
KINDS = ("float", "16bit", "8bit")


def round_trips(prob: np.ndarray, folder: Path, stem: str) -> dict[str, np.ndarray]:
    """The float map and what the 16-bit and the 8-bit PNG files give back (float64 in [0, 1])."""
    path16 = write_prob_png(folder / f"{stem}_prob16.png", prob)
    levels, bits = read_prob_png_levels(path16)
    assert bits == 16 and levels.dtype == np.uint16, (bits, levels.dtype)
    path8 = folder / f"{stem}_prob8.png"
    # The old writer: round(p·255) as an 8-bit grey PNG.
    Image.fromarray(np.rint(prob.astype(np.float64) * 255).astype(np.uint8)).save(path8)
    return {"float": prob, "16bit": read_prob_png(path16), "8bit": read_prob_png(path8)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained run folder (best.pt) or checkpoint")
    parser.add_argument("--chase-dir", help="CHASE_DB1 folder (default: $MEDLOOP_CHASE_DIR)")
    parser.add_argument("--stems", help="comma-separated test stems (default: all 22 test images)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="result file to write")
    args = parser.parse_args()

    model = Path(args.model)
    try:
        checkpoint = resolve_checkpoint(model)
        predictor = Predictor.from_run(model)
        split = chase_split(args.chase_dir)
    except (FileNotFoundError, ValueError) as err:  # one line, not a traceback
        print(f"auc_bits: error: {err}", file=sys.stderr)
        return 2
    test = split.test
    if args.stems:
        wanted = [s.strip() for s in args.stems.split(",") if s.strip()]
        unknown = sorted(set(wanted) - {s.stem for s in test})
        if unknown:
            print(f"auc_bits: error: not CHASE_DB1 test stems: {', '.join(unknown)}",
                  file=sys.stderr)
            return 2
        test = [s for s in test if s.stem in wanted]

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="auc_bits_") as tmp:
        for sample in test:
            assert sample.mask is not None
            pred = predictor.predict(sample.image, sample.fov)  # predicted once per image
            maps = round_trips(pred.prob, Path(tmp), sample.stem)
            auc = {
                kind: segmentation_metrics(pred.mask, sample.mask, prob=maps[kind],
                                           fov=sample.fov)["auc"]
                for kind in KINDS
            }
            row = {
                "image": sample.stem,
                **{f"auc_{kind}": auc[kind] for kind in KINDS},
                "delta_16bit": auc["16bit"] - auc["float"],
                "delta_8bit": auc["8bit"] - auc["float"],
                "max_abs_prob_error_16bit": float(np.abs(maps["16bit"] - pred.prob).max()),
            }
            rows.append(row)
            print(f"{sample.stem}: AUC float {auc['float']:.6f}  16-bit {auc['16bit']:.6f}  "
                  f"8-bit {auc['8bit']:.6f}", flush=True)
    seconds = time.perf_counter() - started

    keys = [k for k in rows[0] if k != "image"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    model_json = checkpoint.parent / "model.json"  # absent when given a bare checkpoint
    description = json.loads(model_json.read_text()) if model_json.is_file() else {}
    report = {
        "benchmark": "auc_bits",
        "what": "AUC inside the derived FOV vs 1stHO from one prediction per image: the float "
                "map, its 16-bit PNG round trip (written now) and its 8-bit one (written before)",
        "model": shown_path(model),
        "model_metrics": description.get("metrics"),
        "threshold": predictor.threshold,
        "chase_dir": shown_path(chase_root() if args.chase_dir is None else Path(args.chase_dir)),
        "images": len(rows),
        "per_image": rows,
        "mean": mean,
        "delta_8bit_range": [min(r["delta_8bit"] for r in rows),
                             max(r["delta_8bit"] for r in rows)],
        "max_abs_delta_16bit": max(abs(r["delta_16bit"]) for r in rows),
        "seconds": seconds,
        **environment(),
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    print(f"wrote {shown_path(out)}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    print("| image | AUC float | AUC 16-bit | AUC 8-bit | 16-bit − float | 8-bit − float |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in [*report["per_image"], {"image": "**mean**", **report["mean"]}]:
        print(f"| {r['image']} | {r['auc_float']:.6f} | {r['auc_16bit']:.6f} | "
              f"{r['auc_8bit']:.6f} | {r['delta_16bit']:+.2e} | {r['delta_8bit']:+.6f} |")


if __name__ == "__main__":
    raise SystemExit(main())
