"""ONNX export: parity with PyTorch on a real CHASE_DB1 crop, metadata, dynamic size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from synthetic import synthetic_fundus

from medloop_ml.data import Sample
from medloop_ml.infer import Predictor
from medloop_ml.io import read_mask, read_rgb
from medloop_ml.onnx_export import OnnxPredictor, ParityError, export_onnx
from medloop_ml.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = TrainConfig(epochs=1, patch_size=32, batch_size=4, patches_per_epoch=8, channels=8,
                      depth=2, infer_patch=64, overlap=0.25, progress=False)
    samples = []
    for i in range(2):
        rgb, vessels, disc = synthetic_fundus(64, seed=i)
        samples.append(Sample(stem=f"s{i}", image=rgb, mask=vessels, fov=disc))
    out = tmp_path_factory.mktemp("onnx") / "run"
    train_model(samples, [], cfg, out)
    return out


def chase_crop(chase_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    image = read_rgb(chase_dir / "images" / "Image_05L.jpg")
    mask = read_mask(chase_dir / "masks_1stHO" / "Image_05L_1stHO.png")
    return image[300:450, 400:590], mask[300:450, 400:590]  # 150x190: several windows


def test_export_matches_pytorch_on_a_real_image(run_dir: Path, chase_dir: Path) -> None:
    image, _ = chase_crop(chase_dir)
    result = export_onnx(run_dir, image)
    assert result.path == run_dir / "model.onnx"
    assert result.max_abs_diff < 1e-4
    proto = onnx.load(str(result.path))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["probability"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["patch_size"] == "64" and meta["blend"] == "gaussian"

    onnx_pred = OnnxPredictor(result.path)
    torch_pred = Predictor.from_run(run_dir)
    assert onnx_pred.threshold == pytest.approx(torch_pred.threshold)
    # small images: the plan chose the eight dihedral views, transposes of non-square windows
    # included, and the graph traced on a small input predicts any size like PyTorch
    assert torch_pred.model.dihedral_average is True
    # a different size than the export's dummy: H and W are dynamic
    other = image[:96, :128]
    np.testing.assert_allclose(onnx_pred.probability(other), torch_pred.probability(other),
                               atol=1e-4)


def test_failed_parity_leaves_no_file(run_dir: Path, chase_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import medloop_ml.onnx_export as mod

    image, _ = chase_crop(chase_dir)
    monkeypatch.setattr(mod, "PARITY_TOLERANCE", 0.0)
    target = run_dir / "strict.onnx"
    with pytest.raises(ParityError, match="parity"):
        export_onnx(run_dir, image, target)
    assert not target.exists()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".model.")]
