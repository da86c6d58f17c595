"""load_config: merging, overrides, resolution, and one YAML fixture per failure mode."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT, deep_merge, load_config
from mlsteps.errors import ConfigError

from tests.helpers import EXAMPLE_CONFIG

CASES = Path(__file__).parent / "config_cases"


def _config_dir(tmp_path: Path, local_overlay: Path | str | None = None) -> Path:
    """The example's base.yaml plus one overlay file as the `local` environment."""
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copy(EXAMPLE_CONFIG / "base.yaml", folder / "base.yaml")
    if isinstance(local_overlay, Path):
        shutil.copy(local_overlay, folder / "local.yaml")
    else:
        (folder / "local.yaml").write_text(local_overlay or "")
    return folder


@pytest.mark.parametrize("environment", ["local", "dev", "prd"])
def test_every_shipped_environment_loads(environment: str) -> None:
    settings = load_config(environment, env={})

    assert settings.environment == environment
    assert settings.tracking.experiment.endswith(environment)
    assert settings.dataset_schema.target == "diagnosis"


def test_local_resolves_inside_the_repo_whatever_the_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT / "src")
    settings = load_config("local", env={})

    assert settings.location("raw") == str(REPO_ROOT / "data" / "raw" / "breast_cancer.csv")
    assert settings.tracking.uri == f"sqlite:///{REPO_ROOT / 'mlflow.db'}"
    assert settings.tracking.artifact_location == (REPO_ROOT / "mlruns" / "breast-cancer-local").as_uri()


def test_dev_and_prd_point_at_s3() -> None:
    for environment in ("dev", "prd"):
        settings = load_config(environment, env={})
        assert settings.location("raw").startswith("s3://")
        assert settings.tracking.uri.startswith("http")
        assert settings.tracking.artifact_location is None


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    merged = deep_merge(base, {"a": {"y": [3]}, "c": 2})

    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}


def test_environment_variables_override_yaml(tmp_path: Path) -> None:
    env = {
        "PIPELINE_TRACKING_URI": f"sqlite:///{tmp_path}/t.db",
        "PIPELINE_DATA_ROOT": str(tmp_path / "d"),
        "PIPELINE__TRAIN_MODEL__SEED": "7",
        "PIPELINE__FEAT_DATA__TEST_SIZE": "0.3",
    }
    settings = load_config("local", env=env)

    assert settings.tracking.uri == f"sqlite:///{tmp_path}/t.db"
    assert settings.tracking.artifact_location == (tmp_path / "mlruns" / "breast-cancer-local").as_uri()
    assert settings.location("raw") == str(tmp_path / "d" / "raw" / "breast_cancer.csv")
    assert settings.train_model.seed == 7
    assert settings.feat_data.test_size == 0.3


def test_pipeline_tracking_uri_wins_over_mlflow_tracking_uri() -> None:
    env = {"PIPELINE_TRACKING_URI": "http://127.0.0.1:1", "MLFLOW_TRACKING_URI": "http://127.0.0.1:2"}
    assert load_config("dev", env=env).tracking.uri == "http://127.0.0.1:1"
    assert load_config("dev", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:2"}).tracking.uri == "http://127.0.0.1:2"


def test_overrides_win_over_everything() -> None:
    settings = load_config(
        "local",
        env={"PIPELINE__TRAIN_MODEL__SEED": "7"},
        overrides={"train_model": {"seed": 11, "estimators": {"logistic_regression": {"params": {"C": 0.5}}}}},
    )

    assert settings.train_model.seed == 11
    assert settings.train_model.estimator_params == {"C": 0.5, "max_iter": 2000}


def test_unknown_environment_lists_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("staging", env={})

    message = str(caught.value)
    assert "unknown environment 'staging'" in message
    assert "dev, local, prd" in message


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_key", ["unknown key 'feat_data.test_sise'", "local.yaml"]),
        ("wrong_type", ["train_model.seed", "forty-two"]),
        ("malformed", ["not valid YAML", "local.yaml"]),
        ("not_a_mapping", ["must hold a mapping", "local.yaml"]),
        ("unknown_estimator", ["train_model.estimator", "xgboost_turbo"]),
        ("test_size_out_of_range", ["feat_data.test_size", "1.5"]),
        ("unknown_column_type", ["schema.columns.mean_radius.type", "decimal"]),
        ("target_is_a_feature", ["target 'mean_radius' must not also be listed"]),
        (
            "unquoted_labels",
            ["schema.labels", "False was read by YAML as a bool, not a label: quote it ('No' or 'false')"],
        ),
        ("third_label_for_binary", ["task binary needs exactly 2 labels", "set task: multiclass"]),
        (
            "inflight_below_body_limit",
            ["max_inflight_mb (4) is below max_body_mb (6)", "raise serving.max_inflight_mb"],
        ),
    ],
)
def test_each_bad_config_names_file_and_key(tmp_path: Path, case: str, expected: list[str]) -> None:
    folder = _config_dir(tmp_path, CASES / f"{case}.yaml")

    with pytest.raises(ConfigError) as caught:
        load_config("local", config_dir=folder, env={})

    for fragment in expected:
        assert fragment in str(caught.value)


