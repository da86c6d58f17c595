"""The `dev` environment for real: data in S3 (moto_server over HTTP), runs on an MLflow server backed by
PostgreSQL whose artifacts are proxied to the same S3 server."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.discovery import step_names
from mlsteps.errors import PipelineError
from mlsteps.pipeline import run_pipeline

from tests.helpers import EXAMPLE_RAW, scrubbed_env
from tests.servers import AWS_TEST_ENV, FailingProxy, free_port, start_mlflow_server
from tests.template_fixtures import TEAM_BUCKET

STEPS = step_names()

pytestmark = pytest.mark.slow


@dataclass
class DevEnv:
    s3_url: str
    tracking_uri: str
    prefix: str  # the test's data root inside the bucket
    experiment: str
    model_name: str

    @property
    def data_root(self) -> str:
        return f"s3://{TEAM_BUCKET}/{self.prefix}"

    def s3(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=TEAM_BUCKET, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def env(self) -> dict[str, str]:
        return {
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": self.s3_url,
            "PIPELINE_DATA_ROOT": self.data_root,
            "PIPELINE_TRACKING_URI": self.tracking_uri,
            "PIPELINE_EXPERIMENT": self.experiment,
            "PIPELINE__CATALOG__MODEL__NAME": self.model_name,
        }


@pytest.fixture
def dev(monkeypatch: pytest.MonkeyPatch, s3_server: str, team_server: str) -> DevEnv:
    """A fresh prefix, experiment and model name on the shared servers, with the raw data uploaded."""
    tag = uuid.uuid4().hex[:8]
    env = DevEnv(s3_server, team_server, f"t-{tag}", f"dev-test-{tag}", f"model-{tag}")
    env.s3().upload_file(str(EXAMPLE_RAW), TEAM_BUCKET, f"{env.prefix}/raw/breast_cancer.csv")
    for key, value in env.env().items():
        monkeypatch.setenv(key, value)
    return env


def _run_cli(
    dev: DevEnv, *args: str, extra: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in {**dev.env(), **(extra or {})}.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "src/main.py", *args],
        check=False,
        cwd=REPO_ROOT,
        env=scrubbed_env(env),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.long
def test_dev_pipeline_writes_data_snapshots_and_models_to_s3(dev: DevEnv) -> None:
    from mlflow import MlflowClient

    result = run_pipeline(load_config("dev"), list(STEPS))

    by_step = {s.step: s for s in result.steps}
    data_keys = dev.keys(dev.prefix + "/")
    assert f"{dev.prefix}/interim/{by_step['make_data'].run_id}/clean.parquet" in data_keys
    assert f"{dev.prefix}/processed/{by_step['feat_data'].run_id}/train.parquet" in data_keys
    assert f"{dev.prefix}/processed/predictions/{by_step['predict'].run_id}/predictions.parquet" in data_keys
    snapshots = [k for k in data_keys if k.startswith(f"{dev.prefix}/snapshots/")]
    assert len(snapshots) == 2
    assert not [k for k in data_keys if "/.tmp-" in k or "write-probe" in k]

    client = MlflowClient(dev.tracking_uri)
    train_run = client.get_run(by_step["train_model"].run_id)
    manifest = client.download_artifacts(train_run.info.run_id, "snapshot/manifest.json")
    import json

    recorded = json.loads(Path(manifest).read_text())
    files = recorded["files"]
    assert recorded["training"] == "train"  # what the gate reads the champion's training rows from
    assert {f["uri"] for f in files.values()} == {f"s3://{TEAM_BUCKET}/{k}" for k in snapshots}
    assert files["train"]["rows"] == 455
    assert files["train"]["uri"].endswith(files["train"]["sha256"] + ".parquet")
    assert files["train"]["schema"]["mean_radius"] == "float64"
    inputs = {d.dataset.name: d.dataset for d in train_run.inputs.dataset_inputs}
    assert inputs["train"].source.find(files["train"]["sha256"]) > 0
    assert inputs["train"].digest == files["train"]["sha256"][:36]
    assert train_run.data.tags["pipeline.data.train.sha256"] == files["train"]["sha256"]

    # The run artifacts and the model live in the bucket too, through the server's artifact proxy.
    artifact_keys = dev.keys("mlartifacts/")
    assert any(k.endswith(f"{train_run.info.run_id}/artifacts/snapshot/manifest.json") for k in artifact_keys)
    model_id = by_step["train_model"].outputs["model"].removeprefix("models:/")
    assert any(k.endswith(f"models/{model_id}/artifacts/MLmodel") for k in artifact_keys)

    # Training again on the same data stores no new snapshot object.
    again = run_pipeline(load_config("dev"), ["train_model"], force=["train_model"])
    assert [k for k in dev.keys(dev.prefix + "/") if "/snapshots/" in k] == snapshots
    assert again.steps[0].outputs["registered_model"] == f"models:/{dev.model_name}/2"

    # Retraining from the first run's snapshot, through the command line, reproduces its metrics exactly.
    cli = _run_cli(dev, "--environment", "dev", "--from-run", train_run.info.run_id)
    assert cli.returncode == 0, cli.stderr
    assert f"retraining on the data snapshot of run {train_run.info.run_id}" in cli.stderr
    retrained = client.search_runs(
        [train_run.info.experiment_id],
        filter_string=f"params.from_run = '{train_run.info.run_id}'",
    )
    assert len(retrained) == 1
    for metric in ("roc_auc", "f1_score", "accuracy_score", "log_loss"):
        assert retrained[0].data.metrics[metric] == train_run.data.metrics[metric]


def test_train_model_step_alone_on_dev_from_the_command_line(dev: DevEnv) -> None:
    run_pipeline(load_config("dev"), ["make_data", "feat_data"])

    cli = _run_cli(dev, "--step", "train_model", "--environment", "dev")

    assert cli.returncode == 0, cli.stderr
    assert f"models:/{dev.model_name}/1" in cli.stdout
    assert f"open {dev.tracking_uri}" in cli.stdout


def _assert_nothing_written(dev: DevEnv, before: list[str]) -> None:
    from mlflow import MlflowClient

    assert dev.keys(dev.prefix + "/") == before
    experiment = MlflowClient(dev.tracking_uri).get_experiment_by_name(dev.experiment)
    if experiment is not None:
        assert MlflowClient(dev.tracking_uri).search_runs([experiment.experiment_id]) == []


def test_missing_credentials_fail_fast(dev: DevEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    before = dev.keys(dev.prefix + "/")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)

    with pytest.raises(PipelineError) as caught:
        run_pipeline(load_config("dev"), list(STEPS))

    assert "no valid AWS credentials were found" in str(caught.value)
    _assert_nothing_written(dev, before)


def test_missing_bucket_fails_fast(dev: DevEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    before = dev.keys(dev.prefix + "/")
    monkeypatch.setenv("PIPELINE_BUCKET", "no-such-bucket-here")

    with pytest.raises(PipelineError) as caught:
        run_pipeline(load_config("dev"), list(STEPS))

    assert "s3://no-such-bucket-here/" in str(caught.value)
    assert "bucket does not exist" in str(caught.value)
    _assert_nothing_written(dev, before)


def test_unreachable_tracking_server_fails_fast(dev: DevEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    before = dev.keys(dev.prefix + "/")
    monkeypatch.setenv("PIPELINE_TRACKING_URI", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(PipelineError) as caught:
        run_pipeline(load_config("dev"), list(STEPS))

    assert "does not answer" in str(caught.value)
    assert dev.keys(dev.prefix + "/") == before


def test_check_command_reports_each_part(dev: DevEnv) -> None:
    good = _run_cli(dev, "check", "--environment", "dev")
    env_without_keys = {k: v for k, v in dev.env().items() if not k.startswith("AWS_SECRET")}
    bad = subprocess.run(
        [sys.executable, "src/main.py", "check", "-e", "dev"],
        check=False,
        cwd=REPO_ROOT,
        env=scrubbed_env(
            {**env_without_keys, "PIPELINE_TRACKING_URI": f"http://127.0.0.1:{free_port()}"},
            drop=("AWS_ACCESS", "AWS_SECRET"),
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert good.returncode == 0, good.stdout + good.stderr
    assert "all checks passed" in good.stdout
    assert bad.returncode == 1
    assert "FAIL credentials" in bad.stdout
    assert "FAIL tracking" in bad.stdout
    assert "fix: set AWS_PROFILE" in bad.stdout


def test_check_and_dry_run_leave_no_trace_on_the_server_or_in_the_bucket(dev: DevEnv) -> None:
    from mlflow import MlflowClient

    before = dev.keys(dev.prefix + "/")

    check = _run_cli(dev, "check", "--environment", "dev")
    plan = _run_cli(dev, "--environment", "dev", "--dry-run")

    assert check.returncode == 0, check.stdout + check.stderr
    assert "does not exist yet" in check.stdout
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "no earlier run" in plan.stdout
    assert MlflowClient(dev.tracking_uri).get_experiment_by_name(dev.experiment) is None
    assert dev.keys(dev.prefix + "/") == before


@pytest.mark.long
def test_a_dead_s3_endpoint_is_reported_within_seconds(dev: DevEnv) -> None:
    import time

    dead = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    timings = {}
    results = {}
    for name, args in (("check", ("check", "-e", "dev")), ("pipeline", ("-e", "dev"))):
        started = time.monotonic()
        results[name] = _run_cli(dev, *args, extra=dead)
        timings[name] = time.monotonic() - started
    print(f"dead S3 endpoint reported in: check {timings['check']:.1f} s, pipeline {timings['pipeline']:.1f} s")

    assert results["check"].returncode == 1
    assert "the S3 endpoint cannot be reached" in results["check"].stdout
    assert results["pipeline"].returncode == 1
    assert "the S3 endpoint cannot be reached" in results["pipeline"].stderr
    # 10 s is the promise (about 5 s each measured here, nothing else running, ~2 s of it imports); the margin
    # covers a loaded 2-core machine. check stops at the first probe that finds the storage unreachable.
    assert max(timings.values()) < 15, timings
    assert "not tried: the storage cannot be reached" in results["check"].stdout


@pytest.mark.long
def test_s3_lost_during_train_model_is_named_within_seconds_and_the_runs_are_closed(
    dev: DevEnv, s3_server: str, tmp_path: Path
) -> None:
    """S3 goes away while train_model runs, after it read its inputs; the pipeline and the tracking server's
    artifact store (the same S3) both lose it. Two cases, by the write that meets the loss first, on one server
    and one make_data/feat_data run: S3 comes back between them."""
    import time

    from mlflow import MlflowClient

    proxy = FailingProxy(s3_server)
    server = start_mlflow_server(
        tmp_path, f"sqlite:///{tmp_path / 'server.db'}", f"s3://{TEAM_BUCKET}/{dev.prefix}-artifacts", proxy.url
    )
    try:
        extra = {"AWS_ENDPOINT_URL": proxy.url, "PIPELINE_TRACKING_URI": server.url}
        first = _run_cli(dev, "--environment", "dev", "--step", "make_data,feat_data", extra=extra)
        assert first.returncode == 0, first.stdout + first.stderr
        client = MlflowClient(server.url)
        experiment = client.get_experiment_by_name(dev.experiment)
        cases = [
            # the step's data snapshot, which the pipeline writes to S3 itself
            ("/snapshots/", "the S3 endpoint cannot be reached"),
            # an artifact (the model), which the tracking server stores in S3 for the run
            ("-artifacts/", "could not store an artifact of the run"),
        ]
        for case, (lost_at, named) in enumerate(cases, start=1):
            proxy.heal()
            lost_before = proxy.lost
            # S3 is lost at the step's first write to `lost_at`: the checks before the step (a write probe), the
            # parent run's config artifact and any write of the other kind before it still pass.
            other = "-artifacts/" if lost_at == "/snapshots/" else "/snapshots/"
            proxy.lose_at_next_write(skip=("write-probe", "config/resolved.yaml", other))

            started = time.monotonic()
            done = _run_cli(dev, "--environment", "dev", "--step", "train_model", extra=extra)
            elapsed = time.monotonic() - started
            print(f"S3 lost at {lost_at}: reported in {elapsed:.1f} s, {proxy.lost - lost_before} requests dropped")

            assert proxy.lost > lost_before, lost_at  # S3 was lost while the step ran, not before it
            assert done.returncode == 1, done.stdout + done.stderr
            assert "unexpected" not in done.stderr.lower(), done.stderr
            assert "step 'train_model' failed" in done.stderr and named in done.stderr, done.stderr
            assert "S3" in done.stderr
            assert "check" in done.stderr and "Traceback" not in done.stderr, done.stderr
            runs = client.search_runs([experiment.experiment_id], filter_string="tags.`pipeline.step` = 'train_model'")
            assert [r.info.status for r in runs] == ["FAILED"] * case
            assert all(r.info.status != "RUNNING" for r in client.search_runs([experiment.experiment_id]))
            # The promise is 15 s (5 to 10.5 s measured here, nothing else running); the margin covers a loaded
            # machine.
            assert elapsed < 25, (lost_at, elapsed, done.stderr[-2000:])
    finally:
        server.stop()
        proxy.close()


@pytest.mark.long
def test_dev_and_prd_on_one_server_keep_their_own_experiments_and_models(dev: DevEnv) -> None:
    from mlflow import MlflowClient

    # Names derive from the project and the environment: no override of them here.
    project = f"iso-{dev.prefix}"
    results = {
        environment: _run_cli(
            dev,
            "--environment",
            environment,
            # prd deploys a champion the gate promotes (deploy.on_promotion): not what this test is about.
            extra={"PIPELINE__PROJECT": project, "PIPELINE__DEPLOY__ON_PROMOTION": "false"},
            unset=("PIPELINE_EXPERIMENT", "PIPELINE__CATALOG__MODEL__NAME"),
        )
        for environment in ("dev", "prd")
    }

    for environment, done in results.items():
        assert done.returncode == 0, done.stderr
        assert f"models:/{project}-{environment}/1" in done.stdout
    client = MlflowClient(dev.tracking_uri)
    for environment in ("dev", "prd"):
        experiment = client.get_experiment_by_name(f"{project}-{environment}")
        predict = client.search_runs([experiment.experiment_id], filter_string="tags.`pipeline.step` = 'predict'")
        assert [r.data.params["model_uri"] for r in predict] == [f"models:/{project}-{environment}@champion"]
        assert [v.version for v in client.search_model_versions(f"name = '{project}-{environment}'")] == ["1"]
