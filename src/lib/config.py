"""Typed, validated configuration: base.yaml deep-merged with one environment's overlay.

Precedence, lowest first: ``config/base.yaml`` < ``config/<environment>.yaml`` < environment variables.
Importing this module has no side effects; nothing is read until :func:`load_config` is called.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from src.lib.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_DIR = REPO_ROOT / "config"
BASE_FILE = "base.yaml"

# Environment variables that override a single key (checked in this order; the first set one wins).
ENV_SHORTCUTS: dict[str, tuple[str, ...]] = {
    "PIPELINE_TRACKING_URI": ("tracking", "uri"),
    "MLFLOW_TRACKING_URI": ("tracking", "uri"),
    "PIPELINE_EXPERIMENT": ("tracking", "experiment"),
    "PIPELINE_DATA_ROOT": ("data", "root"),
    "PIPELINE_AWS_PROFILE": ("aws", "profile"),
    "PIPELINE_AWS_REGION": ("aws", "region"),
}
# Generic override of any key: PIPELINE__TRAIN_MODEL__SEED=7 sets train_model.seed (value parsed as YAML).
ENV_GENERIC_PREFIX = "PIPELINE__"

ESTIMATORS = ("logistic_regression", "random_forest", "gradient_boosting")


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


class DataConfig(_Strict):
    """Dataset locations. Relative entries resolve against ``root``; a relative root against the repo root."""

    root: str
    raw: str
    interim: str
    processed: str
    predictions: str
    snapshots: str
    predict_input: str | None = None

    def uri(self, name: Literal["raw", "interim", "processed", "predictions", "snapshots", "predict_input"]) -> str:
        """The absolute URI (local path or ``s3://``) of a named dataset or dataset folder."""
        value = getattr(self, name)
        if value is None:
            raise ConfigError(f"data.{name} is not set in the config")
        if _is_absolute(value):
            return value
        return join_uri(self.root, value)


class MakeDataParams(_Strict):
    drop_duplicates: bool = True
    # A feature column with a larger share of nulls fails validation (1.0 allows all but all-null).
    max_null_fraction: float = Field(0.5, ge=0.0, le=1.0)


class FeatDataParams(_Strict):
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 42
    stratify: bool = True


EstimatorName = Literal["logistic_regression", "random_forest", "gradient_boosting"]


class TrainModelParams(_Strict):
    estimator: EstimatorName = "logistic_regression"
    # Constructor arguments per estimator, so switching estimator switches its settings too.
    hyperparameters: dict[EstimatorName, dict[str, Any]] = Field(default_factory=dict)
    seed: int = 42
    registered_model_name: str
    # Train on the data snapshot of this earlier train_model run instead of feat_data's output (--from-run).
    from_run: str | None = None

    @property
    def estimator_params(self) -> dict[str, Any]:
        """The hyperparameters of the chosen estimator."""
        return dict(self.hyperparameters.get(self.estimator) or {})


# Metrics the gate may use, and whether more is better (names as mlflow.models.evaluate logs them).
GATE_METRICS = {
    "roc_auc": True, "f1_score": True, "accuracy_score": True, "precision_score": True, "recall_score": True,
    "precision_recall_auc": True, "log_loss": False,
}


class GateParams(_Strict):
    """When a trained candidate may become the model that predict and serving use."""

    alias: str = "champion"
    # Every candidate must reach these on the holdout.
    thresholds: dict[str, float] = Field(default_factory=dict)
    # And, when a champion exists, beat it on the same holdout by at least this much on each gated metric
    # (MLflow's MetricThreshold needs a positive change: a tie with the champion does not replace it).
    min_improvement: float = Field(1e-6, gt=0.0)

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(GATE_METRICS))
        if unknown:
            raise ValueError(f"unknown gate metric(s) {unknown}: use {', '.join(GATE_METRICS)}")
        return value


class PredictParams(_Strict):
    # A run ("runs:/<id>/model"), a version ("models:/<name>/3") or an alias ("models:/<name>@champion").
    # Unset: the model holding the gate's alias (the champion).
    model_uri: str | None = None


class BatchParams(_Strict):
    """S3-triggered batch scoring (src/batch/s3_handler.py)."""

    # Objects landing under this prefix of data.root are scored.
    input_prefix: str = "incoming"
    # Scored batches (and error reports) are written under this prefix of data.root.
    output_prefix: str = "scored"


class TrackingConfig(_Strict):
    uri: str
    experiment: str
    # Unset: next to a SQLite database, "<db folder>/mlruns/<experiment>"; for a server, the server's default.
    artifact_location: str | None = None


class AwsConfig(_Strict):
    # Credentials never live here: they come from the standard AWS chain (env, profile, role).
    profile: str | None = None
    region: str | None = None