def test_bad_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("local", env={"PIPELINE__TRAIN_MODEL__SEEED": "3"})

    assert "train_model.seeed" in str(caught.value)
    assert "PIPELINE__TRAIN_MODEL__SEEED" in str(caught.value)


def test_missing_base_file_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "local.yaml").write_text("")

    with pytest.raises(ConfigError) as caught:
        load_config("local", config_dir=folder, env={})

    assert "base.yaml" in str(caught.value)
    assert "missing" in str(caught.value)


def test_empty_overlay_is_allowed(tmp_path: Path) -> None:
    settings = load_config("local", config_dir=_config_dir(tmp_path, ""), env={})

    assert settings.tracking.experiment == "breast-cancer-local"


def test_every_environment_has_its_own_experiment_and_model_name() -> None:
    names = {env: load_config(env, env={}) for env in ("local", "dev", "prd")}

    assert len({s.tracking.experiment for s in names.values()}) == 3
    assert len({s.model_name for s in names.values()}) == 3
    assert names["dev"].model_name == "breast-cancer-dev"


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("PIPELINE_TRACKING_URI", "http://127.0.0.1:5050", "tracking.uri"),
        ("MLFLOW_TRACKING_URI", "https://mlflow.example", "tracking.uri"),
        ("PIPELINE_DATA_ROOT", "s3://team-bucket/pipeline", "data.root"),
    ],
)
def test_local_refuses_a_remote_override_and_names_the_variable(variable: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("local", env={variable: value})

    message = str(caught.value)
    assert f"{key} is '{value}' (from environment variable {variable})" in message
    assert "local_only" in message


def test_the_same_variable_is_taken_by_dev_and_recorded_as_an_override() -> None:
    settings = load_config("dev", env={"PIPELINE_TRACKING_URI": "http://127.0.0.1:5050"})

    assert settings.overrides == {"tracking.uri": "PIPELINE_TRACKING_URI"}


def test_no_default_tracking_uri_is_an_address_another_command_serves_on() -> None:
    served = {
        "http://127.0.0.1:5000",
        "http://localhost:5000",  # make ui / mlflow ui
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    }  # python src/main.py serve

    for environment in ("local", "dev", "prd"):
        assert load_config(environment, env={}).tracking.uri.rstrip("/") not in served


def test_an_overlay_schema_replaces_the_example_columns_instead_of_adding_to_them(tmp_path: Path) -> None:
    overlay = """
schema:
  id_column: null
  target: price
  task: regression
  columns:
    rooms: {type: int, min: 0}
gate:
  thresholds: {r2_score: 0.1}
"""
    settings = load_config("local", config_dir=_config_dir(tmp_path, overlay), env={})

    assert settings.dataset_schema.features == ["rooms"]
    assert settings.gate.thresholds == {"r2_score": 0.1}


def test_gate_metrics_must_belong_to_the_task(tmp_path: Path) -> None:
    overlay = "gate:\n  thresholds: {r2_score: 0.5}\n"

    with pytest.raises(ConfigError) as caught:
        load_config("local", config_dir=_config_dir(tmp_path, overlay), env={})

    assert "not metrics of a binary model: gate.thresholds in local.yaml: r2_score" in str(caught.value)


def test_the_examples_estimators_are_the_librarys_defaults() -> None:
    """One list of default estimators: what `init` writes (mlsteps.estimator_defaults) is what the example holds."""
    import yaml
    from mlsteps.estimator_defaults import DEFAULTS

    example = yaml.safe_load((EXAMPLE_CONFIG / "base.yaml").read_text())["train_model"]
    chosen, estimators = DEFAULTS["classification"]

    assert example["estimator"] == chosen
    assert {n: (e["class"], e.get("params", {})) for n, e in example["estimators"].items()} == estimators


def test_a_model_of_another_environment_needs_to_be_asked_for() -> None:
    dev_model = {"catalog": {"model": {"uri": "models:/breast-cancer-dev@champion"}}}

    with pytest.raises(ConfigError) as caught:
        load_config("local", overrides=dev_model, env={})
    allowed = load_config(
        "local", overrides={"catalog": {"model": {**dev_model["catalog"]["model"], "other_environment": True}}}, env={}
    )
    own = load_config("local", overrides={"catalog": {"model": {"uri": "models:/breast-cancer-local/3"}}}, env={})

    assert "the model of environment 'dev', and this is 'local'" in str(caught.value)
    assert "--model-from-other-environment" in str(caught.value)
    assert allowed.dataset("model").uri == own.dataset("model").uri.replace("local/3", "dev@champion")


def test_a_model_name_without_the_environment_in_it_is_this_environments_own() -> None:
    # Every environment registers under the same name: a URI naming it is never another environment's.
    shared = {"catalog": {"model": {"name": "churn", "uri": "models:/churn/2"}}}

    settings = load_config("local", overrides=shared, env={})

    assert settings.dataset("model").uri == "models:/churn/2"
