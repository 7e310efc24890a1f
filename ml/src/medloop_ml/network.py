"""The segmentation network: a MONAI U-Net behind a fixed input normalisation.

The model takes RGB scaled to [0, 1] (N x 3 x H x W) and returns one vessel logit per pixel
(N x 1 x H x W). The per-channel normalisation lives inside the module so the exported ONNX
graph and the TypeScript serving side only scale bytes to [0, 1].

BatchNorm (not InstanceNorm) is used on purpose: in eval mode it applies fixed statistics, so
a pixel's prediction does not depend on which sliding window it came from.
"""

from __future__ import annotations

from typing import Protocol

import torch
from monai.networks.layers import Norm
from monai.networks.nets import UNet
from torch import nn

# Mean and spread of CHASE_DB1 fundus photographs per RGB channel (inside the field of view,
# scaled to [0, 1]). Fixed constants rather than per-image statistics, so the result of a window
# does not depend on its neighbours.
FUNDUS_MEAN = (0.45, 0.16, 0.05)
FUNDUS_STD = (0.25, 0.10, 0.05)


class NetworkConfig(Protocol):
    """The fields of the training configuration that shape the network."""

    channels: int
    depth: int
    res_units: int
    dropout: float


class NormalizedNet(nn.Module):
    """Applies the fixed per-channel normalisation, then the wrapped network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(FUNDUS_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(FUNDUS_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net((image - self.mean) / self.std)


class ProbabilityNet(nn.Module):
    """Logit model followed by the sigmoid: the form exported to ONNX (`probability`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(image))


def unet_channels(width: int, depth: int) -> tuple[int, ...]:
    """Feature counts per level: `width` doubling at each of `depth` downsamplings."""
    if width < 2 or depth < 1:
        raise ValueError(f"network needs width >= 2 and depth >= 1 (got {width}, {depth})")
    return tuple(width * 2**level for level in range(depth + 1))


def build_network(cfg: NetworkConfig) -> NormalizedNet:
    """A 2-D U-Net: 3 inputs, 1 logit, `depth` stride-2 levels, `channels` base width."""
    channels = unet_channels(cfg.channels, cfg.depth)
    net = UNet(
        spatial_dims=2,
        in_channels=3,
        out_channels=1,
        channels=channels,
        strides=(2,) * cfg.depth,
        num_res_units=cfg.res_units,
        norm=Norm.BATCH,
        dropout=cfg.dropout,
    )
    return NormalizedNet(net)


def size_multiple(depth: int) -> int:
    """Input height and width must be multiples of this for the U-Net's skip connections."""
    return 2**depth
