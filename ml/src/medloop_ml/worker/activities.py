"""The activities of the ``gpu`` task queue (docs/architecture.md, "Activity contract").

Each activity is a plain (synchronous) function run by the worker in a thread pool. The
Temporal Python SDK's rule is that async activities must never block the event loop, and that
blocking work belongs in synchronous activities run on an ``activity_executor``. A
``ThreadPoolExecutor`` suits CPU/GPU-bound PyTorch: torch, NumPy and Pillow release the GIL inside
their kernels, so the worker's event loop keeps polling and heartbeating while a thread trains,
and nothing needs pickling (as a process pool would require).

``no_thread_cancel_exception=True`` turns off the SDK's habit of raising ``CancelledError``
asynchronously at an arbitrary bytecode of the thread (possibly in the middle
of writing a checkpoint); instead training asks ``should_stop()`` between steps and the activity
raises ``CancelledError`` itself once the engine has stopped cleanly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from medloop_ml.blobs import join_uri, uri_to_path
from medloop_ml.data import Sample, load_sample
from medloop_ml.evaluate import foreground_counts
from medloop_ml.io import read_mask, write_png_atomic
from medloop_ml.metrics import segmentation_metrics
from medloop_ml.probmap import read_prob_png, write_prob_png
from medloop_ml.worker.blobio import existing_dir, existing_file, prefix_dir, uri_for
from medloop_ml.worker.errors import bad_input, describe_validation_error, input_errors
from medloop_ml.worker.heartbeat import Heartbeater
from medloop_ml.worker.requests import (
    ConsensusRequest,
    EvaluateItem,
    EvaluateRequest,
    ImageMaskPair,
    PredictRequest,
    TrainRequest,
)

if TYPE_CHECKING:
    from medloop_ml.train import EpochReport

log = logging.getLogger(__name__)

METRIC_KEYS = ("f1", "iou", "cldice", "auc", "sensitivity", "specificity", "accuracy")

# Called after each epoch's heartbeat with (attempt, heartbeat details). Tests use it to make an
# attempt fail at a known epoch; the worker itself passes none.
EpochHook = Callable[[int, dict[str, Any]], None]


class WorkerStopping(ApplicationError):
    """The worker is shutting down: retryable, and the retry resumes from the checkpoint."""

    def __init__(self, what: str) -> None:
        super().__init__(f"worker shut down during {what}", type="WorkerShutdown")


def _stop_requested() -> bool:
    return activity.is_cancelled() or activity.is_worker_shutdown()


def _raise_if_stopped(what: str) -> None:
    if activity.is_cancelled():
        raise CancelledError(f"{what} cancelled")
    if activity.is_worker_shutdown():
        raise WorkerStopping(what)


def _json_number(value: Any) -> float | None:
    """JSON has no NaN: an undefined metric (e.g. AUC of an all-background truth) is null."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


EMBEDDING_GRID = 8


def prob_embedding(prob: np.ndarray, grid: int = EMBEDDING_GRID) -> list[float]:
    """The probability map averaged over a grid×grid tiling (row-major, 4 decimals): where the
    model sees the target, for the `diverse` selection strategy (activities/select.ts), which
    keeps near-duplicate images out of one batch. 64 numbers per image keep a pool of a
    thousand images well inside a Temporal payload."""
    rows = np.array_split(np.arange(prob.shape[0]), grid)
    cols = np.array_split(np.arange(prob.shape[1]), grid)
    return [round(float(prob[r[0]:r[-1] + 1, c[0]:c[-1] + 1].mean()), 4)
            for r in rows for c in cols]


