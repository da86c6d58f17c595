"""What a logged model needs to be served: its pip requirements derived from the classes it holds."""

from __future__ import annotations

from importlib.metadata import version

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from src.lib.registry import BASE_REQUIREMENTS, model_requirements


class _ForeignEstimator(LogisticRegression):
    """Stands for an estimator from another package (xgboost, lightgbm, ...): here, PyYAML's."""


_ForeignEstimator.__module__ = "yaml.estimators"


def test_a_scikit_learn_model_gets_the_base_requirements_at_their_installed_versions() -> None:
    pins = model_requirements(make_pipeline(StandardScaler(), LogisticRegression()))

    assert pins == [f"{name}=={version(name)}" for name in BASE_REQUIREMENTS]


def test_an_estimator_from_another_package_adds_that_package() -> None:
    pins = model_requirements(make_pipeline(StandardScaler(), _ForeignEstimator()))

    assert pins[-1] == f"PyYAML=={version('PyYAML')}"
    assert len(pins) == len(BASE_REQUIREMENTS) + 1
