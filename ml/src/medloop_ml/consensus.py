"""Consensus of several annotators' binary masks of one image.

STAPLE — Simultaneous Truth And Performance Level Estimation (Warfield, Zou & Wells, "Simultaneous
truth and performance level estimation (STAPLE): an algorithm for the validation of image
segmentation", IEEE Transactions on Medical Imaging 23(7), 2004) — estimates, by expectation
maximisation, the probability that each pixel is foreground together with each annotator's
sensitivity and specificity. The estimate is SimpleITK's ``STAPLEImageFilter`` (ITK's
implementation); the consensus mask is the probability at or above 0.5.

Majority vote marks a pixel when more than half of the annotators do (a tie is background: with
two annotators, their intersection); each annotator's sensitivity and specificity are then
measured against the voted mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import SimpleITK as sitk

Method = Literal["staple", "majority"]


@dataclass(frozen=True)
class AnnotatorPerformance:
    sensitivity: float
    specificity: float


@dataclass(frozen=True)
class Consensus:
    method: Method
    #: The consensus mask (bool, H×W).
    mask: np.ndarray
    #: STAPLE's per-pixel foreground probability; the vote fraction for a majority vote.
    probability: np.ndarray
    #: One per annotator, in the order the masks were given.
    annotators: list[AnnotatorPerformance]


def _check(masks: list[np.ndarray]) -> list[np.ndarray]:
    if len(masks) < 2:
        raise ValueError(f"consensus needs at least two annotators' masks, got {len(masks)}")
    shapes = {m.shape for m in masks}
    if len(shapes) != 1 or len(masks[0].shape) != 2:
        sizes = ", ".join(
            f"{m.shape[1]}x{m.shape[0]}" if m.ndim == 2 else str(m.shape) for m in masks
        )
        raise ValueError(f"the masks must be 2D and of one size, got {sizes}")
    return [np.asarray(m).astype(bool) for m in masks]


def _performance(mask: np.ndarray, reference: np.ndarray) -> AnnotatorPerformance:
    fg = reference.sum()
    bg = reference.size - fg
    tp = np.logical_and(mask, reference).sum()
    tn = np.logical_and(~mask, ~reference).sum()
    return AnnotatorPerformance(
        sensitivity=float(tp / fg) if fg else 1.0,
        specificity=float(tn / bg) if bg else 1.0,
    )


def majority_vote(masks: list[np.ndarray]) -> Consensus:
    """More than half of the annotators mark the pixel; performance against the voted mask."""
    binary = _check(masks)
    fraction = np.mean(np.stack(binary).astype(np.float64), axis=0)
    mask = fraction > 0.5
    performance = [_performance(m, mask) for m in binary]
    return Consensus("majority", mask, fraction, performance)


def staple(masks: list[np.ndarray], threshold: float = 0.5) -> Consensus:
    """STAPLE (SimpleITK's STAPLEImageFilter) on binary masks; mask = probability >= threshold."""
    binary = _check(masks)
    images = [sitk.GetImageFromArray(m.astype(np.uint8)) for m in binary]
    staple_filter = sitk.STAPLEImageFilter()
    staple_filter.SetForegroundValue(1.0)
    estimate = staple_filter.Execute(images)
    probability = sitk.GetArrayFromImage(estimate).astype(np.float64)
    annotators = [
        AnnotatorPerformance(sensitivity=float(se), specificity=float(sp))
        for se, sp in zip(
            staple_filter.GetSensitivity(), staple_filter.GetSpecificity(), strict=True
        )
    ]
    return Consensus("staple", probability >= threshold, probability, annotators)


def consensus(masks: list[np.ndarray], method: Method) -> Consensus:
    if method == "staple":
        return staple(masks)
    if method == "majority":
        return majority_vote(masks)
    raise ValueError(f'unknown consensus method "{method}" (staple or majority)')
