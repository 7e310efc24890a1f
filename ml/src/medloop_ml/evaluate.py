"""Evaluate predicted masks against truth masks, per image and on average, inside the FOV.

Folder layout: the prediction folder holds ``<stem>.png`` (binary masks, > 0 is vessel) and
optionally ``<stem>_prob.png`` (probability map, used for the AUC when present: 16-bit as
``predict`` writes it, or an older 8-bit one, scaled by its bit depth; :mod:`.probmap`).
The truth of ``<stem>`` is ``<stem><truth_suffix>.*`` in the truth folder. The FOV comes from
``fov_dir`` (``<stem>.*``), else is derived from ``<stem>.*`` in ``images_dir``
(:mod:`medloop_ml.fov`), else is the whole image.

Outputs: ``report.json`` (``{"per_image": [{"stem", f1, iou, ...}], "mean": {...}}``),
``report.md``, ``report.csv`` and ``overlays/<stem>.png`` where

- true positive  = white  (255, 255, 255)
- false positive = red    (255, 0, 0)
- false negative = blue   (0, 96, 255)
- true negative  = black; outside the FOV = dark grey (48, 48, 48).
"""

from __future__ import annotations

import csv
import io as _io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .data import DataError, index_by_stem
from .fov import derive_fov
from .io import (
    ImageReadError,
    image_size,
    read_mask,
    read_rgb,
    write_png_atomic,
    write_text_atomic,
)
from .metrics import METRIC_KEYS, mean_metrics, segmentation_metrics
from .probmap import ProbMapError, prob_png_size, read_prob_png

TP_COLOUR = (255, 255, 255)
FP_COLOUR = (255, 0, 0)
FN_COLOUR = (0, 96, 255)
OUTSIDE_COLOUR = (48, 48, 48)
PROB_SUFFIX = "_prob"


@dataclass
class EvalItem:
    """One image to score: arrays already loaded."""

    stem: str
    pred: np.ndarray
    truth: np.ndarray
    prob: np.ndarray | None = None
    fov: np.ndarray | None = None


@dataclass
class EvalSource:
    """Where one image's files are; loaded on demand so a large set is not held in memory."""

    stem: str
    pred: Path
    truth: Path
    prob: Path | None = None
    fov: Path | None = None
    image: Path | None = None

    def check(self) -> None:
        """Cheap up-front check from the file headers: every file readable, sizes equal."""
        truth_size = _read(image_size, self.truth)
        for path in (self.pred, self.prob, self.fov, self.image):
            if path is not None:
                # The probability map's own reader: its header must be a map's, not any image's.
                size_of = prob_png_size if path is self.prob else image_size
                _check_shape(truth_size, _read(size_of, path), self.truth, path)

    def load(self) -> EvalItem:
        pred = _read(read_mask, self.pred)
        truth = _read(read_mask, self.truth)
        _same_size(truth, pred, self.truth, self.pred)
        prob = None
        if self.prob is not None:
            prob = _read(read_prob_png, self.prob)
            _same_size(truth, prob, self.truth, self.prob)
        fov = None
        if self.fov is not None:
            fov = _read(read_mask, self.fov)
            _same_size(truth, fov, self.truth, self.fov)
        elif self.image is not None:
            image = _read(read_rgb, self.image)
            _same_size(truth, image, self.truth, self.image)
            fov = derive_fov(image)
        return EvalItem(self.stem, pred, truth, prob, fov)


def _read(reader: Callable[[Path], Any], path: Path) -> Any:
    try:
        return reader(path)
    except ImageReadError as exc:
        raise DataError(f"unreadable file: {path} ({exc.__cause__ or exc})") from exc
    except ProbMapError as exc:  # its message already names the file and the reason
        raise DataError(str(exc)) from exc


def _check_shape(
    truth: tuple[int, ...], other: tuple[int, ...], truth_path: Path, other_path: Path
) -> None:
    if truth[:2] != other[:2]:
        th, tw = truth[:2]
        oh, ow = other[:2]
        raise DataError(
            f"size mismatch: {other_path} is {ow}x{oh} but truth {truth_path.name} is {tw}x{th}"
        )


def _same_size(truth: np.ndarray, other: np.ndarray, truth_path: Path, other_path: Path) -> None:
    _check_shape(truth.shape, other.shape, truth_path, other_path)


def collect_sources(
    pred_dir: str | Path,
    truth_dir: str | Path,
    truth_suffix: str = "",
    fov_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
) -> list[EvalSource]:
    """Match every prediction with its truth (and probability, FOV or image) by stem."""
    preds = index_by_stem(pred_dir, "prediction")
    probs = {s[: -len(PROB_SUFFIX)]: p for s, p in preds.items() if s.endswith(PROB_SUFFIX)}
    masks = {s: p for s, p in preds.items() if not s.endswith(PROB_SUFFIX)}
    if not masks:
        raise DataError(f"no predicted masks in {pred_dir}")
    truths = index_by_stem(truth_dir, "truth")
    fovs = index_by_stem(fov_dir, "FOV") if fov_dir is not None else None
    images = index_by_stem(images_dir, "images") if images_dir is not None else None
    sources = []
    for stem in sorted(masks):
        truth = truths.get(stem + truth_suffix)
        if truth is None:
            raise DataError(
                f"no truth mask for prediction {masks[stem].name}: expected "
                f"{stem}{truth_suffix}.* in {truth_dir}"
            )
        src = EvalSource(stem, masks[stem], truth, prob=probs.get(stem))
        if fovs is not None:
            if stem not in fovs:
                raise DataError(f"no FOV mask for prediction {masks[stem].name} in {fov_dir}")
            src.fov = fovs[stem]
        elif images is not None:
            if stem not in images:
                raise DataError(f"no image for prediction {masks[stem].name} in {images_dir}")
            src.image = images[stem]
        src.check()
        sources.append(src)
    return sources


