"""The JSON inputs of the gpu activities (docs/architecture.md, "Activity contract").

Unknown keys are refused so that a misspelt field fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# Identifiers end up in file names under out_prefix: keep them to a portable alphabet.
SafeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Uri = Annotated[str, Field(min_length=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageMaskPair(_Request):
    image_uri: Uri
    mask_uri: Uri


class TrainRequest(_Request):
    run_id: SafeId
    train: list[ImageMaskPair] = Field(min_length=1)
    val: list[ImageMaskPair] = Field(default_factory=list)
    config: dict[str, Any] | None = None
    init_model_uri: Uri | None = None
    out_prefix: Uri


class PredictItem(_Request):
    image_id: SafeId
    image_uri: Uri


class PredictRequest(_Request):
    model_uri: Uri
    items: list[PredictItem] = Field(min_length=1)
    out_prefix: Uri
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    uncertainty: bool = True


class EvaluateItem(_Request):
    image_id: str | None = None
    pred_uri: Uri
    truth_uri: Uri
    prob_uri: Uri | None = None
    fov_uri: Uri | None = None


class EvaluateRequest(_Request):
    items: list[EvaluateItem] = Field(min_length=1)
