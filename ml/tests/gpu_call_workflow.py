"""A minimal workflow that calls one activity on the ``gpu`` task queue (tests only).

The Python SDK runs activities only on behalf of a workflow, so the tests start this one on their
own task queue and let it call the real activity on ``gpu`` with the options under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

WORKFLOW_QUEUE = "tests"


@dataclass
class GpuCall:
    activity: str
    input: dict[str, Any]
    max_attempts: int = 1
    heartbeat_timeout_s: float = 30.0
    start_to_close_s: float = 300.0


@workflow.defn
class CallGpuActivity:
    @workflow.run
    async def run(self, call: GpuCall) -> dict[str, Any]:
        return await workflow.execute_activity(
            call.activity,
            call.input,
            task_queue="gpu",
            start_to_close_timeout=timedelta(seconds=call.start_to_close_s),
            heartbeat_timeout=timedelta(seconds=call.heartbeat_timeout_s),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200),
                backoff_coefficient=1.0,
                maximum_attempts=call.max_attempts,
            ),
            # Wait until the activity has really stopped before the workflow ends.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            result_type=dict,
        )
