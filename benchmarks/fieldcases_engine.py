"""The engine's side of ``benchmarks/fieldcases.ts``: how the readers every engine entry point calls
(``medloop-ml train | predict | evaluate`` and the ``gpu`` worker: ``medloop_ml.data``) read each
field case. Run with ``PYTHONPATH=<checkout>/ml/src`` to measure another checkout of the engine.

Usage: python benchmarks/fieldcases_engine.py FIELDCASES OUT_DIR

Prints one JSON object: per case id, per item (image file name) ``{refused, message}`` or
``{width, height, mask_pixels, fov_pixels, png}`` where ``png`` is the decoded image written to
OUT_DIR (so the caller checks EXIF and 16-bit expectations on the pixels the engine trains on).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from medloop_ml.data import load_images, load_pairs, load_sample
from PIL import Image


def read_item(folder: Path, item: dict[str, Any], out: Path) -> dict[str, Any]:
    try:
        sample = load_sample(folder / item["image"], folder / item["mask"],
                             folder / item["fov"] if "fov" in item else None)
    except Exception as exc:  # noqa: BLE001 - any refusal counts; its message is reported
        return {"refused": True, "message": " ".join(str(exc).split())}
    png = out / f"{folder.name}-{Path(item['image']).stem}.png"
    Image.fromarray(np.asarray(sample.image, dtype=np.uint8)).save(png)
    height, width = sample.image.shape[:2]
    return {"refused": False, "width": width, "height": height, "png": str(png),
            "mask_pixels": int(np.asarray(sample.mask).sum()),
            "fov_pixels": int(np.asarray(sample.fov).sum()) if "fov" in item else None}


def read_folder(folder: Path) -> dict[str, Any]:
    """A whole case folder as train (pairs) and predict (images) read it."""
    result: dict[str, Any] = {}
    for name, read in (("pairs", lambda: load_pairs(folder / "images", folder / "masks")),
                       ("images", lambda: load_images(folder / "images"))):
        try:
            result[name] = {"refused": False, "count": len(read())}
        except Exception as exc:  # noqa: BLE001
            result[name] = {"refused": True, "message": " ".join(str(exc).split())}
    return result


def main(fieldcases: Path, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    cases = json.loads((fieldcases / "cases.json").read_text("utf-8"))["cases"]
    report: dict[str, Any] = {}
    for case in cases:
        folder = fieldcases / case["id"]
        report[case["id"]] = {
            "items": {Path(i["image"]).name: read_item(folder, i, out) for i in case["items"]},
            "folder": read_folder(folder),
        }
    return report


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))))
