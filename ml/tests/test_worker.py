"""The gpu worker's activities through a real Temporal dev server.

A tiny generated fundus-like set (64×64 discs with dark "vessels") keeps training to seconds.
Each activity runs through a real workflow → ``gpu`` task queue round trip; heartbeat details are
checked with the SDK's ActivityEnvironment where a round trip cannot see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpu_call_workflow import WORKFLOW_QUEUE, CallGpuActivity, GpuCall
from PIL import Image
from temporal_dev_server import free_port, temporal_dev_server
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from medloop_ml.io import read_mask
from medloop_ml.worker import GpuActivities, build_worker, serve
from medloop_ml.worker.activities import prob_embedding
from medloop_ml.worker.heartbeat import Heartbeater

SIZE = 64
HEARTBEAT_KEYS = {"epoch", "epochs", "loss", "val_dice", "checkpoint_uri", "preview_uri"}
# A network small enough for a few seconds per run on two cores.
TINY = {"patch_size": 32, "infer_patch": 64, "batch_size": 4, "patches_per_epoch": 16,
        "channels": 4, "depth": 2, "res_units": 0, "seed": 3, "threads": 1}


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blob_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("blobs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLOOP_BLOB_ROOT", str(root))
        yield root


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temporal_dev_server(tmp_path_factory.mktemp("temporal")) as address:
        yield address


def _fundus(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An orange disc on black with a few dark branching lines; the lines are the mask."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (yy - SIZE / 2) ** 2 + (xx - SIZE / 2) ** 2 < (SIZE * 0.46) ** 2
    vessels = np.zeros((SIZE, SIZE), dtype=bool)
    for _ in range(4):
        y0, x0 = rng.integers(8, SIZE - 8, size=2)
        angle = rng.uniform(0, np.pi)
        t = np.linspace(-SIZE, SIZE, 4 * SIZE)
        ys = np.clip((y0 + t * np.sin(angle)).astype(int), 0, SIZE - 1)
        xs = np.clip((x0 + t * np.cos(angle)).astype(int), 0, SIZE - 1)
        vessels[ys, xs] = True
        vessels[np.clip(ys + 1, 0, SIZE - 1), xs] = True
    vessels &= disc
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    image[disc] = (200, 90, 40)
    image[vessels] = (110, 30, 15)
    noise = rng.integers(0, 12, size=image.shape, dtype=np.uint8)
    image[disc] += noise[disc]
    return image, vessels


@pytest.fixture(scope="module")
def dataset(blob_root: Path) -> list[dict[str, str]]:
    """Five image/mask pairs as blob URIs (the last one kept for prediction only)."""
    rng = np.random.default_rng(11)
    folder = blob_root / "data"
    folder.mkdir()
    pairs = []
    for i in range(5):
        image, mask = _fundus(rng)
        Image.fromarray(image).save(folder / f"img{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"img{i}_mask.png")
        pairs.append({"image_uri": f"blob://data/img{i}.png", "mask_uri": f"blob://data/img{i}_mask.png"})
    return pairs


def train_input(dataset: list[dict[str, str]], run_id: str, **config: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "train": dataset[:3],
        "val": dataset[3:4],
        "config": {**TINY, **config},
        "out_prefix": f"blob://runs/{run_id}/",
    }


# -- running activities through the server ------------------------------------------------


async def _with_workers(
    address: str,
    activities: GpuActivities,
    body: Callable[[Client], Any],
) -> Any:
    client = await Client.connect(address)
    with ThreadPoolExecutor(max_workers=1) as executor:
        async with (
            Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[CallGpuActivity]),
            build_worker(client, executor, "gpu", activities=activities),
        ):
            return await body(client)


async def _run(address: str, body: Callable[[Client], Any]) -> Any:
    return await body(await Client.connect(address))


async def _start(client: Client, call: GpuCall) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        CallGpuActivity.run, call, id=f"test-{uuid.uuid4()}", task_queue=WORKFLOW_QUEUE
    )


Outcome = tuple[dict[str, Any] | BaseException, list[Any]]


async def _outcome(client: Client, call: GpuCall) -> Outcome:
    """Run ``call`` to its end: its result (or the workflow's failure) and the history events."""
    handle = await _start(client, call)
    try:
        outcome: dict[str, Any] | BaseException = await handle.result()
    except WorkflowFailureError as err:
        outcome = err
    return outcome, [e async for e in handle.fetch_history_events()]


def run_calls(
    address: str, calls: list[GpuCall], activities: GpuActivities | None = None
) -> list[Outcome]:
    async def body(client: Client) -> list[Outcome]:
        return [await _outcome(client, call) for call in calls]

    return asyncio.run(_with_workers(address, activities or GpuActivities(), body))


def run_call(address: str, call: GpuCall, activities: GpuActivities | None = None) -> Outcome:
    return run_calls(address, [call], activities)[0]


def activity_failure(outcome: Any) -> BaseException:
    assert isinstance(outcome, WorkflowFailureError), outcome
    assert isinstance(outcome.cause, ActivityError)
    assert outcome.cause.cause is not None
    return outcome.cause.cause


def started_attempts(events: list[Any]) -> list[int]:
    return [
        e.activity_task_started_event_attributes.attempt
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


# -- training once, shared by the predict and evaluate tests --------------------------------


class EpochLog:
    """Records (attempt, heartbeat details) per epoch; optionally fails or signals at an epoch."""

    def __init__(self, fail_attempt_at_epoch: int | None = None) -> None:
        self.seen: list[tuple[int, dict[str, Any]]] = []
        self.fail_at = fail_attempt_at_epoch
        self.first_epoch_done = threading.Event()

    def __call__(self, attempt: int, details: dict[str, Any]) -> None:
        self.seen.append((attempt, details))
        self.first_epoch_done.set()
        if self.fail_at is not None and attempt == 1 and details["epoch"] == self.fail_at:
            raise RuntimeError(f"injected failure after epoch {self.fail_at}")


@pytest.fixture(scope="module")
def trained(temporal: str, dataset: list[dict[str, str]]) -> tuple[dict[str, Any], EpochLog]:
    log = EpochLog()
    call = GpuCall("train_segmentation", train_input(dataset, "base", epochs=2))
    outcome, _ = run_call(temporal, call, GpuActivities(after_epoch=log))
    assert isinstance(outcome, dict), outcome
    return outcome, log


def test_train_segmentation_returns_model_onnx_previews_and_heartbeats(
    trained: tuple[dict[str, Any], EpochLog], blob_root: Path
) -> None:
    result, log = trained
    assert result["model_uri"] == "blob://runs/base/"
    assert result["epochs"] == 2
    assert result["resumed_from_epoch"] == 0
    run_dir = blob_root / "runs" / "base"
    for name in ("best.pt", "last.pt", "model.json"):
        assert (run_dir / name).is_file(), name
    assert result["onnx_uri"] == "blob://runs/base/model.onnx"
    assert (run_dir / "model.onnx").stat().st_size > 0
    assert result["curves_uri"].startswith("blob://runs/base/")
    assert (blob_root / result["curves_uri"][len("blob://") :]).is_file()
    assert len(result["preview_uris"]) == 2
    for uri in result["preview_uris"]:
        assert (blob_root / uri[len("blob://") :]).is_file()
    metrics = result["metrics"]
    assert 0.0 <= metrics["val_f1"] <= 1.0
    assert 0.0 < metrics["threshold"] < 1.0
    # One heartbeat per epoch, each naming a checkpoint that exists.
    assert [(a, d["epoch"], d["epochs"]) for a, d in log.seen] == [(1, 1, 2), (1, 2, 2)]
    for _, details in log.seen:
        assert set(details) == HEARTBEAT_KEYS
        assert (blob_root / details["checkpoint_uri"][len("blob://") :]).is_file()
        assert details["loss"] > 0


def test_predict_masks_writes_mask_and_probability_per_image(
    temporal: str, trained: tuple[dict[str, Any], EpochLog], dataset: list[dict[str, str]],
    blob_root: Path,
) -> None:
    result, _ = trained
    items = [{"image_id": 7, "image_uri": dataset[4]["image_uri"]},  # a database id
             {"image_id": "b", "image_uri": dataset[3]["image_uri"]}]
    call = GpuCall("predict_masks", {"model_uri": result["model_uri"], "items": items,
                                     "out_prefix": "blob://pred/base/"})
    outcome, _ = run_call(temporal, call)
    assert isinstance(outcome, dict), outcome
    assert [i["image_id"] for i in outcome["items"]] == [7, "b"]
    for item in outcome["items"]:
        assert item["mask_uri"] == f"blob://pred/base/{item['image_id']}.png"
        assert item["prob_uri"] == f"blob://pred/base/{item['image_id']}_prob.png"
        mask = np.asarray(Image.open(blob_root / "pred" / "base" / f"{item['image_id']}.png"))
        prob = np.asarray(Image.open(blob_root / "pred" / "base" / f"{item['image_id']}_prob.png"))
        assert mask.shape == prob.shape == (SIZE, SIZE)
        assert prob.dtype == np.uint16  # 16-bit maps, round(p·65535)
        assert set(np.unique(mask)) <= {0, 255}
        assert isinstance(item["uncertainty"], float) and item["uncertainty"] >= 0
        # The embedding for the `diverse` strategy: the probability map on an 8×8 grid.
        expected = prob_embedding(prob.astype(np.float64) / 65535)
        assert len(item["embedding"]) == 64
        assert np.allclose(item["embedding"], expected, atol=1e-3)
    assert not [p for p in (blob_root / "pred" / "base").iterdir() if p.name.startswith(".")]


def test_prob_embedding_averages_the_map_over_an_eight_by_eight_grid() -> None:
    prob = np.zeros((20, 18), np.float32)
    prob[:, :9] = 1.0  # the left half
    emb = np.array(prob_embedding(prob)).reshape(8, 8)
    # 18 columns in 8 tiles (numpy's array_split): 3, 3, 2, 2, 2, 2, 2, 2 columns; the fourth
    # tile holds columns 8 (target) and 9 (background).
    assert np.allclose(emb[:, :3], 1.0) and np.allclose(emb[:, 3], 0.5)
    assert np.allclose(emb[:, 4:], 0.0)


def test_predict_masks_heartbeats_per_image_and_honours_threshold(
    trained: tuple[dict[str, Any], EpochLog], dataset: list[dict[str, str]], blob_root: Path
) -> None:
    result, _ = trained
    items = [{"image_id": f"i{i}", "image_uri": dataset[i]["image_uri"]} for i in range(3)]

    def predict(prefix: str, **options: Any) -> tuple[dict[str, Any], list[Any], list[Any]]:
        beats: list[Any] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: beats.append(details[0] if details else None)
        params = {"model_uri": result["model_uri"], "items": items, "out_prefix": prefix,
                  **options}
        out = env.run(GpuActivities().predict_masks, params)
        folder = blob_root / prefix[len("blob://") :]
        masks = [read_mask(folder / f"{item['image_id']}.png") for item in out["items"]]
        return out, beats, masks

    stored, beats, stored_masks = predict("blob://pred/stored/")
    assert [b for b in beats if b] == [{"done": d, "total": 3} for d in range(4)]
    assert all(isinstance(item["uncertainty"], float) for item in stored["items"])
    strict, _, strict_masks = predict("blob://pred/strict/", threshold=0.999, uncertainty=False)
    assert all(item["uncertainty"] is None for item in strict["items"])
    # The stored threshold marks vessels; 0.999 keeps only a subset of them.
    assert sum(int(m.sum()) for m in stored_masks) > sum(int(m.sum()) for m in strict_masks)
    for loose, tight in zip(stored_masks, strict_masks, strict=True):
        assert not (tight & ~loose).any()


def test_train_segmentation_fine_tunes_from_an_earlier_model_without_validation_images(
    temporal: str, trained: tuple[dict[str, Any], EpochLog], dataset: list[dict[str, str]]
) -> None:
    base, base_log = trained
    log = EpochLog()
    params = {**train_input(dataset, "finetune", epochs=1), "val": [],
              "init_model_uri": base["model_uri"]}
    outcome, _ = run_call(temporal, GpuCall("train_segmentation", params),
                          GpuActivities(after_epoch=log))
    assert isinstance(outcome, dict), outcome
    assert outcome["epochs"] == 1 and outcome["onnx_uri"].endswith("/model.onnx")
    assert outcome["metrics"]["val_f1"] is None  # nothing to validate on
    assert log.seen[0][1]["val_dice"] is None
    # Same seed, same patches as the base run's first epoch, but starting from trained weights.
    assert log.seen[0][1]["loss"] < base_log.seen[0][1]["loss"]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    done = threading.Event()
    while not condition():
        assert not done.wait(0.05) and timeout_s > 0, "condition not met"
        timeout_s -= 0.05


def test_heartbeater_repeats_the_latest_details_until_the_block_ends() -> None:
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=1.5))
    env.on_heartbeat = lambda *details: beats.append(details[0] if details else None)

    def body() -> int:
        # A retried attempt starts by repeating the previous attempt's details.
        with Heartbeater(initial=({"epoch": 3},)) as heart:
            _wait_for(lambda: beats.count({"epoch": 3}) >= 2)
            heart.beat({"epoch": 4})
            _wait_for(lambda: beats.count({"epoch": 4}) >= 3)
        return len(beats)

    count = env.run(body)
    assert set(map(str, beats)) == {"{'epoch': 3}", "{'epoch': 4}"}
    assert beats.index({"epoch": 4}) > beats.index({"epoch": 3})
    threading.Event().wait(1.0)
    assert len(beats) == count  # the thread stopped with the block


