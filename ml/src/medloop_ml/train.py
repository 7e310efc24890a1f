"""Training: random patches from full images, BCE loss (+ soft Dice for blobs), AdamW, one-cycle.

A run folder holds `best.pt`, `last.pt`, `model.json`, `data.json`, `history.json`, `curves.png`,
`previews/epoch_NNN.png` and `previews.gif` (see docs/architecture.md, "Model files").

Budget: either `epochs` (deterministic on the CPU: same seed, same losses) or `minutes` of
wall-clock time, counting everything from the caller's start to the written model (loading,
sampling, steps, validation, previews, checkpoints, the threshold choice and the ONNX export; see
:mod:`medloop_ml.budget`). The learning-rate schedule follows the fraction of the budget used
(steps for epochs, the optimisation span for minutes), so a time-budgeted run still anneals to
the end. Previews, validation and the threshold choice work on bounded views of the images.
`resume_from` continues a run from `last.pt` with its optimiser, schedule and random state: in
epochs mode the continued run is identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pydantic
import torch
from monai.losses import DiceLoss, SoftclDiceLoss
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from medloop_ml import previews
from medloop_ml.budget import (
    PREVIEW_SIDE,
    VIEW_SIDE,
    WallBudget,
    bounded_view,
    preview_period,
)
from medloop_ml.infer import (
    image_tensor,
    load_checkpoint,
    mean_entropy,
    probability_fn,
    resolve_checkpoint,
    sliding_probability,
    torch_device,
    write_text_atomic,
)
from medloop_ml.ingest import MIN_SIDE
from medloop_ml.network import LocalContrast, build_network, size_multiple
from medloop_ml.plan import PLANNED_FIELDS, Plan, plan_config, with_plan_fov
from medloop_ml.replicas import CpuReplicas

if TYPE_CHECKING:
    from medloop_ml.data import Sample

log = logging.getLogger(__name__)


class TrainConfig(pydantic.BaseModel):
    """Everything that shapes a training run; stored in every checkpoint."""

    model_config = pydantic.ConfigDict(extra="forbid")

    epochs: int | None = pydantic.Field(default=None, ge=1)
    minutes: float | None = pydantic.Field(default=None, gt=0)
    # Side of the square training patches, in pixels. Left unset, the plan chooses it
    # (medloop_ml.plan) and it shrinks to fit smaller images (fit_patch_size); set explicitly,
    # it must fit every training image.
    patch_size: int = pydantic.Field(default=128, ge=16)
    # Patches per replica per optimiser step (the DistributedDataParallel convention): a step's
    # batch is batch_size x the replicas (`replicas`), 32 with the two of a 2-core CPU.
    batch_size: int = pydantic.Field(default=16, ge=1)
    patches_per_epoch: int = pydantic.Field(default=512, ge=1)
    lr: float = pydantic.Field(default=3e-3, gt=0)
    weight_decay: float = pydantic.Field(default=1e-4, ge=0)
    warmup: float = pydantic.Field(default=0.05, ge=0, lt=1)
    channels: int = pydantic.Field(default=8, ge=2)  # base width of the U-Net
    depth: int = pydantic.Field(default=4, ge=1, le=6)
    res_units: int = pydantic.Field(default=1, ge=0)
    dropout: float = pydantic.Field(default=0.0, ge=0, lt=1)
    local_contrast: bool = True  # add local-contrast channels inside the model
    flip_average: bool = True  # inference averages the window and its mirror images
    # With flip_average: all eight rotations and mirrors instead of three views (8/3 of the
    # inference time; +0.0035 F1 on CHASE_DB1). Left unset, the plan turns it on for images of
    # up to 1 megapixel (medloop_ml.plan).
    dihedral_average: bool = False
    # Weight of the soft Dice term beside BCE. 0 (BCE alone) for thin targets: on CHASE_DB1 it
    # gave F1 0.810/0.811 against 0.801-0.806 with Dice (benchmarks/README.md, issue 11); the
    # plan sets 1 (nnU-Net's BCE + Dice) for blob-shaped targets (medloop_ml.plan).
    dice_weight: float = pydantic.Field(default=0.0, ge=0)
    # Weight of the soft clDice term (topology of thin structures; Shit et al., CVPR 2021, via
    # MONAI's SoftclDiceLoss); 0 = off.
    cldice_weight: float = pydantic.Field(default=0.0, ge=0)
    # Deep supervision: decoder levels below full resolution that get an auxiliary 1×1 head and
    # a BCE loss on the mask average-pooled to their size, weighted 1/2 per level as in nnU-Net
    # (medloop_ml.network.AuxHead); 0 = off. Training only: inference and ONNX do not change.
    deep_supervision: int = pydantic.Field(default=0, ge=0, le=5)
    seed: int = 0
    vessel_fraction: float = pydantic.Field(default=0.5, ge=0, le=1)
    intensity_jitter: float = pydantic.Field(default=0.1, ge=0, le=0.5)
    threads: int = pydantic.Field(default=2, ge=1)
    # Data-parallel replicas of the network on the CPU, each on its own core with its own
    # batch (medloop_ml.replicas): a small network's operations do not split across cores, the
    # batches do (1.9x the patches/s on 2 cores). Left unset: one per thread on the CPU, at
    # most 2; 1 on a GPU or with `compile` (replica_count).
    replicas: int | None = pydantic.Field(default=None, ge=1)
    channels_last: bool = True  # NHWC: 1.3-2x the patches/s on the CPU (benchmarks/README.md)
    # torch.compile the training step's forward and backward (needs a C++ compiler at run time)
    compile: bool = False
    # bf16 autocast of the training step's forward pass (weights and optimiser stay float32);
    # pays on CPUs with AVX512-BF16/AMX and on GPUs (benchmarks/README.md, issue 11).
    amp: bool = False
    # Exponential moving average of the weights (decay per step; 0 = off): evaluation,
    # previews, checkpoints' "model" and the exported network use the average
    # (torch.optim.swa_utils; Polyak & Juditsky 1992).
    ema: float = pydantic.Field(default=0.0, ge=0, lt=1)
    val_every: int = pydantic.Field(default=1, ge=1)
    preview_stem: str | None = None
    # Sliding window side and overlap: a 1280 window with overlap 0.125 covers 3504×2336 in 6
    # windows (1024 and 0.25: 15) and 999×960 in one; same F1 and AUC on CHASE_DB1 and on 3×3
    # mosaics of its test images (benchmarks/README.md, inference.py).
    infer_patch: int = pydantic.Field(default=1280, ge=16)
    overlap: float = pydantic.Field(default=0.125, ge=0, lt=1)
    threshold_on: Literal["train", "val"] = "train"
    # Self-configuration (medloop_ml.plan): "auto" derives patch size, depth, local contrast,
    # foreground sampling, batch and FOV use from the labelled images wherever this config
    # leaves them unset; "off" keeps the defaults.
    plan: Literal["auto", "off"] = "auto"
    # "derived": a FOV derived from the image (a fundus camera's aperture) limits training and
    # prediction; "whole": the whole image, unless a FOV mask file is given.
    fov: Literal["derived", "whole"] = "derived"
    augment: dict[str, Any] | None = None
    progress: bool = True
    # "auto": a CUDA GPU when PyTorch sees one, else the CPU (benchmarks/gpu_check.py).
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @pydantic.field_validator("augment")
    @classmethod
    def _check_augment(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from .augment import AugmentPipeline

            AugmentPipeline.from_config(value)  # raises ConfigError naming the step and field
        return value

    @pydantic.model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if (self.epochs is None) == (self.minutes is None):
            raise ValueError("set exactly one of 'epochs' and 'minutes'")
        multiple = size_multiple(self.depth)
        for name in ("patch_size", "infer_patch"):
            value = getattr(self, name)
            if value % multiple:
                raise ValueError(
                    f"{name} {value} must be a multiple of {multiple} for depth {self.depth} "
                    f"(the U-Net halves the image {self.depth} times)"
                )
        return self

    @classmethod
    def from_file(cls, path: Path | str, **overrides: Any) -> TrainConfig:
        """Load a JSON config; keyword overrides replace its fields (e.g. minutes from the CLI)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read training config {path}: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"training config {path} must be a JSON object")
        if "epochs" in overrides or "minutes" in overrides:
            data.pop("epochs", None)
            data.pop("minutes", None)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)


