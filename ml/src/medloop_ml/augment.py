"""Declarative augmentation pipeline (see docs/architecture.md "Augmentation pipeline").

A pipeline is JSON ``{"seed": int, "steps": [{"op": ..., ...}, ...]}``; steps run in order.

Expanding steps multiply the examples:

- ``flip`` ``{"modes": ["none", "h", "v", "hv"]}``: one copy per mode (h = left/right mirror,
  v = up/down mirror, hv = both).
- ``random_crop`` ``{"size": [h, w] | s, "count": n}``: ``n`` crops at random positions. The crop
  must fit every image: a crop larger than an image is refused (:class:`AugmentError` naming the
  image and the largest size that fits them all), never padded or shrunk, because a shrunk crop
  would silently train on other sizes than asked and a padded one on black borders. The
  TypeScript ``augment`` activity refuses the same way.
- ``rotate90`` ``{"ks": [0, 1, 2, 3]}``: one copy per ``k`` quarter turns anticlockwise.

Per-example steps keep the count and change each example with probability ``p``:

- ``intensity`` ``{"brightness": b, "contrast": c, "p": p}``: add a shift drawn from
  U(−b, b)·255 and scale the contrast about the mean by a factor from U(1 − c, 1 + c).
- ``gamma`` ``{"gamma": g, "p": p}``: raise the [0, 1] image to a power from U(1 − g, 1 + g).
- ``noise`` ``{"std": s, "p": p}``: add Gaussian noise with standard deviation ``s``·255.
- ``elastic`` ``{"alpha": a, "sigma": s, "p": p}``: Simard's elastic deformation — a random
  displacement field, smoothed by a Gaussian of ``sigma`` pixels and scaled by ``alpha`` pixels;
  the image is resampled bilinearly, the mask and FOV by nearest neighbour.

Geometric steps move image, mask and FOV together; photometric steps touch the image only.
The same seed gives the same examples. A bad config raises :class:`ConfigError` naming the step
index, the op and the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from scipy import ndimage as ndi

from .data import Sample
from .io import write_png_atomic


class ConfigError(ValueError):
    """An invalid augmentation config; the message names step index, op and field."""


class AugmentError(ValueError):
    """A valid config that cannot be applied to the given images (e.g. crop larger than image)."""


Prob = Annotated[float, Field(ge=0.0, le=1.0)]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlipStep(_Step):
    op: Literal["flip"]
    modes: list[Literal["none", "h", "v", "hv"]] = Field(min_length=1)

    @field_validator("modes")
    @classmethod
    def _unique(cls, modes: list[str]) -> list[str]:
        if len(set(modes)) != len(modes):
            raise ValueError("modes must not repeat")
        return modes


class RandomCropStep(_Step):
    op: Literal["random_crop"]
    size: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]
    count: int = Field(default=1, ge=1)

    @field_validator("size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return [value, value] if isinstance(value, int) else value


class Rotate90Step(_Step):
    op: Literal["rotate90"]
    ks: list[Annotated[int, Field(ge=0, le=3)]] = Field(min_length=1)


class IntensityStep(_Step):
    op: Literal["intensity"]
    brightness: float = Field(default=0.0, ge=0.0, le=1.0)
    contrast: float = Field(default=0.0, ge=0.0, le=1.0)
    p: Prob = 1.0


class GammaStep(_Step):
    op: Literal["gamma"]
    gamma: float = Field(ge=0.0, lt=1.0)
    p: Prob = 1.0


class NoiseStep(_Step):
    op: Literal["noise"]
    std: float = Field(ge=0.0, le=1.0)
    p: Prob = 1.0


class ElasticStep(_Step):
    op: Literal["elastic"]
    alpha: float = Field(ge=0.0)
    sigma: float = Field(gt=0.0)
    p: Prob = 1.0


StepModel = (
    FlipStep
    | RandomCropStep
    | Rotate90Step
    | IntensityStep
    | GammaStep
    | NoiseStep
    | ElasticStep
)

STEP_TYPES: dict[str, type[_Step]] = {
    "flip": FlipStep,
    "random_crop": RandomCropStep,
    "rotate90": Rotate90Step,
    "intensity": IntensityStep,
    "gamma": GammaStep,
    "noise": NoiseStep,
    "elastic": ElasticStep,
}


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(step)"


def _parse_step(index: int, raw: Any) -> StepModel:
    if not isinstance(raw, dict):
        raise ConfigError(f"step {index}: must be an object with an 'op' field")
    op = raw.get("op")
    if op not in STEP_TYPES:
        known = ", ".join(STEP_TYPES)
        raise ConfigError(f"step {index}: field 'op': unknown op {op!r} (expected one of {known})")
    try:
        return STEP_TYPES[op].model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_name(err["loc"])
        raise ConfigError(f"step {index} ({op}): field '{field}': {err['msg']}") from exc


class AugmentPipeline:
    """A validated pipeline: ``from_config(dict)`` then ``expand(samples)``."""

    def __init__(self, steps: Sequence[StepModel], seed: int = 0) -> None:
        self.steps = list(steps)
        self.seed = seed

    @classmethod
    def from_config(cls, config: Any) -> AugmentPipeline:
        if not isinstance(config, dict):
            raise ConfigError("augmentation config must be a JSON object with 'steps'")
        unknown = set(config) - {"seed", "steps"}
        if unknown:
            raise ConfigError(f"unknown top-level field(s): {', '.join(sorted(unknown))}")
        seed = config.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ConfigError(f"field 'seed': must be a non-negative integer, got {seed!r}")
        steps = config.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ConfigError("field 'steps': must be a non-empty list")
        return cls([_parse_step(i, raw) for i, raw in enumerate(steps)], seed=seed)

    @classmethod
    def from_file(cls, path: str | Path) -> AugmentPipeline:
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        return cls.from_config(config)

    def factor(self) -> int:
        """How many examples one input image becomes."""
        n = 1
        for step in self.steps:
            if isinstance(step, FlipStep):
                n *= len(step.modes)
            elif isinstance(step, RandomCropStep):
                n *= step.count
            elif isinstance(step, Rotate90Step):
                n *= len(step.ks)
        return n

    def expand(self, samples: Sequence[Sample], seed: int | None = None) -> list[Sample]:
        """Run every step over ``samples``; the same seed gives the same examples."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        current = list(samples)
        for index, step in enumerate(self.steps):
            current = _apply(index, step, current, rng)
        return current


