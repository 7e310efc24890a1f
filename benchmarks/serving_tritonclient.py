"""Triton's HTTP client against medloop serving: binary tensors versus JSON tensors (issue 9).

One CHASE_DB1 image (Image_01L.jpg, 999 x 960, read in place) goes to ``/v2/models/{name}/infer``
through ``tritonclient.http`` in four encodings, interleaved so that every encoding sees the same
machine load:

- ``binary_in_binary_out``: ``set_data_from_numpy`` (binary by default) and a binary output, what
  fast KServe/Triton clients do;
- ``binary_in_json_out`` and ``json_in_binary_out``: one side each;
- ``json_in_json_out``: JSON tensors both ways (what worked before the extension).

Each call is timed from the client's side (building the request, HTTP, the server's sliding
window, reading the answer into a NumPy array), after one warm-up call per encoding. The model is
the engine's default network and window with random weights (``test/serving/fixtures/make_model.py
--engine-defaults``, as ``benchmarks/serving.ts``); the server is ``benchmarks/serving.ts
--child`` (the serving router over that folder) in a Node process of its own. Also recorded: the
request and answer sizes, the largest difference between the encodings' probabilities, and the
1-minute load average before and after (the machine may be shared).

    .venv/bin/python benchmarks/serving_tritonclient.py [--runs 5] [--threads 2] [--json PATH]

Writes ``benchmarks/results/serving_tritonclient.json`` (or ``--json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.http._utils import _get_inference_request

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"  # the key benchmarks/serving.ts --child accepts
MODES = {
    "binary_in_binary_out": (True, True),
    "binary_in_json_out": (True, False),
    "json_in_binary_out": (False, True),
    "json_in_json_out": (False, False),
}


def chase_image(chase_dir: Path) -> np.ndarray:
    """Image_01L as 1 x 3 x H x W float32 RGB / 255 (the engine's and the server's scaling)."""
    rgb = np.asarray(Image.open(chase_dir / "images" / "Image_01L.jpg").convert("RGB"))
    return (rgb.transpose(2, 0, 1)[None].astype(np.float64) / 255).astype(np.float32)


def start_server(model_dir: Path, threads: int) -> tuple[subprocess.Popen[str], str]:
    """``benchmarks/serving.ts --child``: serves the folder as "vessels" and prints its URL."""
    child = subprocess.Popen(
        ["node", "--import", "tsx", "benchmarks/serving.ts", "--child", str(model_dir),
         "--threads", str(threads)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        match = re.match(r"URL http://(\S+)", line)
        if match:
            return child, match.group(1)
    raise RuntimeError(f"the server exited with {child.wait()} before printing its URL")


def request_for(image: np.ndarray, binary_in: bool, binary_out: bool) -> tuple[list[Any], list[Any]]:
    tensor = httpclient.InferInput("image", list(image.shape), "FP32")
    tensor.set_data_from_numpy(image, binary_data=binary_in)
    return [tensor], [httpclient.InferRequestedOutput("probability", binary_data=binary_out)]


def request_bytes(inputs: list[Any], outputs: list[Any]) -> int:
    """The body tritonclient sends (its own private serialiser: the size only, never sent)."""
    body, _ = _get_inference_request(
        inputs=inputs, request_id="", outputs=outputs, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=None, custom_parameters=None,
    )
    return len(body)


def stats(ms: list[float]) -> dict[str, float]:
    s = sorted(ms)
    return {"n": len(s), "p50_ms": round(float(np.median(s)), 1), "min_ms": round(s[0], 1),
            "max_ms": round(s[-1], 1), "mean_ms": round(float(np.mean(s)), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per encoding")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4),
                        help="onnxruntime threads of the server")
    parser.add_argument("--chase-dir", type=Path, default=Path(os.environ.get(
        "MEDLOOP_CHASE_DIR", ROOT.parent / "shared" / "data" / "chase_db1")))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/serving_tritonclient.json")
    args = parser.parse_args()

    image = chase_image(args.chase_dir)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="medloop-bench-") as tmp:
        model_dir = Path(tmp)
        print("building the model (engine defaults, ONNX export with parity check) …", flush=True)
        subprocess.run(
            [sys.executable, "test/serving/fixtures/make_model.py", "--out", str(model_dir),
             "--chase", str(args.chase_dir), "--engine-defaults"],
            cwd=ROOT, check=True, capture_output=True,
        )
        meta = json.loads((model_dir / "model.json").read_text())
        server, url = start_server(model_dir, args.threads)
        client = httpclient.InferenceServerClient(url=url, network_timeout=600)
        try:
            headers = {"x-api-key": KEY}
            assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            probs: dict[str, np.ndarray] = {}
            answer_bytes: dict[str, int] = {}
            for run in range(args.runs + 1):  # run 0 warms every encoding up
                for mode, (binary_in, binary_out) in MODES.items():
                    started = time.perf_counter()
                    inputs, outputs = request_for(image, binary_in, binary_out)
                    # A fresh headers dict: tritonclient writes its binary header into the one given.
                    result = client.infer("vessels", inputs, outputs=outputs, headers=dict(headers))
                    prob = result.as_numpy("probability")
                    elapsed = (time.perf_counter() - started) * 1000
                    if run == 0:
                        probs[mode] = prob
                        response = result.get_response()
                        answer_bytes[mode] = len(json.dumps(response)) + (
                            prob.nbytes if binary_out else 0)
                    else:
                        times[mode].append(elapsed)
            sizes = {mode: request_bytes(*request_for(image, *flags)) for mode, flags in MODES.items()}
        finally:
            client.close()
            server.terminate()
            server.wait()
    load_after = os.getloadavg()[0]

    reference = probs["json_in_json_out"]
    modes = {
        mode: {**stats(times[mode]), "request_mb": round(sizes[mode] / 1e6, 2),
               "answer_mb": round(answer_bytes[mode] / 1e6, 2),
               "max_abs_diff_vs_json": float(np.max(np.abs(probs[mode] - reference)))}
        for mode in MODES
    }
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "load_average_1m_before": round(load_before, 2),
                    "load_average_1m_after": round(load_after, 2), "python": platform.python_version()},
        "server_threads": args.threads,
        "client": f"tritonclient {version('tritonclient')} (HTTP, geventhttpclient)",
        "image": {"file": "CHASE_DB1 images/Image_01L.jpg", "width": image.shape[3],
                  "height": image.shape[2]},
        "model": {"network": "engine U-Net defaults (random weights)",
                  "patch_size": meta["patch_size"], "overlap": meta["overlap"]},
        "modes": modes,
        "json_over_binary_p50": round(
            modes["json_in_json_out"]["p50_ms"] / modes["binary_in_binary_out"]["p50_ms"], 2),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'encoding':<22} {'p50 ms':>8} {'min':>8} {'max':>8} {'request MB':>11} {'answer MB':>10}")
    for mode, m in modes.items():
        print(f"{mode:<22} {m['p50_ms']:>8} {m['min_ms']:>8} {m['max_ms']:>8} "
              f"{m['request_mb']:>11} {m['answer_mb']:>10}")
    print(f"load average (1 min) before {load_before:.2f}, after {load_after:.2f}; "
          f"JSON / binary p50 = {result['json_over_binary_p50']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