DEFAULT_REPLICAS = 2


def replica_count(config: TrainConfig, device: torch.device) -> int:
    """Data-parallel replicas a run trains with (`TrainConfig.replicas`): 1 on a GPU and with
    `compile` (compiling from two threads at once is not thread-safe in PyTorch); on the CPU
    the configured count, else one per thread up to DEFAULT_REPLICAS (each replica adds
    `batch_size` patches to a step, which changes the optimisation; two is what was measured)."""
    if device.type != "cpu" or config.compile:
        return 1
    if config.replicas is not None:
        return config.replicas
    return min(config.threads, DEFAULT_REPLICAS)


def min_image_side() -> int:
    """The ingest contract's minimum image side in pixels (docs/ingest.md): also the smallest
    training patch the engine adapts down to."""
    return MIN_SIDE


def fit_patch_size(
    config: TrainConfig, examples: Sequence[Sample]
) -> tuple[TrainConfig, str | None]:
    """The config to train with on `examples` (the images patches are drawn from), and a notice
    when its patch size had to change.

    A patch must lie inside every image and be a multiple of the U-Net's total downsampling
    (2**depth = 16 at depth 4). When the default 128 does not fit the smallest image side, the
    patch becomes the largest such multiple that does (48 for a 64×48 image, 64 for 99×67): a
    small data set is still trainable, and the notice says so. A `patch_size` set explicitly
    (config file, ``--patch-size``, the worker's `config`) is honoured or refused, never changed.

    Raises ``ValueError`` (one line naming the image) when an explicit patch does not fit, when
    an image is below the ingest contract's minimum side (32 px, which is also the smallest
    patch it adapts to), or when no multiple of 2**depth of at least that size fits.
    """
    if not examples:
        raise ValueError("training needs at least one image with a mask")
    smallest = min(examples, key=lambda s: min(s.image.shape[:2]))
    height, width = smallest.image.shape[:2]
    side = min(height, width)
    where = f"training image {smallest.stem} ({width}x{height})"
    floor = min_image_side()
    if side < floor:
        raise ValueError(f"{where} is smaller than the minimum side of {floor} px")
    if config.patch_size <= side:
        return config, None
    multiple = size_multiple(config.depth)
    largest = side // multiple * multiple
    if "patch_size" in config.model_fields_set:
        hint = (f"at most {largest} fits (a multiple of {multiple} for depth {config.depth})"
                if largest >= floor else f"lower the depth ({config.depth})")
        raise ValueError(f"patch_size {config.patch_size} does not fit {where}: {hint}")
    if largest < floor:
        raise ValueError(
            f"no training patch fits {where}: depth {config.depth} needs a multiple of "
            f"{multiple} of at least {floor} px; lower the depth"
        )
    notice = (
        f"training patch {largest} px instead of the default {config.patch_size}: {where} is "
        f"the smallest, and {largest} is the largest multiple of {multiple} (depth "
        f"{config.depth}) that fits it"
    )
    return config.model_copy(update={"patch_size": largest}), notice


