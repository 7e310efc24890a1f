"""All-or-nothing output folders: build in a hidden sibling folder, rename into place at the end.

A command that fails half-way leaves nothing at its ``--out`` path (and no staging folder).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputExistsError(ValueError):
    """The output folder already exists and holds files."""


def check_output_dir(out: Path) -> None:
    """Refuse an output path that is a file or a non-empty folder (never overwrite results)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"output folder already exists and is not empty: {out}")


@contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder of ``out``; on success rename it to ``out``."""
    target = Path(out).absolute()
    check_output_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield tmp
        check_output_dir(target)  # someone may have written there meanwhile
        if target.exists():
            target.rmdir()  # an empty folder: replace it
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
