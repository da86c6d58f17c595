"""The raw dataset's contract (the config's ``schema`` section): its columns, id and target.

It describes what make_data accepts. The model's inputs are whatever feat_data produces from it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator, model_validator

from mlsteps.step import Strict

Task = Literal["binary", "multiclass", "regression"]


class ColumnSpec(Strict):
    """One feature column of the raw dataset."""

    type: Literal["float", "int", "category", "string", "bool"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None


class SchemaConfig(Strict):
    """What the raw dataset must look like."""

    id_column: str | None = None
    # The id identifies one row: a repeated id is an error, unless rows may share one (visits of a patient, say).
    id_may_repeat: bool = False
    target: str
    # binary, multiclass or regression.
    task: Task = "binary"
    # Classification: every value the target may hold, as strings.
    labels: list[str] | None = None
    # Binary: the label that counts as positive (one of labels).
    positive_class: str | None = None
    columns: dict[str, ColumnSpec]

    @field_validator("labels", "positive_class", mode="before")
    @classmethod
    def _labels_are_strings(cls, value: Any) -> Any:
        """YAML reads Yes/No/true as booleans and 0/1 as numbers: refuse them, with the fix."""
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not isinstance(item, str):
                quoted = (
                    {True: "'Yes' or 'true'", False: "'No' or 'false'"}.get(item, f"'{item}'")
                    if isinstance(item, bool)
                    else f"'{item}'"
                )
                raise ValueError(
                    f"{item!r} was read by YAML as a {type(item).__name__}, not a label: quote it "
                    f"({quoted}) so that it matches the data's values"
                )
        return value

    @model_validator(mode="after")
    def _labels_fit_the_task(self) -> SchemaConfig:
        if self.task == "regression":
            if self.labels or self.positive_class is not None:
                raise ValueError("a regression target has no labels or positive_class: remove them, or set the task")
            return self
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"a {self.task} target needs 'labels': every value it may hold, each once, as strings")
        if self.task == "binary" and len(self.labels) != 2:
            raise ValueError(f"task binary needs exactly 2 labels, got {self.labels}: set task: multiclass for more")
        if self.task == "multiclass" and len(self.labels) < 3:
            raise ValueError(f"task multiclass needs 3 or more labels, got {self.labels}: set task: binary for 2")
        if self.task == "binary" and self.positive_class not in self.labels:
            raise ValueError(f"positive_class {self.positive_class!r} must be one of the labels {self.labels}")
        if self.task == "multiclass" and self.positive_class is not None:
            raise ValueError("positive_class is for binary targets only: remove it")
        return self

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

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
    def categorical_features(self) -> list[str]:
        return [n for n, c in self.columns.items() if c.type in ("category", "string")]

    @property
    def features(self) -> list[str]:
        return list(self.columns)