def data_summary(train: Sequence[Sample], val: Sequence[Sample]) -> dict[str, Any]:
    """What a run was trained and validated on, as read under the ingest contract: per image its
    stem, upright size and foreground pixel counts of the mask and the FOV (``data.json``)."""

    def describe(s: Sample) -> dict[str, Any]:
        height, width = s.image.shape[:2]
        mask = None if s.mask is None else int(s.mask.sum())
        return {"stem": s.stem, "width": width, "height": height, "mask_pixels": mask,
                "fov_pixels": int(s.fov.sum())}

    return {"train": [describe(s) for s in train], "val": [describe(s) for s in val]}


@dataclass
class EpochReport:
    epoch: int
    epochs: int  # planned epochs (an estimate under a minutes budget)
    loss: float
    val_dice: float | None
    seconds: float  # optimisation seconds so far (a minutes budget counts wall-clock, more)
    checkpoint_path: Path
    preview_path: Path | None


@dataclass
class TrainResult:
    run_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    epochs: int
    seconds: float
    threshold: float
    metrics: dict[str, float]
    preview_paths: list[Path]
    curves_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    patch_size: int = 0  # the training patch used (fit_patch_size may have adapted it)
    notices: list[str] = field(default_factory=list)  # e.g. why the patch size changed
    wall_seconds: float | None = None  # everything, as a minutes budget counts it
    onnx_path: Path | None = None  # model.onnx, when train_model exported it
    onnx_max_abs_diff: float | None = None  # its parity with PyTorch on a bounded view
    replicas: int = 1  # data-parallel replicas the steps ran on (medloop_ml.replicas)


class TrainingStopped(Exception):
    """Raised when `should_stop()` asked to stop; `last.pt` holds the state to resume from."""

    def __init__(self, checkpoint: Path, epoch: int) -> None:
        super().__init__(f"training stopped after epoch {epoch}; resume from {checkpoint}")
        self.checkpoint = checkpoint
        self.epoch = epoch


# ---------------------------------------------------------------------------------------------
# Patch sampling


class PatchSampler:
    """Draws training patches: a `vessel_fraction` of them centred on a vessel pixel, the rest on
    a random field-of-view pixel; random flips, rot90 and a brightness/contrast jitter."""

    def __init__(self, samples: Sequence[Sample], config: TrainConfig) -> None:
        if not samples:
            raise ValueError("training needs at least one image with a mask")
        self.patch = config.patch_size
        self.vessel_fraction = config.vessel_fraction
        self.jitter = config.intensity_jitter
        self.images: list[np.ndarray] = []  # uint8 3×H×W
        self.masks: list[np.ndarray] = []  # uint8 1×H×W
        # Local-contrast channels of each whole image, computed once: the network's own
        # LocalContrast on the full image, so training sees the same values as inference on a
        # whole-image window, and no step pays for it again.
        self.locals: list[np.ndarray | None] = []
        self.vessels: list[np.ndarray] = []
        self.inside: list[np.ndarray] = []
        for s in samples:
            if s.mask is None:
                raise ValueError(f"training image {s.stem} has no mask")
            h, w = s.mask.shape
            if h < self.patch or w < self.patch:
                raise ValueError(
                    f"image {s.stem} ({h}x{w}) is smaller than the patch size {self.patch}"
                )
            self.images.append(np.ascontiguousarray(s.image.transpose(2, 0, 1)))
            self.masks.append(s.mask.astype(np.uint8)[None])
            self.locals.append(self._local_channels(s.image) if config.local_contrast else None)
            self.vessels.append(np.flatnonzero(s.mask).astype(np.int64))
            fov = s.fov if s.fov is not None and s.fov.any() else np.ones_like(s.mask)
            self.inside.append(np.flatnonzero(fov).astype(np.int64))

    @staticmethod
    def _local_channels(image: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return LocalContrast()(image_tensor(image))[0].numpy()

    def batch(
        self, rng: np.random.Generator, size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """`size` patches as float32 N×3×p×p in [0, 1] and their N×1×p×p vessel targets."""
        crops = [self._crop(rng) for _ in range(size)]
        # Crops are numpy views (flips and turns copy nothing); one stack copies them all, and
        # the scaling runs in numpy: tiny multi-threaded torch ops cost more than they save here.
        x = np.stack([c[0] for c in crops]).astype(np.float32)
        y = np.stack([c[1] for c in crops]).astype(np.float32)
        scale = np.full((size, 1, 1, 1), 1 / 255, np.float32)
        shift = np.zeros((size, 1, 1, 1), np.float32)
        if self.jitter > 0:  # one contrast and brightness change per patch
            scale *= rng.uniform(1 - self.jitter, 1 + self.jitter, (size, 1, 1, 1))
            shift += rng.uniform(-self.jitter, self.jitter, (size, 1, 1, 1)) * 0.5
        x *= scale
        x += shift
        np.clip(x, 0.0, 1.0, out=x)
        local = None
        if crops[0][2] is not None:
            local = torch.from_numpy(np.stack([c[2] for c in crops]))
        return torch.from_numpy(x), torch.from_numpy(y), local

    def _crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One uint8 crop and its mask around a vessel or FOV pixel, randomly flipped/turned."""
        i = int(rng.integers(len(self.images)))
        img, mask = self.images[i], self.masks[i]
        h, w = mask.shape[1:]
        on_vessel = rng.random() < self.vessel_fraction and self.vessels[i].size > 0
        pool = self.vessels[i] if on_vessel else self.inside[i]
        cy, cx = divmod(int(pool[rng.integers(pool.size)]), w)
        p = self.patch
        top = min(max(cy - p // 2, 0), h - p)
        left = min(max(cx - p // 2, 0), w - p)
        window = (slice(None), slice(top, top + p), slice(left, left + p))
        x, y = img[window], mask[window]
        extra = self.locals[i]
        z = extra[window] if extra is not None else None
        flips = tuple(d for d, flip in ((1, rng.random() < 0.5), (2, rng.random() < 0.5)) if flip)
        k = int(rng.integers(4))
        if flips:
            x, y = np.flip(x, flips), np.flip(y, flips)
            z = np.flip(z, flips) if z is not None else None
        if k:
            x, y = np.rot90(x, k, (1, 2)), np.rot90(y, k, (1, 2))
            z = np.rot90(z, k, (1, 2)) if z is not None else None
        return x, y, z


# ---------------------------------------------------------------------------------------------
# Schedule, loss, evaluation helpers


def lr_factor(progress: float, warmup: float) -> float:
    """One-cycle shape: linear warm-up over `warmup` of the budget, then cosine down to 1 %."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return 0.1 + 0.9 * progress / warmup
    t = (progress - warmup) / (1.0 - warmup)
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))


