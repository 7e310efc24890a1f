"""A background heartbeat for long, CPU-bound activities.

An epoch can take minutes, longer than a sensible ``heartbeat_timeout``. This thread repeats the
latest details every few seconds so that (1) the server knows the worker is alive and (2) the
worker learns of a cancellation request, which Temporal only delivers in a heartbeat's reply.
The SDK throttles what reaches the server (to 0.8 × heartbeat_timeout) and flushes the last
pending details when the activity completes, so a retried attempt sees the newest checkpoint.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from datetime import timedelta
from types import TracebackType
from typing import Any

from temporalio import activity

log = logging.getLogger(__name__)


def heartbeat_interval(timeout: timedelta | None) -> float:
    """Beat three times per heartbeat timeout, between 0.5 s and 10 s apart."""
    if timeout is None:
        return 10.0
    return min(10.0, max(0.5, timeout.total_seconds() / 3.0))


class Heartbeater:
    """Sends ``beat(details)`` now and repeats the latest details until the block ends.

    Before the first ``beat`` it repeats the details it was given (a retried attempt passes the
    previous attempt's), so a slow start never overwrites the server's last checkpoint with
    nothing.
    """

    def __init__(self, initial: tuple[Any, ...] = (), interval: float | None = None) -> None:
        self._details = initial
        self._interval = interval or heartbeat_interval(activity.info().heartbeat_timeout)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The activity context lives in contextvars: the thread runs inside a copy of them.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="activity-heartbeat", daemon=True
        )

    def beat(self, *details: Any) -> None:
        with self._lock:
            self._details = details
        activity.heartbeat(*details)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                details = self._details
            try:
                activity.heartbeat(*details)
            except Exception:  # the event loop may be closing; the next beat retries
                log.debug("background heartbeat failed", exc_info=True)

    def __enter__(self) -> Heartbeater:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
