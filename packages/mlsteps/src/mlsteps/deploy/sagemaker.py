"""SageMaker's calls, through boto3 (``AWS_ENDPOINT_URL`` points them at another SageMaker-speaking server): each
failure becomes a ``DeployError`` that names the call, the object and what AWS said."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlsteps.errors import DeployError

if TYPE_CHECKING:
    from mlsteps.config import Settings
    from mlsteps.deploy.settings import Target

VARIANT = "primary"  # the one production variant of an endpoint config
TAG_MODEL_URI = "mlflow-model-uri"  # on a SageMaker model: the registered version it holds
TAG_RUN_ID = "mlflow-run-id"


@contextlib.contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Any botocore failure inside as one line: what was being done, and what AWS said."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError as exc:
        raise DeployError(
            f"{what}: no AWS credentials found ({exc}); give them the usual way (AWS_PROFILE, aws.profile, a role)"
        ) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise DeployError(f"{what}: {error.get('Code', 'error')}: {error.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise DeployError(f"{what}: {exc}") from exc


@dataclass
class SageMaker:
    """The SageMaker and SageMaker runtime clients of one region."""

    client: Any
    runtime: Any
    region: str

    @classmethod
    def connect(cls, settings: Settings) -> SageMaker:
        """The clients of the environment's region (``deploy.region``, else ``aws.region``, else the AWS chain's)."""
        import boto3
        from botocore.config import Config

        aws = settings.aws
        session = boto3.Session(profile_name=aws.profile, region_name=settings.deploy.region or aws.region)
        config = Config(
            connect_timeout=aws.connect_timeout,
            read_timeout=aws.read_timeout,
            retries={"max_attempts": aws.max_attempts, "mode": "standard"},
        )
        region = session.region_name
        if not region:
            raise DeployError(
                "no AWS region for SageMaker: set deploy.region or aws.region (PIPELINE__DEPLOY__REGION), "
                "or AWS_DEFAULT_REGION"
            )
        return cls(
            session.client("sagemaker", config=config), session.client("sagemaker-runtime", config=config), region
        )

    # -- reading ---------------------------------------------------------------------------------------------------
    def endpoint(self, name: str) -> dict[str, Any] | None:
        """The endpoint's description, or None when there is none of that name."""
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.describe_endpoint(EndpointName=name))
        except ClientError as exc:
            if "Could not find" in str(exc) or exc.response.get("Error", {}).get("Code") == "ResourceNotFound":
                return None
            with aws_call(f"describing endpoint '{name}'"):
                raise

    def exists(self, kind: str, name: str) -> bool:
        """Whether a model (``kind`` model) or an endpoint config (``endpoint_config``) of that name exists."""
        from botocore.exceptions import ClientError

        describe = getattr(self.client, f"describe_{kind}")
        key = {"model": "ModelName", "endpoint_config": "EndpointConfigName"}[kind]
        try:
            describe(**{key: name})
        except ClientError as exc:
            if "Could not find" in str(exc):
                return False
            with aws_call(f"describing {kind.replace('_', ' ')} '{name}'"):
                raise
        return True

    def served_model(self, config_name: str) -> tuple[str, dict[str, str]]:
        """The SageMaker model behind an endpoint config, and its tags."""
        with aws_call(f"describing endpoint config '{config_name}'"):
            model = self.client.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0][
                "ModelName"
            ]
            arn = self.client.describe_model(ModelName=model)["ModelArn"]
            tags = self.client.list_tags(ResourceArn=arn).get("Tags", [])
        return model, {t["Key"]: t["Value"] for t in tags}

    # -- writing ---------------------------------------------------------------------------------------------------
    def create_model(self, name: str, target: Target, data_url: str, tags: dict[str, str]) -> None:
        with aws_call(f"creating SageMaker model '{name}'"):
            self.client.create_model(
                ModelName=name,
                PrimaryContainer={
                    "Image": target.image_uri,
                    "ModelDataUrl": data_url,
                    "Environment": target.container_env(),
                },
                ExecutionRoleArn=target.role_arn,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )

    def create_endpoint_config(self, name: str, model_name: str, target: Target) -> None:
        with aws_call(f"creating endpoint config '{name}'"):
            self.client.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[{"VariantName": VARIANT, "ModelName": model_name, **target.variant}],
            )

    def create_endpoint(self, name: str, config_name: str) -> None:
        with aws_call(f"creating endpoint '{name}'"):
            self.client.create_endpoint(EndpointName=name, EndpointConfigName=config_name)

    def update_endpoint(self, name: str, config_name: str) -> None:
        """Point the endpoint at another config: SageMaker brings up the new fleet, shifts the traffic to it once
        it is healthy and only then removes the old one (blue/green)."""
        with aws_call(f"updating endpoint '{name}' to config '{config_name}'"):
            self.client.update_endpoint(EndpointName=name, EndpointConfigName=config_name)

    def delete_endpoint(self, name: str) -> None:
        with aws_call(f"deleting endpoint '{name}'"):
            self.client.delete_endpoint(EndpointName=name)

    def wait_in_service(self, name: str, timeout: float) -> None:
        """Until the endpoint is InService; a DeployError when it fails or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        pause = min(15.0, max(0.1, timeout / 30))
        while True:
            described = self.endpoint(name) or {"EndpointStatus": "gone"}
            status = described["EndpointStatus"]
            if status == "InService":
                return
            if status in ("Failed", "gone", "OutOfService", "Deleting"):
                reason = described.get("FailureReason") or "no reason given"
                raise DeployError(f"endpoint '{name}' is {status} ({reason})")
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"endpoint '{name}' is still {status} after {timeout:g} s (deploy.timeout_seconds): SageMaker "
                    "may still finish; see its events in the SageMaker console, and raise deploy.timeout_seconds "
                    "(PIPELINE__DEPLOY__TIMEOUT_SECONDS) if it only needs longer"
                )
            time.sleep(pause)

    def invoke(self, name: str, body: bytes) -> bytes:
        """One InvokeEndpoint call with CSV rows (a header line first); the answer's body."""
        with aws_call(f"invoking endpoint '{name}'"):
            answer = self.runtime.invoke_endpoint(
                EndpointName=name, Body=body, ContentType="text/csv", Accept="application/json"
            )
            return bytes(answer["Body"].read())
