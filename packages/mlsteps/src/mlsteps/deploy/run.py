"""A deployment from start to end: the model archive stored once per content, a SageMaker model and endpoint
config named by what they hold, the endpoint created or updated (blue/green), waited for, smoke-tested, and rolled
back to the config it had when the smoke test fails; then recorded in MLflow (``mlsteps.registry``)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlsteps.deploy.sagemaker import TAG_MODEL_URI, TAG_RUN_ID, SageMaker
from mlsteps.deploy.settings import Target, deploy_target
from mlsteps.deploy.smoke import SmokeResult, score
from mlsteps.errors import DeployError, UsageError

if TYPE_CHECKING:
    from mlsteps.config import Settings
    from mlsteps.refs import ModelRef


@dataclass
class Deployment:
    """What a deployment did (``action``: created, updated or unchanged) and what it left."""

    target: Target
    region: str
    model_uri: str
    ref: ModelRef
    model_name: str
    config_name: str
    data_url: str
    uploaded: bool = False
    action: str = "unchanged"
    previous_config: str | None = None
    previous_model_uri: str | None = None
    smoke: SmokeResult | None = None
    run_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        where = f"SageMaker endpoint '{self.target.endpoint}' ({self.region})"
        if self.action == "unchanged":
            return f"already deployed: {where} serves {self.model_uri} (config {self.config_name}); nothing changed"
        smoke = f"; {self.smoke.summary()}" if self.smoke else ""
        return f"deployed {self.model_uri} to {where}, config {self.config_name} ({self.action}){smoke}"


def deploy_model(settings: Settings, model_uri: str | None = None, by: str = "deploy command") -> Deployment:
    """Deploy ``model_uri`` (default: the environment's champion) to the environment's endpoint.

    Raises:
        ConfigError: a key the deployment needs is not set (before any call to AWS).
        DeployError: SageMaker refused a call, the endpoint did not become InService within
            ``deploy.timeout_seconds``, or it failed the smoke test (it then serves its previous config again).
    """
    from mlsteps.registry import champion_uri, describe_model
    from mlsteps.serving.server import model_archive
    from mlsteps.storage import Storage
    from mlsteps.store import connect

    target = deploy_target(settings)
    connect(settings)
    uri = model_uri or settings.dataset("model").uri or champion_uri(settings.model_name, settings.gate.alias)
    ref = describe_model(uri)
    pinned = f"models:/{ref.name}/{ref.version}" if ref.name and ref.version else uri
    storage = Storage.for_settings(settings)
    expected = _expected(pinned, ref, target, storage)  # a model without a holdout is refused before any change
    sagemaker = SageMaker.connect(settings)
    archive, ref = model_archive(settings, pinned)
    data_url = target.data_url(hashlib.sha256(archive).hexdigest())
    model_name = target.model_name(data_url)
    done = Deployment(target, sagemaker.region, pinned, ref, model_name, target.config_name(model_name), data_url)
    current = sagemaker.endpoint(target.endpoint)
    if current and current["EndpointConfigName"] == done.config_name and current["EndpointStatus"] == "InService":
        return done
    if current and current["EndpointStatus"] != "InService":
        raise DeployError(
            f"endpoint '{target.endpoint}' is {current['EndpointStatus']} ({current.get('FailureReason') or 'no reason given'}):"
            " SageMaker takes no update now. Wait until it is InService, or, when it failed, delete it (aws sagemaker "
            f"delete-endpoint --endpoint-name {target.endpoint}) and deploy again"
        )
    started = time.monotonic()
    if not storage.exists(data_url):
        storage.write_bytes(archive, data_url)
        done.uploaded = True
    if not sagemaker.exists("model", model_name):
        sagemaker.create_model(model_name, target, data_url, {TAG_MODEL_URI: pinned, TAG_RUN_ID: ref.run_id or ""})
    if not sagemaker.exists("endpoint_config", done.config_name):
        sagemaker.create_endpoint_config(done.config_name, model_name, target)
    if current:
        done.previous_config = current["EndpointConfigName"]
        done.previous_model_uri = sagemaker.served_model(current["EndpointConfigName"])[1].get(TAG_MODEL_URI)
        sagemaker.update_endpoint(target.endpoint, done.config_name)
        done.action = "updated"
    else:
        sagemaker.create_endpoint(target.endpoint, done.config_name)
        done.action = "created"
    try:
        sagemaker.wait_in_service(target.endpoint, target.timeout_seconds)
        done.smoke = _smoke(sagemaker, target, expected)
        if not done.smoke.passed:
            raise DeployError(f"{done.smoke.summary()}; {_undo(sagemaker, done)}")
    except DeployError as exc:
        _record(settings, done, by, started, failure=str(exc))
        raise
    _record(settings, done, by, started)
    return done


def rollback_endpoint(settings: Settings) -> Deployment:
    """Deploy again what the endpoint served before its last deployment (recorded in MLflow)."""
    from mlsteps.registry import deployment_history
    from mlsteps.store import connect

    target = deploy_target(settings)
    connect(settings)
    deployed = [
        r for r in deployment_history(settings.tracking.experiment, target.endpoint) if r.info.status == "FINISHED"
    ]
    if not deployed:
        raise UsageError(f"nothing was ever deployed to endpoint '{target.endpoint}' from this tracking store")
    last = deployed[0].data.params
    if not last.get("previous_model_uri"):
        raise UsageError(
            f"{last['model_uri']} was the first model deployed to endpoint '{target.endpoint}': there is nothing to "
            "roll back to"
        )
    return deploy_model(settings, last["previous_model_uri"], by=f"rollback from {last['model_uri']}")


def deploy_after_promotion(settings: Settings, version_uri: str) -> str:
    """The gate promoted ``version_uri`` and ``deploy.on_promotion`` is on: deploy it; the line for the summary."""
    import mlflow

    run = mlflow.active_run()
    try:
        done = deploy_model(settings, version_uri, by=f"gate (run {run.info.run_id})" if run else "gate")
    except DeployError as exc:
        raise DeployError(
            f"{version_uri} holds @{settings.gate.alias} now but is not deployed (deploy.on_promotion): {exc}. Once "
            f"fixed, deploy it with: python src/main.py deploy -e {settings.environment}"
        ) from exc
    return done.summary()


def _expected(model_uri: str, ref: ModelRef, target: Target, storage: Any) -> tuple[Any, list[str], list[Any]]:
    """The smoke test's rows, the model's inputs and its own predictions of them."""
    from mlsteps.deploy.smoke import holdout
    from mlsteps.input_checks import check_frame
    from mlsteps.registry import load_model

    if target.smoke_rows == 0:
        return None, [], []
    model, schema = load_model(model_uri, ref)
    batch = check_frame(holdout(ref, target.smoke_rows, storage), schema)
    return batch, list(schema), list(model.predict(batch.loc[:, list(schema)]))


def _smoke(sagemaker: SageMaker, target: Target, expected: tuple[Any, list[str], list[Any]]) -> SmokeResult:
    from mlsteps.deploy.smoke import compare

    batch, columns, local = expected
    if batch is None:
        return SmokeResult(0, [])
    try:
        remote = score(sagemaker, target.endpoint, batch, columns)
    except DeployError as exc:  # the container refused or failed the rows: that is the smoke test failing
        return SmokeResult(len(batch), [], str(exc))
    return SmokeResult(len(batch), compare(remote, local))


def _undo(sagemaker: SageMaker, done: Deployment) -> str:
    """Back to the config the endpoint had (or, for an endpoint this deployment created, no endpoint); what was done."""
    name = done.target.endpoint
    if done.previous_config is None:
        sagemaker.delete_endpoint(name)
        done.action = "created, then deleted"
        return f"endpoint '{name}' was new and is deleted again (it had nothing to go back to)"
    sagemaker.update_endpoint(name, done.previous_config)
    sagemaker.wait_in_service(name, done.target.timeout_seconds)
    done.action = "rolled back"
    return (
        f"endpoint '{name}' rolled back to its previous config {done.previous_config} "
        f"({done.previous_model_uri or 'model unknown'})"
    )


def _record(settings: Settings, done: Deployment, by: str, started: float, failure: str = "") -> None:
    """A run in ``<experiment>-deployments``; on success, tags on the deployed version (and the one it replaced)."""
    from mlsteps.registry import DEPLOY_TAG, deployments_experiment, record_deployment, tag_version

    env, target, ref = settings.environment, done.target, done.ref
    now = datetime.now(UTC).isoformat(timespec="seconds")
    params = {
        "environment": env,
        "endpoint": target.endpoint,
        "region": done.region,
        "model_uri": done.model_uri,
        "model_name": ref.name or "",
        "model_version": ref.version or "",
        "model_run_id": ref.run_id or "",
        "sagemaker_model": done.model_name,
        "endpoint_config": done.config_name,
        "model_data_url": done.data_url,
        "uploaded": done.uploaded,
        "image_uri": target.image_uri,
        "execution_role_arn": target.role_arn,
        "variant": json.dumps(target.variant, sort_keys=True),
        "previous_endpoint_config": done.previous_config or "",
        "previous_model_uri": done.previous_model_uri or "",
        "action": done.action,
    }
    smoke = done.smoke or SmokeResult(0, [])
    tags = {
        DEPLOY_TAG: target.endpoint,
        "deploy.environment": env,
        "deploy.by": by,
        "deploy.result": "failed" if failure else "deployed",
        "deploy.smoke": smoke.summary()[:4000],
        **({"deploy.error": failure[:4000]} if failure else {}),
    }
    metrics = {
        "smoke_rows": smoke.rows,
        "smoke_mismatches": len(smoke.mismatches) if not smoke.error else smoke.rows,
        "seconds": time.monotonic() - started,
    }
    experiment = deployments_experiment(settings.tracking.experiment, settings.tracking.artifact_location)
    done.run_id = record_deployment(
        experiment, f"deploy {target.endpoint} {done.model_uri}", params, metrics, tags, not failure
    )
    if failure or not (ref.name and ref.version):
        return
    tag_version(
        ref.name,
        ref.version,
        {
            f"deploy.{env}.endpoint": target.endpoint,
            f"deploy.{env}.deployed_at": now,
            f"deploy.{env}.endpoint_config": done.config_name,
            f"deploy.{env}.region": done.region,
            f"deploy.{env}.run_id": done.run_id,
        },
    )
    previous = (done.previous_model_uri or "").removeprefix(f"models:/{ref.name}/")
    if previous and previous != ref.version and "/" not in previous:
        tag_version(ref.name, previous, {f"deploy.{env}.replaced_by": f"{ref.version} at {now}"})
