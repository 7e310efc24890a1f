"""The Temporal worker serving the ``gpu`` task queue.

``activities``: ``train_segmentation``, ``predict_masks``, ``evaluate_masks``,
``consensus_masks`` (the contract in docs/architecture.md); ``runner``:
``run_worker(address, task_queue)`` and ``build_worker``.
"""

from medloop_ml.worker.activities import GpuActivities
from medloop_ml.worker.runner import build_worker, run_worker, serve

__all__ = ["GpuActivities", "build_worker", "run_worker", "serve"]