def error_overlay(pred: np.ndarray, truth: np.ndarray, fov: np.ndarray | None = None) -> np.ndarray:
    """RGB picture of the agreement: TP white, FP red, FN blue, TN black, outside FOV grey."""
    out = np.zeros((*truth.shape, 3), dtype=np.uint8)
    out[pred & truth] = TP_COLOUR
    out[pred & ~truth] = FP_COLOUR
    out[~pred & truth] = FN_COLOUR
    if fov is not None:
        out[~fov] = OUTSIDE_COLOUR
    return out


def score_item(item: EvalItem) -> dict[str, Any]:
    """Metrics of one item as a report row."""
    metrics = segmentation_metrics(item.pred, item.truth, prob=item.prob, fov=item.fov)
    return {"stem": item.stem, **metrics, **foreground_counts(item.pred, item.truth)}


def foreground_counts(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Foreground pixels of the prediction and the truth over the whole image (not only the FOV):
    what the masks were read as, under the ingest contract's mask rule."""
    return {"pred_pixels": int(pred.sum()), "truth_pixels": int(truth.sum())}


def build_report(rows: Sequence[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """The report object: per-image rows, their mean, and any extra fields."""
    return {"per_image": list(rows), "mean": mean_metrics(rows), "count": len(rows), **extra}


def markdown_table(report: dict[str, Any]) -> str:
    """Per-image rows and the mean as a Markdown table (4 decimals)."""
    head = "| image | " + " | ".join(METRIC_KEYS) + " |"
    sep = "|---|" + "---:|" * len(METRIC_KEYS)
    lines = [head, sep]
    for row in report["per_image"]:
        cells = " | ".join(f"{row[k]:.4f}" for k in METRIC_KEYS)
        lines.append(f"| {row['stem']} | {cells} |")
    mean = report["mean"]
    lines.append("| **mean** | " + " | ".join(f"**{mean[k]:.4f}**" for k in METRIC_KEYS) + " |")
    return "\n".join(lines)


def report_markdown(report: dict[str, Any], title: str = "Segmentation evaluation") -> str:
    legend = (
        "Overlays in `overlays/`: true positive white, false positive red, false negative blue, "
        "true negative black, outside the FOV dark grey."
    )
    fov = report.get("fov_source", "")
    lines = [f"# {title}", "", f"{report['count']} images; metrics inside the field of view"]
    lines[-1] += f" ({fov})." if fov else "."
    lines += ["", markdown_table(report), "", legend, ""]
    return "\n".join(lines)


def report_csv(report: dict[str, Any]) -> str:
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["stem", *METRIC_KEYS])
    for row in report["per_image"]:
        writer.writerow([row["stem"], *(f"{row[k]:.6f}" for k in METRIC_KEYS)])
    writer.writerow(["mean", *(f"{report['mean'][k]:.6f}" for k in METRIC_KEYS)])
    return buf.getvalue()


def write_report(report: dict[str, Any], out_dir: Path, title: str) -> None:
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out_dir / "report.md", report_markdown(report, title))
    write_text_atomic(out_dir / "report.csv", report_csv(report))


def evaluate_items(
    items: Sequence[EvalItem | EvalSource],
    out_dir: str | Path | None = None,
    *,
    title: str = "Segmentation evaluation",
    progress: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Score every item; with ``out_dir`` write the reports and one overlay PNG per image."""
    if not items:
        raise DataError("nothing to evaluate: the set is empty")
    out = Path(out_dir) if out_dir is not None else None
    rows = []
    for entry in tqdm(items, desc="evaluate", unit="image", disable=not progress):
        item = entry.load() if isinstance(entry, EvalSource) else entry
        rows.append(score_item(item))
        if out is not None:
            overlay = error_overlay(item.pred, item.truth, item.fov)
            write_png_atomic(out / "overlays" / f"{item.stem}.png", overlay)
    report = build_report(rows, **extra)
    if out is not None:
        write_report(report, out, title)
    return report


def evaluate_folders(
    pred_dir: str | Path,
    truth_dir: str | Path,
    out_dir: str | Path | None,
    *,
    truth_suffix: str = "",
    fov_dir: str | Path | None = None,
    images_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a prediction folder against a truth folder (see the module docstring)."""
    sources = collect_sources(pred_dir, truth_dir, truth_suffix, fov_dir, images_dir)
    if fov_dir is not None:
        fov_source = "FOV masks from a folder"
    elif images_dir is not None:
        fov_source = "FOV derived from the images"
    else:
        fov_source = "whole image"
    with_prob = sum(s.prob is not None for s in sources)
    auc_source = "probability maps" if with_prob == len(sources) else "binary masks"
    if 0 < with_prob < len(sources):
        auc_source = f"probability maps for {with_prob} of {len(sources)} images, else masks"
    return evaluate_items(
        sources, out_dir, progress=progress, fov_source=fov_source, auc_source=auc_source
    )
