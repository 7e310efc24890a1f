"""Shared fixtures. The generators live in ``synthetic.py`` so tests can import them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from synthetic import TinySet, write_tiny_set

from medloop_ml.chase import chase_root

# Tests train and predict on the CPU even where a GPU exists: epoch-budgeted runs are
# bit-deterministic there, and the assertions on exact losses hold (medloop_ml.infer.torch_device).
os.environ.setdefault("MEDLOOP_DEVICE", "cpu")


@pytest.fixture
def tiny_set(tmp_path: Path) -> TinySet:
    """Four 64×64 PNG images with vessel masks (same stem) and FOV masks."""
    return write_tiny_set(tmp_path / "tiny")


@pytest.fixture
def chase_dir() -> Path:
    """The CHASE_DB1 folder (read in place); the tests that use it need the data set."""
    root = chase_root()
    assert (root / "images" / "Image_01L.jpg").is_file(), f"CHASE_DB1 not found at {root}"
    return root
