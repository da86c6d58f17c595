"""What a logged model needs to be served: its pip requirements derived from the classes it holds."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from mlsteps.registry import BASE_REQUIREMENTS, model_requirements
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


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


@pytest.mark.slow
def test_a_version_registered_in_this_process_is_used_as_fitted_others_are_loaded(tmp_path, monkeypatch) -> None:
    import mlflow
    import pandas as pd
    from mlsteps import registry

    monkeypatch.setattr(registry, "_LOGGED", {})
    monkeypatch.setattr(registry, "_REGISTERED", {})
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("registry-test", str(tmp_path / "artifacts")))
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, [0, 0, 1, 1])
    with mlflow.start_run():
        version_uri = registry.register(registry.log_model(model, X.head(2)), "demo")

    ref = registry.describe_model(version_uri)
    fitted, schema = registry.load_model(version_uri, ref)
    registry._REGISTERED.clear()  # as in another process: loaded from the artifact store
    loaded, loaded_schema = registry.load_model(version_uri, ref)

    assert fitted is model
    assert loaded is not model
    assert schema == loaded_schema == {"a": "double", "b": "double"}
    assert loaded.predict(X).tolist() == fitted.predict(X).tolist()
