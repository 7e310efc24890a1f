"""Data-parallel training steps on the CPU's cores, inside one process.

Why: the engine's networks are small (a width-8 U-Net), and PyTorch cannot split their
operations across cores: on a 2-core CPU one training process makes as many patches per second
with one intra-op thread as with two (benchmarks/README.md, `train_step.py`). Two copies of the
network, each on its own core with its own batch, make nearly twice as many.

What: :class:`CpuReplicas` does what ``torch.nn.parallel.DistributedDataParallel`` does across
processes (each replica computes the gradient of its own batch; the gradients are averaged into
the model the optimiser steps, so a step's batch is the replicas' batches together; BatchNorm
normalises each replica's batch with its own statistics), with Python threads instead of
processes: PyTorch releases the GIL inside its operators, and threads share the sampler's
images, the run's budget, checkpoints and previews with no process group to start, feed or tear
down (which a Temporal activity would also have to manage). For a loss that is a mean over
pixels (BCE) the step's gradient is the one of the whole batch in one process, up to BatchNorm
and float summation order; epoch-budgeted runs stay deterministic for a given replica count.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

# A replica's work for one step: replica index -> (its loss, already divided by the replica
# count, and a counts tensor); it draws its own batch and calls backward itself.
ReplicaStep = Callable[[int], tuple[float, torch.Tensor]]

RUNNING_STATS = ("running_mean", "running_var")


class CpuReplicas:
    """`count` copies of `model` (the first is `model` itself) trained as one.

    :meth:`step` copies the model's weights and buffers into the others, runs `replica_step` for
    every replica in its own thread (each thread with `threads` intra-op threads), then leaves
    the sum of the replicas' gradients (each loss already divided by the count: their average)
    in `model`'s ``.grad`` and the replicas' averaged BatchNorm running statistics in `model`'s
    buffers, ready for the optimiser. Use it as a context manager: the thread pool lives
    between ``__enter__`` and ``__exit__``.
    """

    def __init__(self, model: nn.Module, count: int, threads: int = 1) -> None:
        if count < 2:
            raise ValueError("CpuReplicas needs at least two replicas")
        self.model = model
        self.models = [model] + [copy.deepcopy(model) for _ in range(count - 1)]
        # Parameters and buffers are fixed objects for a module's life (loading a state dict
        # copies into them), so their lists are taken once.
        self._params = [list(m.parameters()) for m in self.models]
        self._buffers = [dict(m.named_buffers()) for m in self.models]
        self._stats = [name for name in self._buffers[0]
                       if name.rsplit(".", 1)[-1] in RUNNING_STATS]
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._previous_threads = 0  # the caller's intra-op threads, set by __enter__

    @property
    def count(self) -> int:
        return len(self.models)

    def __enter__(self) -> CpuReplicas:
        self._previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="replica",
                                        initializer=torch.set_num_threads,
                                        initargs=(self.threads,))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        torch.set_num_threads(self._previous_threads)

    def step(self, replica_step: ReplicaStep) -> tuple[float, torch.Tensor]:
        """Run one step on every replica in parallel; returns (the step's loss: the sum of the
        replicas' divided losses, the summed counts)."""
        if self._pool is None:
            raise RuntimeError("CpuReplicas.step outside its `with` block")
        self._broadcast()
        for replica in self.models:
            replica.zero_grad(set_to_none=True)
        futures = [self._pool.submit(replica_step, i) for i in range(self.count)]
        results = [f.result() for f in futures]  # re-raises a replica's exception here
        self._reduce()
        loss = sum(r[0] for r in results)
        counts = torch.stack([r[1] for r in results]).sum(dim=0)
        return float(loss), counts

    @torch.no_grad()
    def _broadcast(self) -> None:
        """Every replica starts the step from the model's weights and buffers (also after the
        run restored a checkpoint or loaded initial weights into the model)."""
        for params, buffers in zip(self._params[1:], self._buffers[1:], strict=True):
            for target, source in zip(params, self._params[0], strict=True):
                target.copy_(source)
            for name, source in self._buffers[0].items():
                buffers[name].copy_(source)

    @torch.no_grad()
    def _reduce(self) -> None:
        """Sum the replicas' (already divided) gradients into the model's and average their
        BatchNorm running statistics, as one batch of their batches would have updated them."""
        for j, param in enumerate(self._params[0]):
            for params in self._params[1:]:
                grad = params[j].grad
                if grad is None:
                    continue
                if param.grad is None:
                    param.grad = grad.clone()
                else:
                    param.grad.add_(grad)
        for name in self._stats:
            stack = [buffers[name] for buffers in self._buffers]
            self._buffers[0][name].copy_(torch.stack(stack).mean(dim=0))