class BceDiceLoss(nn.Module):
    """BCE-with-logits plus `dice_weight` × soft Dice (MONAI; Milletari et al., V-Net, 2016)
    plus `cldice_weight` × soft clDice (MONAI; Shit et al., clDice, CVPR 2021).

    BCE alone ranks pixels by calibrated probabilities, which is what the threshold choice and
    AUC read; the Dice term, a region overlap, is nnU-Net's companion for large objects; the
    clDice term rewards connected centre lines of thin structures."""

    def __init__(self, dice_weight: float, cldice_weight: float = 0.0) -> None:
        super().__init__()
        self.bce = nn.BCEWithLogitsLoss()
        self.dice = DiceLoss(sigmoid=True, batch=True)
        self.cldice = SoftclDiceLoss(sigmoid=True)
        self.dice_weight = dice_weight
        self.cldice_weight = cldice_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.bce(logits, target)
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits, target)
        if self.cldice_weight:
            loss = loss + self.cldice_weight * self.cldice(logits, target)
        return loss


def deep_supervised(loss: torch.Tensor, aux: Sequence[torch.Tensor],
                    target: torch.Tensor) -> torch.Tensor:
    """The full-resolution `loss` and BCE of each auxiliary logit map (level k at 1/2**k) against
    the target average-pooled to its size, weighted 1, 1/2, 1/4, ... and normalised to sum 1
    (Isensee et al., nnU-Net, Nature Methods 2021)."""
    total, weights = loss, 1.0
    for level, logits in enumerate(aux, start=1):
        pooled = F.adaptive_avg_pool2d(target, logits.shape[-2:])
        weight = 0.5**level
        total = total + weight * F.binary_cross_entropy_with_logits(logits.float(), pooled)
        weights += weight
    return total / weights


