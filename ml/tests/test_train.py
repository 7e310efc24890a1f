"""Training: learns on a tiny set, resumes exactly from last.pt, same seed gives the same run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import synthetic_fundus

from medloop_ml.data import Sample
from medloop_ml.infer import Predictor
from medloop_ml.train import (
    BceDiceLoss,
    EpochReport,
    PatchSampler,
    TrainConfig,
    TrainingStopped,
    best_f1_threshold,
    deep_supervised,
    train_model,
)


def tiny(n: int, first_seed: int = 0, size: int = 64) -> list[Sample]:
    out = []
    for i in range(first_seed, first_seed + n):
        rgb, vessels, disc = synthetic_fundus(size, seed=i)
        out.append(Sample(stem=f"syn_{i}", image=rgb, mask=vessels, fov=disc))
    return out


def config(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        epochs=2, patch_size=32, batch_size=8, patches_per_epoch=32, channels=8, depth=2,
        res_units=1, lr=1e-2, infer_patch=64, threads=2, progress=False, seed=3,
    )
    base.update(kw)
    return TrainConfig.model_validate(base)


def pooled_f1(predictor: Predictor, samples: list[Sample]) -> float:
    probs = [predictor.probability(s.image)[s.fov] for s in samples]
    return best_f1_threshold(probs, [s.mask[s.fov] for s in samples])[1]  # type: ignore[index]


def test_short_run_beats_its_starting_f1(tmp_path: Path) -> None:
    train, val = tiny(3), tiny(2, first_seed=10)
    cfg = config(epochs=8)
    start_dir = tmp_path / "start"
    # zero epochs is not allowed: take the untrained network from epoch 1's input instead
    torch.manual_seed(cfg.seed)
    from medloop_ml.network import build_network

    untrained = Predictor(build_network(cfg).eval(), 0.5, cfg.infer_patch, cfg.overlap)
    before = pooled_f1(untrained, val)
    reports: list[EpochReport] = []
    result = train_model(train, val, cfg, tmp_path / "run", on_epoch=reports.append)
    after = pooled_f1(Predictor.from_run(result.run_dir), val)
    assert after > before + 0.2, (before, after)
    assert result.metrics["val_f1"] > 0.5
    assert 0.0 < result.threshold < 1.0
    assert [r.epoch for r in reports] == list(range(1, 9))
    assert all(r.val_dice is not None and r.checkpoint_path.is_file() for r in reports)
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"best.pt", "last.pt", "model.json", "history.json", "curves.png", "previews.gif",
            "previews"} <= files
    # Previews are made at epoch 1, the last epoch, and as often between as costs about 2 % of
    # the steps' time (medloop_ml.budget.preview_period).
    names = [p.name for p in result.preview_paths]
    assert names[0] == "epoch_001.png" and names[-1] == "epoch_008.png"
    patch_f1 = [h["train_patch_f1"] for h in result.history]
    assert patch_f1[-1] > patch_f1[0]
    model = json.loads((result.run_dir / "model.json").read_text())
    assert model["input"] == "image" and model["output"] == "probability"
    assert model["threshold"] == pytest.approx(result.threshold)
    assert model["patch_size"] == 64 and model["channels"] == 3
    assert not start_dir.exists()


@pytest.mark.parametrize("replicas", [1, 2])
def test_same_seed_same_losses(tmp_path: Path, replicas: int) -> None:
    a = train_model(tiny(2), [], config(replicas=replicas), tmp_path / "a")
    b = train_model(tiny(2), [], config(replicas=replicas), tmp_path / "b")
    c = train_model(tiny(2), [], config(seed=4, replicas=replicas), tmp_path / "c")
    losses = [[h["loss"] for h in r.history] for r in (a, b, c)]
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


@pytest.mark.parametrize("replicas", [1, 2])
def test_resume_from_last_continues_the_same_run(tmp_path: Path, replicas: int) -> None:
    cfg = config(epochs=4, replicas=replicas)
    straight = train_model(tiny(2), [], cfg, tmp_path / "straight")

    epochs_seen: list[int] = []
    with pytest.raises(TrainingStopped) as stopped:
        train_model(tiny(2), [], cfg, tmp_path / "resumed",
                    on_epoch=lambda r: epochs_seen.append(r.epoch),
                    should_stop=lambda: len(epochs_seen) >= 2)
    assert epochs_seen == [1, 2]
    assert stopped.value.epoch == 2
    resumed = train_model(tiny(2), [], cfg, tmp_path / "resumed",
                          resume_from=stopped.value.checkpoint)
    assert resumed.epochs == 4
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    a = torch.load(straight.last_checkpoint, weights_only=False)["model"]
    b = torch.load(resumed.last_checkpoint, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_replicas_draw_their_own_patches_and_count_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[int] = []
    original = PatchSampler.batch

    def recording(
        self: PatchSampler, rng: np.random.Generator, size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x, y, local = original(self, rng, size)
        drawn.append(hash(x.numpy().tobytes()))
        return x, y, local

    monkeypatch.setattr(PatchSampler, "batch", recording)
    result = train_model(tiny(2), [], config(epochs=2, replicas=2), tmp_path / "run")
    # patches_per_epoch 32 at 2 replicas x batch 8: two steps per epoch, four batches drawn
    assert [h["steps"] for h in result.history] == [2, 4]
    assert [h["patches"] for h in result.history] == [32, 64]
    assert len(drawn) == 8 and len(set(drawn)) == 8  # no replica repeats another's patches
    assert result.replicas == 2


def test_resume_with_another_replica_count_keeps_the_schedule(tmp_path: Path) -> None:
    """A run stopped on a 2-replica CPU and continued with one replica (a GPU, another
    machine) ends after the planned patches, not the planned steps."""
    straight = train_model(tiny(2), [], config(epochs=4, replicas=2), tmp_path / "straight")
    epochs_seen: list[int] = []
    with pytest.raises(TrainingStopped) as stopped:
        train_model(tiny(2), [], config(epochs=4, replicas=2), tmp_path / "resumed",
                    on_epoch=lambda r: epochs_seen.append(r.epoch),
                    should_stop=lambda: len(epochs_seen) >= 2)
    resumed = train_model(tiny(2), [], config(epochs=4, replicas=1), tmp_path / "resumed",
                          resume_from=stopped.value.checkpoint)
    assert resumed.epochs == 4
    assert [h["patches"] for h in resumed.history] == [32, 64, 96, 128]
    assert [h["steps"] for h in resumed.history] == [2, 4, 8, 12]
    assert resumed.history[-1]["lr"] == pytest.approx(straight.history[-1]["lr"])


def test_fine_tune_starts_from_the_earlier_model(tmp_path: Path) -> None:
    first = train_model(tiny(2), [], config(epochs=3), tmp_path / "first")
    tuned = train_model(tiny(2), [], config(epochs=1), tmp_path / "tuned", init_model=first.run_dir)
    fresh = train_model(tiny(2), [], config(epochs=1), tmp_path / "fresh")
    assert tuned.history[0]["loss"] < fresh.history[0]["loss"]
    with pytest.raises(ValueError, match="does not fit"):
        train_model(tiny(2), [], config(epochs=1, channels=4), tmp_path / "bad",
                    init_model=first.run_dir)


def test_config_validation_and_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        TrainConfig(epochs=2, minutes=1.0)
    with pytest.raises(ValueError, match="multiple of 16"):
        TrainConfig(epochs=1, patch_size=40, depth=4)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"minutes": 15, "channels": 12}))
    cfg = TrainConfig.from_file(path, epochs=3)
    assert cfg.epochs == 3 and cfg.minutes is None and cfg.channels == 12
    path.write_text(json.dumps({"minutes": 15, "colour": "red"}))
    with pytest.raises(ValueError, match="colour"):
        TrainConfig.from_file(path)


def test_a_sample_without_mask_is_refused(tmp_path: Path) -> None:
    sample = tiny(1)[0]
    sample.mask = None
    with pytest.raises(ValueError, match="has no mask"):
        train_model([sample], [], config(), tmp_path / "r")


def test_threshold_search_finds_the_separating_value() -> None:
    prob = np.array([0.1, 0.2, 0.7, 0.8, 0.9, 0.3])
    truth = np.array([False, False, True, True, True, False])
    threshold, f1 = best_f1_threshold([prob], [truth])
    assert 0.3 < threshold <= 0.7
    assert f1 == pytest.approx(1.0)


def test_augment_pipeline_expands_the_training_examples() -> None:
    """A configured pipeline feeds the patch sampler its expanded examples; a bad one is refused."""
    from medloop_ml.train import TrainConfig, _augmented

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = rng.random((64, 64)) > 0.9
    sample = Sample("a", image, mask, np.ones((64, 64), bool))
    pipeline = {"seed": 1, "steps": [{"op": "flip", "modes": ["none", "h"]},
                                     {"op": "random_crop", "size": [32, 32], "count": 3}]}
    config = TrainConfig(epochs=1, augment=pipeline)
    examples = _augmented([sample], config)
    assert len(examples) == 6
    assert all(e.image.shape == (32, 32, 3) for e in examples)
    assert len(_augmented([sample], TrainConfig(epochs=1))) == 1
    with pytest.raises(ValueError, match="random_crop"):
        bad = {"steps": [{"op": "random_crop", "size": [0, 0], "count": 1}]}
        TrainConfig(epochs=1, augment=bad)


def test_compiled_training_writes_checkpoints_the_plain_network_loads(tmp_path: Path) -> None:
    # torch.compile wraps the model; checkpoints must still hold the plain module's weights.
    result = train_model(tiny(2), [], config(epochs=1, compile=True), tmp_path / "run")
    ckpt = torch.load(result.last_checkpoint, weights_only=False)
    assert not any(key.startswith("_orig_mod") for key in ckpt["model"])
    prob = Predictor.from_run(result.run_dir).probability(tiny(1)[0].image)
    assert np.isfinite(prob).all()


def test_weight_average_predicts_and_resumes_exactly(tmp_path: Path) -> None:
    # With `ema`, the checkpoint's "model" (what inference and ONNX load) is the average, the
    # trained weights travel beside it, and a stopped run resumes into the same average.
    cfg = config(epochs=4, ema=0.9)
    straight = train_model(tiny(2), [], cfg, tmp_path / "straight")
    ckpt = torch.load(straight.last_checkpoint, weights_only=False)
    average, trained = ckpt["model"], ckpt["train_model"]
    assert set(average) == set(trained)
    assert any(not torch.equal(average[k], trained[k]) for k in average)

    seen: list[int] = []
    with pytest.raises(TrainingStopped) as stopped:
        train_model(tiny(2), [], cfg, tmp_path / "resumed", on_epoch=lambda r: seen.append(r.epoch),
                    should_stop=lambda: len(seen) >= 2)
    resumed = train_model(tiny(2), [], cfg, tmp_path / "resumed",
                          resume_from=stopped.value.checkpoint)
    again = torch.load(resumed.last_checkpoint, weights_only=False)["model"]
    assert all(torch.equal(average[k], again[k]) for k in average)
    # the threshold was chosen with the average, which is what Predictor loads
    prob = Predictor.from_run(straight.run_dir).probability(tiny(1)[0].image)
    assert np.isfinite(prob).all() and 0.0 < straight.threshold < 1.0


def test_bf16_training_keeps_float32_weights(tmp_path: Path) -> None:
    result = train_model(tiny(2), [], config(epochs=2, amp=True), tmp_path / "run")
    weights = torch.load(result.last_checkpoint, weights_only=False)["model"]
    assert all(w.dtype in (torch.float32, torch.int64) for w in weights.values())
    assert all(np.isfinite(h["loss"]) for h in result.history)


def test_cldice_term_penalises_a_broken_centre_line(tmp_path: Path) -> None:
    # Two predictions with the same number of wrong pixels: one breaks a thin line, the other
    # thickens it. BCE cannot tell them apart; the clDice term (Shit et al. 2021) must.
    target = torch.zeros(1, 1, 32, 32)
    target[..., 15:18, 2:30] = 1.0
    broken, thick = target.clone(), target.clone()
    broken[..., 15:18, 14:18] = 0.0  # 12 vessel pixels missed, the line cut in two
    thick[..., 18, 10:22] = 1.0  # 12 background pixels marked, the line whole
    broken, thick = (broken * 2 - 1) * 6.0, (thick * 2 - 1) * 6.0  # confident logits
    bce = BceDiceLoss(dice_weight=0.0)
    both = BceDiceLoss(dice_weight=0.0, cldice_weight=1.0)
    assert bce(broken, target) == pytest.approx(bce(thick, target))
    assert both(broken, target) > both(thick, target) + 0.05
    result = train_model(tiny(2), [], config(epochs=1, cldice_weight=0.5), tmp_path / "run")
    assert np.isfinite(result.history[0]["loss"])
    assert torch.load(result.last_checkpoint, weights_only=False)["config"]["cldice_weight"] == 0.5


def test_deep_supervision_weights_the_levels_as_nnunet() -> None:
    # Logits 0 against an all-ones mask: each auxiliary BCE is ln 2; weights 1, 1/2, 1/4.
    target = torch.ones(2, 1, 16, 16)
    aux = [torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 4, 4)]
    assert deep_supervised(torch.tensor(0.0), [], target) == 0.0
    total = deep_supervised(torch.tensor(0.0), aux, target)
    assert float(total) == pytest.approx(0.75 / 1.75 * np.log(2), rel=1e-6)


def test_deep_supervised_training_predicts_and_exports(tmp_path: Path) -> None:
    result = train_model(tiny(2), [], config(epochs=2, deep_supervision=1), tmp_path / "run")
    assert all(np.isfinite(h["loss"]) for h in result.history)
    ckpt = torch.load(result.last_checkpoint, weights_only=False)
    assert "aux_heads.0.conv.weight" in ckpt["model"]
    image = tiny(1)[0].image
    prob = Predictor.from_run(result.run_dir).probability(image)
    assert np.isfinite(prob).all()
    from medloop_ml.onnx_export import export_onnx

    assert export_onnx(result.run_dir, image).path.exists()  # parity with PyTorch checked inside