class Settings(_Strict):
    """Everything a pipeline run needs to know, for one environment."""

    environment: str
    project: str
    data: DataConfig
    dataset_schema: SchemaConfig = Field(alias="schema")
    make_data: MakeDataParams = MakeDataParams()
    feat_data: FeatDataParams = FeatDataParams()
    train_model: TrainModelParams
    gate: GateParams = GateParams()
    predict: PredictParams = PredictParams()
    batch: BatchParams = BatchParams()
    tracking: TrackingConfig
    aws: AwsConfig = AwsConfig()

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what gets logged to the parent run)."""
        return self.model_dump(mode="json", by_alias=True)


def available_environments(config_dir: Path | None = None) -> list[str]:
    """Environment names: every ``*.yaml`` in the config folder except ``base.yaml``."""
    folder = Path(config_dir or os.environ.get("PIPELINE_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    return sorted(p.stem for p in folder.glob("*.yaml") if p.name != BASE_FILE)


def load_config(
    environment: str,
    config_dir: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load, merge, override and validate the config of one environment.

    ``overrides`` (nested keys, e.g. from command-line options) win over everything else.

    Raises:
        ConfigError: naming the file (or environment variable) and the key that is wrong.
    """
    env = os.environ if env is None else env
    folder = Path(config_dir or env.get("PIPELINE_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    if not folder.is_dir():
        raise ConfigError(f"config folder '{folder}' does not exist; set PIPELINE_CONFIG_DIR to the folder of base.yaml")
    choices = available_environments(folder)
    if environment not in choices:
        raise ConfigError(
            f"unknown environment '{environment}': choose one of {', '.join(choices) or '(none found)'} "
            f"(each is a YAML file in {folder})"
        )
    base_file = folder / BASE_FILE
    env_file = folder / f"{environment}.yaml"
    merged = deep_merge(_read_yaml(base_file), _read_yaml(env_file))
    merged["environment"] = environment
    sources = _apply_env_overrides(merged, env)
    if env.get("PIPELINE_BUCKET"):
        _replace_bucket(merged, env["PIPELINE_BUCKET"])
        sources[("data", "root")] = "PIPELINE_BUCKET"
    for key, value in _flatten(overrides or {}):
        _set_key(merged, key, value)
        sources[key] = "command-line option"
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, base_file, env_file, sources)) from exc
    return _resolve_locations(settings)


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``overlay`` into a copy of ``base``; mappings merge, anything else replaces."""
    result = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def join_uri(root: str, relative: str) -> str:
    """Join a relative dataset path onto a local or ``s3://`` root."""
    return root.rstrip("/") + "/" + relative.lstrip("/")


def _is_absolute(value: str) -> bool:
    return "://" in value or value.startswith("/")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' is missing; create it (it may be empty)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys at the top level, not {type(data).__name__}")
    return data


def _apply_env_overrides(config: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Apply overrides in place; return which variable set which key (for error messages)."""
    sources: dict[tuple[str, ...], str] = {}
    for name, key in ENV_SHORTCUTS.items():
        if env.get(name) and key not in sources:
            _set_key(config, key, env[name])
            sources[key] = name
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_GENERIC_PREFIX):
            continue
        key = tuple(part.lower() for part in name[len(ENV_GENERIC_PREFIX) :].split("__") if part)
        if not key:
            raise ConfigError(f"environment variable {name} names no config key; use e.g. PIPELINE__TRAIN_MODEL__SEED")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {name} is not a valid YAML value: {exc}") from exc
        _set_key(config, key, value)
        sources[key] = name
    return sources


def _replace_bucket(config: dict[str, Any], bucket: str) -> None:
    """PIPELINE_BUCKET: keep the data root's prefix, swap its bucket (one image, any account)."""
    root = str(config.get("data", {}).get("root", ""))
    if not root.startswith("s3://"):
        raise ConfigError(f"PIPELINE_BUCKET is set but data.root '{root}' is not an s3:// URI; unset it or use "
                          "PIPELINE_DATA_ROOT")
    prefix = root[len("s3://") :].partition("/")[2]
    config["data"]["root"] = f"s3://{bucket}/{prefix}".rstrip("/")


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    items: list[tuple[tuple[str, ...], Any]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, (*prefix, key)))
        else:
            items.append(((*prefix, key), value))
    return items


def _describe_source(source: str) -> str:
    return source if source == "command-line option" else f"environment variable {source}"


def _set_key(config: dict[str, Any], key: tuple[str, ...], value: Any) -> None:
    node = config
    for part in key[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[key[-1]] = value


def _describe_validation_error(
    exc: ValidationError, base_file: Path, env_file: Path, sources: dict[tuple[str, ...], str]
) -> str:
    lines = [f"invalid config for this environment ({base_file.name} + {env_file.name} in {env_file.parent}):"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc) or "(top level)"
        origin = next((_describe_source(v) for k, v in sources.items() if loc[: len(k)] == k), None)
        where = origin or f"{env_file.name} or {base_file.name}"
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{dotted}' (in {where}): remove it or fix its spelling"
        elif err["type"] == "missing":
            msg = f"missing key '{dotted}': add it to {base_file.name} or {env_file.name}"
        else:
            msg = f"key '{dotted}' (in {where}): {err['msg']} (got {err.get('input')!r})"
        lines.append("  - " + msg)
    return "\n".join(lines)


def _resolve_locations(settings: Settings) -> Settings:
    """Make local paths absolute against the repo root, so any working directory gives the same result."""
    root = settings.data.root
    if not _is_absolute(root):
        root = str((REPO_ROOT / root).resolve())
    data = settings.data.model_copy(update={"root": root})

    uri = settings.tracking.uri
    artifact_location = settings.tracking.artifact_location
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        db_path = (REPO_ROOT / uri[len("sqlite:///") :]).resolve()
        uri = f"sqlite:///{db_path}"
    if uri.startswith("sqlite:"):
        db_dir = Path(uri[len("sqlite:///") :]).parent
        if artifact_location is None:
            artifact_location = (db_dir / "mlruns" / settings.tracking.experiment).as_uri()
        elif not _is_absolute(artifact_location):
            artifact_location = (db_dir / artifact_location).resolve().as_uri()
    tracking = settings.tracking.model_copy(update={"uri": uri, "artifact_location": artifact_location})
    return settings.model_copy(update={"data": data, "tracking": tracking})
