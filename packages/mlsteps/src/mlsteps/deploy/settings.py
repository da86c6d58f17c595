"""What a deployment needs from the config, checked before any AWS call; and the names it gives SageMaker's
objects, derived from what they hold (the same model and settings give the same names: a re-deploy is a no-op)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps.config_sections import SAGEMAKER_NAME
from mlsteps.errors import ConfigError

if TYPE_CHECKING:
    from mlsteps.config import Settings

# The keys without which nothing can be deployed, and what each one is.
REQUIRED = {
    "image_uri": "the image that serves (this project's, pushed by ./run_docker_cloud.sh or build_docker.sh --push)",
    "execution_role_arn": "the IAM role SageMaker runs the model with",
    "model_data_prefix": "the s3:// prefix the model archives go under",
}


@dataclass(frozen=True)
class Target:
    """Where and how a model is deployed (``deploy:`` of one environment, checked)."""

    environment: str
    endpoint: str
    image_uri: str
    role_arn: str
    prefix: str
    region: str | None
    variant: dict[str, Any]
    timeout_seconds: float
    smoke_rows: int

    def data_url(self, sha256: str) -> str:
        """Where an archive of this content lives: ``<prefix>/<sha256>/model.tar.gz``."""
        return f"{self.prefix.rstrip('/')}/{sha256}/model.tar.gz"

    def container_env(self) -> dict[str, str]:
        """The serving container's environment: the project's config of this environment. No API keys: SageMaker
        authenticates every InvokeEndpoint call with IAM, and cannot pass a key to the container."""
        return {"PIPELINE_ENVIRONMENT": self.environment, "PIPELINE__SERVING__REQUIRE_API_KEYS": "false"}

    def model_name(self, data_url: str) -> str:
        return named(
            self.endpoint,
            {"image": self.image_uri, "role": self.role_arn, "data": data_url, "env": self.container_env()},
        )

    def config_name(self, model_name: str) -> str:
        return named(self.endpoint, {"model": model_name, "variant": self.variant})


def deploy_target(settings: Settings) -> Target:
    """The checked ``deploy:`` settings, or one ConfigError naming every key missing and how to set it."""
    d = settings.deploy
    missing = [key for key in REQUIRED if not getattr(d, key)]
    if missing:
        lines = "; ".join(f"deploy.{k} (PIPELINE__DEPLOY__{k.upper()}), {REQUIRED[k]}" for k in missing)
        raise ConfigError(
            f"cannot deploy on environment '{settings.environment}', not set: {lines}. Set them under 'deploy:' in "
            f"config/{settings.environment}.yaml or as those environment variables (docs/deploy.md)"
        )
    if not SAGEMAKER_NAME.match(d.endpoint_name):
        raise ConfigError(
            f"deploy.endpoint_name '{d.endpoint_name}' is not a SageMaker name (1 to 63 letters, digits and hyphens, "
            "starting and ending with a letter or digit): set deploy.endpoint_name (PIPELINE__DEPLOY__ENDPOINT_NAME)"
        )
    if d.memory_mb is not None:
        variant: dict[str, Any] = {
            "ServerlessConfig": {"MemorySizeInMB": d.memory_mb, "MaxConcurrency": d.max_concurrency}
        }
    else:
        variant = {"InstanceType": d.instance_type, "InitialInstanceCount": d.instance_count}
    assert d.image_uri and d.execution_role_arn and d.model_data_prefix  # checked above
    return Target(
        environment=settings.environment,
        endpoint=d.endpoint_name,
        image_uri=d.image_uri,
        role_arn=d.execution_role_arn,
        prefix=d.model_data_prefix,
        region=d.region or settings.aws.region,
        variant=variant,
        timeout_seconds=d.timeout_seconds,
        smoke_rows=d.smoke_rows,
    )


def named(endpoint: str, content: dict[str, Any]) -> str:
    """``<endpoint>-<12 hex digits of the content's SHA-256>``, at most 63 characters (SageMaker's limit)."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:12]
    return f"{endpoint[:50].rstrip('-')}-{digest}"
