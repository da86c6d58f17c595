"""Typed, validated configuration: base.yaml deep-merged with one environment's overlay.

Precedence, lowest first: ``config/base.yaml`` < ``config/<environment>.yaml`` < environment variables <
command-line options. Each step's section (``make_data:``, ``train_model:``, ...) is validated against the
parameters model its step declares. Importing this module has no side effects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
)

from mlsteps.config_sections import (
    GATE_METRICS,
    AwsConfig,
    BatchParams,
    DataConfig,
    DatasetSpec,
    DeployParams,
    EngineConfig,
    GateParams,
    InferenceLogParams,
    MonitorParams,
    ServingParams,
    Strict,
    TrackingConfig,
)
from mlsteps.config_sources import (
    apply_env_overrides,
    apply_overrides,
    deep_merge,
    describe_source,
    read_yaml,
)
from mlsteps.errors import ConfigError
from mlsteps.project import ROOT
from mlsteps.schema import SchemaConfig

REPO_ROOT = ROOT
DEFAULT_CONFIG_DIR = REPO_ROOT / "config"
BASE_FILE = "base.yaml"
__all__ = [
    "GATE_METRICS",
    "REPO_ROOT",
    "ConfigError",
    "GateParams",
    "InferenceLogParams",
    "ServingParams",
    "Settings",
    "deep_merge",
    "join_uri",
    "load_config",
]


class Settings(Strict):
    """Everything a pipeline run needs to know, for one environment. Each step's parameters are a field named
    after the step (added when the config is loaded, from the steps' declarations): ``settings.params(step)``."""

    environment: str
    project: str
    # True: this environment never sends runs or data to a remote server, whatever the environment variables say.
    local_only: bool = False
    data: DataConfig
    engine: EngineConfig = EngineConfig()
    catalog: dict[str, DatasetSpec]
    dataset_schema: SchemaConfig = Field(alias="schema")
    gate: GateParams = GateParams()
    batch: BatchParams = BatchParams()
    serving: ServingParams = ServingParams()
    deploy: DeployParams = Field(default_factory=DeployParams)
    monitor: MonitorParams = MonitorParams()
    tracking: TrackingConfig
    aws: AwsConfig = AwsConfig()
    # Which keys an environment variable or a command-line option set: {"tracking.uri": "PIPELINE_TRACKING_URI"}.
    _overrides: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def overrides(self) -> dict[str, str]:
        return dict(self._overrides)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    def params(self, step: str) -> Any:
        """The validated parameters of ``step`` (its config section)."""
        return getattr(self, step)

    def dataset(self, name: str) -> DatasetSpec:
        """The catalog entry ``name``, or a ConfigError naming the entries there are."""
        try:
            return self.catalog[name]
        except KeyError:
            raise ConfigError(
                f"no dataset '{name}' in the catalog: add it under 'catalog:' in config/base.yaml "
                f"(there are: {', '.join(sorted(self.catalog))})"
            ) from None

    def location(self, name: str) -> str | None:
        """The absolute URI of an input dataset, or the folder of a written one (None: an unset input)."""
        path = self.dataset(name).path
        return None if path is None else self.resolve(path)

    def resolve(self, path: str) -> str:
        """A path of the config as an absolute URI: relative ones are under ``data.root``."""
        return path if _is_absolute(path) else join_uri(self.data.root, path)

    @property
    def model_name(self) -> str:
        """The registered model name (the catalog's ``model`` entry)."""
        return self.dataset("model").name  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what gets logged to the parent run)."""
        return self.model_dump(mode="json", by_alias=True)


def settings_model() -> type[Settings]:
    """``Settings`` with one field per declared step, typed by the step's parameters model."""
    from mlsteps.discovery import load_steps

    fields: dict[str, Any] = {}
    for step in load_steps().values():
        required = any(f.is_required() for f in step.params.model_fields.values())
        fields[step.name] = (step.params, ... if required else Field(default_factory=step.params))
    return create_model("Settings", __base__=Settings, **fields)


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

    Raises:
        ConfigError: naming the file (or environment variable, or option) and the key that is wrong.
    """
    env = os.environ if env is None else env
    folder = Path(config_dir or env.get("PIPELINE_CONFIG_DIR") or DEFAULT_CONFIG_DIR)
    if not folder.is_dir():
        raise ConfigError(
            f"config folder '{folder}' does not exist; set PIPELINE_CONFIG_DIR to the folder of base.yaml"
        )
    choices = available_environments(folder)
    if environment not in choices:
        raise ConfigError(
            f"unknown environment '{environment}': choose one of {', '.join(choices) or '(none found)'} "
            f"(each is a YAML file in {folder})"
        )
    base_file, env_file = folder / BASE_FILE, folder / f"{environment}.yaml"
    env_raw = read_yaml(env_file)
    merged = deep_merge(read_yaml(base_file), env_raw)
    merged["environment"] = environment
    sources = apply_env_overrides(merged, env)
    apply_overrides(merged, overrides or {}, sources)
    _fill_names(merged)
    try:
        settings = settings_model().model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, base_file, env_file, sources)) from exc
    _check_local_only(settings, sources, env_file)
    _check_gate_metrics(settings, sources, env_raw, base_file, env_file)
    _check_model_environment(settings, choices)
    settings = _resolve_locations(settings)
    settings._overrides = {".".join(key): source for key, source in sources.items()}
    return settings


def _fill_names(config: dict[str, Any]) -> None:
    """``{project}`` and ``{environment}`` in the experiment and model names: one of each per environment."""
    names = {"{project}": str(config.get("project", "")), "{environment}": str(config["environment"])}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for placeholder, text in names.items():
                value = value.replace(placeholder, text)
        return value

    tracking = config.get("tracking")
    if isinstance(tracking, dict):
        tracking["experiment"] = fill(tracking.get("experiment") or "{project}-{environment}")
    deploy = config.setdefault("deploy", {})
    if isinstance(deploy, dict):
        deploy["endpoint_name"] = fill(deploy.get("endpoint_name") or "{project}-{environment}")
    for entry in (config.get("catalog") or {}).values():
        if isinstance(entry, dict) and "name" in entry:
            entry["name"] = fill(entry["name"])


def _check_local_only(settings: Settings, sources: dict[tuple[str, ...], str], env_file: Path) -> None:
    """A local-only environment refuses a tracking server or a bucket, whoever set it."""
    if not settings.local_only:
        return
    for key, value in ((("tracking", "uri"), settings.tracking.uri), (("data", "root"), settings.data.root)):
        if value.startswith(("http://", "https://", "s3://")):
            source = describe_source(sources, key) or env_file.name
            raise ConfigError(
                f"{'.'.join(key)} is '{value}' (from {source}), a remote location, but environment "
                f"'{settings.environment}' is local_only: unset the variable (it is meant for another environment, "
                "e.g. --environment dev), or set local_only: false in its config file"
            )


def _check_gate_metrics(
    settings: Settings, sources: dict[tuple[str, ...], str], env_raw: Mapping[str, Any], base_file: Path, env_file: Path
) -> None:
    """Every metric the gate compares or holds a minimum for is one of the task's: else one line naming the file
    and the keys (an environment's thresholds written for another task, say)."""
    task = settings.dataset_schema.task
    known = GATE_METRICS[task]
    env_gate = env_raw.get("gate") if isinstance(env_raw.get("gate"), dict) else {}
    problems = []
    for part, names in (("thresholds", list(settings.gate.thresholds)), ("metrics", settings.gate.metrics or [])):
        unknown = sorted(set(names) - set(known))
        if unknown:
            where = describe_source(sources, ("gate", part)) or (
                env_file.name if part in (env_gate or {}) else base_file.name
            )
            problems.append(f"gate.{part} in {where}: {', '.join(unknown)}")
    if problems:
        raise ConfigError(
            f"not metrics of a {task} model: {'; '.join(problems)} (in {env_file.parent}). Remove them, or use "
            f"{', '.join(known)}"
        )


def _check_model_environment(settings: Settings, environments: list[str]) -> None:
    """A model URI that names another environment's registered model is refused unless the entry says it may."""
    for key, spec in settings.catalog.items():
        if spec.kind != "model" or not spec.uri or not spec.uri.startswith("models:/") or spec.other_environment:
            continue
        named = spec.uri.removeprefix("models:/").split("/")[0].split("@")[0]
        assert spec.name is not None  # a model entry has a name (DatasetSpec)
        for other in environments:
            theirs = spec.name.replace(settings.environment, other)
            # A name without the environment's in it is every environment's: nothing tells them apart.
            if other != settings.environment and theirs != spec.name and named == theirs:
                raise ConfigError(
                    f"catalog.{key}.uri is {spec.uri}, the model of environment '{other}', and this is "
                    f"'{settings.environment}': to score {settings.environment}'s data with it, say so with "
                    f"--model-from-other-environment (catalog.{key}.other_environment: true)"
                )


def join_uri(root: str, relative: str) -> str:
    """Join a relative dataset path onto a local or ``s3://`` root."""
    return root.rstrip("/") + "/" + relative.lstrip("/")


def _is_absolute(value: str) -> bool:
    return "://" in value or value.startswith("/")


def _describe_validation_error(
    exc: ValidationError, base_file: Path, env_file: Path, sources: dict[tuple[str, ...], str]
) -> str:
    lines = [f"invalid config for this environment ({base_file.name} + {env_file.name} in {env_file.parent}):"]
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        dotted = ".".join(loc) or "(top level)"
        where = describe_source(sources, loc) or f"{env_file.name} or {base_file.name}"
        if err["type"] == "extra_forbidden":
            msg = f"unknown key '{dotted}' (in {where}): remove it or fix its spelling"
        elif err["type"] == "missing":
            msg = f"missing key '{dotted}': add it to {base_file.name} or {env_file.name}"
        else:
            msg = f"key '{dotted}' (in {where}): {err['msg']}{_got(err.get('input'))}"
        lines.append("  - " + msg)
    return "\n".join(lines)


def _got(value: Any) -> str:
    """The offending value, when it is short: never a whole section (or the whole config)."""
    if isinstance(value, Mapping | list | tuple | set):
        return ""
    text = repr(value)
    return f" (got {text})" if len(text) <= 80 else f" (got {text[:77]}...)"


def _resolve_locations(settings: Settings) -> Settings:
    """Make local paths absolute against the repo root, so any working directory gives the same result."""
    root = settings.data.root
    if not _is_absolute(root):
        root = str((REPO_ROOT / root).resolve())
    data = settings.data.model_copy(update={"root": root})

    uri = settings.tracking.uri
    artifact_location = settings.tracking.artifact_location
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{(REPO_ROOT / uri[len('sqlite:///') :]).resolve()}"
    if uri.startswith("sqlite:"):
        db_dir = Path(uri[len("sqlite:///") :]).parent
        if artifact_location is None:
            artifact_location = (db_dir / "mlruns" / settings.tracking.experiment).as_uri()
        elif not _is_absolute(artifact_location):
            artifact_location = (db_dir / artifact_location).resolve().as_uri()
    tracking = settings.tracking.model_copy(update={"uri": uri, "artifact_location": artifact_location})
    return settings.model_copy(update={"data": data, "tracking": tracking})
