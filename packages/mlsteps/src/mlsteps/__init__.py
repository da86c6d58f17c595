"""mlsteps: the machinery of an MLflow pipeline project, installed as a library.

A project holds its steps (``src/<package>/<module>.py``, each with a ``STEP = Step(...)``), its ``config/`` and
its tests; ``python src/main.py`` hands over to ``mlsteps.cli.main``. What a step module imports is here:

    from mlsteps import Step, StepContext, StepOutput, StepParams, ModelOutput
    from mlsteps import ConfigError, DataValidationError, SchemaConfig

Everything else (``mlsteps.<module>``) is the library's own and may change between versions (CHANGELOG.md).
Names are loaded on first use, so that ``import mlsteps`` stays cheap (``--help`` and up-to-date re-runs import
no pandas, pydantic or MLflow).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

_PUBLIC = {
    "Step": "mlsteps.step",
    "StepContext": "mlsteps.step",
    "StepOutput": "mlsteps.step",
    "StepParams": "mlsteps.step",
    "NoParams": "mlsteps.step",
    "ModelOutput": "mlsteps.step",
    "SchemaConfig": "mlsteps.schema",
    "PipelineError": "mlsteps.errors",
    "ConfigError": "mlsteps.errors",
    "DataValidationError": "mlsteps.errors",
}
__all__ = [
    "ConfigError",
    "DataValidationError",
    "ModelOutput",
    "NoParams",
    "PipelineError",
    "SchemaConfig",
    "Step",
    "StepContext",
    "StepOutput",
    "StepParams",
    "__version__",
]

if TYPE_CHECKING:
    from mlsteps.errors import ConfigError, DataValidationError, PipelineError
    from mlsteps.schema import SchemaConfig
    from mlsteps.step import ModelOutput, NoParams, Step, StepContext, StepOutput, StepParams


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'mlsteps' has no attribute {name!r}")
