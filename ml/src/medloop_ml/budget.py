"""Wall-clock training budgets and bounded views of large images.

A ``minutes`` budget counts everything from the caller's start to the written model: loading,
patch sampling, optimisation steps, validation, previews, checkpoints, the threshold choice and
the ONNX export. The run measures what it spends as it goes and stops its optimisation early
enough for what is left: the work at each epoch's end (previews, validation, checkpoints; the
largest seen so far) and the work after the last epoch (estimated at the start from one timed
prediction of a bounded view). So a run ends within a few percent of its budget at any image
size, and the learning-rate schedule anneals over the time actually left for optimisation.

Views: previews, validation and the threshold choice work on a bounded crop of each image (at
most ``VIEW_SIDE`` pixels on a side, centred on the mask's foreground), so their cost does not
grow with the image: a 3504×2336 image costs what a 1024×1024 one does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from medloop_ml.data import Sample

# Largest side of the validation and threshold views, and of the per-epoch preview.
VIEW_SIDE = 1024
PREVIEW_SIDE = 512
# Previews may take this share of the optimisation time; rarer previews when they cost more.
PREVIEW_SHARE = 0.02
# The estimate of the final work is scaled by this, plus a fixed allowance (writing files).
FINISH_SAFETY = 1.3
FINISH_FIXED_SECONDS = 0.5
# Tracing the network to ONNX and writing it, beyond its two parity predictions.
EXPORT_SECONDS = 1.0


def bounded_view(sample: Sample, side: int) -> Sample:
    """A crop of at most ``side``×``side`` pixels of a sample, centred on its foreground.

    The centre is the mask's centre of mass (the image centre when there is no foreground or no
    mask), moved so the crop stays inside the image. An image that fits is returned whole.
    """
    height, width = sample.image.shape[:2]
    if height <= side and width <= side:
        return sample
    if sample.mask is not None and sample.mask.any():
        ys, xs = np.nonzero(sample.mask)
        cy, cx = int(ys.mean()), int(xs.mean())
    else:
        cy, cx = height // 2, width // 2
    h, w = min(side, height), min(side, width)
    y0 = min(max(cy - h // 2, 0), height - h)
    x0 = min(max(cx - w // 2, 0), width - w)
    window = (slice(y0, y0 + h), slice(x0, x0 + w))
    return replace(
        sample,
        image=np.ascontiguousarray(sample.image[window]),
        mask=None if sample.mask is None else np.ascontiguousarray(sample.mask[window]),
        fov=None if sample.fov is None else np.ascontiguousarray(sample.fov[window]),
    )


@dataclass
class WallBudget:
    """The time accounting of a ``minutes`` run.

    ``elapsed`` counts from ``started`` (``time.monotonic()`` when the caller began) plus the
    seconds of earlier attempts (a resumed run continues its predecessor's clock).
    """

    seconds: float
    started: float
    before: float = 0.0  # wall seconds spent by earlier attempts of this run
    finish: float = 0.0  # estimated seconds of the work after the last epoch
    epoch_end: float = 0.0  # the largest end-of-epoch work seen so far
    # Elapsed seconds when optimisation began (after loading and set-up): the learning-rate
    # schedule runs from here, so a slow start does not eat the warm-up.
    t0: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic)

    def elapsed(self) -> float:
        return self.before + (self.clock() - self.started)

    def begin_optimisation(self) -> None:
        """Mark the start of optimisation (kept when a resumed run restored it)."""
        if self.t0 is None:
            self.t0 = self.elapsed()

    def optimisation_span(self) -> float:
        """Seconds that optimisation may run to, from the run's start (at least 1 s)."""
        return max(1.0, self.seconds - self.finish - self.epoch_end)

    def progress(self) -> float:
        """Fraction of the optimisation time used: drives the learning-rate schedule."""
        t0 = self.t0 or 0.0
        span = self.optimisation_span() - t0
        if span <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.elapsed() - t0) / span))

    def done(self) -> bool:
        return self.elapsed() >= self.optimisation_span()

    def ends_after(self, work: float) -> bool:
        """Whether ``work`` more seconds (an epoch's end) reach the end of optimisation."""
        return self.elapsed() + work >= self.optimisation_span()

    def state(self) -> dict[str, float | None]:
        """What a checkpoint keeps so a resumed run continues the same accounting."""
        return {"t0": self.t0, "epoch_end": self.epoch_end}

    def plan_finish(self, view_seconds: float, views: int, window_seconds: float | None) -> None:
        """Estimate the final work: ``views`` predictions (threshold, validation) of about
        ``view_seconds`` each and, when ``window_seconds`` is given (one prediction of the export's
        parity view), the ONNX export with its two-way parity check."""
        work = view_seconds * views
        if window_seconds is not None:
            work += 2 * window_seconds + EXPORT_SECONDS
        self.finish = FINISH_SAFETY * work + FINISH_FIXED_SECONDS

    def saw_epoch_end(self, seconds: float) -> None:
        self.epoch_end = max(self.epoch_end, seconds)


def preview_period(preview_seconds: float, epoch_step_seconds: float) -> int:
    """Every how many epochs a preview is made so previews cost about PREVIEW_SHARE of the
    optimisation time (every epoch when they are cheap)."""
    if epoch_step_seconds <= 0:
        return 1
    return max(1, math.ceil(preview_seconds / (PREVIEW_SHARE * epoch_step_seconds)))
