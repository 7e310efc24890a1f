"""ONNX export with a parity check, and an ONNX Runtime predictor using the same sliding window.

`model.onnx`: input `image` (float32 N×3×H×W, RGB in [0, 1]), output `probability` (float32
N×1×H×W, the sigmoid is inside the graph); H and W are dynamic. The window size, overlap and
threshold are stored as metadata (and in model.json beside it).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from medloop_ml.infer import (
    checkpoint_config,
    load_checkpoint,
    model_from_checkpoint,
    probability_fn,
    resolve_checkpoint,
    sliding_probability,
)
from medloop_ml.network import ProbabilityNet, size_multiple

PARITY_TOLERANCE = 1e-4
OPSET = 17


class ParityError(RuntimeError):
    """The exported graph disagrees with PyTorch beyond the tolerance."""


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float


class OnnxPredictor:
    """Probability maps from an ONNX model through the engine's sliding window (Gaussian blend)."""

    def __init__(
        self,
        path: Path | str,
        threads: int = 0,
        providers: Sequence[Any] = ("CPUExecutionProvider",),
    ) -> None:
        """`providers`: ONNX Runtime execution providers in order of preference, names or
        (name, options) pairs, e.g. ``[("CUDAExecutionProvider", {"use_tf32": 0}),
        "CPUExecutionProvider"]`` with the onnxruntime-gpu package."""
        options = ort.SessionOptions()
        # ONNX Runtime's memory pattern planner keeps a buffer plan per input shape; with the
        # windows fitted to each image the shapes vary, and at 3504×2336 it raised the peak from
        # 826 MB to 1034 MB (benchmarks/inference.py, `onnx` variants).
        options.enable_mem_pattern = False
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.patch = int(meta["patch_size"])
        # Models exported before the size multiple was recorded pad to the whole window.
        self.multiple = int(meta["size_multiple"]) if "size_multiple" in meta else None
        self.overlap = float(meta["overlap"])
        self.threshold = float(meta["threshold"])

    def _window(self, batch: torch.Tensor) -> torch.Tensor:
        (out,) = self.session.run(["probability"], {"image": batch.numpy().astype(np.float32)})
        return torch.from_numpy(out)

    def probability(self, image: np.ndarray) -> np.ndarray:
        return sliding_probability(self._window, image, self.patch, self.overlap,
                                   multiple=self.multiple)


# Side of the example input the graph is traced with. Height and width are dynamic, so any size
# gives the same graph (the parity check below runs at the real window); tracing a whole 1280
# window with the eight dihedral views held 3.3 GB, a 128 one 0.8 GB (issue 11).
TRACE_SIDE = 128


def _export(model: torch.nn.Module, path: Path, patch: int, multiple: int) -> None:
    side = max(multiple, min(patch, TRACE_SIDE) // multiple * multiple)
    dummy = torch.rand(1, 3, side, side)
    dims = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        ProbabilityNet(model).eval(),
        (dummy,),
        str(path),
        input_names=["image"],
        output_names=["probability"],
        dynamic_axes={"image": dims, "probability": dims},
        opset_version=OPSET,
        dynamo=False,
    )


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "medloop-ml"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def export_onnx(
    run_dir: Path | str, sample_image: np.ndarray, out_path: Path | str | None = None
) -> ExportResult:
    """Export the run's best model to `model.onnx` (or `out_path`) and check parity.

    Parity: the probability map of `sample_image` (a real image) through the same sliding window
    with PyTorch and with ONNX Runtime; raises ParityError (and leaves no file) when the largest
    difference reaches 1e-4.
    """
    run_dir = Path(run_dir)
    ckpt = load_checkpoint(resolve_checkpoint(run_dir))
    model = model_from_checkpoint(ckpt)
    cfg = ckpt["config"]
    multiple = size_multiple(checkpoint_config(ckpt).depth)
    target = Path(out_path) if out_path is not None else run_dir / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".model.", suffix=".onnx")
    os.close(fd)
    os.chmod(tmp_name, 0o644)
    tmp = Path(tmp_name)
    try:
        _export(model, tmp, cfg["infer_patch"], multiple)
        _add_metadata(tmp, {
            "patch_size": str(cfg["infer_patch"]),
            "size_multiple": str(multiple),
            "overlap": str(cfg["overlap"]),
            "blend": "gaussian",
            "threshold": str(ckpt.get("threshold", 0.5)),
            "input_range": "RGB scaled to [0, 1]",
            "metrics": json.dumps(ckpt.get("metrics", {})),
        })
        reference = sliding_probability(
            probability_fn(model), sample_image, cfg["infer_patch"], cfg["overlap"],
            multiple=multiple)
        candidate = OnnxPredictor(tmp).probability(sample_image)
        diff = float(np.abs(reference - candidate).max())
        if not diff < PARITY_TOLERANCE:
            raise ParityError(f"ONNX parity check failed: max |Δprobability| = {diff:.2e}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path=target, max_abs_diff=diff)
