"""What the engine benchmarks' JSON reports share: paths shown without machine paths, and the
environment a figure was measured in (threads, library versions, machine)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def shown_path(path: Path) -> str:
    """A path for the report: relative to the repository when inside it, else its last two
    parts (results are committed; machine paths are not)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(ROOT).as_posix()
    except ValueError:
        return "/".join(resolved.parts[-2:])


def environment() -> dict[str, Any]:
    """Threads, versions and machine, for the report's top level."""
    return {
        "threads": torch.get_num_threads(),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "numpy": np.__version__},
        "machine": {"platform": platform.platform(), "logical_cpus": os.cpu_count()},
    }
