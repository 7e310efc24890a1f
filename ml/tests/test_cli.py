"""The command line end to end on a tiny generated set, and every bad input."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synthetic import write_tiny_set

from medloop_ml.cli import build_parser, main

TINY_TRAIN = {
    "patch_size": 32,
    "infer_patch": 64,
    "batch_size": 4,
    "patches_per_epoch": 32,
    "channels": 4,
    "depth": 2,
    "threads": 1,
    "lr": 0.01,
    "progress": False,
}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(result: tuple[int, str, str], pattern: str, out: Path) -> None:
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("medloop-ml: error: ")
    assert pattern in lines[0], lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if ".staging-" in p.name]


@pytest.fixture
def cli_set(tmp_path: Path):
    return write_tiny_set(tmp_path / "set", n=4, mask_suffix="_gt")


def test_every_option_of_every_command_has_a_help_line(capsys) -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"train", "predict", "evaluate", "augment", "export-onnx",
                                     "demo-chase", "worker"}
    assert all((c.help or "").strip() for c in commands._choices_actions)  # `medloop-ml --help`
    missing = []
    for name, sub in commands.choices.items():
        for action in sub._actions:
            text = action.help or ""
            if action.option_strings and (not text.strip() or text == argparse.SUPPRESS):
                missing.append(f"{name} {'/'.join(action.option_strings)}")
        code, out, _ = run_cli(capsys, name, "--help")
        assert code == 0 and f"usage: medloop-ml {name}" in out
    assert missing == []
    code, out, _ = run_cli(capsys, "train", "--help")
    assert "--patch-size PX" in out and "multiple of 2**depth" in " ".join(out.split())


def test_augment_command(cli_set, tmp_path: Path, capsys) -> None:
    config = tmp_path / "aug.json"
    config.write_text(json.dumps({"seed": 5, "steps": [
        {"op": "flip", "modes": ["none", "h", "v", "hv"]},
        {"op": "random_crop", "size": [48, 48], "count": 3}]}))
    out = tmp_path / "aug"
    code, stdout, _ = run_cli(capsys, "augment", "--images", str(cli_set.images), "--masks",
                              str(cli_set.masks), "--mask-suffix", "_gt", "--config", str(config),
                              "--out", str(out))
    assert code == 0 and "4 images -> 48 examples" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["count"] == 48 and manifest["factor"] == 12 and manifest["seed"] == 5
    assert len(list((out / "images").glob("*.png"))) == 48
    assert len(list((out / "masks").glob("*.png"))) == 48
    assert (out / "contact_sheet.png").is_file()
    first = np.asarray(Image.open(out / "images" / f"{manifest['stems'][0]}.png"))
    assert first.shape == (48, 48, 3)
    # Same seed, same examples.
    out2 = tmp_path / "aug2"
    run_cli(capsys, "augment", "--images", str(cli_set.images), "--masks", str(cli_set.masks),
            "--mask-suffix", "_gt", "--config", str(config), "--out", str(out2))
    again = np.asarray(Image.open(out2 / "images" / f"{manifest['stems'][0]}.png"))
    assert np.array_equal(first, again)


def test_train_predict_evaluate_export(cli_set, tmp_path: Path, capsys) -> None:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_TRAIN))
    run = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--images", str(cli_set.images), "--masks",
                                str(cli_set.masks), "--mask-suffix", "_gt", "--fov",
                                str(cli_set.fov), "--config", str(config), "--epochs", "1",
                                "--out", str(run))
    assert code == 0, err
    assert "trained 1 epochs" in stdout
    for name in ("best.pt", "last.pt", "model.json", "history.json", "curves.png"):
        assert (run / name).is_file(), name

    pred = tmp_path / "pred"
    code, stdout, err = run_cli(capsys, "predict", "--model", str(run), "--images",
                                str(cli_set.images), "--fov", str(cli_set.fov), "--out", str(pred))
    assert code == 0, err
    for stem in cli_set.stems:
        mask = np.asarray(Image.open(pred / f"{stem}.png"))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
        assert np.asarray(Image.open(pred / f"{stem}_prob.png")).dtype == np.uint16  # 16-bit
    assert set(json.loads((pred / "uncertainty.json").read_text())) == set(cli_set.stems)

    ev = tmp_path / "ev"
    code, stdout, err = run_cli(capsys, "evaluate", "--pred", str(pred), "--truth",
                                str(cli_set.masks), "--truth-suffix", "_gt", "--fov",
                                str(cli_set.fov), "--out", str(ev))
    assert code == 0, err
    assert "| **mean** |" in stdout
    report = json.loads((ev / "report.json").read_text())
    assert len(report["per_image"]) == 4
    assert set(report["mean"]) == {"f1", "iou", "cldice", "auc", "sensitivity", "specificity",
                                   "accuracy"}
    assert all(0.0 <= v <= 1.0 for v in report["mean"].values())
    assert len(list((ev / "overlays").glob("*.png"))) == 4

    # predict's bad inputs: a missing model, a missing images folder, an unreadable image.
    bad_out = tmp_path / "pred_bad"
    assert_bad_input(run_cli(capsys, "predict", "--model", str(tmp_path / "no_run"), "--images",
                             str(cli_set.images), "--out", str(bad_out)),
                     "model not found", bad_out)
    assert_bad_input(run_cli(capsys, "predict", "--model", str(run), "--images",
                             str(tmp_path / "none"), "--out", str(bad_out)),
                     "images folder not found", bad_out)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    # The wording of decoding errors belongs to the ingest contract; the line names the file.
    assert_bad_input(run_cli(capsys, "predict", "--model", str(run), "--images", str(broken),
                             "--out", str(bad_out)), "x.jpg", bad_out)

    onnx = tmp_path / "model.onnx"
    code, stdout, err = run_cli(capsys, "export-onnx", "--model", str(run), "--image",
                                str(cli_set.images / "img_00.png"), "--out", str(onnx))
    assert code == 0, err
    assert onnx.is_file() and "parity" in stdout


def test_train_bad_inputs(cli_set, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    base = ["train", "--masks", str(cli_set.masks), "--mask-suffix", "_gt", "--epochs", "1",
            "--out", str(out)]
    assert_bad_input(run_cli(capsys, *base, "--images", str(tmp_path / "nope")),
                     "images folder not found", out)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_bad_input(run_cli(capsys, *base, "--images", str(empty)), "no images in", out)
    (cli_set.masks / "img_03_gt.png").rename(tmp_path / "moved.png")
    assert_bad_input(run_cli(capsys, *base, "--images", str(cli_set.images)),
                     "no mask for image img_03.png", out)
    # Above the ingest contract's 32-pixel minimum side, so only the size differs.
    Image.fromarray(np.zeros((40, 36), np.uint8)).save(cli_set.masks / "img_03_gt.png")
    assert_bad_input(run_cli(capsys, *base, "--images", str(cli_set.images)),
                     "36x40", out)  # the mask's size, named beside the image's
    (tmp_path / "moved.png").rename(cli_set.masks / "img_03_gt.png")
    (cli_set.images / "img_01.png").write_bytes(b"\x89PNG broken")
    assert_bad_input(run_cli(capsys, *base, "--images", str(cli_set.images)),
                     "img_01.png", out)
    assert_bad_input(run_cli(capsys, "train", "--images", "a", "--masks", "b", "--out", str(out),
                             "--epochs", "0", "--config", str(tmp_path / "none.json")),
                     "config file not found", out)
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps({**TINY_TRAIN, "patch_size": "big"}))
    assert_bad_input(run_cli(capsys, *base, "--images", str(cli_set.images), "--config",
                             str(bad_config)), "invalid TrainConfig: field 'patch_size'", out)


def test_evaluate_and_augment_bad_inputs(cli_set, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev"
    ev = ["evaluate", "--truth", str(cli_set.masks), "--out", str(out)]
    assert_bad_input(run_cli(capsys, *ev, "--pred", str(tmp_path / "nope")),
                     "prediction folder not found", out)
    assert_bad_input(run_cli(capsys, *ev, "--pred", str(cli_set.images)),
                     "no truth mask for prediction img_00.png", out)
    config = tmp_path / "aug.json"
    config.write_text(json.dumps({"steps": [{"op": "random_crop", "size": [32, 32], "count": 0}]}))
    aug = ["augment", "--images", str(cli_set.images), "--out", str(out)]
    assert_bad_input(run_cli(capsys, *aug, "--config", str(config)),
                     "step 0 (random_crop): field 'count'", out)
    config.write_text("{not json")
    assert_bad_input(run_cli(capsys, *aug, "--config", str(config)), "cannot read config", out)
    assert_bad_input(run_cli(capsys, "evaluate", "--pred", "x"), "required", out)


def test_failure_midway_leaves_nothing(cli_set, tmp_path: Path, capsys) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    for stem in cli_set.stems:
        (pred / f"{stem}.png").write_bytes((cli_set.masks / f"{stem}_gt.png").read_bytes())
    # The last prediction has a valid header but truncated pixel data: it fails only when
    # decoded, after the first overlays were written to the staging folder.
    data = (pred / "img_03.png").read_bytes()
    (pred / "img_03.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "ev"
    code, _, err = run_cli(capsys, "evaluate", "--pred", str(pred), "--truth", str(cli_set.masks),
                           "--truth-suffix", "_gt", "--out", str(out))
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("medloop-ml: error: unreadable file")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_existing_output_is_never_overwritten(cli_set, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ev"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(capsys, "evaluate", "--pred", str(cli_set.fov), "--truth",
                           str(cli_set.fov), "--out", str(out))
    assert code == 2 and "already exists and is not empty" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_python_dash_m_entry_point(cli_set, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "ev"
    ok = subprocess.run(
        [sys.executable, "-m", "medloop_ml", "evaluate", "--pred", str(cli_set.fov), "--truth",
         str(cli_set.fov), "--out", str(out)], capture_output=True, text=True, env=env, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((out / "report.json").read_text())["mean"]["f1"] == 1.0
    bad = subprocess.run(
        [sys.executable, "-m", "medloop_ml", "evaluate", "--pred", str(tmp_path / "x"), "--truth",
         str(cli_set.fov), "--out", str(tmp_path / "ev2")], capture_output=True, text=True,
        env=env, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "prediction folder not found" in bad.stderr


def _fake_chase(root: Path) -> Path:
    """A CHASE_DB1-shaped folder of 64×64 synthetic images: 6 training + 2 test stems."""
    from synthetic import synthetic_fundus

    stems = [f"Image_{i:02d}{side}" for i in range(1, 5) for side in "LR"]
    for sub in ("images", "masks_1stHO", "masks_2ndHO"):
        (root / sub).mkdir(parents=True)
    for n, stem in enumerate(stems):
        rgb, vessels, _ = synthetic_fundus(64, seed=n)
        Image.fromarray(rgb).save(root / "images" / f"{stem}.jpg", quality=95)
        second = np.roll(vessels, 1, axis=0)  # a second observer who draws one pixel lower
        for sub, mask in (("1stHO", vessels), ("2ndHO", second)):
            Image.fromarray(mask.astype(np.uint8) * 255).save(
                root / f"masks_{sub}" / f"{stem}_{sub}.png"
            )
    return root


def test_demo_chase_on_a_chase_shaped_set(tmp_path: Path, capsys) -> None:
    chase = _fake_chase(tmp_path / "chase")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_TRAIN))
    out = tmp_path / "demo"
    code, stdout, err = run_cli(capsys, "demo-chase", "--chase-dir", str(chase), "--config",
                                str(config), "--epochs", "1", "--out", str(out))
    assert code == 0, err
    summary = json.loads((out / "report.json").read_text())
    assert summary["train_images"] == 6 and summary["test_images"] == 2
    assert summary["train_stems"] == ["Image_01L", "Image_01R", "Image_02L", "Image_02R",
                                      "Image_03L", "Image_03R"]
    human = summary["second_observer_vs_1stHO"]
    assert 0.3 < human["f1"] < 1.0  # a one-pixel shift of thin vessels
    assert "2nd observer" in (out / "report.md").read_text() and "2nd observer" in stdout
    assert sorted(p.name for p in (out / "predictions").glob("*_prob.png")) == [
        "Image_04L_prob.png", "Image_04R_prob.png"]
    for sub in ("eval_model", "eval_2ndHO"):
        report = json.loads((out / sub / "report.json").read_text())
        assert [r["stem"] for r in report["per_image"]] == ["Image_04L", "Image_04R"]
    assert (out / "run" / "best.pt").is_file()
    # The model's AUC is the one of the 16-bit map on disk, read at its own bit depth.
    from medloop_ml.fov import derive_fov
    from medloop_ml.io import read_mask, read_rgb
    from medloop_ml.metrics import segmentation_metrics
    from medloop_ml.probmap import read_prob_png

    row = json.loads((out / "eval_model" / "report.json").read_text())["per_image"][0]
    predictions = out / "predictions"
    expected = segmentation_metrics(
        read_mask(predictions / "Image_04L.png"),
        read_mask(chase / "masks_1stHO" / "Image_04L_1stHO.png"),
        prob=read_prob_png(predictions / "Image_04L_prob.png"),
        fov=derive_fov(read_rgb(chase / "images" / "Image_04L.jpg")),
    )
    assert row["auc"] == pytest.approx(expected["auc"], abs=1e-12)


def test_worker_without_server_fails_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "medloop_ml", "worker", "--address", f"127.0.0.1:{port}",
         "--task-queue", "gpu"], capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("medloop-ml:")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(lines) == 1 and "connect" in lines[0].lower()
    assert "Fatal Python error" not in proc.stderr


def test_worker_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal

    from temporal_dev_server import temporal_dev_server

    with temporal_dev_server(tmp_path) as address:
        proc = subprocess.Popen(
            [sys.executable, "-m", "medloop_ml", "worker", "--address", address, "--task-queue",
             "gpu"], stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:
                seen.append(line)
                if "gpu worker serving" in line:
                    break
            assert any("serving task queue 'gpu'" in line for line in seen), seen
            proc.send_signal(signal.SIGTERM)
            rest = proc.stderr.read()
            assert proc.wait(timeout=120) == 0, rest
            assert "gpu worker stopped" in rest and "Fatal Python error" not in rest
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
