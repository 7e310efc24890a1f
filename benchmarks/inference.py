"""Where full-resolution inference spends its time: window size, overlap, flip averaging, window
batch and threads, through PyTorch and ONNX Runtime, at 999×960 (CHASE_DB1) and 3504×2336 (an
HRF-size fundus image). Not a test.

Usage::

    .venv/bin/python benchmarks/inference.py [--repeat 3] [--model RUN_DIR]
        [--json benchmarks/results/inference.json]

Each variant runs in a fresh child process (so its peak resident memory is its own): the engine's
default network (TrainConfig's defaults, random weights: timing does not depend on the weights),
the engine's sliding window (MONAI's Gaussian blending) over a real image, median of ``--repeat``
runs after one warm-up; peak memory is the child's VmHWM. With ``--model``, a trained CHASE_DB1
run, it also scores 3×3 mosaics of test images per window and overlap (after the timings, so
the timed children start from a small parent). Writes the JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"chase": (960, 999), "hrf": (2336, 3504)}


def chase_image(size: str) -> Any:
    """CHASE_DB1 Image_01L at 999×960 ("chase") or tiled to 3504×2336 ("hrf")."""
    import numpy as np
    from medloop_ml.chase import chase_root
    from medloop_ml.ingest import read_image

    base = read_image(chase_root() / "images" / "Image_01L.jpg")
    height, width = SIZES[size]
    reps = (height // base.shape[0] + 1, width // base.shape[1] + 1, 1)
    return np.ascontiguousarray(np.tile(base, reps)[:height, :width])


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries that
    across exec, so a child started by a large parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def export_model(variant: dict[str, Any]) -> None:
    """The default network (random weights) as ONNX with the variant's window."""
    from medloop_ml.network import build_network, size_multiple
    from medloop_ml.onnx_export import _export

    config = variant_config(variant)
    model = build_network(config).eval()
    _export(model, Path(variant["path"]), variant["window"], size_multiple(config.depth))


def variant_config(variant: dict[str, Any]) -> Any:
    """The default TrainConfig with the variant's test-time views."""
    from medloop_ml.train import TrainConfig

    return TrainConfig(epochs=1, flip_average=variant["flip"],
                       dihedral_average=variant.get("dihedral", False))