def best_f1_threshold(
    probs: Sequence[np.ndarray], truths: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Threshold (on a 1/256 grid) maximising the pooled F1 of the given pixels, and that F1."""
    bins = 256
    pos = np.zeros(bins, np.int64)
    neg = np.zeros(bins, np.int64)
    for prob, truth in zip(probs, truths, strict=True):
        idx = np.minimum((prob * bins).astype(np.int64), bins - 1)
        pos += np.bincount(idx[truth], minlength=bins)
        neg += np.bincount(idx[~truth], minlength=bins)
    # predicted positive at threshold t = k/bins: every pixel in bins >= k
    tp = np.cumsum(pos[::-1])[::-1]
    fp = np.cumsum(neg[::-1])[::-1]
    fn = pos.sum() - tp
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    k = int(np.argmax(f1[1:]) + 1)  # never threshold 0 (everything positive)
    return k / bins, float(f1[k])


def dice_at(prob: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    pred = prob >= threshold
    denom = pred.sum() + truth.sum()
    return 1.0 if denom == 0 else float(2 * (pred & truth).sum() / denom)


def region(sample: Sample) -> np.ndarray:
    return sample.fov if sample.fov is not None else np.ones(sample.image.shape[:2], bool)


# ---------------------------------------------------------------------------------------------
# Checkpoints and run files


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def model_json(
    config: TrainConfig, threshold: float, metrics: dict[str, float],
    plan: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "input": "image",
        "output": "probability",
        "patch_size": config.infer_patch,
        # The window is fitted to images smaller than it, rounded up to this (medloop_ml.infer).
        "size_multiple": size_multiple(config.depth),
        "overlap": config.overlap,
        "blend": "gaussian",
        "threshold": threshold,
        "channels": 3,
        "network": {"width": config.channels, "depth": config.depth,
                    "res_units": config.res_units, "local_contrast": config.local_contrast,
                    "flip_average": config.flip_average,
                    "dihedral_average": config.flip_average and config.dihedral_average},
        "train_patch_size": config.patch_size,
        "fov": config.fov,
        "metrics": metrics,
        "plan": plan,
    }


@dataclass
class _State:
    """Mutable progress of a run, saved in every checkpoint."""

    epoch: int = 0
    step: int = 0
    # Patches trained on so far: an epoch budget's progress, also when a resumed run has another
    # replica count (another machine, a GPU) and so another number of patches per step.
    patches: int = 0
    seconds: float = 0.0  # optimisation steps only
    wall_seconds: float = 0.0  # everything, as the budget counts it (at the last checkpoint)
    best_score: float = -1.0
    history: list[dict[str, Any]] = field(default_factory=list)


def _augmented(train: Sequence[Sample], config: TrainConfig) -> list[Sample]:
    """The examples patches are drawn from: the training images, expanded by the declarative
    augmentation pipeline (augment.py) when the config names one. The threshold is still
    chosen on the original images."""
    if config.augment is None:
        return list(train)
    from .augment import AugmentPipeline

    return AugmentPipeline.from_config(config.augment).expand(train, seed=config.seed)


class _Run:
    """One training run: owns the model, optimiser, sampler, random state and the run folder."""

    def __init__(
        self,
        train: Sequence[Sample],
        val: Sequence[Sample],
        config: TrainConfig,
        run_dir: Path,
        preview: Sample | None,
        examples: Sequence[Sample],
    ) -> None:
        self.config = config
        self.train = list(train)
        self.val = [s for s in val if s.mask is not None]
        self.run_dir = run_dir
        self.preview = bounded_view(preview or self._pick_preview(config.preview_stem),
                                    PREVIEW_SIDE)
        # Validation and the threshold choice see bounded views: their cost does not grow with
        # the images (a 3504×2336 image costs what a 1024×1024 one does).
        self.val_views = [bounded_view(s, VIEW_SIDE) for s in self.val]
        self.preview_every = 1
        self.last_preview: Path | None = None
        self.budget: WallBudget | None = None
        self.restored_budget: dict[str, Any] = {}  # t0 and epoch_end of a resumed run
        self.sampler = PatchSampler(examples, config)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.device = torch_device(config.device)
        self.model = build_network(config).to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.replica_count = replica_count(config, self.device)
        if self.replica_count > config.threads:
            log.warning("%d replicas on %d threads: the replicas share cores",
                        self.replica_count, config.threads)
        if self.replica_count > 1:
            log.info("training %d replicas of %d patches: %d patches per step",
                     self.replica_count, config.batch_size,
                     self.replica_count * config.batch_size)
        self.replicas = (CpuReplicas(self.model, self.replica_count,
                                     threads=max(1, config.threads // self.replica_count))
                         if self.replica_count > 1 else None)
        # The networks the steps train: the replicas, or the model alone.
        self.models = self.replicas.models if self.replicas is not None else [self.model]
        # The compiled wrappers share their replica's parameters and buffers; evaluation,
        # previews and checkpoints use the plain module.
        self.forwards = [torch.compile(m) if config.compile else m for m in self.models]
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema),
                          use_buffers=True)
            if config.ema else None
        )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.loss_fn = BceDiceLoss(config.dice_weight, config.cldice_weight)
        self.state = _State()
        self.patch_f1 = math.nan
        self.notices: list[str] = []
        self.plan: Plan | None = None
        self.step_batch = config.batch_size * self.replica_count  # patches per optimiser step
        self.steps_per_epoch = math.ceil(config.patches_per_epoch / self.step_batch)

    def _pick_preview(self, stem: str | None) -> Sample:
        candidates = self.val + self.train
        for s in candidates:
            if s.stem == stem:
                return s
        return candidates[0]

    # -- checkpoint state ---------------------------------------------------------------------
    def checkpoint(self, metrics: dict[str, float], threshold: float) -> dict[str, Any]:
        return {
            "format": "medloop-checkpoint/1",
            "config": self.config.model_dump(),
            "model": self.inference_model().state_dict(),
            **({"train_model": self.model.state_dict(), "ema": self.ema.state_dict()}
               if self.ema is not None else {}),
            "optimizer": self.optimizer.state_dict(),
            "schedule": {"step": self.state.step, "patches": self.state.patches,
                         "seconds": self.state.seconds},
            "epoch": self.state.epoch,
            "seconds": self.state.seconds,
            "wall_seconds": self.budget.elapsed() if self.budget else self.state.wall_seconds,
            "budget": {**(self.budget.state() if self.budget else self.restored_budget),
                       "preview_every": self.preview_every},
            "best_score": self.state.best_score,
            "metrics": metrics,
            "threshold": threshold,
            "history": self.state.history,
            "rng": {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state},
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        budget = dict(ckpt.get("budget") or {})
        self.preview_every = int(budget.pop("preview_every", 1))
        self.restored_budget = budget
        self.model.load_state_dict(ckpt.get("train_model", ckpt["model"]))
        # Without a stored average (a run continued with `ema` on), the first step starts one:
        # AveragedModel copies the weights at its first update.
        if self.ema is not None and "ema" in ckpt:
            self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.state = _State(
            epoch=ckpt["epoch"],
            step=ckpt["schedule"]["step"],
            # Checkpoints from before replicas took one batch of `batch_size` per step.
            patches=int(ckpt["schedule"].get("patches") or ckpt["schedule"]["step"]
                        * int((ckpt.get("config") or {}).get("batch_size")
                              or self.config.batch_size)),
            seconds=ckpt["schedule"]["seconds"],
            wall_seconds=float(ckpt.get("wall_seconds", ckpt["schedule"]["seconds"])),
            best_score=ckpt.get("best_score", -1.0),
            history=list(ckpt.get("history", [])),
        )
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.rng.bit_generator.state = ckpt["rng"]["numpy"]

    def load_init(self, path: Path) -> None:
        ckpt = load_checkpoint(resolve_checkpoint(path))
        try:
            self.model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError) as err:
            raise ValueError(f"initial model {path} does not fit this network: {err}") from err

    # -- budget -------------------------------------------------------------------------------
    def progress(self) -> float:
        if self.budget is not None:
            return self.budget.progress()
        planned = (self.config.epochs or 1) * self.steps_per_epoch * self.step_batch
        return self.state.patches / planned

    def done(self) -> bool:
        if self.budget is not None:
            return self.budget.done()
        return self.progress() >= 1.0

    def planned_epochs(self) -> int:
        if self.config.epochs is not None:
            return self.config.epochs
        progress = self.progress()
        if progress <= 0 or self.state.epoch == 0:
            return self.state.epoch + 1
        return max(self.state.epoch, math.ceil(self.state.epoch / progress))

    def start_budget(self, started: float, export: bool) -> None:
        """Under a ``minutes`` budget: start the wall clock and estimate the final work from one
        timed prediction of a bounded view (which also warms the network up)."""
        if self.config.minutes is None:
            return
        self.budget = WallBudget(self.config.minutes * 60.0, started, self.state.wall_seconds,
                                 epoch_end=float(self.restored_budget.get("epoch_end") or 0.0),
                                 t0=self.restored_budget.get("t0"))
        view = bounded_view(self.train[0], VIEW_SIDE)
        tick = time.monotonic()
        self.probability(view)
        view_seconds = time.monotonic() - tick
        threshold = self.val_views if self.thresholds_on_val() else threshold_samples(self.train)
        views = len(threshold) + len(self.val_views)
        # The export's parity check predicts a bounded view too, the window fitted the same way.
        self.budget.plan_finish(view_seconds, views, view_seconds if export else None)

    def thresholds_on_val(self) -> bool:
        return self.config.threshold_on == "val" and bool(self.val_views)

    def threshold_views(self) -> list[Sample]:
        """The bounded views the final threshold is chosen on."""
        if self.thresholds_on_val():
            return self.val_views
        return [bounded_view(s, VIEW_SIDE) for s in threshold_samples(self.train)]

    # -- one epoch ----------------------------------------------------------------------------
    def train_epoch(
        self, should_stop: Callable[[], bool] | None, at_least_one: bool = False
    ) -> tuple[float, bool]:
        """Run one epoch's steps (or fewer when the budget ends, but one step at least when
        `at_least_one`); returns (mean loss, stopped)."""
        for model in self.models:
            model.train()
        losses: list[float] = []
        counts = torch.zeros(3, dtype=torch.float64)  # true positives, predicted, truth
        replicas = self.replicas
        stopped = False
        with replicas if replicas is not None else contextlib.nullcontext():
            for index in range(self.steps_per_epoch):
                if self.done() and not (at_least_one and index == 0):
                    break
                if should_stop is not None and should_stop():
                    stopped = True
                    break
                start = time.perf_counter()
                for group in self.optimizer.param_groups:
                    group["lr"] = self.config.lr * lr_factor(self.progress(), self.config.warmup)
                self.optimizer.zero_grad(set_to_none=True)
                if replicas is not None:
                    loss, step_counts = replicas.step(self._replica_step)
                else:
                    loss, step_counts = self._batch_step(0, self.rng)
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                losses.append(loss)
                counts += step_counts
                self.state.step += 1
                self.state.patches += self.step_batch
                self.state.seconds += time.perf_counter() - start
        tp, predicted, actual = counts.tolist()
        if not stopped:
            self.patch_f1 = 2 * tp / (predicted + actual) if predicted + actual else math.nan
        return (float(np.mean(losses)) if losses else math.nan), stopped

    def _replica_step(self, replica: int) -> tuple[float, torch.Tensor]:
        """One replica's part of a step, in its thread: its own patches, drawn with a
        generator seeded by (seed, step, replica), so the draw needs no shared state and an
        epoch-budgeted run (or a resumed one) draws the same patches."""
        rng = np.random.default_rng([self.config.seed, self.state.step, replica])
        return self._batch_step(replica, rng)

    def _batch_step(self, replica: int, rng: np.random.Generator) -> tuple[float, torch.Tensor]:
        """Forward and backward of `batch_size` patches on replica `replica`, the loss divided
        by the replica count (the step averages the replicas' gradients); returns (that loss,
        [true positives, predicted, truth] at 0.5 for the training curves)."""
        x, y, local = self.sampler.batch(rng, self.config.batch_size)
        x, y = x.to(self.device), y.to(self.device)
        local = None if local is None else local.to(self.device)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
            if local is not None:
                local = local.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp):
            logits = self.forwards[replica](x, local)
        logits = logits.float()
        loss = self.loss_fn(logits, y)
        if self.config.deep_supervision:
            loss = deep_supervised(loss, self.models[replica].aux_logits(), y)
        loss = loss / self.replica_count
        loss.backward()
        with torch.no_grad():
            pred = logits.detach() > 0
            truth = y > 0.5
            counts = torch.stack([(pred & truth).sum(), pred.sum(), truth.sum()]).cpu()
        return float(loss.detach()), counts.to(torch.float64)

    def inference_model(self) -> nn.Module:
        """The network that predicts: the weights' moving average when `ema` is on."""
        return self.model if self.ema is None else self.ema.module

    def probability(self, sample: Sample) -> np.ndarray:
        """Probability map of a sample (previews, validation, threshold), the window fitted to
        it as inference fits it (`medloop_ml.infer.fitted_window`): a 512-pixel preview costs
        a 512² pass rather than a padded full window."""
        model = self.inference_model()
        model.eval()
        return sliding_probability(probability_fn(model), sample.image,
                                   self.config.infer_patch, self.config.overlap,
                                   multiple=size_multiple(self.config.depth))

    def val_dice(self) -> float | None:
        if not self.val_views:
            return None
        scores = [
            dice_at(self.probability(s)[region(s)], s.mask[region(s)], 0.5)  # type: ignore[index]
            for s in self.val_views
        ]
        return float(np.mean(scores))