def test_evaluate_masks_scores_predictions_and_a_perfect_match(
    temporal: str, dataset: list[dict[str, str]], blob_root: Path
) -> None:
    perfect = {"image_id": "same", "pred_uri": dataset[0]["mask_uri"],
               "truth_uri": dataset[0]["mask_uri"]}
    # Another image's vessels as the "prediction": a poor but valid score, given as a file:// URI.
    other = {"pred_uri": (blob_root / "data" / "img1_mask.png").as_uri(),
             "truth_uri": dataset[0]["mask_uri"]}
    outcome, _ = run_call(temporal, GpuCall("evaluate_masks", {"items": [perfect, other]}))
    assert isinstance(outcome, dict), outcome
    same, poor = outcome["per_image"]
    assert same["image_id"] == "same" and poor["image_id"] == "img1_mask"
    assert same["f1"] == pytest.approx(1.0) and same["iou"] == pytest.approx(1.0)
    assert same["sensitivity"] == pytest.approx(1.0)
    assert poor["f1"] < 0.5
    assert outcome["mean"]["f1"] == pytest.approx((same["f1"] + poor["f1"]) / 2)
    assert set(outcome["mean"]) == {"f1", "iou", "cldice", "auc", "sensitivity", "specificity",
                                    "accuracy"}


