"""Self-configuration: the training plan derived from the labelled images' fingerprint.

Follows the principle of nnU-Net (Isensee et al., "nnU-Net: a self-configuring method for deep
learning-based biomedical image segmentation", Nature Methods 18:203-211, 2021): measure the
data set (its *fingerprint*), derive the network and sampling settings from it with fixed rules,
write the plan beside the model, and let the user override any part.

Fingerprint (:func:`fingerprint`), from the labelled training images:

- median image height and width;
- foreground fraction: the mean share of target pixels inside each image's field of view;
- thickness: twice the median Euclidean distance from a target pixel to the background
  (scipy's distance transform), in pixels. Thin lines such as retinal vessels give 2-6 px;
  a blob of radius R gives about 0.6 R, whatever its outline;
- object size: the area-weighted median equivalent diameter sqrt(4 A / pi) of the target's
  connected components, in pixels;
- circular FOV: whether the FOV derived from the image (:func:`medloop_ml.fov.derive_fov`) is a
  camera aperture, i.e. it leaves all four corners outside and covers less than 95 % of the
  image, in at least half of the images.

Rules (:func:`derive_plan`):

- **thin** targets (thickness <= ``THIN_MAX_PX`` and <= 5 % of the smaller image side; images
  without target pixels do not count): today's measured CHASE_DB1 defaults —
  128-pixel patches, depth 4, the local-contrast channel (it evens out illumination so faint thin
  lines stand out), half the patches centred on target pixels, BCE alone as the loss.
- **blob** targets: the patch grows to cover an object with its surroundings (1.5 x the object
  size, a multiple of 2**depth, at most ``BLOB_MAX_PATCH`` and the smallest image side), depth 5
  from 192-pixel patches on (a wider receptive field), no local-contrast channel (it keeps edges
  and removes the even shading that makes up a blob's interior), a third of the patches centred
  on target pixels (nnU-Net's foreground oversampling), the batch shrunk so a step costs
  about what a thin-target step does, and nnU-Net's BCE + soft Dice loss (``dice_weight`` 1).
- **test-time views**: the dihedral average (all eight rotations and mirrors of each window,
  ``dihedral_average``) for images of up to ``DIHEDRAL_MAX_PIXELS`` (median height x width),
  where eight views stay within about a second per image on 2 CPU cores; larger images keep the
  three views of ``flip_average``, so a 3504x2336 image stays within 3 s. Eight views need
  ``flip_average``: with it off, one view, whatever the plan says.
- **FOV**: the derived FOV is used only where the images show a circular aperture; otherwise the
  whole image is the field of view (a derived FOV would cut dark objects at the border).
  FOV masks given as files are always used.

User override: any of the planned fields set explicitly in the training config (or ``plan:
"off"``) is kept as given; the plan records which ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy import ndimage as ndi

from medloop_ml.fov import derive_fov

if TYPE_CHECKING:
    from medloop_ml.data import Sample
    from medloop_ml.train import TrainConfig

THIN_MAX_PX = 12.0  # thickness at or below which a target is a thin structure ...
THIN_MAX_SHARE = 0.05  # ... as long as it is also at most this share of the smaller image side
BLOB_MAX_PATCH = 256  # largest training patch planned on the CPU (patch pixels cost steps)
APERTURE_MAX_COVER = 0.95  # a derived FOV covering more than this is the whole image
# Largest median image (pixels) predicted with eight views: 999x960 (0.96 MP) took 0.84-0.94 s
# with them and 0.34 s with three on 2 CPU cores (benchmarks/README.md, issue 11).
DIHEDRAL_MAX_PIXELS = 1_000_000
# The fields a plan may set; anything else in the config is the user's alone.
PLANNED_FIELDS = ("patch_size", "depth", "local_contrast", "vessel_fraction", "fov",
                  "batch_size", "dice_weight", "dihedral_average")


@dataclass(frozen=True)
class Fingerprint:
    """What the labelled images are like (module docstring)."""

    images: int
    median_height: int
    median_width: int
    foreground_fraction: float
    thickness_px: float
    object_size_px: float
    circular_fov: bool


@dataclass
class Plan:
    """The planned settings, why, and what the user set instead."""

    target: Literal["thin", "blob"]
    settings: dict[str, Any]
    reasons: list[str]
    fingerprint: Fingerprint
    overridden: list[str] = field(default_factory=list)
    used: dict[str, Any] = field(default_factory=dict)  # what the run trained with, in the end

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "settings": self.settings, "reasons": self.reasons,
                "fingerprint": asdict(self.fingerprint), "overridden": self.overridden,
                "used": self.used}

    def summary(self) -> str:
        """One line for the console: the target and what was used."""
        used = ", ".join(f"{k} {v}" for k, v in self.used.items())
        mine = f"; set by you: {', '.join(self.overridden)}" if self.overridden else ""
        return f"plan: {self.target} target; {used}{mine} (model.json, plan)"


def _thickness(mask: np.ndarray) -> float:
    if not mask.any():
        return 0.0
    distance = ndi.distance_transform_edt(mask)
    return 2.0 * float(np.median(distance[mask]))


def _object_sizes(mask: np.ndarray) -> list[tuple[float, int]]:
    """(equivalent diameter, area) of each connected component (8-connected)."""
    labels, count = ndi.label(mask, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel())[1:]
    return [(math.sqrt(4.0 * a / math.pi), int(a)) for a in areas if a > 0]


def _weighted_median(values: Sequence[tuple[float, int]]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    half, running = sum(w for _, w in ordered) / 2.0, 0
    for value, weight in ordered:
        running += weight
        if running >= half:
            return value
    return ordered[-1][0]


def _is_aperture(image: np.ndarray) -> bool:
    fov = derive_fov(image)
    corners = (fov[0, 0], fov[0, -1], fov[-1, 0], fov[-1, -1])
    return not any(corners) and float(fov.mean()) < APERTURE_MAX_COVER


def fingerprint(
    samples: Sequence[Sample], aperture_from: Sequence[Sample] = ()
) -> Fingerprint:
    """The fingerprint of labelled samples (those without a mask are ignored); the aperture vote
    is taken on `aperture_from` when given (whole images, when `samples` are crops of them)."""
    labelled = [s for s in samples if s.mask is not None]
    if not labelled:
        raise ValueError("a plan needs at least one labelled image")
    heights = [s.image.shape[0] for s in labelled]
    widths = [s.image.shape[1] for s in labelled]
    fractions, thickness, sizes = [], [], []
    for s in labelled:
        assert s.mask is not None
        inside = s.fov if s.fov is not None and s.fov.any() else np.ones_like(s.mask)
        fractions.append(float(s.mask[inside].mean()))
        if s.mask.any():  # an image without target says nothing about the target's shape
            thickness.append(_thickness(s.mask))
            sizes.extend(_object_sizes(s.mask))
    return Fingerprint(
        images=len(labelled),
        median_height=int(np.median(heights)),
        median_width=int(np.median(widths)),
        foreground_fraction=round(float(np.mean(fractions)), 4),
        thickness_px=round(float(np.median(thickness)), 2) if thickness else 0.0,
        object_size_px=round(_weighted_median(sizes), 1),
        circular_fov=fingerprint_aperture(aperture_from or labelled),
    )


def _round_down(value: float, multiple: int) -> int:
    return int(value // multiple) * multiple


def derive_plan(fp: Fingerprint, defaults: TrainConfig) -> Plan:
    """The settings for data with fingerprint `fp` (module docstring); `defaults` are today's
    defaults, which thin targets keep."""
    fov = "derived" if fp.circular_fov else "whole"
    fov_reason = ("the images show a circular camera aperture: the FOV is derived from each"
                  if fp.circular_fov else
                  "no circular aperture: the whole image is the field of view")
    smallest = min(fp.median_height, fp.median_width)
    pixels = fp.median_height * fp.median_width
    dihedral = pixels <= DIHEDRAL_MAX_PIXELS
    views_reason = (f"images of {pixels / 1e6:.2f} MP: inference averages all eight rotations "
                    "and mirrors of each window" if dihedral else
                    f"images of {pixels / 1e6:.2f} MP: inference averages three views (eight "
                    f"above {DIHEDRAL_MAX_PIXELS / 1e6:g} MP would cost too much time)")
    if fp.thickness_px <= min(THIN_MAX_PX, THIN_MAX_SHARE * smallest):
        settings = {"patch_size": defaults.patch_size, "depth": defaults.depth,
                    "local_contrast": True, "vessel_fraction": defaults.vessel_fraction,
                    "fov": fov, "batch_size": defaults.batch_size,
                    "dice_weight": defaults.dice_weight, "dihedral_average": dihedral}
        reasons = [f"thin target (thickness {fp.thickness_px:.1f} px <= {THIN_MAX_PX:g}): "
                   f"{defaults.patch_size}-pixel patches, depth {defaults.depth}, local contrast, "
                   "BCE loss alone",
                   fov_reason, views_reason]
        return Plan("thin", settings, reasons, fp)
    wanted = 1.5 * fp.object_size_px
    depth = 5 if min(wanted, BLOB_MAX_PATCH, smallest) >= 192 else defaults.depth
    multiple = 2**depth
    patch = _round_down(min(max(wanted, defaults.patch_size), BLOB_MAX_PATCH, smallest), multiple)
    patch = max(patch, multiple)
    # Keep the pixels per step about what the default batch of default patches costs.
    batch = max(2, round(defaults.batch_size * (defaults.patch_size / patch) ** 2))
    settings = {"patch_size": patch, "depth": depth, "local_contrast": False,
                "vessel_fraction": 0.33, "fov": fov, "batch_size": batch, "dice_weight": 1.0,
                "dihedral_average": dihedral}
    reasons = [
        f"blob-shaped target (thickness {fp.thickness_px:.1f} px > {THIN_MAX_PX:g}, objects "
        f"about {fp.object_size_px:.0f} px): {patch}-pixel patches (1.5x the object size, at "
        f"most {BLOB_MAX_PATCH} and the image side), depth {depth}, batch {batch}",
        "no local-contrast channel: it removes the shading that makes up an object's interior",
        "a third of the patches centred on the target (foreground oversampling)",
        "BCE + soft Dice loss (nnU-Net's): the region term suits objects that fill the image",
        fov_reason,
        views_reason,
    ]
    return Plan("blob", settings, reasons, fp)


# Fields that shape the network: a run that starts from an earlier model (fine-tuning, resuming)
# keeps that model's, so the plan of a grown labelled set never changes a network mid-campaign.
NETWORK_FIELDS = ("depth", "local_contrast", "channels", "res_units", "fov")


def plan_config(
    samples: Sequence[Sample],
    config: TrainConfig,
    originals: Sequence[Sample] = (),
    inherited: dict[str, Any] | None = None,
) -> tuple[TrainConfig, Plan | None]:
    """`config` with the plan's settings where the user left them unset, and the plan.

    `samples` are the training examples; `originals` (e.g. the validation images) are whole,
    un-augmented images when the examples are crops of them: the aperture vote uses them, since
    a crop of a fundus photograph rarely shows the black surround in all four corners.
    `inherited` is the config of the model a run starts from: its network fields
    (:data:`NETWORK_FIELDS`) are kept as if the user had set them. A planned depth that does not
    divide a patch or window the user set is left at the config's depth, and the batch follows
    the patch actually used. With ``config.plan == "off"`` the config is returned as given.
    """
    if config.plan == "off":
        return config, None
    from medloop_ml.train import TrainConfig

    chosen = set(config.model_fields_set)
    if inherited:
        keep = {k: inherited[k] for k in NETWORK_FIELDS if k in inherited and k not in chosen}
        config = TrainConfig.model_validate({**config.model_dump(), **keep})
        chosen |= set(keep)
    fp = fingerprint(samples, aperture_from=originals)
    defaults = TrainConfig(epochs=1)
    plan = derive_plan(fp, defaults)
    plan.overridden = [name for name in PLANNED_FIELDS if name in chosen
                       and getattr(config, name) != plan.settings[name]]
    update = {k: v for k, v in plan.settings.items() if k not in chosen}
    if "depth" in update:
        multiple = 2 ** update["depth"]
        fixed = [config.infer_patch] + ([config.patch_size] if "patch_size" in chosen else [])
        if any(side % multiple for side in fixed):
            del update["depth"]
            plan.reasons.append(f"depth kept at {config.depth}: a patch or window you set is not "
                                f"a multiple of {multiple}")
    if update.get("dihedral_average") and not config.flip_average:
        update["dihedral_average"] = False
        plan.reasons.append("one view at inference: you turned flip_average off")
    if "batch_size" in update and "patch_size" not in update:
        update["batch_size"] = max(2, round(
            defaults.batch_size * (defaults.patch_size / config.patch_size) ** 2))
    if "patch_size" in update and "depth" not in update and "depth" not in chosen:
        multiple = 2 ** config.depth
        update["patch_size"] = max(multiple, update["patch_size"] // multiple * multiple)
    planned = TrainConfig.model_validate({**config.model_dump(), **update})
    # model_validate marks every field as set; keep the user's own set for later checks
    planned.__pydantic_fields_set__ = chosen
    return planned, plan


def fingerprint_aperture(samples: Sequence[Sample]) -> bool:
    """Whether at least half of the images show a circular camera aperture."""
    images = [s.image for s in samples]
    return bool(images) and sum(_is_aperture(image) for image in images) * 2 >= len(images)


def with_plan_fov(samples: Sequence[Sample], fov: str) -> list[Sample]:
    """Samples whose FOV was derived from the image get the whole image when the plan's FOV is
    ``"whole"``; FOV masks given as files are kept."""
    if fov != "whole":
        return list(samples)
    return [replace(s, fov=np.ones(s.image.shape[:2], bool)) if s.fov_derived else s
            for s in samples]
