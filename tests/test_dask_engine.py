"""The dask engine on real worker processes: one LocalCluster of 2 workers (memory limit set) shared by this module,
which the runs reach through engine.address; one run starts and closes a LocalCluster of its own."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlsteps.config import REPO_ROOT, load_config
from mlsteps.errors import StepError
from mlsteps.lineage import load_manifest
from mlsteps.pipeline import run_pipeline

from tests.helpers import EXAMPLE_RAW, SCORE_TOLERANCE, run_main

pytestmark = pytest.mark.slow

STEPS = ["make_data", "feat_data", "train_model", "predict"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scheduler address of a LocalCluster: 2 worker processes, 1 GB each, the project importable."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit="1GB",
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        local_directory=str(tmp_path_factory.mktemp("dask")),
        env={"PYTHONPATH": str(REPO_ROOT)},
    ) as local:
        yield local.scheduler_address


def _dask(cluster: str, **overrides: object):
    return load_config("local", overrides={"engine": {"kind": "dask", "address": cluster}, **overrides})


def _read(uri: str) -> pd.DataFrame:
    """A dataset as written: one file, or a partitioned folder's files in its manifest's order."""
    if not uri.endswith("/"):
        return pd.read_parquet(uri)
    manifest = json.loads(Path(uri, "_manifest.json").read_text())
    return pd.concat([pd.read_parquet(Path(uri, f["name"])) for f in manifest["files"]], ignore_index=True)


def _client(workspace):
    from mlflow import MlflowClient

    return MlflowClient(workspace.tracking_uri)


def test_the_example_gives_the_same_split_metrics_and_predictions_on_both_engines(workspace, cluster) -> None:
    pandas_run = run_pipeline(load_config("local"), STEPS)
    dask_run = run_pipeline(_dask(cluster), STEPS, force=STEPS)

    for name in ("train", "test"):
        on_pandas = _read(pandas_run.step("feat_data").outputs[name])
        on_dask = _read(dask_run.step("feat_data").outputs[name])
        assert dask_run.step("feat_data").outputs[name].endswith(f"/{name}/")  # a partitioned dataset
        pd.testing.assert_frame_equal(on_dask, on_pandas, check_dtype=False)
    client = _client(workspace)
    trained = [client.get_run(r.step("train_model").run_id).data for r in (pandas_run, dask_run)]
    for metric in ("roc_auc", "f1_score", "accuracy_score", "precision_score", "recall_score"):
        assert trained[1].metrics[metric] == trained[0].metrics[metric], metric
    # Probabilities of a float32 matrix differ in their last digits by batch size (tests/helpers.py).
    assert trained[1].metrics["log_loss"] == pytest.approx(trained[0].metrics["log_loss"], abs=SCORE_TOLERANCE)
    assert trained[1].params["test_rows"] == trained[0].params["test_rows"] == "114"
    # The dask candidate ties the pandas champion on the same holdout: the gate compared them, and kept it.
    assert "does not beat the baseline model" in trained[1].tags["gate.reasons"]
    predicted = [_read(r.step("predict").outputs["predictions"]) for r in (pandas_run, dask_run)]
    assert list(predicted[1].columns) == list(predicted[0].columns)
    assert predicted[1]["prediction"].tolist() == predicted[0]["prediction"].tolist()
    assert (predicted[1]["probability"] - predicted[0]["probability"]).abs().max() < SCORE_TOLERANCE
    assert predicted[1]["model_version"].tolist() == predicted[0]["model_version"].tolist()
    # The training snapshot of a partitioned dataset: a manifest of content-addressed files, verified when reused.
    trained_by = dask_run.step("train_model").run_id
    snapshot = load_manifest(trained_by)["files"]["train"]["uri"]
    assert snapshot.endswith(".json")
    files = json.loads(Path(snapshot).read_text())["files"]
    assert all(Path(snapshot).with_name(f["name"]).name == f"{f['sha256']}.parquet" for f in files)
    again = run_pipeline(_dask(cluster), ["train_model"], from_run=trained_by)
    assert client.get_run(again.step("train_model").run_id).data.metrics["roc_auc"] == trained[1].metrics["roc_auc"]
    with Path(snapshot).with_name(files[0]["name"]).open("ab") as changed:
        changed.write(b"\0")
    with pytest.raises(StepError) as caught:
        run_pipeline(_dask(cluster), ["train_model"], from_run=trained_by)
    assert "no longer matches its recorded SHA-256" in str(caught.value)
    parent = client.get_run(dask_run.parent_run_id).data.params
    assert (parent["engine"], parent["engine_address"], parent["engine_workers"]) == ("dask", cluster, "2")
    assert client.get_run(pandas_run.parent_run_id).data.params["engine"] == "pandas"


def test_a_partition_that_breaks_the_contract_is_reported_as_on_pandas(workspace, cluster) -> None:
    raw = pd.read_csv(EXAMPLE_RAW)
    folder = workspace.data_root / "raw" / "parts"
    folder.mkdir()
    bad = raw.iloc[200:400].copy()
    bad.loc[bad.index[[3, 50]], "mean_radius"] = -1.0
    bad.loc[bad.index[7], "diagnosis"] = "X"
    for index, part in enumerate((raw.iloc[:200], bad, raw.iloc[400:])):
        part.to_csv(folder / f"part-{index}.csv", index=False)
    overrides = {"catalog": {"raw": {"path": "raw/parts"}}}

    reports = []
    for settings in (load_config("local", overrides=overrides), _dask(cluster, **overrides)):
        with pytest.raises(StepError) as caught:
            run_pipeline(settings, ["make_data"])
        reports.append(caught.value.cause.report)

    assert reports[0] == reports[1]
    assert "column 'mean_radius': fails greater_than_or_equal_to(0.0) (2 rows; e.g. -1.0)" in reports[1]
    assert "values that are not one of schema.labels (1 rows; e.g. 'X')" in reports[1]
    statuses = {r.info.status for r in _client(workspace).search_runs([_experiment(workspace)])}
    assert statuses == {"FAILED"}


def _experiment(workspace) -> str:
    return _client(workspace).get_experiment_by_name(load_config("local").tracking.experiment).experiment_id


def test_duplicates_across_partitions_are_dropped_as_on_pandas(workspace, cluster) -> None:
    raw = pd.read_csv(EXAMPLE_RAW)
    folder = workspace.data_root / "raw" / "parts"
    folder.mkdir()
    # Row 10 again in the last file, and row 20 twice in the first: the first of each is kept.
    parts = (pd.concat([raw.iloc[:300], raw.iloc[[20]]]), raw.iloc[300:], raw.iloc[[10]])
    for index, part in enumerate(parts):
        part.to_parquet(folder / f"part-{index}.parquet", index=False)
    overrides = {"catalog": {"raw": {"path": "raw/parts"}}}

    results = [
        run_pipeline(settings, ["make_data"], force=["make_data"])
        for settings in (load_config("local", overrides=overrides), _dask(cluster, **overrides))
    ]

    assert [r.step("make_data").metrics["dropped_duplicates"] for r in results] == [2.0, 2.0]
    clean = [_read(r.step("make_data").outputs["clean"]) for r in results]
    pd.testing.assert_frame_equal(clean[1], clean[0], check_dtype=False)
    # Unchanged, the newest run is reused (a partitioned output found by its manifest); without its manifest, the
    # pandas engine's run of the same code, parameters and input (the engine is not part of the cache key).
    reused = run_pipeline(_dask(cluster, **overrides), ["make_data"])
    again = reused.step("make_data")
    assert again.reused_from == results[1].step("make_data").run_id
    # Nothing ran: no cluster was reached (the parent records the engine, no address).
    parent = _client(workspace).get_run(reused.parent_run_id).data.params
    assert parent["engine"] == "dask"
    assert "engine_address" not in parent
    Path(results[1].step("make_data").outputs["clean"], "_manifest.json").unlink()
    instead = run_pipeline(_dask(cluster, **overrides), ["make_data"]).step("make_data")
    assert instead.reused_from == results[0].step("make_data").run_id


def test_a_worker_killed_mid_step_leaves_no_run_running(workspace, cluster, tmp_path) -> None:
    from distributed import Client

    raw = pd.read_csv(EXAMPLE_RAW)
    # Enough partitions that the step is still running when a worker dies.
    big = pd.concat([raw.assign(sample_id=raw["sample_id"] + i * 10_000_000) for i in range(60)], ignore_index=True)
    big.to_csv(workspace.data_root / "raw" / "big.csv", index=False)
    env = {
        **workspace.env(),
        "PIPELINE__ENGINE__KIND": "dask",
        "PIPELINE__ENGINE__ADDRESS": cluster,
        "PIPELINE__ENGINE__PARTITION_ROWS": "1000",
        "PIPELINE__CATALOG__RAW__PATH": "raw/big.csv",
    }
    with Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        done: list = []
        runner = threading.Thread(target=lambda: done.append(run_main("--step", "make_data", env=env)))
        runner.start()
        _wait_for_a_running_step(workspace, "make_data")
        os.kill(pids[0], signal.SIGKILL)
        runner.join(timeout=300)
        client.wait_for_workers(2, timeout=60)  # the nanny starts a new worker for the next tests

    result = done[0]
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 1:
        assert "error" in result.stderr.lower()
    statuses = {r.info.status for r in _client(workspace).search_runs([_experiment(workspace)])}
    assert "RUNNING" not in statuses
    assert statuses <= {"FINISHED", "FAILED"}


def _wait_for_a_running_step(workspace, step: str) -> None:
    """Until the step's MLflow run is RUNNING (the command started it), for at most a minute."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        experiment = _client(workspace).get_experiment_by_name(load_config("local").tracking.experiment)
        if experiment is not None:
            running = _client(workspace).search_runs(
                [experiment.experiment_id],
                filter_string=f"attributes.status = 'RUNNING' and tags.`pipeline.step` = '{step}'",
            )
            if running:
                return
        time.sleep(0.2)
    raise AssertionError(f"no {step} run started within a minute")


