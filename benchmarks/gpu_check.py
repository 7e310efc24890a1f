"""The GPU path, checked and measured in one run: for a machine with a CUDA GPU.

    .venv/bin/python benchmarks/gpu_check.py [--minutes 3] [--marks 0.5,1,1.5,2,3]
        [--json benchmarks/results/gpu_check.json]

Checks, in order, each recorded in the JSON with what it measured or why it failed:

1. ``environment``: PyTorch, its CUDA build, the device, ONNX Runtime and its providers.
2. ``cuda_inference``: the engine's sliding window on the GPU (``Predictor(device="cuda")``)
   against the CPU on the same weights (parity <= 1e-4), timed at 999×960 (a CHASE_DB1 image)
   and 3504×2336 (the same image tiled to a high-resolution fundus size).
3. ``onnx_cuda``: ONNX Runtime's ``CUDAExecutionProvider`` on the exported model against
   PyTorch (parity <= 1e-4) and its time. Needs the ``onnxruntime-gpu`` package; without it the
   check fails naming the providers that exist.
4. ``cuda_training``: ``benchmarks/chase_fewshot.py`` with ``device="cuda"`` for ``--minutes``
   wall-clock minutes, checkpoints scored at ``--marks``; ``minutes_to_f1_0_80`` is the first
   mark whose F1 on the 22 test images reaches 0.80 (null when none did).

Exit status 0 when every check passed, 1 when one failed, 2 when PyTorch sees no CUDA device
(nothing is measured then). ``--allow-cpu --quick`` runs the same code on the CPU with a tiny
budget and a few test images, so the script can be kept working where no GPU exists (the test
suite does that); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARITY = 1e-4


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out = fn()  # warm-up (CUDA kernels, cuDNN autotuning)
    times = []
    for _ in range(repeat):
        tick = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - tick)
    return float(np.median(times)), out


def environment() -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "onnxruntime": ort.__version__,
        "onnxruntime_providers": ort.get_available_providers(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}")
    return info


def _images() -> dict[str, np.ndarray]:
    from inference import chase_image  # benchmarks/inference.py, beside this script

    return {"999x960": chase_image("chase"), "3504x2336": chase_image("hrf")}


def _model_dir(work: Path, device: str) -> Path:
    """A short training run on the given device: real weights for the parity checks."""
    from medloop_ml.chase import chase_split
    from medloop_ml.train import TrainConfig, train_model

    config = TrainConfig.from_file(ROOT / "ml/configs/chase_default.json", epochs=1,
                                   patches_per_epoch=256, device=device, progress=False)
    train_model(chase_split().train[:2], [], config, work / "model", export_onnx=True)
    return work / "model"


def cuda_inference(model_dir: Path, device: str, repeat: int) -> dict[str, Any]:
    from medloop_ml.infer import Predictor

    gpu = Predictor.from_run(model_dir, device=device)
    cpu = Predictor.from_run(model_dir, device="cpu")
    out: dict[str, Any] = {"device": device}
    for name, image in _images().items():
        seconds, prob = _timed(lambda image=image: gpu.probability(image), repeat)
        diff = float(np.abs(prob - cpu.probability(image)).max())
        out[name] = {"seconds": seconds, "max_abs_diff_vs_cpu": diff}
    out["ok"] = all(v["max_abs_diff_vs_cpu"] <= PARITY for k, v in out.items() if "x" in k)
    return out


def onnx_cuda(model_dir: Path, repeat: int, allow_cpu: bool) -> dict[str, Any]:
    import onnxruntime as ort
    from medloop_ml.infer import Predictor
    from medloop_ml.onnx_export import OnnxPredictor

    available = ort.get_available_providers()
    provider = "CUDAExecutionProvider"
    if provider not in available:
        if not allow_cpu:
            return {"ok": False, "error": f"{provider} not available (providers: {available}); "
                    "install onnxruntime-gpu"}
        provider = "CPUExecutionProvider"
    providers: list[Any] = ["CPUExecutionProvider"]
    if provider == "CUDAExecutionProvider":  # TF32 off, as for PyTorch: float32 parity
        providers.insert(0, (provider, {"use_tf32": 0}))
    session = OnnxPredictor(model_dir / "model.onnx", providers=providers)
    reference = Predictor.from_run(model_dir, device="cpu")
    out: dict[str, Any] = {"provider": provider,
                           "session_providers": session.session.get_providers()}
    for name, image in _images().items():
        seconds, prob = _timed(lambda image=image: session.probability(image), repeat)
        diff = float(np.abs(prob - reference.probability(image)).max())
        out[name] = {"seconds": seconds, "max_abs_diff_vs_pytorch": diff}
    out["ok"] = out["session_providers"][0] == provider and all(
        v["max_abs_diff_vs_pytorch"] <= PARITY for k, v in out.items() if "x" in k)
    return out


def cuda_training(device: str, minutes: float, marks: str, work: Path,
                  test_limit: int | None) -> dict[str, Any]:
    result_json = work / "chase.json"
    command = [sys.executable, str(ROOT / "benchmarks/chase_fewshot.py"), "--minutes",
               str(minutes), "--marks", marks, "--run-dir", str(work / "chase_run"), "--json",
               str(result_json), "--set", f'device="{device}"']
    if test_limit is not None:
        command += ["--test-limit", str(test_limit)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        return {"ok": False, "error": done.stderr[-2000:]}
    report = json.loads(result_json.read_text())
    f1_at = {float(k): v for k, v in report["f1_at_minutes"].items()}
    reached = [m for m, f1 in sorted(f1_at.items()) if f1 >= 0.80]
    return {"ok": True, "device": device, "minutes": minutes,
            "f1": report["test_mean"]["f1"], "auc": report["test_mean"]["auc"],
            "f1_at_minutes": report["f1_at_minutes"],
            "minutes_to_f1_0_80": reached[0] if reached else None,
            "wall_seconds": report["training"]["wall_seconds"],
            "patches_per_second": report["training"]["patches_per_second"],
            "test_images": report["split"]["test"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="CUDA training budget")
    parser.add_argument("--marks", default="0.5,1,1.5,2,3",
                        help="wall-clock minutes at which checkpoints are scored")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per inference figure")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/gpu_check.json"))
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run on the CPU when no GPU is seen (keeps the script working)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget, 2 test images, 1 repeat: checks the script, not the GPU")
    args = parser.parse_args()
    import torch

    env = environment()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("no CUDA device visible to PyTorch: nothing to check (see --allow-cpu)",
              file=sys.stderr)
        return 2
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # TF32 rounds convolution inputs to 10-bit mantissas: the parity checks compare float32 maps.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    minutes, marks, repeat = args.minutes, args.marks, args.repeat
    test_limit = None
    if args.quick:
        minutes, marks, repeat, test_limit = 0.15, "0.1,0.15", 1, 2
    report: dict[str, Any] = {"benchmark": "gpu_check", "environment": env,
                              "quick": args.quick, "checks": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("cuda_inference", lambda: cuda_inference(_model_dir(work, device), device, repeat)),
            ("onnx_cuda", lambda: onnx_cuda(work / "model", repeat, args.allow_cpu)),
            ("cuda_training", lambda: cuda_training(device, minutes, marks, work, test_limit)),
        ]
        for name, step in steps:
            try:
                report["checks"][name] = step()
            except Exception as err:  # noqa: BLE001 - a failed check is a result; the rest run
                report["checks"][name] = {"ok": False, "error": f"{err!r}",
                                          "traceback": traceback.format_exc()[-2000:]}
            print(f"{name}: {json.dumps(report['checks'][name])[:400]}", flush=True)
    ok = all(check.get("ok") for check in report["checks"].values())
    report["ok"] = ok
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'all checks passed' if ok else 'a check failed'}; wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