def test_consensus_masks_writes_the_consensus_and_each_annotators_performance(
    temporal: str, dataset: list[dict[str, str]], blob_root: Path
) -> None:
    # Two annotators who agree and one who drew nothing: STAPLE follows the two.
    empty = blob_root / "data" / "empty_mask.png"
    Image.fromarray(np.zeros((SIZE, SIZE), dtype=np.uint8)).save(empty)
    mask = dataset[0]["mask_uri"]
    call = GpuCall("consensus_masks", {"out_prefix": "blob://consensus/c1/", "items": [
        {"image_id": "img0", "mask_uris": [mask, mask, "blob://data/empty_mask.png"]}]})
    outcome, _ = run_call(temporal, call)
    assert isinstance(outcome, dict), outcome
    (item,) = outcome["items"]
    assert item["method"] == "staple"
    assert item["mask_uri"] == "blob://consensus/c1/img0_consensus.png"
    consensus = read_mask(blob_root / "consensus" / "c1" / "img0_consensus.png")
    assert np.array_equal(consensus, read_mask(blob_root / "data" / "img0_mask.png"))
    sensitivities = [a["sensitivity"] for a in item["annotators"]]
    assert sensitivities == pytest.approx([1.0, 1.0, 0.0], abs=1e-6)
    assert (blob_root / "consensus" / "c1" / "img0_consensus_prob.png").exists()


