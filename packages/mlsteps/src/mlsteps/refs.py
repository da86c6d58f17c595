"""Small value types shared by the step transforms and the plumbing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelRef:
    """Which model scored a batch: written next to every prediction (the inference log)."""

    uri: str
    name: str | None
    version: str | None
    run_id: str | None

    @property
    def identity(self) -> str:
        """What makes this model unique: a registered version and its run, or the URI of an immutable model."""
        return f"{self.name}/{self.version}@{self.run_id}" if self.version else f"{self.uri}@{self.run_id}"


@dataclass(frozen=True)
class LoadedModel:
    """A model as a step receives it: the fitted object, its input schema (column name -> type, from its
    signature, in order) and its identity."""

    model: Any
    input_schema: dict[str, str]
    ref: ModelRef

    @property
    def input_columns(self) -> list[str]:
        return list(self.input_schema)
