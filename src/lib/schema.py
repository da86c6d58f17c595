"""The raw dataset's contract (the config's ``schema`` section): its columns, id and target.

It describes what make_data accepts. The model's inputs are whatever feat_data produces from it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ColumnSpec(_Strict):
    """One feature column of the raw dataset."""

    type: Literal["float", "int", "category", "string", "bool"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None


class SchemaConfig(_Strict):
    """What the raw dataset must look like."""

    id_column: str | None = None
    target: str
    positive_class: str | int | bool
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> SchemaConfig:
        if self.target in self.columns:
            raise ValueError(f"target '{self.target}' must not also be listed under schema.columns")
        if self.id_column and self.id_column in self.columns:
            raise ValueError(f"id_column '{self.id_column}' must not also be listed under schema.columns")
        if not self.columns:
            raise ValueError("schema.columns is empty: list at least one feature column")
        return self

    @property
    def numeric_features(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.type in ("float", "int", "bool")]

    @property
    def categorical_features(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.type in ("category", "string")]

    @property
    def features(self) -> list[str]:
        return list(self.columns)