def _starting_config(
    resume_from: Path | str | None, init_model: Path | str | None
) -> dict[str, Any] | None:
    """The config of the checkpoint a run continues or fine-tunes, if any (missing or unreadable
    files are reported where they are loaded)."""
    try:
        if resume_from is not None:
            return dict(load_checkpoint(_resume_path(Path(resume_from))).get("config") or {})
        if init_model is not None:
            return dict(load_checkpoint(resolve_checkpoint(Path(init_model))).get("config") or {})
    except (OSError, ValueError):
        return None
    return None


def _resume_path(source: Path) -> Path:
    """A run folder resumes from its last.pt; a file is taken as the checkpoint itself."""
    path = source / "last.pt" if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {path}")
    return path


def _write_history(run: _Run) -> None:
    write_text_atomic(run.run_dir / "history.json", json.dumps(run.state.history, indent=2) + "\n")


THRESHOLD_VIEWS = 32


def _choose_threshold(run: _Run) -> tuple[float, dict[str, float]]:
    """Pick the F1-maximising threshold on the training (or validation) images, inside the FOV."""
    on_val = run.thresholds_on_val()
    source = run.threshold_views()
    maps = [run.probability(s) for s in source]
    probs = [prob[region(s)] for prob, s in zip(maps, source, strict=True)]
    truths = [s.mask[region(s)] for s in source]  # type: ignore[index]
    threshold, f1 = best_f1_threshold(probs, truths)
    metrics = {f"{'val' if on_val else 'train'}_f1": f1, "threshold": threshold}
    if run.val_views:
        known = maps if on_val else [None] * len(run.val_views)
        pairs = zip(run.val_views, known, strict=True)
        scores = _val_scores(pairs, threshold, run)
        metrics.update(scores)
    return threshold, metrics


