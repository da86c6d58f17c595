"""Models in MLflow: logging a fitted model, registering it, resolving a model URI, loading it back.

Who gets the champion alias is policy: ``src/models/promotion.py``.
"""

from __future__ import annotations

from typing import Any

from mlsteps.errors import PipelineError, TrackingError, UsageError
from mlsteps.hints import command
from mlsteps.input_checks import ModelInputs
from mlsteps.refs import ModelRef

# What every logged model needs at serving time, whatever its estimator.
BASE_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops")

# Models this process logged (by model URI) and registered (by name and version), with their signatures:
# predict right after train_model scores with the fitted object instead of downloading and deserializing the
# version it just registered.
_LOGGED: dict[str, tuple[Any, Any, dict[str, Any]]] = {}
# The id of each logged model this process logged, by model URI.
_MODEL_IDS: dict[str, str] = {}
_REGISTERED: dict[tuple[str, str], tuple[Any, Any, dict[str, Any]]] = {}
# The model's metadata (MLmodel's `metadata`) key for the values each category input was trained for.
CATEGORIES = "mlsteps.categories"


def log_model(model: Any, example: Any, categories: dict[str, list[str]] | None = None) -> str:
    """Log a scikit-learn model with signature, input example and pinned requirements; its model URI.
    ``categories``: the values each category input may hold, kept in the model's metadata, which scoring checks
    (``mlsteps.input_checks.ModelInputs``)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(example))
    metadata = {CATEGORIES: categories} if categories else {}
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        input_example=example,
        pip_requirements=model_requirements(model),
        # skops (MLflow's safe default format) loads only the types listed here: the ones this model holds.
        skops_trusted_types=_skops_types(model),
        metadata=metadata,
    )
    _LOGGED[str(info.model_uri)] = (model, signature, metadata)
    _MODEL_IDS[str(info.model_uri)] = str(info.model_id)
    return str(info.model_uri)


def logged_model_id(model_uri: str) -> str | None:
    """The id of a logged model this process logged (its metrics and inputs are tied to it), else None."""
    return _MODEL_IDS.get(model_uri)


def register(model_uri: str, name: str, tags: dict[str, str] | None = None) -> str:
    """Register a logged model, with ``tags`` on the version from the start; ``models:/<name>/<version>``."""
    import contextlib
    import io

    import mlflow

    with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints "Successfully registered ..." itself
        version = mlflow.register_model(model_uri, name, tags=tags).version
    if model_uri in _LOGGED:
        _REGISTERED[(name, str(version))] = _LOGGED[model_uri]
    return f"models:/{name}/{version}"


def model_requirements(model: Any) -> list[str]:
    """Pins of what trained the model: the base packages plus the distribution of every class it holds
    (an estimator from xgboost or lightgbm brings its own package), at the installed versions."""
    from importlib.metadata import version

    from mlsteps.packages import providers

    names = dict.fromkeys(BASE_REQUIREMENTS)
    for obj in _components(model):
        top = type(obj).__module__.split(".")[0]
        for dist in providers(top):
            names.setdefault(dist)
    return [f"{name}=={version(name)}" for name in names]


def _components(model: Any) -> list[Any]:
    """The model and every estimator nested in it (Pipeline steps, ColumnTransformer parts, ...)."""
    found = [model]
    if hasattr(model, "get_params"):
        found += [v for v in model.get_params(deep=True).values() if hasattr(v, "get_params")]
    return found


def _skops_types(model: Any) -> list[str]:
    """The non-default types skops would refuse to load in a model this pipeline itself just trained."""
    import skops.io

    return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))


def alias_version(name: str, alias: str) -> str | None:
    """The version holding ``alias``, or None."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_uri(name: str, alias: str) -> str:
    """``models:/<name>@<alias>``, or an error that says why no model holds the alias yet."""
    if alias_version(name, alias) is None:
        raise PipelineError(
            f"no version of '{name}' holds the alias @{alias} yet, so there is no model to score with: every "
            "candidate so far failed the quality gate (its train_model run says why, tag gate.reasons), or none "
            f"was trained. Promote one by hand ({command('promote', '--version', 'N')}) or pass --model-uri"
        )
    return f"models:/{name}@{alias}"


def newest_registered_version(name: str) -> str:
    """``models:/<name>/<newest version>``, or a usage error saying how to get one (``models:/<name>/latest``
    names a model that has no version)."""
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name = '{name}'")
    if not versions:
        raise UsageError(
            f"no registered model '{name}' in this tracking store: run train_model first, or pass --model-uri"
        )
    return f"models:/{name}/{max(int(v.version) for v in versions)}"


