"""The field cases (``../shared/fieldcases``, read in place) through every entry point of the
engine: ``medloop-ml train | predict | evaluate`` and the ``gpu`` worker's three activities. Each
case's right result (``cases.json``) is the assertion: accepted files are read at the stated
upright size with the stated mask and FOV counts (``data.json`` of a training run, the evaluation
rows), and predictions come back at exactly that size; refused ones exit 2 / fail as
non-retryable ``BadInput`` with a one-line message naming the file and the reason, and nothing
is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_conformance import fieldcases_dir
from PIL import Image
from synthetic import write_tiny_set
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from medloop_ml.cli import main
from medloop_ml.probmap import read_prob_png
from medloop_ml.worker import GpuActivities

CASES: list[dict[str, Any]] = json.loads((fieldcases_dir() / "cases.json").read_text("utf-8"))[
    "cases"
]
ACCEPTED = [c for c in CASES if c["expected"] == "accept"]
# Refused items judged file by file (fc15 is a folder-level refusal, tested on its own).
REFUSED = [(c, i) for c in CASES if c["expected"] == "refuse" for i in c["items"]
           if "duplicate" not in i]
REASON = {"fc07": "holds 2 pages", "fc08": "but the image is 64x48",
          "fc13": "the minimum side is 32 pixels"}
# Refusals that concern the image itself (predict reads no masks).
IMAGE_REFUSED = [(c, i) for c, i in REFUSED if c["id"] in ("fc07", "fc13")]
# A network small enough for seconds per run on two shared cores (patches in multiples of 16).
SMALL = {"channels": 4, "res_units": 0, "batch_size": 4, "patches_per_epoch": 8, "threads": 2,
         "seed": 1, "progress": False, "flip_average": False}


def run_cli(args: list[str]) -> int:
    """``medloop-ml`` in this process: its exit status (errors leave through SystemExit)."""
    try:
        return main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)


def case_id(value: Any) -> str:
    if isinstance(value, dict) and "id" in value:
        return str(value["id"])
    return Path(value["image"]).name if isinstance(value, dict) else str(value)


def stem(rel: str) -> str:
    return Path(rel).name.rsplit(".", 1)[0]


@pytest.fixture(scope="module")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "small.json"
    path.write_text(json.dumps(SMALL), "utf-8")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory, small_config: Path) -> Path:
    """A run folder trained for one epoch on synthetic 64×64 images."""
    root = tmp_path_factory.mktemp("model")
    tiny = write_tiny_set(root / "data", n=2)
    out = root / "run"
    code = run_cli(["train", "--images", str(tiny.images), "--masks", str(tiny.masks), "--epochs",
                 "1", "--config", str(small_config), "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def blob_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("blobs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLOOP_BLOB_ROOT", str(root))
        yield root


def folder_args(case: dict[str, Any], folder: Path | None = None) -> list[str]:
    folder = folder or fieldcases_dir() / case["id"]
    args = ["--images", str(folder / "images"), "--masks", str(folder / "masks")]
    if case["mask_suffix"]:
        args += ["--mask-suffix", case["mask_suffix"]]
    if (folder / "fov").is_dir():
        args += ["--fov", str(folder / "fov")]
    return args


def link_item(case: dict[str, Any], item: dict[str, Any], root: Path) -> Path:
    """A folder holding links to one item's files, laid out as the case is."""
    for rel in (item["image"], item["mask"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(fieldcases_dir() / case["id"] / rel)
    return root


def assert_refusal(code: int, err: str, case: dict[str, Any], item: dict[str, Any]) -> None:
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert REASON[case["id"]] in line
    assert Path(item["image"]).name in line or Path(item["mask"]).name in line


def assert_counts(row: dict[str, Any], item: dict[str, Any], key: str) -> None:
    tolerance = item.get("mask_foreground_tolerance", 0)
    assert abs(row[key] - item["mask_foreground"]) <= tolerance, (row, item)


# -- medloop-ml train -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_train_reads_each_accepted_case(case: dict[str, Any], small_config: Path,
                                        tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = run_cli(["train", *folder_args(case), "--epochs", "1", "--config", str(small_config),
                 "--out", str(out)])
    assert code == 0
    rows = {r["stem"]: r for r in json.loads((out / "data.json").read_text())["train"]}
    for item in case["items"]:
        row = rows[stem(item["image"])]
        assert (row["width"], row["height"]) == (item["width"], item["height"])
        assert_counts(row, item, "mask_pixels")
        if "fov" in item:
            assert row["fov_pixels"] == item["fov_foreground"]


@pytest.mark.parametrize(("case", "item"), REFUSED, ids=case_id)
def test_train_refuses_each_refused_item(case: dict[str, Any], item: dict[str, Any],
                                         small_config: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = link_item(case, item, tmp_path / "data")
    out = tmp_path / "run"
    code = run_cli(["train", *folder_args({**case, "mask_suffix": ""}, folder), "--epochs", "1",
                 "--config", str(small_config), "--out", str(out)])
    assert_refusal(code, capsys.readouterr().err, case, item)
    assert not out.exists()


def test_train_refuses_one_stem_twice(small_config: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    fc15 = next(c for c in CASES if c["id"] == "fc15")
    code = run_cli(["train", *folder_args(fc15), "--epochs", "1", "--config", str(small_config),
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert "stem 'eye_03' has 2 files" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- medloop-ml predict -----------------------------------------------------------------------


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_predict_answers_at_each_case_size(case: dict[str, Any], model: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "pred"
    code = run_cli(["predict", "--model", str(model), "--images",
                 str(fieldcases_dir() / case["id"] / "images"), "--out", str(out)])
    assert code == 0
    for item in case["items"]:
        with Image.open(out / f"{stem(item['image'])}.png") as mask:
            assert mask.size == (item["width"], item["height"])
        prob = read_prob_png(out / f"{stem(item['image'])}_prob.png")
        assert prob.shape == (item["height"], item["width"])


@pytest.mark.parametrize(("case", "item"), IMAGE_REFUSED, ids=case_id)
def test_predict_refuses_each_refused_image(case: dict[str, Any], item: dict[str, Any],
                                            model: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = link_item(case, item, tmp_path / "data")
    out = tmp_path / "pred"
    code = run_cli(["predict", "--model", str(model), "--images", str(folder / "images"),
                 "--out", str(out)])
    assert_refusal(code, capsys.readouterr().err, case, item)
    assert not out.exists()


# -- medloop-ml evaluate ----------------------------------------------------------------------


def predictions_from(case: dict[str, Any], root: Path) -> Path:
    """Predictions named like the images: the case's own predictions (fc12), else its truth."""
    pred = root / "pred"
    pred.mkdir(parents=True)
    for item in case["items"]:
        source = item.get("prediction", item["mask"])
        (pred / f"{stem(item['image'])}.png").symlink_to(fieldcases_dir() / case["id"] / source)
    return pred


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_evaluate_reads_each_case_and_stays_finite(case: dict[str, Any], tmp_path: Path) -> None:
    folder = fieldcases_dir() / case["id"]
    out = tmp_path / "report"
    args = ["evaluate", "--pred", str(predictions_from(case, tmp_path)), "--truth",
            str(folder / "masks"), "--out", str(out)]
    if case["mask_suffix"]:
        args += ["--truth-suffix", case["mask_suffix"]]
    args += ["--fov", str(folder / "fov")] if (folder / "fov").is_dir() else []
    assert run_cli(args) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {r["stem"]: r for r in report["per_image"]}
    for item in case["items"]:
        row = rows[stem(item["image"])]
        assert_counts(row, item, "truth_pixels")
        if "prediction" not in item:
            assert row["f1"] == pytest.approx(1.0)
    json.dumps(report, allow_nan=False)  # every number finite (fc12: empty and full masks)


@pytest.mark.parametrize(("case", "item"), [r for r in REFUSED if r[0]["id"] == "fc08"],
                         ids=case_id)
def test_evaluate_refuses_a_truth_of_another_size(case: dict[str, Any], item: dict[str, Any],
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    # A prediction of the image's size (the image itself, read as a mask) against the bad truth.
    (pred / f"{stem(item['image'])}.png").symlink_to(fieldcases_dir() / case["id"] / item["image"])
    truth = link_item(case, item, tmp_path / "data") / "masks"
    out = tmp_path / "report"
    code = run_cli(["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out)])
    assert code == 2
    assert Path(item["mask"]).name in capsys.readouterr().err
    assert not out.exists()


# -- the gpu worker's activities --------------------------------------------------------------


def items_of(case: dict[str, Any]) -> list[dict[str, Any]]:
    return case["items"]


def uri(case: dict[str, Any], rel: str) -> str:
    return (fieldcases_dir() / case["id"] / rel).as_uri()


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_worker_train_segmentation_reads_each_case(case: dict[str, Any],
                                                   blob_root: Path) -> None:
    params = {
        "run_id": f"fieldcase-{case['id']}",
        "train": [{"image_uri": uri(case, i["image"]), "mask_uri": uri(case, i["mask"]),
                   **({"fov_uri": uri(case, i["fov"])} if "fov" in i else {})}
                  for i in items_of(case)],
        "config": {**SMALL, "epochs": 1},
        "out_prefix": f"blob://runs/{case['id']}/",
    }
    out = ActivityEnvironment().run(GpuActivities().train_segmentation, params)
    rows = {r["stem"]: r for r in
            json.loads((blob_root / "runs" / case["id"] / "data.json").read_text())["train"]}
    assert out["epochs"] == 1
    for item in items_of(case):
        row = rows[stem(item["image"])]
        assert (row["width"], row["height"]) == (item["width"], item["height"])
        assert_counts(row, item, "mask_pixels")
        if "fov" in item:
            assert row["fov_pixels"] == item["fov_foreground"]


@pytest.mark.parametrize("case", ACCEPTED, ids=case_id)
def test_worker_predict_and_evaluate_each_case(case: dict[str, Any], model: Path,
                                               blob_root: Path) -> None:
    items = [{"image_id": f"i{k}", "image_uri": uri(case, i["image"])}
             for k, i in enumerate(items_of(case))]
    prefix = f"blob://pred/{case['id']}/"
    predicted = ActivityEnvironment().run(GpuActivities().predict_masks, {
        "model_uri": model.as_uri(), "items": items, "out_prefix": prefix})
    for item, out in zip(items_of(case), predicted["items"], strict=True):
        with Image.open(blob_root / "pred" / case["id"] / f"{out['image_id']}.png") as mask:
            assert mask.size == (item["width"], item["height"])
    scored = ActivityEnvironment().run(GpuActivities().evaluate_masks, {"items": [
        {"image_id": f"i{k}", "pred_uri": uri(case, i.get("prediction", i["mask"])),
         "truth_uri": uri(case, i["mask"]),
         **({"fov_uri": uri(case, i["fov"])} if "fov" in i else {})}
        for k, i in enumerate(items_of(case))]})
    for item, row in zip(items_of(case), scored["per_image"], strict=True):
        assert_counts(row, item, "truth_pixels")
    json.dumps(scored, allow_nan=False)


@pytest.mark.parametrize(("case", "item"), REFUSED, ids=case_id)
def test_worker_refuses_each_refused_item_without_retry(case: dict[str, Any],
                                                        item: dict[str, Any], model: Path,
                                                        blob_root: Path) -> None:
    run_id = f"refused-{case['id']}-{stem(item['image'])}"
    calls = [(GpuActivities().train_segmentation, {
        "run_id": run_id, "config": {**SMALL, "epochs": 1}, "out_prefix": f"blob://runs/{run_id}/",
        "train": [{"image_uri": uri(case, item["image"]), "mask_uri": uri(case, item["mask"])}]})]
    if (case, item) in IMAGE_REFUSED:
        calls.append((GpuActivities().predict_masks, {
            "model_uri": model.as_uri(), "out_prefix": f"blob://pred/{run_id}/",
            "items": [{"image_id": "x", "image_uri": uri(case, item["image"])}]}))
    for activity, params in calls:
        with pytest.raises(ApplicationError) as info:
            ActivityEnvironment().run(activity, params)
        assert info.value.non_retryable and info.value.type == "BadInput"
        assert REASON[case["id"]] in info.value.message
        assert "\n" not in info.value.message
    assert not (blob_root / "runs" / run_id / "best.pt").exists()
    assert not (blob_root / "pred" / run_id / "x.png").exists()


def test_worker_predicts_inside_an_imported_fov(model: Path, blob_root: Path) -> None:
    """fc03 (DRIVE) comes with FOV masks: with ``fov_uri`` nothing is predicted outside them."""
    from medloop_ml.ingest import read_mask

    fc03 = next(c for c in CASES if c["id"] == "fc03")
    item = fc03["items"][0]
    fov = read_mask(fieldcases_dir() / "fc03" / item["fov"]).mask
    ActivityEnvironment().run(GpuActivities().predict_masks, {
        "model_uri": model.as_uri(), "out_prefix": "blob://pred/fc03-fov/", "uncertainty": True,
        "items": [{"image_id": "in", "image_uri": uri(fc03, item["image"]),
                   "fov_uri": uri(fc03, item["fov"])}]})
    mask = read_mask(blob_root / "pred" / "fc03-fov" / "in.png").mask
    assert not (mask & ~fov).any()
    wrong = next(i for c, i in REFUSED if c["id"] == "fc08")  # a 65x48 mask against a 72x74 image
    with pytest.raises(ApplicationError, match="mask is 65x48 but the image is 72x74"):
        ActivityEnvironment().run(GpuActivities().predict_masks, {
            "model_uri": model.as_uri(), "out_prefix": "blob://pred/fc03-bad-fov/",
            "items": [{"image_id": "x", "image_uri": uri(fc03, item["image"]),
                       "fov_uri": (fieldcases_dir() / "fc08" / wrong["mask"]).as_uri()}]})