def _geom(sample: Sample, fn: Any, suffix: str) -> Sample:
    return Sample(
        stem=sample.stem + suffix,
        image=np.ascontiguousarray(fn(sample.image)),
        mask=None if sample.mask is None else np.ascontiguousarray(fn(sample.mask)),
        fov=np.ascontiguousarray(fn(sample.fov)),
    )


def _flip(array: np.ndarray, mode: str) -> np.ndarray:
    if "h" in mode:
        array = array[:, ::-1]
    if "v" in mode:
        array = array[::-1]
    return array


def _apply(
    index: int, step: StepModel, samples: list[Sample], rng: np.random.Generator
) -> list[Sample]:
    if isinstance(step, RandomCropStep):
        _check_crop_fits(index, step, samples)
    out: list[Sample] = []
    for s in samples:
        if isinstance(step, FlipStep):
            out.extend(_geom(s, lambda a, m=m: _flip(a, m), f"_{m}") for m in step.modes)
        elif isinstance(step, Rotate90Step):
            out.extend(_geom(s, lambda a, k=k: np.rot90(a, k), f"_r{90 * k}") for k in step.ks)
        elif isinstance(step, RandomCropStep):
            out.extend(_crops(index, step, s, rng))
        elif rng.random() < step.p:
            out.append(_photometric(step, s, rng))
        else:
            out.append(s)
    return out


def _check_crop_fits(index: int, step: RandomCropStep, samples: Sequence[Sample]) -> None:
    """Refuse a crop larger than any of the examples before drawing any (one line naming the
    first image it does not fit and the largest [h, w] that fits every example)."""
    ch, cw = step.size
    for s in samples:
        h, w = s.image.shape[:2]
        if ch > h or cw > w:
            max_h = min(x.image.shape[0] for x in samples)
            max_w = min(x.image.shape[1] for x in samples)
            raise AugmentError(
                f"step {index} (random_crop): field 'size': [{ch}, {cw}] is larger than image "
                f"{s.stem} ({h}x{w}, height x width); the largest size that fits every image is "
                f"[{max_h}, {max_w}]"
            )