def threshold_samples(samples: Sequence[Sample]) -> list[Sample]:
    """At most THRESHOLD_VIEWS samples, evenly spread: the threshold of a campaign's hundreds of
    augmented crops is as well chosen from a few dozen, at a fraction of the time."""
    if len(samples) <= THRESHOLD_VIEWS:
        return list(samples)
    step = len(samples) / THRESHOLD_VIEWS
    return [samples[int(i * step)] for i in range(THRESHOLD_VIEWS)]


def _val_scores(pairs: Any, threshold: float, run: _Run) -> dict[str, float]:
    from medloop_ml.metrics import segmentation_metrics

    f1s, aucs, unc = [], [], []
    for sample, prob in pairs:
        p = run.probability(sample) if prob is None else prob
        m = segmentation_metrics(p >= threshold, sample.mask, prob=p, fov=region(sample))
        f1s.append(m["f1"])
        aucs.append(m["auc"])
        unc.append(mean_entropy(p, region(sample)))
    return {
        "val_f1": float(np.mean(f1s)),
        "val_auc": float(np.mean(aucs)),
        "val_uncertainty": float(np.mean(unc)),
    }


def train_model(
    train: Sequence[Sample],
    val: Sequence[Sample],
    config: TrainConfig,
    run_dir: Path,
    *,
    init_model: Path | None = None,
    resume_from: Path | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    preview: Sample | None = None,
    started: float | None = None,
    export_onnx: bool = False,
) -> TrainResult:
    """Train a network on `train` patches; validate on `val` (bounded views) each `val_every`
    epochs.

    With no validation images, best.pt is the last epoch's weights. `preview` (else the
    `preview_stem` image, else the first validation image) is segmented on a bounded view after
    an epoch, as often as keeps previews near 2 % of the optimisation time. Under a `minutes`
    budget the wall clock runs from `started` (``time.monotonic()`` when the caller began, so its
    loading counts too; default: now) to the written model, `model.onnx` included when
    `export_onnx` (parity checked on a bounded view; :class:`~medloop_ml.onnx_export.ParityError`
    when it fails).
    Images smaller than the default patch train with a smaller one (:func:`fit_patch_size`,
    logged as a warning and listed in `TrainResult.notices`); a config that cannot fit the
    images raises ``ValueError`` before anything is written.
    """
    for s in train:
        if s.mask is None:  # checked before augmenting, which would carry the None along
            raise ValueError(f"training image {s.stem} has no mask")
    config, plan = plan_config(train, config, originals=val,
                               inherited=_starting_config(resume_from, init_model))
    if plan is not None:
        log.info("plan: %s target; %s; user-set: %s", plan.target, plan.settings,
                 plan.overridden or "nothing")
    train, val = with_plan_fov(train, config.fov), with_plan_fov(val, config.fov)
    preview = None if preview is None else with_plan_fov([preview], config.fov)[0]
    examples = _augmented(train, config)
    config, notice = fit_patch_size(config, examples)
    if notice:
        log.warning(notice)
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "previews").mkdir(exist_ok=True)
    run = _Run(train, val, config, run_dir, preview, examples)
    run.notices = [notice] if notice else []
    run.plan = plan
    if plan is not None:  # what the run trains with, after the user's settings and the fitting
        plan.used = {k: getattr(config, k) for k in PLANNED_FIELDS}
        run.notices.append(plan.summary())
    write_text_atomic(run_dir / "data.json", json.dumps(data_summary(train, val), indent=2) + "\n")
    if resume_from is not None:
        run.restore(load_checkpoint(_resume_path(Path(resume_from))))
    elif init_model is not None:
        run.load_init(Path(init_model))
    run.start_budget(time.monotonic() if started is None else started, export_onnx)
    best_path, last_path = run_dir / "best.pt", run_dir / "last.pt"
    bar = tqdm(total=run.planned_epochs(), initial=run.state.epoch, disable=not config.progress,
               desc="train", unit="epoch", dynamic_ncols=True)
    if run.done() and not best_path.exists():
        # A budget shorter than the work it must keep free still yields a model: one epoch.
        run.notices.append(
            f"the {config.minutes:g}-minute budget is shorter than the work after training "
            f"(about {run.budget.finish:.0f} s): trained a single step, and the run takes longer "
            "than its budget" if run.budget else
            "trained a single step")
        log.warning(run.notices[-1])
    if run.budget is not None:
        run.budget.begin_optimisation()
    try:
        while not run.done() or not best_path.exists():
            loss, stopped = run.train_epoch(should_stop, at_least_one=not best_path.exists())
            if stopped:
                save_checkpoint(last_path, run.checkpoint({}, 0.5))
                raise TrainingStopped(last_path, run.state.epoch)
            run.state.epoch += 1
            _finish_epoch(run, loss, best_path, last_path, on_epoch, bar)
    finally:
        bar.close()
    return _finish_run(run, best_path, last_path, export_onnx)


