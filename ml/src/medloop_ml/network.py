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
from torch.nn import functional as F  # noqa: N812

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
    local_contrast: bool
    flip_average: bool
    dihedral_average: bool
    deep_supervision: int


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = int(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


class LocalContrast(nn.Module):
    """Local contrast normalisation, a CLAHE-like step inside the graph.

    Each channel minus its local mean, divided by its local standard deviation, both taken with a
    wide Gaussian (sigma about 12 px). Fundus photographs are unevenly lit; this evens out the
    illumination so faint thin vessels stand out for a small network trained on few images.
    The blur runs on a 4x average-pooled copy and is upsampled back (bilinear), which is about
    16x cheaper than blurring at full size; everything exports to ONNX.
    """

    def __init__(self, sigma: float = 3.0, pool: int = 4, eps: float = 0.02) -> None:
        super().__init__()
        k = gaussian_kernel(sigma)
        self.pad = k.numel() // 2
        self.pool = pool
        self.eps = eps
        self.register_buffer("kx", k.view(1, 1, 1, -1).repeat(3, 1, 1, 1))
        self.register_buffer("ky", k.view(1, 1, -1, 1).repeat(3, 1, 1, 1))

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        small = F.avg_pool2d(x, self.pool)
        small = F.pad(small, (self.pad, self.pad, self.pad, self.pad), mode="replicate")
        small = F.conv2d(F.conv2d(small, self.kx, groups=3), self.ky, groups=3)
        return F.interpolate(small, size=size, mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        centred = image - self.blur(image)
        spread = torch.sqrt(self.blur(centred * centred) + self.eps**2)
        return centred / spread


# Test-time augmentation: the mirror images averaged with the window itself.
MIRROR_DIMS: tuple[tuple[int, ...], ...] = ((3,), (2,))  # flipped width, flipped height
# With the dihedral average: the window turned by 180 degrees (both axes flipped) as well, and
# all four of these views of the transposed window: the eight symmetries of a square (D4).
DIHEDRAL_FLIP_DIMS: tuple[tuple[int, ...], ...] = (*MIRROR_DIMS, (2, 3))


class AuxHead(nn.Module):
    """Deep supervision at one decoder level: a 1×1 convolution to one logit on the features that
    level's up-sampling layer produced, captured by a forward hook during training (Lee et al.,
    Deeply-Supervised Nets, AISTATS 2015; nnU-Net's form). The captured features are its own,
    so each replica's copy (copy.deepcopy rebinds the hook) keeps its own."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1)
        self.feature: torch.Tensor | None = None

    def capture(self, _module: nn.Module, _args: object, output: torch.Tensor) -> None:
        self.feature = output if self.training else None

    def logits(self) -> torch.Tensor:
        if self.feature is None:
            raise RuntimeError("no decoder features captured: deep supervision runs in training")
        out, self.feature = self.conv(self.feature), None
        return out


def decoder_ups(unet: nn.Module) -> list[nn.Module]:
    """MONAI UNet's up-sampling layers from the output inwards: its model nests
    Sequential(down, SkipConnection(inner), up) once per level."""
    ups: list[nn.Module] = []
    block: nn.Module | None = getattr(unet, "model", None)
    while isinstance(block, nn.Sequential) and len(block) == 3:
        ups.append(block[2])
        block = getattr(block[1], "submodule", None)
    return ups


class NormalizedNet(nn.Module):
    """Applies the fixed per-channel normalisation (and optionally local contrast channels),
    then the wrapped network.

    With `flip_average`, evaluation mode averages the logits of the window and of its two mirror
    images (each flipped back): vessels look alike mirrored, so the average cancels part of the
    network's orientation-specific errors (measured on CHASE_DB1 in benchmarks/README.md). It
    lives inside the module so the exported ONNX graph, and with it the serving side, does the
    same. Training mode always runs the single view.

    With `dihedral_average` as well (it needs `flip_average`), it averages all eight rotations
    and mirrors of the window (identity, the two mirrors, the 180-degree turn, and the same four
    of the transposed window, each turned back), so within a window the prediction no longer
    depends on the orientation: +0.0035 F1 and
    +0.0008 AUC on CHASE_DB1 with the same weights, at 8/3 of the inference time
    (benchmarks/README.md, issue 11). The plan turns it on where images are small enough
    (medloop_ml.plan).
    """

    def __init__(
        self, net: nn.Module, local: LocalContrast | None = None, flip_average: bool = False,
        dihedral_average: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.local = local
        self.flip_average = flip_average
        self.dihedral_average = dihedral_average
        self.register_buffer("mean", torch.tensor(FUNDUS_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(FUNDUS_STD).view(1, 3, 1, 1))
        self.aux_heads = nn.ModuleList()

    def add_deep_supervision(self, channels: tuple[int, ...], levels: int) -> None:
        """Auxiliary heads on the `levels` decoder levels below full resolution (level k at
        1/2**k of the input, with channels[k-1] features); `aux_logits` returns their logits."""
        ups = decoder_ups(self.net)
        if not 0 < levels < len(ups):
            raise ValueError(f"deep_supervision {levels} needs 0 < levels < depth {len(ups)}")
        for level in range(1, levels + 1):
            head = AuxHead(channels[level - 1])
            ups[level].register_forward_hook(head.capture)
            self.aux_heads.append(head)

    def aux_logits(self) -> list[torch.Tensor]:
        """The deep-supervision logits of the last training forward, coarsest last."""
        return [head.logits() for head in self.aux_heads]

    def forward(self, image: torch.Tensor, local: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of `image`; training may pass `local`, the precomputed local-contrast channels."""
        if self.training or not self.flip_average:
            return self.logits(image, local)
        if local is None and self.local is not None:
            # Local contrast commutes with mirroring (symmetric pooling, blur and resampling on
            # windows whose sides are multiples of the pooling), so it is computed once.
            local = self.local(image)
        if not self.dihedral_average:
            return torch.stack(self.flip_views(image, local, MIRROR_DIMS)).mean(dim=0)
        # Transposing commutes with local contrast too (the same blur and pooling along both
        # axes); a non-square window simply swaps its sides.
        swapped = self.flip_views(
            image.transpose(2, 3), None if local is None else local.transpose(2, 3),
            DIHEDRAL_FLIP_DIMS)
        views = self.flip_views(image, local, DIHEDRAL_FLIP_DIMS)
        views += [view.transpose(2, 3) for view in swapped]
        return torch.stack(views).mean(dim=0)

    def flip_views(
        self, image: torch.Tensor, local: torch.Tensor | None,
        flips: tuple[tuple[int, ...], ...],
    ) -> list[torch.Tensor]:
        """Logits of the window and of each of its `flips` (dims flipped), each flipped back."""
        views = [self.logits(image, local)]
        for dims in flips:
            mirrored_local = None if local is None else local.flip(dims)
            views.append(self.logits(image.flip(dims), mirrored_local).flip(dims))
        return views

    def logits(self, image: torch.Tensor, local: torch.Tensor | None = None) -> torch.Tensor:
        x = (image - self.mean) / self.std
        if self.local is not None:
            x = torch.cat([x, self.local(image) if local is None else local], dim=1)
        return self.net(x)


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
    local = LocalContrast() if getattr(cfg, "local_contrast", False) else None
    net = UNet(
        spatial_dims=2,
        in_channels=3 if local is None else 6,
        out_channels=1,
        channels=channels,
        strides=(2,) * cfg.depth,
        num_res_units=cfg.res_units,
        norm=Norm.BATCH,
        dropout=cfg.dropout,
    )
    model = NormalizedNet(net, local, flip_average=getattr(cfg, "flip_average", False),
                          dihedral_average=bool(getattr(cfg, "dihedral_average", False)))
    levels = int(getattr(cfg, "deep_supervision", 0))
    if levels:
        model.add_deep_supervision(channels, levels)
    return model


def size_multiple(depth: int) -> int:
    """Input height and width must be multiples of this for the U-Net's skip connections."""
    return 2**depth
