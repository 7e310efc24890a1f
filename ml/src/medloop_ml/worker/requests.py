"""The JSON inputs of the gpu activities (docs/architecture.md, "Activity contract").

Unknown keys are refused so that a misspelt field fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Identifiers end up in file names under out_prefix: keep them to a portable alphabet.
SafeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
# Image ids may be database integers or strings; the output echoes them as given.
ImageId = Annotated[int, Field(ge=0)] | SafeId
Uri = Annotated[str, Field(min_length=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageMaskPair(_Request):
    image_uri: Uri
    mask_uri: Uri
    # The image's FOV mask (validation and training patches inside it); else derived.
    fov_uri: Uri | None = None


class TrainRequest(_Request):
    run_id: SafeId
    train: list[ImageMaskPair] = Field(min_length=1)
    val: list[ImageMaskPair] = Field(default_factory=list)
    config: dict[str, Any] | None = None
    init_model_uri: Uri | None = None
    out_prefix: Uri


class PredictItem(_Request):
    image_id: ImageId
    image_uri: Uri
    # The image's FOV mask; without it the FOV is derived from the image (medloop_ml.fov).
    fov_uri: Uri | None = None


class PredictRequest(_Request):
    model_uri: Uri
    items: list[PredictItem] = Field(min_length=1)
    out_prefix: Uri
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    uncertainty: bool = True

    @model_validator(mode="after")
    def _unique_ids(self) -> PredictRequest:
        # Two items with one id would write the same files.
        ids = [str(item.image_id) for item in self.items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"image_id must be unique, repeated: {', '.join(duplicates)}")
        return self


class EvaluateItem(_Request):
    image_id: int | str | None = None
    pred_uri: Uri
    truth_uri: Uri
    prob_uri: Uri | None = None
    fov_uri: Uri | None = None


class EvaluateRequest(_Request):
    items: list[EvaluateItem] = Field(min_length=1)


class ConsensusItem(_Request):
    image_id: ImageId
    # One mask per annotator, at least two, all of the image's size.
    mask_uris: list[Uri] = Field(min_length=2)


class ConsensusRequest(_Request):
    items: list[ConsensusItem] = Field(min_length=1)
    method: Literal["staple", "majority"] = "staple"
    out_prefix: Uri

    @model_validator(mode="after")
    def _unique_ids(self) -> ConsensusRequest:
        ids = [str(item.image_id) for item in self.items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"image_id must be unique, repeated: {', '.join(duplicates)}")
        return self
