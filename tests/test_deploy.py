"""deploy, deployments, rollback, invoke and the deployment after the gate, against SageMaker over HTTP: moto_server
with UpdateEndpoint, endpoints that never become InService and one canned invoke answer per request
(tests/sagemaker_server.py). The dev pipeline runs once per module (data in its S3, runs in a SQLite file); each
test deploys to an endpoint of its own."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.errors import ConfigError, DeployError

from tests.helpers import EXAMPLE_CONFIG, EXAMPLE_RAW, scrubbed_env
from tests.servers import AWS_TEST_ENV, free_port, start_sagemaker_server

pytestmark = pytest.mark.slow

DATA_BUCKET, MODEL_BUCKET, REGION = "dev-data-t", "dev-models-t", "eu-west-1"  # dev.yaml's region
DEPLOY_ENV = {
    "PIPELINE__DEPLOY__IMAGE_URI": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/breast-cancer:t1",
    "PIPELINE__DEPLOY__EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker-t",
    "PIPELINE__DEPLOY__MODEL_DATA_PREFIX": f"s3://{MODEL_BUCKET}/models",
}
SMOKE_ROWS = 5


@dataclass
class Dev:
    """The dev pipeline's results: version 1 holds @champion; version 2 (the same training again) was refused."""

    url: str
    env: dict[str, str]
    predictions: list[str]  # predict's on the test split, in order: what the endpoint is made to answer
    refused_notes: list[str]  # the summary lines of train_model run again with deploy.on_promotion

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=REGION, **_keys())

    def answer(self, predictions: list[str]) -> None:
        """The next invoke_endpoint call gets these predictions (as the image answers: MLflow's JSON)."""
        body = json.dumps({"predictions": predictions})
        results = {"region": REGION, "results": [{"Body": body, "ContentType": "application/json"}]}
        requests.post(f"{self.url}/moto-api/static/sagemaker/endpoint-results", json=results, timeout=10)

    def endpoint(self, name: str) -> dict:
        return self.client("sagemaker").describe_endpoint(EndpointName=name)


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    import boto3

    root = tmp_path_factory.mktemp("deploy")
    server = start_sagemaker_server(root)
    try:
        env = {
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": server.url,
            "PIPELINE_DATA_ROOT": f"s3://{DATA_BUCKET}/pipeline",
            "PIPELINE_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
            "PIPELINE_STATE_DIR": str(root / "state"),
            "PIPELINE_CONFIG_DIR": str(EXAMPLE_CONFIG),
            "PIPELINE__GATE__EVALUATION_PLOTS": "false",
            "PIPELINE__DEPLOY__SMOKE_ROWS": str(SMOKE_ROWS),
        }
        s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", **_keys())
        for bucket in (DATA_BUCKET, MODEL_BUCKET):
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(EXAMPLE_RAW), DATA_BUCKET, "pipeline/raw/breast_cancer.csv")
        done = _main(env, "-e", "dev")
        assert done.returncode == 0, done.stderr[-3000:]
        [key] = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="pipeline/processed/predictions/")["Contents"]
        ]
        frame = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()))
        # The same training again, with deploy.on_promotion: the gate refuses a candidate that only ties.
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {**env, **DEPLOY_ENV, "PIPELINE__DEPLOY__ON_PROMOTION": "true"}.items():
                mp.setenv(name, value)
            mp.setenv("PIPELINE__DEPLOY__ENDPOINT_NAME", "refused-t")
            from mlsteps.pipeline import run_pipeline

            again = run_pipeline(load_config("dev"), ["train_model"], force=["train_model"])
        yield Dev(server.url, env, [str(p) for p in frame["prediction"]], again.steps[0].notes)
    finally:
        server.stop()


@pytest.fixture
def endpoint(dev: Dev, monkeypatch: pytest.MonkeyPatch) -> str:
    """dev's environment with the deploy keys set, and an endpoint name of the test's own."""
    name = f"ep-{uuid.uuid4().hex[:8]}"
    for key, value in {**dev.env, **DEPLOY_ENV, "PIPELINE__DEPLOY__ENDPOINT_NAME": name}.items():
        monkeypatch.setenv(key, value)
    return name


