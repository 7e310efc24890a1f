"""Data-parallel replicas on the CPU: one step over the replicas' batches equals one step over
their union."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medloop_ml.replicas import CpuReplicas
from medloop_ml.train import TrainConfig, replica_count


def test_replica_count_follows_threads_on_the_cpu_and_is_one_on_a_gpu() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert replica_count(TrainConfig(epochs=1, threads=2), cpu) == 2
    assert replica_count(TrainConfig(epochs=1, threads=2, replicas=1), cpu) == 1
    assert replica_count(TrainConfig(epochs=1, threads=4, replicas=3), cpu) == 3
    assert replica_count(TrainConfig(epochs=1, threads=8), cpu) == 2  # the measured default
    assert replica_count(TrainConfig(epochs=1, threads=2, compile=True), cpu) == 1
    assert replica_count(TrainConfig(epochs=1, threads=2), gpu) == 1


def _net(norm: bool) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 4, 3, padding=1)]
    if norm:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.Conv2d(4, 1, 1)]
    return nn.Sequential(*layers).double()


def _data(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 3, 12, 12, generator=g, dtype=torch.float64)
    y = (torch.rand(batch, 1, 12, 12, generator=g) > 0.7).double()
    return x, y


def _replicated_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     count: int) -> float:
    """One step of `count` replicas, replica i on the i-th equal part of the batch."""
    replicas = CpuReplicas(model, count)
    size = len(x) // count
    loss_fn = nn.BCEWithLogitsLoss()

    def replica_step(i: int) -> tuple[float, torch.Tensor]:
        part = slice(i * size, (i + 1) * size)
        loss = loss_fn(replicas.models[i](x[part]), y[part]) / count
        loss.backward()
        return float(loss.detach()), torch.ones(3, dtype=torch.float64)

    with replicas:
        loss, counts = replicas.step(replica_step)
    assert counts.tolist() == [count] * 3
    return loss


@pytest.mark.parametrize("count", [2, 3])
def test_replicated_gradient_and_loss_equal_the_whole_batch(count: int) -> None:
    x, y = _data(6)
    whole, split = _net(norm=False), _net(norm=False)
    whole_loss = nn.BCEWithLogitsLoss()(whole(x), y)
    whole_loss.backward()
    split_loss = _replicated_step(split, x, y, count)
    assert split_loss == pytest.approx(whole_loss.item(), rel=1e-12)
    for a, b in zip(whole.parameters(), split.parameters(), strict=True):
        assert b.grad is not None and torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_batchnorm_running_statistics_average_the_shares() -> None:
    x, y = _data(8)
    model = _net(norm=True)
    bn = model[1]
    assert isinstance(bn, nn.BatchNorm2d)
    before_mean, before_var = bn.running_mean.clone(), bn.running_var.clone()
    _replicated_step(model, x, y, 2)
    # Each share updates r <- (1 - m) r + m * stat(share); the model keeps their average.
    features = [model[0](x[:4]).detach(), model[0](x[4:]).detach()]
    m = bn.momentum
    means = [f.mean(dim=(0, 2, 3)) for f in features]
    variances = [f.var(dim=(0, 2, 3), unbiased=True) for f in features]
    expected_mean = (1 - m) * before_mean + m * torch.stack(means).mean(dim=0)
    expected_var = (1 - m) * before_var + m * torch.stack(variances).mean(dim=0)
    assert torch.allclose(bn.running_mean, expected_mean, atol=1e-12)
    assert torch.allclose(bn.running_var, expected_var, atol=1e-12)


def test_each_step_starts_the_replicas_from_the_models_current_weights() -> None:
    x, y = _data(6)
    model = _net(norm=False)
    replicas = CpuReplicas(model, 2)
    with torch.no_grad():
        for p in model.parameters():  # as loading a checkpoint into the model would
            p.add_(0.25)
    reference = _net(norm=False)
    reference.load_state_dict(model.state_dict())
    nn.BCEWithLogitsLoss()(reference(x), y).backward()

    def replica_step(i: int) -> tuple[float, torch.Tensor]:
        part = slice(3 * i, 3 * i + 3)
        loss = nn.BCEWithLogitsLoss()(replicas.models[i](x[part]), y[part]) / 2
        loss.backward()
        return float(loss.detach()), torch.zeros(3)

    with replicas:
        replicas.step(replica_step)
    for a, b in zip(reference.parameters(), model.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_a_failing_replica_raises_in_the_caller_and_threads_are_restored() -> None:
    threads = torch.get_num_threads()
    replicas = CpuReplicas(_net(norm=False), 2, threads=1)

    def replica_step(i: int) -> tuple[float, torch.Tensor]:
        if i == 1:
            raise RuntimeError("replica 1 failed")
        return 0.0, torch.zeros(3)

    with pytest.raises(RuntimeError, match="replica 1 failed"), replicas:
        replicas.step(replica_step)
    assert torch.get_num_threads() == threads
    with pytest.raises(RuntimeError, match="outside"):
        replicas.step(replica_step)