# -- retry, cancellation, bad input ------------------------------------------------------------


def test_retried_attempt_resumes_from_last_heartbeat_checkpoint(
    temporal: str, dataset: list[dict[str, str]], blob_root: Path
) -> None:
    log = EpochLog(fail_attempt_at_epoch=1)
    call = GpuCall("train_segmentation", train_input(dataset, "retry", epochs=3), max_attempts=3)
    outcome, events = run_call(temporal, call, GpuActivities(after_epoch=log))
    assert isinstance(outcome, dict), outcome
    # Attempt 1 trained epoch 1 and failed; attempt 2 went on with epochs 2 and 3 only.
    assert [(a, d["epoch"]) for a, d in log.seen] == [(1, 1), (2, 2), (2, 3)]
    assert outcome["resumed_from_epoch"] == 1
    assert outcome["epochs"] == 3
    assert started_attempts(events) == [2]
    started = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    last_failure = started.activity_task_started_event_attributes.last_failure
    assert "injected failure after epoch 1" in last_failure.message


def test_cancellation_stops_training_and_reports_cancelled(
    temporal: str, dataset: list[dict[str, str]]
) -> None:
    log = EpochLog()
    call = GpuCall("train_segmentation", train_input(dataset, "cancel", epochs=500),
                   heartbeat_timeout_s=5.0)

    async def body(client: Client) -> tuple[BaseException | None, list[Any]]:
        handle = await _start(client, call)
        await asyncio.to_thread(log.first_epoch_done.wait, 120)
        await handle.cancel()
        error: BaseException | None = None
        try:
            await handle.result()
        except WorkflowFailureError as err:
            error = err
        return error, [e async for e in handle.fetch_history_events()]

    error, events = asyncio.run(_with_workers(temporal, GpuActivities(after_epoch=log), body))
    assert log.first_epoch_done.is_set()
    assert isinstance(error, WorkflowFailureError)
    assert isinstance(error.cause, CancelledError)
    kinds = [e.event_type for e in events]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds
    assert len(log.seen) < 500