def _main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "src/main.py", *args],
        cwd=REPO_ROOT,
        env=scrubbed_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _version_tags(dev: Dev, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return MlflowClient(dev.env["PIPELINE_TRACKING_URI"]).get_model_version("breast-cancer-dev", version).tags


def _archive_keys(dev: Dev) -> list[tuple[str, object]]:
    found = dev.client("s3").list_objects_v2(Bucket=MODEL_BUCKET).get("Contents", [])
    return sorted((o["Key"], o["LastModified"]) for o in found)


@pytest.mark.long
def test_done_when_the_dev_pipeline_then_deploy_leave_an_endpoint_serving_the_champion(dev: Dev) -> None:
    dev.answer(dev.predictions[:SMOKE_ROWS])

    done = _main({**dev.env, **DEPLOY_ENV}, "deploy", "-e", "dev")

    assert done.returncode == 0, done.stderr
    assert "deployed models:/breast-cancer-dev/1 to SageMaker endpoint 'breast-cancer-dev'" in done.stderr
    described = dev.endpoint("breast-cancer-dev")
    assert described["EndpointStatus"] == "InService"
    sagemaker = dev.client("sagemaker")
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=variant["ProductionVariants"][0]["ModelName"])
    url = model["PrimaryContainer"]["ModelDataUrl"]
    bucket, key = url.removeprefix("s3://").split("/", 1)
    assert dev.client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
    assert model["PrimaryContainer"]["Image"] == DEPLOY_ENV["PIPELINE__DEPLOY__IMAGE_URI"]
    assert _version_tags(dev, "1")["deploy.dev.endpoint"] == "breast-cancer-dev"


def test_first_deploy_then_the_same_version_changes_nothing_then_a_new_version_updates(dev: Dev, endpoint: str) -> None:
    from mlsteps.deploy.run import deploy_model
    from mlsteps.registry import deployment_history

    settings = load_config("dev")
    dev.answer(dev.predictions[:SMOKE_ROWS])
    first = deploy_model(settings)
    assert (first.action, first.model_uri, first.smoke and first.smoke.passed) == (
        "created",
        "models:/breast-cancer-dev/1",
        True,
    )
    archives, config = _archive_keys(dev), dev.endpoint(endpoint)["EndpointConfigName"]
    assert first.data_url.endswith(f"/{first.data_url.split('/')[-2]}/model.tar.gz")
    assert len(first.data_url.split("/")[-2]) == 64  # the archive's SHA-256

    again = deploy_model(settings)  # no answer queued: a smoke test would fail

    assert again.action == "unchanged" and not again.uploaded
    assert again.summary().startswith(f"already deployed: SageMaker endpoint '{endpoint}'")
    assert _archive_keys(dev) == archives
    assert dev.endpoint(endpoint)["EndpointConfigName"] == config
    assert len(deployment_history(settings.tracking.experiment, endpoint)) == 1

    dev.answer(dev.predictions[:SMOKE_ROWS])  # version 2 is the same training: the same answers
    update = deploy_model(settings, "models:/breast-cancer-dev/2")

    assert (update.action, update.previous_config, update.previous_model_uri) == (
        "updated",
        config,
        "models:/breast-cancer-dev/1",
    )
    assert dev.endpoint(endpoint)["EndpointConfigName"] == update.config_name != config
    assert _version_tags(dev, "2")["deploy.dev.endpoint_config"] == update.config_name
    assert _version_tags(dev, "1")["deploy.dev.replaced_by"].startswith("2 at ")
    [latest, _] = deployment_history(settings.tracking.experiment, endpoint)
    assert latest.data.params["model_uri"] == "models:/breast-cancer-dev/2"
    assert latest.data.metrics["smoke_rows"] == SMOKE_ROWS
    assert latest.data.tags["deploy.result"] == "deployed"


def test_a_failing_smoke_test_rolls_back_and_rollback_returns_the_previous_version(dev: Dev, endpoint: str) -> None:
    from click.testing import CliRunner
    from mlsteps.cli import cli
    from mlsteps.deploy.run import deploy_model, rollback_endpoint

    settings = load_config("dev")
    dev.answer(dev.predictions[:SMOKE_ROWS])
    first = deploy_model(settings)
    flipped = ["B" if p == "M" else "M" for p in dev.predictions[:SMOKE_ROWS]]
    dev.answer(flipped)

    with pytest.raises(DeployError) as failed:
        deploy_model(settings, "models:/breast-cancer-dev/2")

    message = str(failed.value)
    assert f"smoke test failed on {SMOKE_ROWS} of {SMOKE_ROWS} holdout rows: row 1: endpoint {flipped[0]!r}" in message
    assert f"endpoint '{endpoint}' rolled back to its previous config {first.config_name}" in message
    assert dev.endpoint(endpoint)["EndpointConfigName"] == first.config_name
    assert dev.endpoint(endpoint)["EndpointStatus"] == "InService"

    dev.answer(dev.predictions[:SMOKE_ROWS])
    second = deploy_model(settings, "models:/breast-cancer-dev/2")
    dev.answer(dev.predictions[:SMOKE_ROWS])
    back = rollback_endpoint(settings)

    assert back.model_uri == "models:/breast-cancer-dev/1"
    assert dev.endpoint(endpoint)["EndpointConfigName"] == first.config_name != second.config_name
    listed = CliRunner().invoke(cli, ["deployments", "-e", "dev"])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "models:/" in line]
    assert [line.split()[3:5] for line in lines] == [
        ["deployed", "models:/breast-cancer-dev/1"],
        ["deployed", "models:/breast-cancer-dev/2"],
        ["failed", "models:/breast-cancer-dev/2"],
        ["deployed", "models:/breast-cancer-dev/1"],
    ]