def child(variant: dict[str, Any], repeat: int) -> dict[str, Any]:
    """One variant, timed in this process."""
    import torch
    from medloop_ml.infer import probability_fn, sliding_probability
    from medloop_ml.network import build_network, size_multiple

    torch.set_num_threads(variant["threads"])
    config = variant_config(variant)
    model = build_network(config).eval()
    image = chase_image(variant["size"])
    if variant["engine"] == "onnx":
        import tempfile

        import onnxruntime as ort

        # Tracing the export takes far more memory than inference: done in its own process, so
        # this one's peak is what an ONNX Runtime predictor costs.
        onnx_path = Path(tempfile.mkdtemp()) / "m.onnx"
        subprocess.run([sys.executable, __file__, "--export", json.dumps(
            {**variant, "path": str(onnx_path)})], check=True, capture_output=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads = variant["threads"]
        options.inter_op_num_threads = 1
        options.enable_mem_pattern = False  # as OnnxPredictor sets it
        session = ort.InferenceSession(str(onnx_path), options,
                                       providers=["CPUExecutionProvider"])

        def window_model(batch: torch.Tensor) -> torch.Tensor:
            (out,) = session.run(["probability"], {"image": batch.numpy()})
            return torch.from_numpy(out)
    else:  # as Predictor holds it: channels-last weights
        window_model = probability_fn(model.to(memory_format=torch.channels_last))

    # The window fitted to images smaller than it, as Predictor and serving do (size multiple
    # 2**depth); "fit": False pads them to the whole window, as before the size multiple existed.
    multiple = size_multiple(config.depth) if variant.get("fit", True) else None

    def once() -> float:
        tick = time.perf_counter()
        sliding_probability(window_model, image, variant["window"], variant["overlap"],
                            batch=variant["batch"], multiple=multiple)
        return time.perf_counter() - tick

    once()  # warm-up
    times = [once() for _ in range(repeat)]
    rss_mb = peak_rss_mb()
    return {**variant, "seconds": statistics.median(times), "runs": times, "peak_rss_mb": rss_mb}


DEFAULT = {"window": 1280, "overlap": 0.125, "flip": True, "batch": 1}
VARIANTS: list[dict[str, Any]] = [
    *({"size": s, "engine": e, **DEFAULT} for s in SIZES for e in ("torch", "onnx")),
    # what each choice costs at 3504×2336, one change from the default at a time
    *({"size": "hrf", "engine": "torch", **DEFAULT, **change} for change in [
        {"window": 1024, "overlap": 0.25, "batch": 4},  # the defaults before issue 11
        {"window": 1024},
        {"window": 1024, "batch": 4},
        {"window": 1024, "overlap": 0.0625},
        {"overlap": 0.25},
        {"flip": False},
        {"window": 768},
        {"window": 2048},
    ]),
    {"size": "hrf", "engine": "onnx", **DEFAULT, "flip": False},
    # the eight views of the dihedral average (the plan's choice for images up to 1 MP)
    *({"size": s, "engine": e, **DEFAULT, "dihedral": True} for s in SIZES
      for e in ("torch", "onnx")),
    # 999×960 under the 1280 window padded to the whole window, as before the window was fitted
    *({"size": "chase", "engine": e, **DEFAULT, "fit": False} for e in ("torch", "onnx")),
]


MOSAIC_SETTINGS = [(1024, 0.25), (1024, 0.125), (1280, 0.25), (1280, 0.125), (1280, 0.0625)]


def mosaic_quality(model: Path) -> list[dict[str, Any]]:
    """F1 and AUC of a trained CHASE_DB1 model on 3×3 mosaics of test images (2997×2880, so the
    window really slides and neighbouring windows overlap by the nominal amount), per window and
    overlap, and the largest probability change against the first setting."""
    import numpy as np
    from medloop_ml.chase import chase_split
    from medloop_ml.infer import Predictor
    from medloop_ml.metrics import segmentation_metrics

    test = chase_split().test[:18]

    def tile(parts: list[Any]) -> Any:
        return np.concatenate([np.concatenate(parts[r * 3:r * 3 + 3], 1) for r in range(3)])

    mosaics = [(tile([s.image for s in test[k:k + 9]]), tile([s.mask for s in test[k:k + 9]]),
                tile([s.fov for s in test[k:k + 9]])) for k in range(0, len(test), 9)]
    predictor = Predictor.from_run(model)
    rows, first = [], None
    for window, overlap in MOSAIC_SETTINGS:
        predictor.patch, predictor.overlap = window, overlap
        scores, probs = [], []
        for image, truth, fov in mosaics:
            pred = predictor.predict(image, fov)
            probs.append(pred.prob)
            scores.append(segmentation_metrics(pred.mask, truth, prob=pred.prob, fov=fov))
        first = first or probs
        diff = max(float(np.abs(a - b).max()) for a, b in zip(probs, first, strict=True))
        rows.append({"window": window, "overlap": overlap, "mosaics": len(probs),
                     "f1": float(np.mean([r["f1"] for r in scores])),
                     "auc": float(np.mean([r["auc"] for r in scores])),
                     "max_abs_diff_vs_first": diff})
        print(f"mosaic window {window} overlap {overlap}: F1 {rows[-1]['f1']:.4f} "
              f"AUC {rows[-1]['auc']:.4f} max |dp| {diff:.4f}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/inference.json"))
    parser.add_argument("--model", help="a trained CHASE_DB1 run: also score 3x3 mosaics of test "
                        "images per window and overlap")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.export:
        export_model(json.loads(args.export))
        return 0
    if args.child:
        print(json.dumps(child(json.loads(args.child), args.repeat)))
        return 0
    results = []
    load_before = os.getloadavg()[0]
    for variant in VARIANTS:
        variant = {**variant, "threads": args.threads}
        out = subprocess.run([sys.executable, __file__, "--repeat", str(args.repeat), "--child",
                              json.dumps(variant)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"{result['size']:5} {result['engine']:5} window {result['window']:4} overlap "
              f"{result['overlap']:<6} flips {result['flip']!s:5} "
              f"dihedral {result.get('dihedral', False)!s:5} batch {result['batch']} "
              f"fit {result.get('fit', True)!s:5}: "
              f"{result['seconds']:.2f} s, {result['peak_rss_mb']:.0f} MB", flush=True)
    quality = mosaic_quality(Path(args.model)) if args.model else None
    report = {"benchmark": "inference", "machine": {"cpus": os.cpu_count(),
              "processor": platform.processor() or platform.machine(),
              "load_average_1m_before": load_before, "load_average_1m_after": os.getloadavg()[0]},
              "threads": args.threads, "repeat": args.repeat, "results": results,
              "mosaic_quality": quality}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
