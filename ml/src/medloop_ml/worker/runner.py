"""Running the ``gpu`` worker: connect, serve, and stop gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from medloop_ml.worker.activities import GpuActivities

log = logging.getLogger("medloop_ml.worker")

# On shutdown, running activities see activity.is_worker_shutdown() at once: training stops at its
# next step and fails retryably, so the retry (here or on another worker) resumes from the
# checkpoint. The grace period bounds how long that may take before the SDK cancels them.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)
# Heartbeat details reach the server at most this long after a beat. The SDK's default (up to
# 60 s) held back an epoch's heartbeat behind the keep-alive beat before it, so a short training
# run could end before the live view saw a single epoch or preview.
HEARTBEAT_THROTTLE = timedelta(seconds=2)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_worker(
    client: Client,
    executor: ThreadPoolExecutor,
    task_queue: str = "gpu",
    *,
    activities: GpuActivities | None = None,
    max_concurrent_activities: int = 1,
) -> Worker:
    """A worker for the gpu activities; ``executor`` must have ≥ max_concurrent_activities threads.

    One activity at a time by default: a training run uses every core (or the whole GPU), and a
    second one would only make both slower. Raise it on machines with several accelerators.
    """
    acts = activities or GpuActivities()
    return Worker(
        client,
        task_queue=task_queue,
        activities=acts.all(),
        activity_executor=executor,
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def serve(
    address: str,
    task_queue: str = "gpu",
    *,
    max_concurrent_activities: int = 1,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or SIGINT/SIGTERM arrive when ``stop`` is not given)."""
    if max_concurrent_activities < 1:
        raise ValueError("max_concurrent_activities must be at least 1")
    stop = stop or _stop_on_signals()
    client = await _connect(address)
    with ThreadPoolExecutor(
        max_workers=max_concurrent_activities, thread_name_prefix="gpu-activity"
    ) as executor:
        worker = build_worker(
            client, executor, task_queue, max_concurrent_activities=max_concurrent_activities
        )
        async with worker:
            log.info(
                "gpu worker serving task queue %r on %s (max %d concurrent activities)",
                task_queue, address, max_concurrent_activities,
            )
            await stop.wait()
            log.info("gpu worker stopping: finishing or handing back running activities")
    log.info("gpu worker stopped")


async def _connect(address: str) -> Client:
    try:
        return await Client.connect(address)
    except RuntimeError as err:  # the SDK's core reports an unreachable server this way
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConnectionError(f"cannot reach Temporal at {address}: {reason}") from None


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_worker(
    address: str, task_queue: str = "gpu", *, max_concurrent_activities: int = 1
) -> None:
    """Blocking entry point used by ``medloop-ml worker``."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    asyncio.run(serve(address, task_queue, max_concurrent_activities=max_concurrent_activities))