def describe_model(model_uri: str) -> ModelRef:
    """Resolve a model URI to its registered name, version and source run; a usage error if it does not exist
    (the URI was given with --model-uri or in the config)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlsteps.store import is_missing

    client = MlflowClient()
    try:
        if model_uri.startswith("models:/"):
            ref = model_uri[len("models:/") :]
            if "@" in ref:
                name, alias = ref.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
                return ModelRef(model_uri, name, str(mv.version), mv.run_id)
            if "/" in ref:
                name, version = ref.split("/", 1)
                if version == "latest":
                    return describe_model(newest_registered_version(name))
                mv = client.get_model_version(name, version)
                return ModelRef(model_uri, name, str(mv.version), mv.run_id)
            logged = client.get_logged_model(ref)
            return ModelRef(model_uri, None, None, logged.source_run_id)
        if model_uri.startswith("runs:/"):
            run_id = model_uri[len("runs:/") :].split("/", 1)[0]
            client.get_run(run_id)
            return ModelRef(model_uri, None, None, run_id)
    except MlflowException as exc:
        if not is_missing(exc):
            raise TrackingError(
                f"cannot look up model '{model_uri}' in this tracking store: {exc.message.splitlines()[0]}"
            ) from exc
        raise UsageError(
            f"model '{model_uri}' does not exist in this tracking store ({exc.message.splitlines()[0]}); "
            "check the name, version or alias (mlflow ui lists registered models)"
        ) from exc
    raise UsageError(
        f"model URI '{model_uri}' is not understood: use runs:/<run_id>/model, models:/<name>/<version> "
        "or models:/<name>@<alias>"
    )


def load_model(model_uri: str, ref: ModelRef | None = None) -> tuple[Any, ModelInputs]:
    """The scikit-learn model behind a URI and its input schema (column name -> type, from its signature).

    With ``ref`` (the URI resolved by ``describe_model``) naming a version this process registered, the fitted
    model is used as it is, without loading it back from the artifact store."""
    import mlflow
    import mlflow.sklearn

    if ref is not None and ref.name and ref.version and (ref.name, ref.version) in _REGISTERED:
        fitted, signature, metadata = _REGISTERED[(ref.name, ref.version)]
        return fitted, input_schema(signature, model_uri, metadata)

    try:
        model = mlflow.sklearn.load_model(model_uri)
        info = mlflow.models.get_model_info(model_uri)
    except Exception as exc:
        raise TrackingError(f"cannot load model '{model_uri}': {exc}") from exc
    return model, input_schema(info.signature, model_uri, info.metadata)


def input_schema(signature: Any, model_uri: str, metadata: dict[str, Any] | None = None) -> ModelInputs:
    """A model signature's inputs as plain data: column name -> MLflow type name (``double``, ``string``, ...),
    in the signature's order, with the values its category inputs were trained for (from the model's
    ``metadata``; a model logged before they were kept has none); what ``mlsteps.input_checks`` checks batches
    against."""
    from mlflow.types.schema import ColSpec

    inputs = getattr(signature, "inputs", None)
    specs = list(getattr(inputs, "inputs", None) or [])
    if not specs or not all(isinstance(spec, ColSpec) and spec.name for spec in specs):
        raise TrackingError(
            f"model '{model_uri}' has no column-based input signature, so its inputs cannot be checked: log it "
            "with a signature inferred from a DataFrame (train_model does)"
        )
    columns = {str(spec.name): str(getattr(spec.type, "name", spec.type)) for spec in specs}
    return ModelInputs(columns, (metadata or {}).get(CATEGORIES))


def model_inputs(model_uri: str) -> dict[str, str]:
    """The input columns of a registered or logged model and their types (what it must be given to score)."""
    import mlflow

    return input_schema(mlflow.models.get_model_info(model_uri).signature, model_uri)


# -- deployments (mlsteps.deploy): a run each in "<experiment>-deployments", tags on the version served -----------
DEPLOY_TAG = "deploy.endpoint"  # on a deployment run: the endpoint it deployed to


def deployments_experiment(experiment: str, artifact_location: str | None) -> str:
    """The id of ``<experiment>-deployments`` (created when missing, its artifacts beside the experiment's)."""
    from mlflow import MlflowClient

    name = f"{experiment}-deployments"
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = f"{artifact_location.rstrip('/')}-deployments" if artifact_location else None
    return str(client.create_experiment(name, artifact_location=location))


def record_deployment(
    experiment_id: str,
    run_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    ok: bool,
) -> str:
    """A finished (or, not ``ok``, failed) run holding one deployment; its id."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    now = int(run.info.start_time)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)[:6000]) for k, v in params.items()],
        tags=[RunTag("mlflow.runName", run_name)],
    )
    client.set_terminated(run.info.run_id, "FINISHED" if ok else "FAILED")
    return str(run.info.run_id)


def deployment_history(experiment: str, endpoint: str) -> list[Any]:
    """The deployment runs of ``endpoint``, newest first (none when nothing was ever deployed)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.get_experiment_by_name(f"{experiment}-deployments")
    if found is None:
        return []
    return list(
        client.search_runs(
            [found.experiment_id],
            filter_string=f"tags.`{DEPLOY_TAG}` = '{endpoint}'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
    )


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    """Set ``tags`` on a registered version (what it was deployed to, when)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