def test_worker_shutdown_hands_training_to_the_next_worker_which_resumes(
    temporal: str, dataset: list[dict[str, str]]
) -> None:
    first, second = EpochLog(), EpochLog()
    call = GpuCall("train_segmentation", train_input(dataset, "handover", epochs=6),
                   max_attempts=3)

    async def body(client: Client) -> tuple[dict[str, Any], list[Any]]:
        async with Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[CallGpuActivity]):
            handle = await _start(client, call)
            with ThreadPoolExecutor(max_workers=1) as executor:
                async with build_worker(client, executor, activities=GpuActivities(
                        after_epoch=first)):
                    await asyncio.to_thread(first.first_epoch_done.wait, 120)
                # Leaving the block shut that worker down in the middle of training.
            with ThreadPoolExecutor(max_workers=1) as executor:
                async with build_worker(client, executor, activities=GpuActivities(
                        after_epoch=second)):
                    result = await handle.result()
            return result, [e async for e in handle.fetch_history_events()]

    result, events = asyncio.run(_run(temporal, body))
    assert first.seen and {a for a, _ in first.seen} == {1}
    assert second.seen and {a for a, _ in second.seen} == {2}
    # The second worker went on from the first one's last heartbeat, not from epoch 1.
    last_before = first.seen[-1][1]["epoch"]
    assert result["resumed_from_epoch"] == last_before
    assert second.seen[0][1]["epoch"] == last_before + 1
    assert [d["epoch"] for _, d in second.seen][-1] == result["epochs"] == 6
    started = next(e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    attributes = started.activity_task_started_event_attributes
    assert attributes.attempt == 2
    assert attributes.last_failure.application_failure_info.type == "WorkerShutdown"


def _bad_inputs(dataset: list[dict[str, str]], blob_root: Path) -> dict[str, tuple[GpuCall, str]]:
    small = blob_root / "data" / "small_mask.png"
    Image.fromarray(np.zeros((SIZE // 2, SIZE), dtype=np.uint8)).save(small)
    missing = {**train_input(dataset, "bad", epochs=1)}
    missing["train"] = [*dataset[:2], {"image_uri": "blob://data/nope.png",
                                       "mask_uri": dataset[0]["mask_uri"]}]
    mismatch = {**train_input(dataset, "bad2", epochs=1)}
    mismatch["val"] = [{"image_uri": dataset[3]["image_uri"], "mask_uri": "blob://data/small_mask.png"}]
    return {
        "missing blob": (GpuCall("train_segmentation", missing, max_attempts=5),
                         "missing blob for train[2].image_uri: blob://data/nope.png"),
        # The mask's size (width x height) is named; the wording is the ingest contract's.
        "size mismatch": (GpuCall("train_segmentation", mismatch, max_attempts=5),
                          "small_mask.png: mask is 64x32"),
        "bad config": (GpuCall("train_segmentation", train_input(dataset, "bad3", epochs=-1),
                               max_attempts=5), "train_segmentation config: epochs"),
        "no model": (GpuCall("predict_masks", {"model_uri": "blob://runs/none/", "out_prefix":
                             "blob://pred/none/", "items": [{"image_id": "x", "image_uri":
                             dataset[0]["image_uri"]}]}, max_attempts=5), "model_uri"),
        "evaluate size mismatch": (GpuCall("evaluate_masks", {"items": [{
            "pred_uri": dataset[0]["mask_uri"], "truth_uri": "blob://data/small_mask.png"}]},
            max_attempts=5), "truth is 64x32 but the prediction is 64x64"),
        "missing init model": (GpuCall("train_segmentation", {
            **train_input(dataset, "bad4", epochs=1), "init_model_uri": "blob://runs/none/"},
            max_attempts=5), "missing model for init_model_uri: blob://runs/none/"),
        "unsafe image id": (GpuCall("predict_masks", {"model_uri": "blob://runs/base/",
            "out_prefix": "blob://pred/evil/", "items": [{"image_id": "../evil", "image_uri":
            dataset[0]["image_uri"]}]}, max_attempts=5), "items.0.image_id"),
        "unknown key": (GpuCall("evaluate_masks", {"items": [], "extra": 1}, max_attempts=5),
                        "extra: Extra inputs are not permitted"),
        "one annotator": (GpuCall("consensus_masks", {"out_prefix": "blob://pred/one/", "items": [
            {"image_id": "x", "mask_uris": [dataset[0]["mask_uri"]]}]}, max_attempts=5),
            "items.0.mask_uris"),
    }


def test_bad_input_fails_at_once_without_retries(
    temporal: str, dataset: list[dict[str, str]], blob_root: Path
) -> None:
    cases = _bad_inputs(dataset, blob_root)
    outcomes = run_calls(temporal, [call for call, _ in cases.values()])
    for (name, (_, expected)), (outcome, events) in zip(cases.items(), outcomes, strict=True):
        failure = activity_failure(outcome)
        assert isinstance(failure, ApplicationError), name
        assert failure.non_retryable and failure.type == "BadInput", name
        assert expected in failure.message, (name, failure.message)
        assert "\n" not in failure.message
        assert started_attempts(events) == [1], name
    assert not (blob_root / "pred" / "none").exists()
    assert not (blob_root / "pred" / "evil").exists()


# -- the worker process ----------------------------------------------------------------------


def test_worker_command_serves_the_queue_and_stops_on_sigterm(
    temporal: str, dataset: list[dict[str, str]], blob_root: Path
) -> None:
    # The command line's `worker` subcommand, which calls medloop_ml.worker.run_worker.
    proc = subprocess.Popen(
        [sys.executable, "-m", "medloop_ml", "worker", "--address", temporal,
         "--task-queue", "gpu"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "MEDLOOP_BLOB_ROOT": str(blob_root)},
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "gpu worker serving" in line:
                break
        assert any("gpu worker serving task queue 'gpu'" in line for line in lines), lines

        async def body() -> dict[str, Any]:
            client = await Client.connect(temporal)
            async with Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[CallGpuActivity]):
                item = {"pred_uri": dataset[2]["mask_uri"], "truth_uri": dataset[2]["mask_uri"]}
                handle = await _start(client, GpuCall("evaluate_masks", {"items": [item]}))
                return await handle.result()

        result = asyncio.run(body())
        assert result["per_image"][0]["f1"] == pytest.approx(1.0)
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 0
        assert "gpu worker stopped" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_worker_reports_an_unreachable_server_in_one_line() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ConnectionError, match=f"cannot reach Temporal at {address}: "):
        asyncio.run(serve(address, stop=asyncio.Event()))
