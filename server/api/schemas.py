"""Request bodies of the homes API, and the rules their fields follow."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# A gallery name is a slug: it ends up in URLs and admin-page element ids.
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
ObjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
Caption = Annotated[str, StringConstraints(max_length=2000)]

# Bounds one finalize: enough for any real home, small enough that one transaction stays short.
MAX_IMAGES_PER_FINALIZE = 5000
MAX_GALLERIES = 100

_STRICT = ConfigDict(extra="forbid", strict=True)


class HomeCreate(BaseModel):
    model_config = _STRICT

    name: Name
    address: Address = ""
    description: Description = ""


class HomeFields(BaseModel):
    """Fields finalize may change; those left out keep their value."""

    model_config = _STRICT

    name: Name | None = None
    address: Address | None = None
    description: Description | None = None


class GalleryItem(BaseModel):
    model_config = _STRICT

    image_id: ObjectId | None = None
    upload_id: ObjectId | None = None
    caption: Caption | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> GalleryItem:
        if (self.image_id is None) == (self.upload_id is None):
            raise ValueError("give exactly one of image_id and upload_id")
        return self

    @property
    def caption_given(self) -> bool:
        # Leaving caption out keeps an image's caption; `"caption": null` clears it.
        return "caption" in self.model_fields_set


class FinalizeBody(BaseModel):
    model_config = _STRICT

    expected_version: Annotated[int, Field(ge=1)] | None = None
    home: HomeFields | None = None
    galleries: Annotated[dict[Slug, list[GalleryItem]], Field(max_length=MAX_GALLERIES)] = {}

    @model_validator(mode="after")
    def _bounded(self) -> FinalizeBody:
        total = sum(len(items) for items in self.galleries.values())
        if total > MAX_IMAGES_PER_FINALIZE:
            raise ValueError(f"at most {MAX_IMAGES_PER_FINALIZE} images per finalize, got {total}")
        return self
