"""The network: shapes, configurable width/depth, normalisation inside the model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medloop_ml.network import (
    FUNDUS_MEAN,
    LocalContrast,
    NormalizedNet,
    build_network,
    unet_channels,
)


def cfg(channels: int = 8, depth: int = 3, res_units: int = 1) -> SimpleNamespace:
    return SimpleNamespace(channels=channels, depth=depth, res_units=res_units, dropout=0.0)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_one_logit_per_pixel_for_rgb_input() -> None:
    model = build_network(cfg()).eval()
    out = model(torch.rand(2, 3, 48, 64))
    assert out.shape == (2, 1, 48, 64)
    assert out.dtype == torch.float32


def test_width_and_depth_change_the_network() -> None:
    assert unet_channels(8, 3) == (8, 16, 32, 64)
    base = n_params(build_network(cfg(8, 3)))
    assert n_params(build_network(cfg(16, 3))) > 3 * base
    assert n_params(build_network(cfg(8, 4))) > base
    deep = build_network(cfg(8, 4)).eval()
    assert deep(torch.rand(1, 3, 32, 32)).shape == (1, 1, 32, 32)


def test_normalisation_lives_inside_the_model() -> None:
    model = build_network(cfg())
    assert isinstance(model, NormalizedNet)
    # buffers travel with the state dict (and so with checkpoints and the ONNX graph)
    state = model.state_dict()
    assert torch.allclose(state["mean"].flatten(), torch.tensor(FUNDUS_MEAN))
    # the same weights fed the normalised input directly give the same logits
    model.eval()
    x = torch.rand(1, 3, 32, 32)
    normalised = (x - model.mean) / model.std
    assert torch.allclose(model(x), model.net(normalised), atol=1e-6)


def test_bad_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="width"):
        build_network(cfg(channels=1))


def test_local_contrast_channels_ignore_uneven_lighting() -> None:
    torch.manual_seed(0)
    lc = LocalContrast(eps=1e-4)
    x = torch.rand(1, 3, 64, 64) * 0.2
    # a brighter, more contrasted copy of the same picture reads the same
    np.testing.assert_allclose(lc(x * 2.0 + 0.3).numpy(), lc(x).numpy(), atol=1e-3)
    model = build_network(SimpleNamespace(channels=8, depth=2, res_units=0, dropout=0.0,
                                          local_contrast=True)).eval()
    assert model.local is not None
    assert model(torch.rand(1, 3, 32, 48)).shape == (1, 1, 32, 48)


def test_flip_average_mirrors_in_evaluation_only() -> None:
    torch.manual_seed(0)
    model = build_network(SimpleNamespace(channels=4, depth=2, res_units=0, dropout=0.0,
                                          local_contrast=True, flip_average=True))
    x = torch.rand(1, 3, 32, 48)
    model.eval()
    single = model.logits(x)
    mirrored_w = model.logits(x.flip(3)).flip(3)
    mirrored_h = model.logits(x.flip(2)).flip(2)
    expected = (single + mirrored_w + mirrored_h) / 3
    torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)
    assert not torch.allclose(model(x), single, atol=1e-4)  # the mirrors change the answer
    model.train()
    assert model(x).shape == (1, 1, 32, 48)  # training runs the single view
    plain = build_network(cfg()).eval()
    assert plain.flip_average is False
    assert plain.dihedral_average is False


def test_dihedral_average_makes_the_prediction_independent_of_orientation() -> None:
    torch.manual_seed(0)
    settings = dict(channels=4, depth=2, res_units=0, dropout=0.0, local_contrast=True,
                    flip_average=True)
    mirrors = build_network(SimpleNamespace(**settings)).eval()
    dihedral = build_network(SimpleNamespace(**settings, dihedral_average=True)).eval()
    dihedral.load_state_dict(mirrors.state_dict())
    x = torch.rand(1, 3, 32, 48)  # not square: the transposed views swap the sides
    turned = x.rot90(1, dims=(2, 3))
    expected = dihedral(x)
    # Every rotation and mirror of the input gives the same prediction, turned likewise.
    torch.testing.assert_close(dihedral(turned).rot90(-1, dims=(2, 3)), expected,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(dihedral(x.transpose(2, 3)).transpose(2, 3), expected,
                               atol=1e-5, rtol=0)
    # Three views do not have that property, and the eight views are their own average.
    assert not torch.allclose(mirrors(turned).rot90(-1, dims=(2, 3)), mirrors(x), atol=1e-4)
    views = [dihedral.logits(x.rot90(k, dims=(2, 3))).rot90(-k, dims=(2, 3)) for k in range(4)]
    views += [dihedral.logits(x.transpose(2, 3).rot90(k, dims=(2, 3))).rot90(-k, dims=(2, 3))
              .transpose(2, 3) for k in range(4)]
    torch.testing.assert_close(expected, torch.stack(views).mean(dim=0), atol=1e-5, rtol=0)


def test_deep_supervision_heads_read_the_decoder_in_training_only() -> None:
    # Auxiliary heads (nnU-Net's deep supervision) see decoder levels 1/2 and 1/4 while
    # training; inference, and with it ONNX and serving, is the plain network's.
    torch.manual_seed(0)
    plain = build_network(cfg(8, 3))
    torch.manual_seed(0)
    supervised = build_network(SimpleNamespace(**vars(cfg(8, 3)), deep_supervision=2))
    assert supervised.load_state_dict(plain.state_dict(), strict=False).missing_keys == [
        "aux_heads.0.conv.weight", "aux_heads.0.conv.bias",
        "aux_heads.1.conv.weight", "aux_heads.1.conv.bias",
    ]
    x = torch.rand(2, 3, 64, 48)
    plain.eval(), supervised.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), supervised(x))
    with pytest.raises(RuntimeError, match="training"):
        supervised.aux_logits()
    supervised.train()
    supervised(x)
    assert [a.shape for a in supervised.aux_logits()] == [(2, 1, 32, 24), (2, 1, 16, 12)]
    with pytest.raises(ValueError, match="deep_supervision 3"):
        build_network(SimpleNamespace(**vars(cfg(8, 3)), deep_supervision=3))


def test_each_replica_copy_keeps_its_own_decoder_features() -> None:
    import copy

    model = build_network(SimpleNamespace(**vars(cfg(8, 2)), deep_supervision=1)).train()
    replica = copy.deepcopy(model)
    replica(torch.rand(1, 3, 32, 32))
    assert model.aux_heads[0].feature is None
    assert replica.aux_logits()[0].shape == (1, 1, 16, 16)