def _crops(index: int, step: RandomCropStep, s: Sample, rng: np.random.Generator) -> list[Sample]:
    ch, cw = step.size
    h, w = s.image.shape[:2]
    crops = []
    for i in range(step.count):
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        crops.append(_geom(s, lambda a, y=y, x=x: a[y : y + ch, x : x + cw], f"_c{i:02d}"))
    return crops


def _photometric(step: StepModel, s: Sample, rng: np.random.Generator) -> Sample:
    if isinstance(step, ElasticStep):
        return _elastic(step, s, rng)
    img = s.image.astype(np.float32)
    if isinstance(step, IntensityStep):
        mean = img.mean()
        factor = rng.uniform(1.0 - step.contrast, 1.0 + step.contrast)
        shift = rng.uniform(-step.brightness, step.brightness) * 255.0
        img = (img - mean) * factor + mean + shift
    elif isinstance(step, GammaStep):
        g = rng.uniform(1.0 - step.gamma, 1.0 + step.gamma)
        img = np.power(img / 255.0, g) * 255.0
    elif isinstance(step, NoiseStep):
        img = img + rng.normal(0.0, step.std * 255.0, size=img.shape).astype(np.float32)
    image = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Sample(stem=s.stem, image=image, mask=s.mask, fov=s.fov)


def _elastic(step: ElasticStep, s: Sample, rng: np.random.Generator) -> Sample:
    h, w = s.image.shape[:2]
    dy = ndi.gaussian_filter(rng.uniform(-1, 1, (h, w)), step.sigma, mode="constant") * step.alpha
    dx = ndi.gaussian_filter(rng.uniform(-1, 1, (h, w)), step.sigma, mode="constant") * step.alpha
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = np.array([yy + dy, xx + dx])

    def warp(a: np.ndarray, order: int) -> np.ndarray:
        return ndi.map_coordinates(a, coords, order=order, mode="reflect")

    image = np.stack([warp(s.image[..., c], 1) for c in range(s.image.shape[2])], axis=-1)
    mask = None if s.mask is None else warp(s.mask.astype(np.uint8), 0).astype(bool)
    fov = warp(s.fov.astype(np.uint8), 0).astype(bool)
    return Sample(stem=s.stem, image=image.astype(np.uint8), mask=mask, fov=fov)


def overlay_mask(image: np.ndarray, mask: np.ndarray | None, alpha: float = 0.55) -> np.ndarray:
    """The image with mask pixels tinted green (for contact sheets)."""
    out = image.astype(np.float32)
    if mask is not None:
        out[mask] = (1 - alpha) * out[mask] + alpha * np.array([0.0, 255.0, 0.0])
    return np.clip(out, 0, 255).astype(np.uint8)


def contact_sheet(
    samples: Sequence[Sample], path: str | Path, *, tile: int = 128, max_tiles: int = 96
) -> Path:
    """A PNG grid of the examples (image with the mask overlaid in green).

    At most ``max_tiles`` tiles, spread evenly over the examples; each keeps its aspect ratio
    inside a ``tile``×``tile`` cell.
    """
    if not samples:
        raise AugmentError("contact sheet needs at least one example")
    pick = np.unique(np.linspace(0, len(samples) - 1, min(max_tiles, len(samples))).astype(int))
    cols = int(np.ceil(np.sqrt(len(pick))))
    rows = int(np.ceil(len(pick) / cols))
    gap = 2
    sheet = Image.new("RGB", (cols * (tile + gap) + gap, rows * (tile + gap) + gap), (32, 32, 32))
    for n, idx in enumerate(pick):
        s = samples[int(idx)]
        thumb = Image.fromarray(overlay_mask(s.image, s.mask))
        thumb.thumbnail((tile, tile), Image.Resampling.BILINEAR)
        r, c = divmod(n, cols)
        sheet.paste(thumb, (gap + c * (tile + gap), gap + r * (tile + gap)))
    return write_png_atomic(path, np.asarray(sheet))


def write_examples(samples: Sequence[Sample], out_dir: str | Path) -> dict[str, Any]:
    """Write ``images/``, ``masks/`` and ``fov/`` PNGs named by the example stems."""
    root = Path(out_dir)
    for s in samples:
        write_png_atomic(root / "images" / f"{s.stem}.png", s.image)
        if s.mask is not None:
            write_png_atomic(root / "masks" / f"{s.stem}.png", s.mask)
        write_png_atomic(root / "fov" / f"{s.stem}.png", s.fov)
    return {"count": len(samples), "stems": [s.stem for s in samples]}