def _mean(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in keys:
        values = [row[key] for row in rows if row.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def _previous_epoch(details: Sequence[Any]) -> dict[str, Any] | None:
    """The last epoch heartbeat of an earlier attempt, if there is one."""
    if details and isinstance(details[0], dict) and details[0].get("checkpoint_uri"):
        return details[0]
    return None


def _load_pairs(pairs: Sequence[ImageMaskPair], field: str) -> list[Sample]:
    samples = []
    for i, pair in enumerate(pairs):
        image = existing_file(pair.image_uri, f"{field}[{i}].image_uri")
        mask = existing_file(pair.mask_uri, f"{field}[{i}].mask_uri")
        fov = existing_file(pair.fov_uri, f"{field}[{i}].fov_uri") if pair.fov_uri else None
        samples.append(load_sample(image, mask, fov))
    return samples


def _init_model(uri: str | None) -> Path | None:
    """The model to fine-tune from: a run folder (its best.pt) or a checkpoint file."""
    if uri is None:
        return None
    path = uri_to_path(uri)
    if path.is_dir():
        existing_file(join_uri(uri, "best.pt"), "init_model_uri (best.pt)")
    elif not path.is_file():
        raise bad_input(f"missing model for init_model_uri: {uri}")
    return path


class GpuActivities:
    """The three activities; an instance is registered with the worker."""

    def __init__(self, *, after_epoch: EpochHook | None = None) -> None:
        self._after_epoch = after_epoch

    def all(self) -> list[Callable[..., Any]]:
        return [self.train_segmentation, self.predict_masks, self.evaluate_masks,
                self.consensus_masks]

    # -- train ------------------------------------------------------------------------------

    @activity.defn(name="train_segmentation", no_thread_cancel_exception=True)
    def train_segmentation(self, params: dict[str, Any]) -> dict[str, Any]:
        info = activity.info()
        # Heartbeat from the first moment: loading PyTorch and the images can outlast a short
        # heartbeat timeout on a busy machine.
        with Heartbeater(initial=tuple(info.heartbeat_details)) as heart:
            return self._train(params, info, heart)

    def _train(
        self, params: dict[str, Any], info: activity.Info, heart: Heartbeater
    ) -> dict[str, Any]:
        started = time.monotonic()  # a minutes budget counts from here, the imports included
        # PyTorch and MONAI load on first use, so the worker registers with Temporal at once.
        from medloop_ml.onnx_export import ParityError
        from medloop_ml.train import TrainConfig, TrainingStopped, train_model

        with input_errors("train_segmentation input"):
            req = TrainRequest.model_validate(params)
        try:
            # No progress bar in a worker's log unless the caller asks for one.
            config = TrainConfig.model_validate({"progress": False, **(req.config or {})})
        except ValidationError as err:
            raise bad_input(describe_validation_error(err, "train_segmentation config")) from err
        with input_errors("train_segmentation input"):
            train = _load_pairs(req.train, "train")
            val = _load_pairs(req.val, "val")
            init_model = _init_model(req.init_model_uri)
            run_dir = prefix_dir(req.out_prefix)

        previous = _previous_epoch(info.heartbeat_details)
        resume_from = self._resume_checkpoint(previous)
        resumed_from_epoch = int(previous["epoch"]) if previous and resume_from else 0
        log.info(
            "train_segmentation run=%s attempt=%d train=%d val=%d resumed_from_epoch=%d",
            req.run_id, info.attempt, len(train), len(val), resumed_from_epoch,
        )

        def on_epoch(report: EpochReport) -> None:
            details = self._epoch_details(report, req.out_prefix, run_dir)
            heart.beat(details)
            log.info(
                "run=%s epoch %d/%d loss=%s val_dice=%s", req.run_id, report.epoch,
                report.epochs, details["loss"], details["val_dice"],
            )
            if self._after_epoch is not None:
                self._after_epoch(info.attempt, details)

        try:
            result = train_model(
                train, val, config, run_dir,
                init_model=None if resume_from else init_model,
                resume_from=resume_from,
                on_epoch=on_epoch,
                should_stop=_stop_requested,
                started=started,
                export_onnx=True,
            )
        except ParityError as err:  # deterministic: a retry would fail the same way
            raise ApplicationError(str(err), type="OnnxParity", non_retryable=True) from err
        except TrainingStopped as stopped:  # last.pt now holds the state to resume from
            _raise_if_stopped(f"training of run {req.run_id} (epoch {stopped.epoch})")
            raise
        except ValueError as err:  # the engine's word for unusable input
            raise bad_input(f"bad train_segmentation input: {err}") from err
        _raise_if_stopped(f"training of run {req.run_id}")

        # train_model exported model.onnx inside the budget (parity on a validation image's
        # bounded view, else a training image's).
        onnx_path = result.onnx_path
        assert onnx_path is not None
        log.info("run=%s exported ONNX (max |diff| %.2e)", req.run_id, result.onnx_max_abs_diff)
        metrics = result.metrics
        return {
            "model_uri": join_uri(req.out_prefix),  # a folder URI: it ends with "/"
            "onnx_uri": uri_for(onnx_path, req.out_prefix, run_dir),
            "metrics": {
                "val_f1": _json_number(metrics.get("val_f1", metrics.get("f1"))),
                "val_auc": _json_number(metrics.get("val_auc", metrics.get("auc"))),
                "threshold": float(result.threshold),
            },
            "epochs": int(result.epochs),
            "seconds": round(time.monotonic() - started, 3),
            "preview_uris": [uri_for(p, req.out_prefix, run_dir) for p in result.preview_paths],
            "curves_uri": uri_for(result.curves_path, req.out_prefix, run_dir),
            "resumed_from_epoch": resumed_from_epoch,
        }

    @staticmethod
    def _resume_checkpoint(previous: dict[str, Any] | None) -> Path | None:
        if previous is None:
            return None
        path = uri_to_path(previous["checkpoint_uri"])
        if not path.is_file():  # the earlier attempt ran on a machine whose files are gone
            log.warning("checkpoint %s is gone; training from the start", path)
            return None
        return path

    @staticmethod
    def _epoch_details(report: EpochReport, out_prefix: str, run_dir: Path) -> dict[str, Any]:
        return {
            "epoch": int(report.epoch),
            "epochs": int(report.epochs),
            "loss": _json_number(report.loss),
            "val_dice": _json_number(report.val_dice),
            "checkpoint_uri": uri_for(Path(report.checkpoint_path), out_prefix, run_dir),
            "preview_uri": (
                uri_for(Path(report.preview_path), out_prefix, run_dir)
                if report.preview_path
                else None
            ),
        }

    # -- predict ----------------------------------------------------------------------------

    @activity.defn(name="predict_masks", no_thread_cancel_exception=True)
    def predict_masks(self, params: dict[str, Any]) -> dict[str, Any]:
        with Heartbeater() as heart:
            return self._predict(params, heart)

    def _predict(self, params: dict[str, Any], heart: Heartbeater) -> dict[str, Any]:
        from medloop_ml.infer import Predictor

        with input_errors("predict_masks input"):
            req = PredictRequest.model_validate(params)
            run_dir = existing_dir(req.model_uri, "model_uri")
            existing_file(join_uri(req.model_uri, "best.pt"), "model_uri (best.pt)")
            # Every input is checked before the first output is written.
            paths = [
                existing_file(item.image_uri, f"items[{i}].image_uri")
                for i, item in enumerate(req.items)
            ]
            fov_paths = [
                existing_file(item.fov_uri, f"items[{i}].fov_uri") if item.fov_uri else None
                for i, item in enumerate(req.items)
            ]
            out_dir = prefix_dir(req.out_prefix)
        try:
            predictor = Predictor.from_run(run_dir, threshold=req.threshold, device="auto")
        except ValueError as err:  # an unreadable or incompatible checkpoint
            raise bad_input(f"bad predict_masks model_uri {req.model_uri}: {err}") from err
        total = len(req.items)
        log.info("predict_masks model=%s images=%d", req.model_uri, total)
        heart.beat({"done": 0, "total": total})
        results: list[dict[str, Any]] = []
        for i, (item, path, fov_path) in enumerate(zip(req.items, paths, fov_paths, strict=True)):
            _raise_if_stopped("prediction")
            with input_errors(f"predict_masks items[{i}]"):
                sample = load_sample(path, None, fov_path)
            pred = predictor.predict(sample.image, fov=predictor.fov_of(sample))
            write_png_atomic(out_dir / f"{item.image_id}.png", pred.mask)
            # 16-bit (round(p·65535)): evaluate_masks ranks these for the AUC, and 8 bits tie
            # pixels that the float map ranks apart.
            write_prob_png(out_dir / f"{item.image_id}_prob.png", pred.prob)
            results.append({
                "image_id": item.image_id,
                "mask_uri": join_uri(req.out_prefix, f"{item.image_id}.png"),
                "prob_uri": join_uri(req.out_prefix, f"{item.image_id}_prob.png"),
                "uncertainty": _json_number(pred.uncertainty) if req.uncertainty else None,
                "embedding": prob_embedding(pred.prob) if req.uncertainty else None,
            })
            heart.beat({"done": i + 1, "total": total})
        return {"items": results}

    # -- evaluate ---------------------------------------------------------------------------

    @activity.defn(name="evaluate_masks", no_thread_cancel_exception=True)
    def evaluate_masks(self, params: dict[str, Any]) -> dict[str, Any]:
        with Heartbeater() as heart:
            return self._evaluate(params, heart)

    def _evaluate(self, params: dict[str, Any], heart: Heartbeater) -> dict[str, Any]:
        with input_errors("evaluate_masks input"):
            req = EvaluateRequest.model_validate(params)
        total = len(req.items)
        heart.beat({"done": 0, "total": total})
        per_image: list[dict[str, Any]] = []
        for i, item in enumerate(req.items):
            _raise_if_stopped("evaluation")
            with input_errors(f"evaluate_masks items[{i}]"):
                pred, truth, prob, fov = self._load_eval_item(i, item)
            try:
                scores = segmentation_metrics(pred, truth, prob=prob, fov=fov)
            except ValueError as err:  # e.g. an empty field of view
                raise bad_input(f"bad evaluate_masks items[{i}]: {err}") from err
            image_id = item.image_id if item.image_id is not None else (
                uri_to_path(item.pred_uri).stem
            )
            per_image.append(
                {"image_id": image_id, **{k: _json_number(scores[k]) for k in METRIC_KEYS},
                 **foreground_counts(pred, truth)}
            )
            heart.beat({"done": i + 1, "total": total})
        log.info("evaluate_masks images=%d", total)
        return {"per_image": per_image, "mean": _mean(per_image, METRIC_KEYS)}

    @staticmethod
    def _load_eval_item(
        i: int, item: EvaluateItem
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        pred = read_mask(existing_file(item.pred_uri, f"items[{i}].pred_uri"))
        truth = read_mask(existing_file(item.truth_uri, f"items[{i}].truth_uri"))
        prob = fov = None
        if item.prob_uri:
            # 16-bit maps (predict_masks) and older 8-bit ones, each scaled by its bit depth.
            prob = read_prob_png(existing_file(item.prob_uri, f"items[{i}].prob_uri"))
        if item.fov_uri:
            fov = read_mask(existing_file(item.fov_uri, f"items[{i}].fov_uri"))
        for name, arr in (("truth", truth), ("prob", prob), ("fov", fov)):
            if arr is not None and arr.shape != pred.shape:
                raise bad_input(
                    f"bad evaluate_masks items[{i}]: {name} is {arr.shape[1]}x{arr.shape[0]} "
                    f"but the prediction is {pred.shape[1]}x{pred.shape[0]} ({item.pred_uri})"
                )
        return pred, truth, prob, fov

    # -- consensus --------------------------------------------------------------------------

    @activity.defn(name="consensus_masks", no_thread_cancel_exception=True)
    def consensus_masks(self, params: dict[str, Any]) -> dict[str, Any]:
        with Heartbeater() as heart:
            return self._consensus(params, heart)

    def _consensus(self, params: dict[str, Any], heart: Heartbeater) -> dict[str, Any]:
        """Several annotators' masks per image → the consensus mask, its probability map and
        each annotator's sensitivity and specificity (medloop_ml.consensus: STAPLE or majority)."""
        from medloop_ml.consensus import consensus

        with input_errors("consensus_masks input"):
            req = ConsensusRequest.model_validate(params)
            paths = [
                [existing_file(uri, f"items[{i}].mask_uris[{j}]")
                 for j, uri in enumerate(item.mask_uris)]
                for i, item in enumerate(req.items)
            ]
            out_dir = prefix_dir(req.out_prefix)
        total = len(req.items)
        heart.beat({"done": 0, "total": total})
        results: list[dict[str, Any]] = []
        for i, (item, files) in enumerate(zip(req.items, paths, strict=True)):
            _raise_if_stopped("consensus")
            with input_errors(f"consensus_masks items[{i}]"):
                masks = [read_mask(f) for f in files]
            try:
                result = consensus(masks, req.method)
            except ValueError as err:  # masks of different sizes
                raise bad_input(f"bad consensus_masks items[{i}]: {err}") from err
            write_png_atomic(out_dir / f"{item.image_id}_consensus.png", result.mask)
            write_prob_png(out_dir / f"{item.image_id}_consensus_prob.png", result.probability)
            results.append({
                "image_id": item.image_id,
                "method": result.method,
                "mask_uri": join_uri(req.out_prefix, f"{item.image_id}_consensus.png"),
                "prob_uri": join_uri(req.out_prefix, f"{item.image_id}_consensus_prob.png"),
                "annotators": [
                    {"sensitivity": _json_number(a.sensitivity),
                     "specificity": _json_number(a.specificity)}
                    for a in result.annotators
                ],
            })
            heart.beat({"done": i + 1, "total": total})
        log.info("consensus_masks method=%s images=%d", req.method, total)
        return {"items": results}