def test_data_in_s3_is_read_and_written_by_the_workers(workspace, s3_server, monkeypatch) -> None:
    import boto3

    from tests.servers import AWS_TEST_ENV

    bucket = "dask-engine-test"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", **_keys(AWS_TEST_ENV))
    s3.create_bucket(Bucket=bucket)
    raw = pd.read_csv(EXAMPLE_RAW)
    for index, part in enumerate((raw.iloc[:300], raw.iloc[300:])):
        s3.put_object(Bucket=bucket, Key=f"data/raw/parts/part-{index}.parquet", Body=part.to_parquet(index=False))
    for key, value in {
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": s3_server,
        "PIPELINE_DATA_ROOT": f"s3://{bucket}/data",
    }.items():
        monkeypatch.setenv(key, value)
    overrides = {"catalog": {"raw": {"path": "raw/parts"}}}
    # A LocalCluster of the run's own: its worker starts with this environment (the endpoint, the test keys).
    engine = {"kind": "dask", "workers": 1, "memory_limit": "1GB"}

    results = [
        run_pipeline(load_config("dev", overrides=overrides), ["make_data", "feat_data"]),
        run_pipeline(
            load_config("dev", overrides={**overrides, "engine": engine}),
            ["make_data", "feat_data"],
            force=["make_data", "feat_data"],
        ),
    ]

    feat = results[1].step("feat_data")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="data/processed/")["Contents"]}
    assert {
        f"data/processed/{feat.run_id}/{name}/{file}"
        for name in ("train", "test")
        for file in ("_manifest.json", "part-00000.parquet", "part-00001.parquet")
    } <= keys
    for name in ("train", "test"):
        on_pandas = pd.read_parquet(
            results[0].step("feat_data").outputs[name], storage_options={"endpoint_url": s3_server}
        )
        manifest = json.loads(
            s3.get_object(Bucket=bucket, Key=f"data/processed/{feat.run_id}/{name}/_manifest.json")["Body"].read()
        )
        parts = [
            pd.read_parquet(feat.outputs[name] + f["name"], storage_options={"endpoint_url": s3_server})
            for f in manifest["files"]
        ]
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), on_pandas, check_dtype=False)


def _keys(env: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}


def test_the_command_line_starts_and_closes_a_local_cluster(workspace) -> None:
    result = run_main(
        "--step", "make_data", "--engine", "dask", env={**workspace.env(), "PIPELINE__ENGINE__WORKERS": "1"}
    )

    assert result.returncode == 0, result.stderr
    assert "override in effect: engine.kind = 'dask'" in result.stdout
    runs = _client(workspace).search_runs([_experiment(workspace)], filter_string="params.engine = 'dask'")
    assert len(runs) == 1
    assert runs[0].data.params["engine_address"].startswith("tcp://127.0.0.1:")
    assert runs[0].data.params["engine_workers"] == "1"
    unchanged = run_main(
        "--step", "make_data", "--engine", "dask", env={**workspace.env(), "PIPELINE__ENGINE__WORKERS": "1"}
    )
    assert unchanged.returncode == 0, unchanged.stderr
    assert unchanged.stdout.startswith("up to date:")
