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
    # binary | multiclass | regression. The steps of this version train binary classifiers only.
    task: Literal["binary", "multiclass", "regression"] = "binary"
    # Classification: every value the target may hold, as strings (null: not listed).
    labels: list[str] | None = None
    # binary: the label that counts as the positive class (label 1).
    positive_class: str | int | bool | None = None
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> SchemaConfig:
        if self.target in self.columns:
            raise ValueError(f"target '{self.target}' must not also be listed under schema.columns")
        if self.id_column and self.id_column in self.columns:
            raise ValueError(f"id_column '{self.id_column}' must not also be listed under schema.columns")
        if not self.columns:
            raise ValueError("schema.columns is empty: list at least one feature column, or let "
                             "`python src/main.py init` infer them from the raw data")
        if self.task != "binary":
            raise ValueError(f"task '{self.task}' is not handled by this version of the steps, which train "
                             "binary classifiers only: set task: binary (positive_class against the rest)")
        if self.positive_class is None:
            raise ValueError("schema.positive_class is missing: name the target value that counts as positive")
        if self.labels is not None and str(self.positive_class) not in self.labels:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of labels {self.labels}")
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