def _finish_epoch(
    run: _Run,
    loss: float,
    best_path: Path,
    last_path: Path,
    on_epoch: Callable[[EpochReport], None] | None,
    bar: tqdm,
) -> None:
    s = run.state
    tick = time.monotonic()
    # The last epoch: the budget is spent, or this epoch's end work will spend it.
    last = run.done() or (run.budget is not None and run.budget.ends_after(run.budget.epoch_end))
    validate = run.val and (s.epoch % run.config.val_every == 0 or last)
    val_dice = run.val_dice() if validate else None
    if s.epoch == 1 or last or s.epoch % run.preview_every == 0:
        preview_tick = time.monotonic()
        preview_prob = run.probability(run.preview)
        run.last_preview = run.run_dir / "previews" / f"epoch_{s.epoch:03d}.png"
        previews.save_preview(run.last_preview, run.preview.image, run.preview.mask, preview_prob,
                              s.epoch)
        if s.epoch == 1:  # steps of the first epoch vs one preview: how often previews fit
            steps = s.seconds / max(1, s.epoch)
            run.preview_every = preview_period(time.monotonic() - preview_tick, steps)
    s.history.append({"epoch": s.epoch, "loss": loss, "val_dice": val_dice,
                      "train_patch_f1": run.patch_f1, "seconds": s.seconds,
                      "wall_seconds": run.budget.elapsed() if run.budget else None,
                      "steps": s.step, "patches": s.patches,
                      "lr": run.config.lr * lr_factor(run.progress(), run.config.warmup)})
    score = val_dice if val_dice is not None else (-1.0 if run.val else s.epoch)
    improved = score > s.best_score
    if improved:
        s.best_score = score
    state = run.checkpoint({"val_dice": val_dice} if val_dice is not None else {}, 0.5)
    save_checkpoint(last_path, state)
    if improved or not best_path.exists():
        shutil.copyfile(last_path, best_path)
    _write_history(run)
    bar.total = run.planned_epochs()
    bar.set_postfix(loss=f"{loss:.4f}", val_dice="-" if val_dice is None else f"{val_dice:.4f}")
    bar.update(1)
    if on_epoch is not None:
        on_epoch(EpochReport(s.epoch, run.planned_epochs(), loss, val_dice, s.seconds, last_path,
                             run.last_preview))
    if run.budget is not None:  # the largest end-of-epoch work (callback included) is kept free
        run.budget.saw_epoch_end(time.monotonic() - tick)


def _finish_run(run: _Run, best_path: Path, last_path: Path, export: bool) -> TrainResult:
    """Load the best weights, choose the threshold, write model.json, curves and the GIF, and
    (with `export`) model.onnx."""
    best = load_checkpoint(best_path)
    predicting = run.inference_model()
    last_state = {k: v.clone() for k, v in predicting.state_dict().items()}
    predicting.load_state_dict(best["model"])
    threshold, metrics = _choose_threshold(run)
    best["threshold"] = threshold
    best["metrics"] = {**best.get("metrics", {}), **metrics}
    save_checkpoint(best_path, best)
    predicting.load_state_dict(last_state)
    last = load_checkpoint(last_path)
    last["threshold"] = threshold
    save_checkpoint(last_path, last)
    description = model_json(run.config, threshold, best["metrics"],
                             run.plan.to_json() if run.plan else None)
    write_text_atomic(run.run_dir / "model.json", json.dumps(description, indent=2) + "\n")
    preview_paths = sorted((run.run_dir / "previews").glob("epoch_*.png"))
    previews.save_gif(run.run_dir / "previews.gif", preview_paths)
    curves = run.run_dir / "curves.png"
    previews.save_curves(curves, run.state.history)
    _write_history(run)
    onnx = None
    if export:
        from medloop_ml.onnx_export import export_onnx

        source = run.val_views[0] if run.val_views else bounded_view(run.train[0], VIEW_SIDE)
        onnx = export_onnx(run.run_dir, source.image)
    return TrainResult(
        run_dir=run.run_dir,
        best_checkpoint=best_path,
        last_checkpoint=last_path,
        epochs=run.state.epoch,
        seconds=run.state.seconds,
        threshold=threshold,
        metrics=best["metrics"],
        preview_paths=preview_paths,
        curves_path=curves,
        history=run.state.history,
        patch_size=run.config.patch_size,
        notices=list(run.notices),
        wall_seconds=run.budget.elapsed() if run.budget else None,
        onnx_path=onnx.path if onnx else None,
        onnx_max_abs_diff=onnx.max_abs_diff if onnx else None,
        replicas=run.replica_count,
    )
