"""CHASE_DB1 helper: the reference few-shot split.

Train on the six images ``Image_01L … Image_03R``, test on the other 22; truth is the first
observer (``masks_1stHO``); the second observer (``masks_2ndHO``) is scored as the human baseline.
CHASE_DB1 ships no FOV masks, so the FOV is derived (:mod:`medloop_ml.fov`). The data set is read
in place from ``MEDLOOP_CHASE_DIR`` (default ``../shared/data/chase_db1`` relative to the
repository root), never copied into the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import DataError, Sample, load_pairs
from .io import read_mask

CHASE_TRAIN_STEMS: tuple[str, ...] = (
    "Image_01L",
    "Image_01R",
    "Image_02L",
    "Image_02R",
    "Image_03L",
    "Image_03R",
)


def repo_root() -> Path:
    """The repository root (ml/src/medloop_ml/chase.py → three levels up from ml/)."""
    return Path(__file__).resolve().parents[3]


def chase_root() -> Path:
    """Where CHASE_DB1 lives: ``$MEDLOOP_CHASE_DIR`` or ``<repo root>/../shared/data/chase_db1``."""
    env = os.environ.get("MEDLOOP_CHASE_DIR")
    if env:
        return Path(env)
    return (repo_root().parent / "shared" / "data" / "chase_db1").resolve()


@dataclass
class ChaseSplit:
    """The reference split: 6 training and 22 test samples, plus the 2nd observer's masks."""

    train: list[Sample]
    test: list[Sample]
    second_observer: dict[str, np.ndarray] = field(default_factory=dict)


def chase_split(root: str | Path | None = None) -> ChaseSplit:
    """Load CHASE_DB1 as the reference few-shot split (truth = 1stHO, FOV derived)."""
    base = Path(root) if root is not None else chase_root()
    if not base.is_dir():
        raise DataError(f"CHASE_DB1 folder not found: {base} (set MEDLOOP_CHASE_DIR)")
    samples = load_pairs(base / "images", base / "masks_1stHO", mask_suffix="_1stHO")
    missing = [s for s in CHASE_TRAIN_STEMS if s not in {x.stem for x in samples}]
    if missing:
        raise DataError(f"CHASE_DB1 at {base} lacks training images: {', '.join(missing)}")
    train = [s for s in samples if s.stem in CHASE_TRAIN_STEMS]
    test = [s for s in samples if s.stem not in CHASE_TRAIN_STEMS]
    second: dict[str, np.ndarray] = {}
    second_dir = base / "masks_2ndHO"
    for sample in test:
        path = second_dir / f"{sample.stem}_2ndHO.png"
        if path.is_file():
            second[sample.stem] = read_mask(path)
    return ChaseSplit(train=train, test=test, second_observer=second)
