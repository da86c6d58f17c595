"""The S3-triggered batch handler against an S3-speaking server over HTTP, with a real champion."""

from __future__ import annotations

import io
import json
import uuid

import pandas as pd
import pytest
from mlsteps.batch import s3_handler
from mlsteps.config import load_config
from mlsteps.discovery import step_names
from mlsteps.pipeline import run_pipeline

from tests.helpers import EXAMPLE_RAW, SCORE_TOLERANCE
from tests.servers import AWS_TEST_ENV, FailingProxy

STEPS = step_names()

pytestmark = pytest.mark.slow

BUCKET = "batch-scoring-test"


def _event(key: str, bucket: str = BUCKET) -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
            }
        ]
    }


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, s3_server: str, tmp_path):
    """dev config: data on the S3 server under a fresh prefix, tracking in a local SQLite file, a champion."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET)
    prefix = f"p-{uuid.uuid4().hex[:8]}"
    s3.upload_file(str(EXAMPLE_RAW), BUCKET, f"{prefix}/raw/breast_cancer.csv")
    env = {
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": s3_server,
        "PIPELINE_DATA_ROOT": f"s3://{BUCKET}/{prefix}",
        "PIPELINE_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PIPELINE_ENVIRONMENT": "dev",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = run_pipeline(load_config("dev"), list(STEPS))
    s3_handler.reset()
    yield s3, prefix, result
    s3_handler.reset()


def _keys(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def test_put_event_scores_the_object_like_predict(s3_env) -> None:
    s3, prefix, result = s3_env
    predicted = pd.read_parquet(
        io.BytesIO(
            s3.get_object(Bucket=BUCKET, Key=result.step("predict").outputs["predictions"].split(f"{BUCKET}/", 1)[1])[
                "Body"
            ].read()
        )
    )
    batch = predicted.drop(
        columns=[
            "prediction",
            "probability",
            "model_uri",
            "model_name",
            "model_version",
            "model_run_id",
            "scored_at",
            "probability_B",
            "probability_M",
        ]
    ).head(40)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/visit 2026-11.csv", Body=batch.to_csv(index=False))

    answer = s3_handler.handler(_event(f"{prefix}/incoming/visit+2026-11.csv"))

    [outcome] = answer["results"]
    assert outcome["status"] == "scored", outcome
    assert outcome["rows"] == 40
    output_key = outcome["output"].split(f"{BUCKET}/", 1)[1]
    etag = s3.head_object(Bucket=BUCKET, Key=f"{prefix}/incoming/visit 2026-11.csv")["ETag"].strip('"')
    assert output_key == f"{prefix}/scored/visit 2026-11-{etag[:16]}.csv"  # named by the object's content
    scored = pd.read_csv(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=output_key)["Body"].read()))
    assert scored["sample_id"].tolist() == batch["sample_id"].tolist()
    assert scored["prediction"].tolist() == predicted["prediction"].head(40).tolist()
    # The same rows through other batch sizes: equal to float32's precision, not to the last bit (SCORE_TOLERANCE).
    assert scored["probability"].tolist() == pytest.approx(
        predicted["probability"].head(40).tolist(), abs=SCORE_TOLERANCE, rel=0
    )
    assert scored["probability"].nunique() > 1  # real scores, not one constant
    assert set(scored["model_version"].astype(str)) == {"1"}
    assert set(scored["model_name"]) == {"breast-cancer-dev"}


def test_bad_object_gets_an_error_report_not_a_crash(s3_env) -> None:
    s3, prefix, _ = s3_env
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/broken.csv", Body="sample_id,mean_radius\n1,2.0\n")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/notes.txt", Body="hello")

    answer = s3_handler.handler(
        {
            "Records": _event(f"{prefix}/incoming/broken.csv")["Records"]
            + _event(f"{prefix}/incoming/notes.txt")["Records"]
        }
    )

    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["failed", "failed"]
    reports = [k for k in _keys(s3, f"{prefix}/scored/errors/")]
    assert len(reports) == 2
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=reports[0])["Body"].read())
    assert "input" in report and "error" in report
    assert "column 'mean_texture' is missing" in report["error"] or "not a .csv" in report["error"]
    assert not [k for k in _keys(s3, f"{prefix}/scored/") if "/errors/" not in k]


def test_a_value_of_the_wrong_type_is_reported_by_row_and_column(s3_env) -> None:
    s3, prefix, _result = s3_env
    rows = pd.read_csv(EXAMPLE_RAW, nrows=3).drop(columns="diagnosis")
    body = rows.astype(object)
    body.loc[1, "mean_radius"] = "abc"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/typo.csv", Body=body.to_csv(index=False))
    lines = rows.to_csv(index=False).splitlines()
    s3.put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/incoming/ragged.csv",
        Body="\n".join([lines[0], lines[1] + ",0.5", *lines[2:]]) + "\n",
    )

    answer = s3_handler.handler(
        {
            "Records": _event(f"{prefix}/incoming/typo.csv")["Records"]
            + _event(f"{prefix}/incoming/ragged.csv")["Records"]
        }
    )

    typo, ragged = answer["results"]
    assert typo["status"] == ragged["status"] == "failed"
    assert "row 2, column 'mean_radius': expected a number (double), got 'abc'" in typo["error"]
    assert "row 1 (line 2): 32 values, expected 31" in ragged["error"]
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=typo["report"].split(f"{BUCKET}/", 1)[1])["Body"].read())
    assert report["error"] == typo["error"]
    assert not [k for k in _keys(s3, f"{prefix}/scored/") if "/errors/" not in k]


def test_objects_outside_the_input_prefix_are_ignored(s3_env) -> None:
    s3, prefix, _ = s3_env
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/elsewhere/batch.csv", Body="x\n1\n")

    answer = s3_handler.handler(_event(f"{prefix}/elsewhere/batch.csv"))

    assert answer["results"][0]["status"] == "ignored"
    assert _keys(s3, f"{prefix}/scored/") == []


def test_a_redelivered_event_is_a_no_op(s3_env) -> None:
    s3, prefix, _ = s3_env
    rows = pd.read_csv(EXAMPLE_RAW, nrows=5).drop(columns="diagnosis")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/twice.csv", Body=rows.to_csv(index=False))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/bad.csv", Body="sample_id\n1\n")

    first = s3_handler.handler(_event(f"{prefix}/incoming/twice.csv"))
    again = s3_handler.handler(_event(f"{prefix}/incoming/twice.csv"))
    bad = [s3_handler.handler(_event(f"{prefix}/incoming/bad.csv"))["results"][0] for _ in range(2)]

    assert first["results"][0]["status"] == "scored"
    assert again["results"][0] == {
        "input": first["results"][0]["input"],
        "status": "already scored",
        "output": first["results"][0]["output"],
    }
    assert [b["status"] for b in bad] == ["failed", "already reported"]
    assert len([k for k in _keys(s3, f"{prefix}/scored/") if "/errors/" not in k]) == 1
    assert len(_keys(s3, f"{prefix}/scored/errors/")) == 1


def test_a_read_that_fails_for_now_raises_for_a_retry_and_reports_nothing(
    s3_env, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlsteps.errors import StorageTransient

    s3, prefix, _ = s3_env
    rows = pd.read_csv(EXAMPLE_RAW, nrows=5).drop(columns="diagnosis")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/flaky.csv", Body=rows.to_csv(index=False))
    # Every GET of the object answers "503 Slow Down" (through the storage's own retries), until the proxy heals.
    proxy = FailingProxy(s3_server, marker="incoming/flaky.csv", failures=1000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    s3_handler.reset()
    try:
        with pytest.raises(StorageTransient) as caught:
            s3_handler.handler(_event(f"{prefix}/incoming/flaky.csv"))
        failed, left = proxy.failed, _keys(s3, f"{prefix}/scored/")
        proxy.heal()
        redelivered = s3_handler.handler(_event(f"{prefix}/incoming/flaky.csv"))
    finally:
        proxy.close()

    assert "may succeed later" in str(caught.value)
    assert failed >= 3  # the storage retried (aws.max_attempts) before giving up
    assert left == []  # no error report for a failure that was not the file's
    assert redelivered["results"][0]["status"] == "scored"


def test_on_the_dask_engine_an_object_is_scored_on_the_workers_into_a_partitioned_dataset(s3_env, monkeypatch) -> None:
    s3, prefix, result = s3_env
    key = result.step("predict").outputs["predictions"].split(f"{BUCKET}/", 1)[1]
    predicted = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
    batch = predicted.loc[:, ["sample_id", *load_config("dev").dataset_schema.features]]
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/many.parquet", Body=batch.to_parquet(index=False))
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/incoming/broken.csv", Body="sample_id,mean_radius\n1,2.0\n")
    # A LocalCluster of one worker, kept by the scorer until it is reset.
    for name, value in {"KIND": "dask", "WORKERS": "1", "MEMORY_LIMIT": "1GB"}.items():
        monkeypatch.setenv(f"PIPELINE__ENGINE__{name}", value)
    s3_handler.reset()

    scored, broken = s3_handler.handler(
        {
            "Records": _event(f"{prefix}/incoming/many.parquet")["Records"]
            + _event(f"{prefix}/incoming/broken.csv")["Records"]
        }
    )["results"]
    again = s3_handler.handler(_event(f"{prefix}/incoming/many.parquet"))["results"][0]

    assert (scored["status"], scored["rows"]) == ("scored", len(batch))
    folder = scored["output"].split(f"{BUCKET}/", 1)[1]
    assert folder.endswith("/") and f"{folder}_manifest.json" in _keys(s3, folder)
    parts = [k for k in _keys(s3, folder) if k.endswith(".parquet")]
    out = pd.concat([pd.read_parquet(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())) for k in parts])
    assert out["sample_id"].tolist() == batch["sample_id"].tolist()
    assert out["prediction"].tolist() == predicted["prediction"].tolist()
    assert out["probability"].tolist() == pytest.approx(predicted["probability"].tolist(), abs=SCORE_TOLERANCE, rel=0)
    assert (again["status"], again["output"]) == ("already scored", scored["output"])
    assert broken["status"] == "failed"
    assert "mean_texture" in broken["error"]
    assert not [k for k in _keys(s3, f"{prefix}/scored/broken") if not k.endswith(".json")]
