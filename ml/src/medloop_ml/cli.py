"""The ``medloop-ml`` command line (also ``python -m medloop_ml``).

Subcommands: train, predict, evaluate, augment, export-onnx, demo-chase, worker. Each imports
what it needs lazily, so one missing or broken module never breaks the others. Every output
folder is built in a hidden sibling folder and renamed at the end (:mod:`medloop_ml.staging`):
a failure leaves nothing at ``--out``. Errors print one line ``medloop-ml: error: …`` on stderr
and exit with 2 (bad input) or 1 (anything else).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

PROG = "medloop-ml"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_CHASE_CONFIG = CONFIG_DIR / "chase_default.json"


class UsageError(ValueError):
    """A bad command line that argparse itself cannot detect."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        _fail(message, 2)


def _fail(message: str, code: int) -> NoReturn:
    line = " ".join(str(message).split())  # one line, whatever the exception text held
    print(f"{PROG}: error: {line}", file=sys.stderr)
    raise SystemExit(code)


def _bad_input_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (exit 2). ValueError covers DataError, ConfigError,
    pydantic's ValidationError and the staging/blob errors."""
    return (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError)


def _describe(exc: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if not field:  # a check across fields (e.g. patch_size against depth) names them itself
            return f"invalid {exc.title}: {message}"
        return f"invalid {exc.title}: field '{field}': {message}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in text:
        text = f"{text}: {exc.filename}"
    return text


# --------------------------------------------------------------------------------------------
# train / predict / export-onnx (the engine of network.py, train.py, infer.py, onnx_export.py)


def _train_config(args: argparse.Namespace, default_file: Path | None = None) -> Any:
    from .train import TrainConfig

    overrides: dict[str, Any] = {}
    if args.minutes is not None:
        overrides["minutes"] = args.minutes
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    config_file = Path(args.config) if args.config else default_file
    if config_file is not None:
        if not config_file.is_file():
            raise UsageError(f"config file not found: {config_file}")
        config = TrainConfig.from_file(config_file, **overrides)
    elif not overrides:
        raise UsageError("set --epochs N or --minutes N (or a --config file that does)")
    else:
        config = TrainConfig.model_validate(overrides)
    patch = getattr(args, "patch_size", None)  # only `train` has the option
    if patch is not None:
        config = _with_patch_size(config, patch)
    return config


def _with_patch_size(config: Any, patch: int) -> Any:
    """``config`` with an explicit ``--patch-size``, refused naming the option when the network
    cannot take it (whether it fits the images is checked when they are loaded)."""
    from .network import size_multiple
    from .train import TrainConfig

    multiple = size_multiple(config.depth)
    if patch < 16 or patch % multiple:
        raise UsageError(
            f"--patch-size {patch} must be a multiple of {multiple} (the U-Net halves the image "
            f"{config.depth} times at depth {config.depth}), at least 16"
        )
    # Rebuilt rather than copied so that `patch_size` counts as set: an explicit size is
    # honoured or refused, never adapted to the images.
    settings = config.model_dump(exclude_unset=True)
    return TrainConfig.model_validate({**settings, "patch_size": patch})


def cmd_train(args: argparse.Namespace) -> int:
    started = time.monotonic()  # a minutes budget counts the imports and the loading too
    from .data import load_pairs
    from .staging import check_output_dir, staged_dir
    from .train import train_model

    config = _train_config(args)
    check_output_dir(Path(args.out))
    train = load_pairs(args.images, args.masks, args.mask_suffix, args.fov)
    val = []
    if args.val_images:
        if not args.val_masks:
            raise UsageError("--val-images needs --val-masks")
        val = load_pairs(args.val_images, args.val_masks, args.mask_suffix, args.val_fov)
    init = Path(args.init) if args.init else None
    if init is not None and not init.exists():
        raise UsageError(f"--init model not found: {init}")
    with staged_dir(args.out) as tmp:
        result = train_model(train, val, config, tmp, init_model=init, started=started,
                             export_onnx=True)
    for notice in result.notices:  # also logged when it happened; repeated beside the result
        print(f"note: {notice}")
    wall = f", {result.wall_seconds:.0f} s in all" if result.wall_seconds is not None else ""
    print(
        f"trained {result.epochs} epochs in {result.seconds:.0f} s of steps{wall} on "
        f"{result.patch_size}-pixel "
        f"patches; threshold {result.threshold:.3f}; metrics {json.dumps(result.metrics)}; "
        f"model in {args.out}"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data import load_images
    from .infer import FolderItem, Predictor, predict_folder, resolve_checkpoint
    from .staging import check_output_dir, staged_dir

    model = Path(args.model)
    if not model.exists():
        raise UsageError(f"model not found: {model}")
    resolve_checkpoint(model)
    check_output_dir(Path(args.out))
    samples = load_images(args.images, args.fov)
    predictor = Predictor.from_run(model, threshold=args.threshold, device="auto")
    items = [FolderItem(s.stem, s.image, predictor.fov_of(s)) for s in samples]
    bar = tqdm(total=len(items), desc="predict", unit="image")
    try:
        with staged_dir(args.out) as tmp:
            scores = predict_folder(predictor, items, tmp, on_image=lambda _d, _t: bar.update(1))
    finally:
        bar.close()
    print(f"predicted {len(scores)} images (threshold {predictor.threshold:.3f}) into {args.out}")
    return 0


def _export_image(args: argparse.Namespace) -> Any:
    from .chase import chase_root
    from .data import load_sample

    if args.image:
        return load_sample(args.image).image
    fallback = chase_root() / "images" / "Image_04L.jpg"
    if not fallback.is_file():
        raise UsageError("--image FILE is needed for the parity check (no CHASE_DB1 image found)")
    return load_sample(fallback).image


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from .infer import resolve_checkpoint
    from .onnx_export import export_onnx

    model = Path(args.model)
    if not model.exists():
        raise UsageError(f"model not found: {model}")
    resolve_checkpoint(model)
    result = export_onnx(model, _export_image(args), args.out)
    print(f"wrote {result.path} (parity max |Δprobability| = {result.max_abs_diff:.2e})")
    return 0


# --------------------------------------------------------------------------------------------
# evaluate / augment


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_folders, markdown_table
    from .staging import check_output_dir, staged_dir

    check_output_dir(Path(args.out))
    with staged_dir(args.out) as tmp:
        report = evaluate_folders(
            args.pred,
            args.truth,
            tmp,
            truth_suffix=args.truth_suffix,
            fov_dir=args.fov,
            images_dir=args.images,
            progress=True,
        )
    print(markdown_table(report))
    print(f"report in {args.out}")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .augment import AugmentPipeline, contact_sheet, write_examples
    from .data import load_images, load_pairs
    from .io import write_text_atomic
    from .staging import check_output_dir, staged_dir

    pipeline = AugmentPipeline.from_file(args.config)
    check_output_dir(Path(args.out))
    if args.masks:
        samples = load_pairs(args.images, args.masks, args.mask_suffix, args.fov)
    else:
        samples = load_images(args.images, args.fov)
    seed = pipeline.seed if args.seed is None else args.seed
    examples = pipeline.expand(samples, seed=seed)
    with staged_dir(args.out) as tmp:
        manifest = write_examples(tqdm(examples, desc="augment", unit="example"), tmp)
        contact_sheet(examples, tmp / "contact_sheet.png")
        manifest = {"inputs": len(samples), "seed": seed, "factor": pipeline.factor(), **manifest}
        write_text_atomic(tmp / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    print(f"{len(samples)} images -> {len(examples)} examples in {args.out}")
    return 0


# --------------------------------------------------------------------------------------------
# demo-chase / worker


def cmd_demo_chase(args: argparse.Namespace) -> int:
    from .demo import run_demo_chase
    from .staging import check_output_dir, staged_dir

    config = _train_config(args, default_file=DEFAULT_CHASE_CONFIG)
    check_output_dir(Path(args.out))
    with staged_dir(args.out) as tmp:
        summary = run_demo_chase(tmp, config, chase_dir=args.chase_dir)
    print(summary["markdown"])
    print(f"demo report in {args.out}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Serve until stopped. Leaves through ``os._exit``: the threads of Temporal's native runtime
    can abort the interpreter during its normal shutdown (``PyGILState_Release`` while
    finalising), which would turn a clean exit or a one-line error into a crash."""
    import logging
    import os

    from .worker import run_worker

    code, message = 0, ""
    try:
        run_worker(args.address, args.task_queue, max_concurrent_activities=args.concurrency)
    except KeyboardInterrupt:
        code, message = 130, "interrupted"
    except Exception as exc:  # noqa: BLE001 - reported as one line below
        code, message = 1, f"{type(exc).__name__}: {_describe(exc)}"
    if message:
        print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --------------------------------------------------------------------------------------------
# parser


def _budget(p: argparse.ArgumentParser, default_config: str = "none") -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--minutes", type=float,
        help="training budget in wall-clock minutes: everything from the start of the command "
        "to the written model counts",
    )
    group.add_argument("--epochs", type=int, help="training length in epochs")
    p.add_argument(
        "--config",
        help="TrainConfig JSON file; --minutes/--epochs override its budget "
        f"(default: {default_config})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="medloop segmentation engine")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a model on image/mask folders")
    p.add_argument("--images", required=True, help="folder of training images")
    p.add_argument(
        "--masks", required=True,
        help="folder of masks of the target (vessels, lesions, ...), matched to the images by stem",
    )
    p.add_argument("--mask-suffix", default="", help="mask stem = image stem + suffix")
    p.add_argument("--fov", help="folder of FOV masks (default: derived from the images)")
    p.add_argument("--val-images", help="validation images (optional)")
    p.add_argument("--val-masks", help="validation masks (same suffix)")
    p.add_argument("--val-fov", help="validation FOV masks")
    _budget(p)
    p.add_argument(
        "--patch-size",
        type=int,
        metavar="PX",
        help="side of the training patches in pixels: a multiple of 2**depth (16 by default) "
        "that fits every training image (default: planned from the labelled images, 128 for thin "
        "targets such as vessels; smaller when the images are)",
    )
    p.add_argument("--init", help="fine-tune from this run folder or checkpoint")
    p.add_argument("--out", required=True, help="run folder to create")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="segment a folder of images")
    p.add_argument("--model", required=True, help="run folder (best.pt) or checkpoint")
    p.add_argument("--images", required=True, help="folder of images to segment")
    p.add_argument("--fov", help="folder of FOV masks (default: derived)")
    p.add_argument("--threshold", type=float, help="override the model's threshold")
    p.add_argument(
        "--out",
        required=True,
        help="folder to create: <stem>.png masks, <stem>_prob.png 16-bit probability maps",
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="score predicted masks against truth masks")
    p.add_argument("--pred", required=True, help="folder of <stem>.png (+ <stem>_prob.png)")
    p.add_argument("--truth", required=True, help="folder of truth masks")
    p.add_argument("--truth-suffix", default="", help="truth stem = prediction stem + suffix")
    p.add_argument("--fov", help="folder of FOV masks")
    p.add_argument("--images", help="images to derive the FOV from (when no --fov)")
    p.add_argument("--out", required=True, help="report folder to create")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("augment", help="expand images with an augmentation pipeline (JSON)")
    p.add_argument("--images", required=True, help="folder of images to expand")
    p.add_argument("--masks", help="mask folder (optional)")
    p.add_argument("--mask-suffix", default="", help="mask stem = image stem + suffix")
    p.add_argument("--fov", help="folder of FOV masks (default: derived)")
    p.add_argument("--config", required=True, help="pipeline JSON (ml/configs/chase_augment.json)")
    p.add_argument("--seed", type=int, help="override the pipeline's seed")
    p.add_argument("--out", required=True, help="folder to create for the examples")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("export-onnx", help="export a run to ONNX with a parity check")
    p.add_argument("--model", required=True, help="run folder")
    p.add_argument("--image", help="real image for the parity check (default: a CHASE_DB1 image)")
    p.add_argument("--out", help="ONNX file (default: <run>/model.onnx)")
    p.set_defaults(func=cmd_export_onnx)

    p = sub.add_parser("demo-chase", help="the CHASE_DB1 reference split end to end")
    p.add_argument("--out", required=True, help="folder to create for the run and reports")
    p.add_argument("--chase-dir", help="CHASE_DB1 folder (default: $MEDLOOP_CHASE_DIR)")
    _budget(p, default_config="ml/configs/chase_default.json")
    p.set_defaults(func=cmd_demo_chase)

    p = sub.add_parser("worker", help="serve the gpu task queue (Temporal)")
    p.add_argument(
        "--address",
        default=os.environ.get("MEDLOOP_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
        help="Temporal frontend HOST:PORT (default: $MEDLOOP_TEMPORAL_ADDRESS or 127.0.0.1:7233)",
    )
    p.add_argument("--task-queue", default="gpu", help="task queue to serve (default: gpu)")
    p.add_argument(
        "--concurrency", type=int, default=1, help="activities at once (default 1: one training)"
    )
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        message, code = "interrupted", 130
    except SystemExit:
        raise
    except _bad_input_types() as exc:
        message, code = _describe(exc), 2
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence: one line, exit 1
        message, code = f"{type(exc).__name__}: {_describe(exc)}", 1
    # Exit outside the handler: the exception and its traceback are released first, so native
    # resources it references (e.g. Temporal's client runtime) are not torn down during
    # interpreter shutdown, which aborts the process.
    _fail(message, code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