@pytest.mark.parametrize("unset", [("IMAGE_URI",), ("EXECUTION_ROLE_ARN", "IMAGE_URI")])
def test_missing_role_or_image_is_refused_before_any_call(
    unset: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsteps.deploy.run import deploy_model

    for key, value in DEPLOY_ENV.items():
        monkeypatch.setenv(key, value)
    for key in unset:
        monkeypatch.delenv(f"PIPELINE__DEPLOY__{key}")
    # Nothing listens there: any call to AWS or a tracking server would fail with another error.
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("PIPELINE_TRACKING_URI", dead)

    with pytest.raises(ConfigError) as refused:
        deploy_model(load_config("dev"))

    message = str(refused.value)
    assert message.startswith("cannot deploy on environment 'dev', not set: ")
    for key in unset:
        assert f"deploy.{key.lower()} (PIPELINE__DEPLOY__{key})" in message
    assert "PIPELINE__DEPLOY__MODEL_DATA_PREFIX" not in message
    assert refused.value.exit_code == 2


def test_an_endpoint_that_never_reaches_in_service_is_named_with_the_key_to_raise(
    dev: Dev, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsteps.deploy.run import deploy_model
    from mlsteps.registry import deployment_history

    requests.post(f"{dev.url}/moto-api/static/sagemaker/stuck-endpoints", json={"names": [endpoint]}, timeout=10)
    monkeypatch.setenv("PIPELINE__DEPLOY__TIMEOUT_SECONDS", "0.5")
    settings = load_config("dev")

    with pytest.raises(DeployError) as timed_out:
        deploy_model(settings)

    assert str(timed_out.value).startswith(
        f"endpoint '{endpoint}' is still Creating after 0.5 s (deploy.timeout_seconds)"
    )
    assert "PIPELINE__DEPLOY__TIMEOUT_SECONDS" in str(timed_out.value)
    assert timed_out.value.exit_code == 1
    [record] = deployment_history(settings.tracking.experiment, endpoint)
    assert record.info.status == "FAILED" and record.data.tags["deploy.result"] == "failed"


def test_the_gate_deploys_a_champion_it_promotes_and_nothing_it_refuses(
    dev: Dev, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsteps.pipeline import run_pipeline

    # Refused (the fixture trained version 2 again with deploy.on_promotion): no endpoint, no word of a deployment.
    assert not [n for n in dev.refused_notes if "deploy" in n]
    assert any("version 2 not promoted" in n for n in dev.refused_notes)
    assert not dev.client("sagemaker").list_endpoints(NameContains="refused-t")["Endpoints"]

    monkeypatch.setenv("PIPELINE__DEPLOY__ON_PROMOTION", "true")
    monkeypatch.setenv("PIPELINE__CATALOG__MODEL__NAME", f"{endpoint}-model")  # no champion yet: promoted
    dev.answer(dev.predictions[:SMOKE_ROWS])

    result = run_pipeline(load_config("dev"), ["train_model"], force=["train_model"])

    notes = result.step("train_model").notes
    assert notes[0] == "promoted version 1 to @champion"
    assert notes[1].startswith(f"deployed models:/{endpoint}-model/1 to SageMaker endpoint '{endpoint}' ({REGION})")
    assert dev.endpoint(endpoint)["EndpointStatus"] == "InService"


def test_invoke_scores_a_file_through_the_endpoint_with_predicts_checks(
    dev: Dev, endpoint: str, tmp_path: Path
) -> None:
    from mlsteps.deploy.invoke import invoke_file
    from mlsteps.deploy.run import deploy_model
    from mlsteps.input_checks import InputError

    settings = load_config("dev")
    dev.answer(dev.predictions[:SMOKE_ROWS])
    deploy_model(settings)
    rows = pd.read_csv(EXAMPLE_RAW).head(3)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    dev.answer(["M", "B", "M"])

    scored, model_uri = invoke_file(settings, str(tmp_path / "rows.csv"), str(tmp_path / "preds.csv"))

    written = pd.read_csv(tmp_path / "preds.csv")
    assert list(written["prediction"]) == ["M", "B", "M"] == list(scored["prediction"])
    assert model_uri == "models:/breast-cancer-dev/1"
    assert list(written.columns[: len(rows.columns)]) == list(rows.columns)
    assert set(written.columns) - set(rows.columns) >= {"model_uri", "model_version", "model_run_id", "scored_at"}

    rows.drop(columns=["mean_radius"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="column 'mean_radius' is missing"):
        invoke_file(settings, str(tmp_path / "bad.csv"), None)  # refused before any row is sent (none is queued)
