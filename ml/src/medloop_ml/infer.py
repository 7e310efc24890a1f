"""Inference: sliding-window probability maps, binary masks and a per-image uncertainty score.

The sliding window (MONAI's `SlidingWindowInferer`, Gaussian blending) runs over any image size
with the window size, overlap and size multiple recorded in the run's `model.json`; the TypeScript
serving side reproduces it from the same three numbers (`serving/slidingWindow.ts`).

Window fitted to the image: along a side shorter than the window, the window shrinks to the side
rounded up to the U-Net's size multiple (2**depth), so a 999×960 image is one 1008×960 pass, not a
1280×1280 one, and a 384×384 image is not padded at all. The few padding pixels left (fewer than
the multiple, zeros, split half before and half after as MONAI does) are cropped back, so the
probability map always has exactly the input's H×W. A wide black border would otherwise be seen
by the network as an edge: models of blob-shaped targets marked a line along it. Models written
before the size multiple was recorded pad to the whole window (`multiple=None`).

Uncertainty score (for active learning): the mean binary entropy, in bits, of the probability map
inside the field of view, H(p) = -p log2 p - (1-p) log2 (1-p), so it lies in [0, 1]. A confident
network (probabilities near 0 or 1 everywhere) scores near 0; an image on which it hesitates
over many pixels scores higher, and is worth a doctor's correction first.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from PIL import Image
from torch import nn

from medloop_ml.network import build_network, size_multiple
from medloop_ml.probmap import write_prob_png

if TYPE_CHECKING:
    from medloop_ml.data import Sample
    from medloop_ml.train import TrainConfig

WindowModel = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Prediction:
    prob: np.ndarray  # float32 HxW in [0, 1]
    mask: np.ndarray  # bool HxW (prob >= threshold, inside the FOV)
    uncertainty: float  # mean binary entropy in bits inside the FOV, in [0, 1]


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 RGB → float32 1x3xHxW in [0, 1] (the model's input contract)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))
    return torch.from_numpy(chw).float().div_(255.0)[None]


def fitted_window(height: int, width: int, patch: int, multiple: int | None) -> tuple[int, int]:
    """The window (rows, columns) for an image of `height`×`width`: `patch` along a side at
    least that long, else the side rounded up to `multiple`; `multiple=None` keeps `patch`."""
    if multiple is None:
        return patch, patch
    def fit(side: int) -> int:
        return min(patch, -(-side // multiple) * multiple)
    return fit(height), fit(width)


def make_inferer(roi: tuple[int, int], overlap: float, batch: int = 1) -> SlidingWindowInferer:
    return SlidingWindowInferer(
        roi_size=roi, sw_batch_size=batch, overlap=overlap, mode="gaussian"
    )


def sliding_probability(
    window_model: WindowModel, image: np.ndarray, patch: int, overlap: float, batch: int = 1,
    multiple: int | None = None,
) -> np.ndarray:
    """Probability map (float32 HxW, the image's own size) of one uint8 HxWx3 image.

    `window_model` maps N×3×h×w windows to N×1×h×w probabilities, `batch` windows at a time
    (more is faster per window and costs memory). The window is `patch` pixels, fitted to the
    image with the network's size `multiple` (module docstring, :func:`fitted_window`).
    """
    inferer = make_inferer(fitted_window(*image.shape[:2], patch, multiple), overlap, batch)
    with torch.inference_mode():
        out = inferer(image_tensor(image), window_model)
        assert isinstance(out, torch.Tensor)
        return out[0, 0].float().clamp(0.0, 1.0).numpy()


def torch_device(name: str = "auto") -> torch.device:
    """``"auto"``: ``$MEDLOOP_DEVICE`` when set (``cpu`` or ``cuda``), else the first CUDA
    device when PyTorch sees one, else the CPU; ``"cpu"``; ``"cuda"`` (ValueError when no CUDA
    device is visible)."""
    if name == "auto":
        name = os.environ.get("MEDLOOP_DEVICE") or (
            "cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but PyTorch sees no CUDA device")
    return torch.device(name)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def probability_fn(model: nn.Module) -> WindowModel:
    """Wrap a logit model so each window returns probabilities (blending after the sigmoid).

    Windows go to the model's device and come back to the CPU, where the blending runs, so a
    GPU holds one window batch at a time however large the image."""
    device = model_device(model)

    def run(batch: torch.Tensor) -> torch.Tensor:
        # Channels-last runs the convolutions about a third faster on the CPU (oneDNN); the
        # result is the same to float rounding. (Predictor stores its weights channels-last too.)
        x = batch.to(device).contiguous(memory_format=torch.channels_last)
        return torch.sigmoid(model(x)).to("cpu")

    return run


def mean_entropy(prob: np.ndarray, fov: np.ndarray | None = None) -> float:
    """Mean binary entropy in bits inside the FOV (whole image when no FOV), in [0, 1]."""
    p = prob[fov] if fov is not None else prob.ravel()
    if p.size == 0:
        return 0.0
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(np.clip(h.mean(), 0.0, 1.0))


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err


def checkpoint_config(ckpt: dict) -> TrainConfig:
    """The checkpoint's training settings, with the defaults of keys older runs lack."""
    from medloop_ml.train import TrainConfig  # local: train imports this module

    # Checkpoints written before flip averaging existed lack the key; they ran a single view.
    return TrainConfig.model_validate({"flip_average": False, **ckpt["config"]})


def model_from_checkpoint(ckpt: dict) -> nn.Module:
    model = build_network(checkpoint_config(ckpt))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model


def resolve_checkpoint(source: Path) -> Path:
    """A run folder means its best.pt; a file is taken as the checkpoint itself."""
    path = source / "best.pt" if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


class Predictor:
    """A trained network ready to segment images of any size."""

    def __init__(
        self, model: nn.Module, threshold: float, patch: int, overlap: float, threads: int = 0,
        fov: str = "derived", device: str = "cpu", multiple: int | None = None,
    ) -> None:
        """`multiple`: the network's size multiple (2**depth) that fits the window to small
        images (module docstring); None pads them to the whole window."""
        self.multiple = multiple
        self.model = model.eval().to(torch_device(device), memory_format=torch.channels_last)
        self.threshold = float(threshold)
        self.patch = patch
        self.overlap = overlap
        self.fov = fov  # the plan's FOV use: "derived" or "whole" (medloop_ml.plan)
        if threads > 0:
            torch.set_num_threads(threads)

    @classmethod
    def from_run(
        cls, source: Path | str, threshold: float | None = None, device: str = "cpu"
    ) -> Predictor:
        """Load a run folder (its best.pt) or a checkpoint; `threshold` overrides the stored one;
        `device` as :func:`torch_device` takes it."""
        ckpt = load_checkpoint(resolve_checkpoint(Path(source)))
        cfg = ckpt["config"]
        chosen = ckpt.get("threshold", 0.5) if threshold is None else threshold
        return cls(model_from_checkpoint(ckpt), chosen, cfg["infer_patch"], cfg["overlap"],
                   fov=cfg.get("fov", "derived"), device=device,
                   multiple=size_multiple(checkpoint_config(ckpt).depth))

    def fov_of(self, sample: Sample) -> np.ndarray | None:
        """The FOV to predict `sample` in: its FOV file's mask, else the derived one when the
        model was planned with a derived FOV, else the whole image (None)."""
        return None if self.fov == "whole" and sample.fov_derived else sample.fov

    def probability(self, image: np.ndarray) -> np.ndarray:
        return sliding_probability(probability_fn(self.model), image, self.patch, self.overlap,
                                   multiple=self.multiple)

    def predict(self, image: np.ndarray, fov: np.ndarray | None = None) -> Prediction:
        prob = self.probability(image)
        if fov is not None and fov.shape != prob.shape:
            raise ValueError(f"FOV shape {fov.shape} does not match image shape {prob.shape}")
        mask = prob >= self.threshold
        if fov is not None:
            mask &= fov
        return Prediction(prob=prob, mask=mask, uncertainty=mean_entropy(prob, fov))


def write_png_atomic(path: Path, array: np.ndarray) -> None:
    """Write a PNG under a temporary name in the same folder, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; these files are read by other processes
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.chmod(tmp, 0o644)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class FolderItem:
    stem: str
    image: np.ndarray
    fov: np.ndarray | None = None


def predict_folder(
    predictor: Predictor,
    items: Sequence[FolderItem],
    out_dir: Path,
    on_image: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Write `<stem>.png` (0/255), `<stem>_prob.png` and `uncertainty.json`.

    `<stem>_prob.png` is a one-channel 16-bit PNG of round(p · 65535) (:mod:`medloop_ml.probmap`):
    8 bits would tie pixels the AUC must rank apart.

    Every file is written to a temporary name and renamed; uncertainty.json comes last, so its
    presence means the folder is complete. Returns the uncertainty per stem.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    scores: dict[str, float] = {}
    for index, item in enumerate(items):
        result = predictor.predict(item.image, item.fov)
        write_png_atomic(out_dir / f"{item.stem}.png", result.mask.astype(np.uint8) * 255)
        write_prob_png(out_dir / f"{item.stem}_prob.png", result.prob)
        scores[item.stem] = result.uncertainty
        if on_image is not None:
            on_image(index + 1, len(items))
    write_text_atomic(out_dir / "uncertainty.json", json.dumps(scores, indent=2) + "\n")
    return scores
