"""Pictures of a training run: per-epoch previews, their animated GIF and the loss/F1 curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

# Overlay colours: true positive, false positive, false negative.
TP, FP, FN = (255, 255, 255), (255, 64, 64), (64, 160, 255)


def overlay(prob: np.ndarray, truth: np.ndarray | None, threshold: float = 0.5) -> np.ndarray:
    """RGB picture of a prediction: TP white, FP red, FN blue (no truth: the probability)."""
    if truth is None:
        grey = np.round(prob * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    pred = prob >= threshold
    out = np.zeros((*prob.shape, 3), np.uint8)
    out[pred & truth] = TP
    out[pred & ~truth] = FP
    out[~pred & truth] = FN
    return out


def save_preview(
    path: Path, image: np.ndarray, truth: np.ndarray | None, prob: np.ndarray, epoch: int
) -> None:
    """Image | probability | overlay side by side at half size, labelled with the epoch."""
    grey = np.repeat(np.round(prob * 255).astype(np.uint8)[..., None], 3, axis=2)
    strip = np.concatenate([image, grey, overlay(prob, truth)], axis=1)
    picture = Image.fromarray(strip)
    picture = picture.resize((picture.width // 2, picture.height // 2), Image.Resampling.BILINEAR)
    ImageDraw.Draw(picture).text((8, 8), f"epoch {epoch}", fill=(255, 255, 0))
    tmp = path.with_name(f".{path.name}.tmp")
    picture.save(tmp, format="PNG")
    tmp.replace(path)


def save_gif(path: Path, frames: Sequence[Path], ms_per_frame: int = 400) -> None:
    """All previews as one animated GIF (the last frame held longer)."""
    if not frames:
        return
    images = [Image.open(f).convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 5]
    tmp = path.with_name(f".{path.name}.tmp")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=0)
    tmp.replace(path)


def save_curves(path: Path, history: Sequence[dict[str, Any]]) -> None:
    """Training loss, F1 on the training patches and validation F1 per epoch."""
    epochs = [h["epoch"] for h in history]
    fig, ax_loss = plt.subplots(figsize=(7, 4), dpi=100)
    ax_loss.plot(epochs, [h["loss"] for h in history], color="tab:red", label="training loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (BCE + weighted Dice)", color="tab:red")
    ax_f1 = ax_loss.twinx()
    for key, colour, label in (("train_patch_f1", "tab:green", "F1 on training patches"),
                               ("val_dice", "tab:blue", "validation F1")):
        scored = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if scored:
            ax_f1.plot(*zip(*scored, strict=True), color=colour, marker="o", label=label)
    ax_f1.set_ylabel("F1 (Dice) at threshold 0.5")
    ax_f1.set_ylim(0, 1)
    ax_f1.legend(loc="lower right")
    ax_loss.set_title("training curves")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
