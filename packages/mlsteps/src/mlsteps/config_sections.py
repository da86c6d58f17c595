"""The sections of the config, one pydantic model each (``Settings`` in ``mlsteps.config`` holds them).

Every model rejects unknown keys, so a misspelt key is named instead of silently ignored.
"""

from __future__ import annotations

import os
import re
from typing import Literal

from pydantic import Field, model_validator

from mlsteps.step import Strict


class CsvSettings(Strict):
    sep: str = Field(",", min_length=1)
    encoding: str = "utf-8"
    decimal: str = Field(".", min_length=1, max_length=1)


class DatasetSpec(Strict):
    """One entry of the catalog: where a dataset lives, in what format, and how its locations are made."""

    # input: a file read as it is (path: the file; null for an optional one).
    # per_run: written by a step into a folder of its run (path: the folder; file <path>/<run id>/<name>.<format>).
    # content_addressed: stored once per content (path: the folder; file <path>/<sha256>.<format>).
    # model: a logged and registered MLflow model (name: the registered model; uri: what readers use instead of
    #        the version holding the gate's alias).
    kind: Literal["input", "per_run", "content_addressed", "model"]
    path: str | None = None
    format: Literal["parquet", "csv"] | None = None
    name: str | None = None
    uri: str | None = None
    # A model: whether ``uri`` may name another environment's registered model (a dev model scoring prd data).
    other_environment: bool = False
    # How a CSV input is read: separator, encoding and decimal mark ({sep: ";", decimal: ","}).
    csv: CsvSettings = Field(default_factory=lambda: CsvSettings())
    # Rows read at a time by a step that takes this dataset in chunks (make_data its raw input): what bounds the
    # memory a large file needs.
    chunk_rows: int = Field(500_000, ge=1)
    # On the dask engine: written as a partitioned Parquet dataset, a folder of files (<path>/<run id>/<name>/),
    # each digested, and read in partitions. The pandas engine writes and reads it as one file (and reads such a
    # folder whole).
    partitioned: bool = False

    @model_validator(mode="after")
    def _complete(self) -> DatasetSpec:
        if self.kind == "model" and not self.name:
            raise ValueError("a model dataset needs 'name': the name it is registered under")
        if self.kind in ("per_run", "content_addressed") and not self.path:
            raise ValueError(f"a {self.kind} dataset needs 'path': the folder its files go into")
        return self

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        if self.path and self.kind == "input":
            return os.path.splitext(self.path)[1].lstrip(".").lower() or "parquet"
        return "parquet"


class EngineConfig(Strict):
    """What runs the data steps: pandas in this process, or Dask on a cluster (mlsteps.engine)."""

    # pandas: today's path, one process. dask: the data steps and predict in partitions on a Dask cluster.
    kind: Literal["pandas", "dask"] = "pandas"
    # tcp://host:8786 of an existing scheduler; null: the run starts a LocalCluster and closes it at the end.
    address: str | None = None
    # A LocalCluster's worker processes, threads per worker and memory per worker (Dask's notation: "4GB").
    workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GB"
    # The folder workers spill to when their memory fills (relative: to the project); null: .pipeline/dask-spill.
    spill_dir: str | None = None
    # Rows per partition when a step makes partitions itself (a CSV is read in blocks of about this many rows).
    partition_rows: int = Field(1_000_000, ge=1000)
    # The dashboard's address of a LocalCluster (127.0.0.1:0: a free port on this machine only).
    dashboard_address: str = "127.0.0.1:0"


class DataConfig(Strict):
    # Folder (local path or s3:// URI) that relative catalog paths resolve against.
    root: str


# Metrics the gate may use per task, and whether more is better (names as mlflow.models.evaluate logs them).
GATE_METRICS: dict[str, dict[str, bool]] = {
    "binary": {
        "roc_auc": True,
        "f1_score": True,
        "accuracy_score": True,
        "precision_score": True,
        "recall_score": True,
        "precision_recall_auc": True,
        "log_loss": False,
    },
    "multiclass": {
        "f1_score": True,
        "accuracy_score": True,
        "precision_score": True,
        "recall_score": True,
        "log_loss": False,
    },
    "regression": {
        "root_mean_squared_error": False,
        "mean_absolute_error": False,
        "mean_squared_error": False,
        "r2_score": True,
        "max_error": False,
    },
}
# What the gate compares with the dummy baseline and the champion when gate.metrics is not set.
DEFAULT_GATE_METRICS = {
    "binary": ["roc_auc", "f1_score"],
    "multiclass": ["f1_score", "accuracy_score"],
    "regression": ["root_mean_squared_error", "r2_score"],
}


class GateParams(Strict):
    """When a trained candidate may become the model that predict and serving use."""

    alias: str = "champion"
    # Compared with the dummy baseline and the champion; null: the task's defaults (DEFAULT_GATE_METRICS).
    metrics: list[str] | None = None
    # A candidate must be better than scikit-learn's Dummy model (the prior, or the mean) on the same holdout by
    # more than this, on every gated metric.
    min_lift_over_dummy: float = Field(0.0, ge=0.0)
    # Minimums (maximums for error metrics) every candidate must reach on the holdout.
    thresholds: dict[str, float] = Field(default_factory=dict)
    # And, when a champion exists, beat it on the same holdout by at least this much on each gated metric.
    min_improvement: float = Field(1e-6, gt=0.0)
    # The champion is compared on holdout rows that neither model was trained on; with fewer than this many, or
    # when it cannot be compared at all (other inputs, another task or label set), there is no fair comparison.
    min_fair_rows: int = Field(30, ge=1)
    # Then: keep (the champion stays; promote a candidate by hand) or promote (judge it on the rest of the gate).
    when_not_compared: Literal["keep", "promote"] = "keep"
    # MLflow's evaluation plots (ROC, precision-recall, calibration, confusion matrix; residuals for a regressor)
    # on the candidate's run and the champion's baseline run. false: the same metrics, no plots (about 2 s less
    # per training on 2 cores: drawing them is most of an evaluation on a small holdout).
    evaluation_plots: bool = True

    def gated(self, task: str) -> list[str]:
        return list(self.metrics if self.metrics is not None else DEFAULT_GATE_METRICS[task])


class BatchParams(Strict):
    """S3-triggered batch scoring (src/batch/s3_handler.py)."""

    input_prefix: str = "incoming"
    output_prefix: str = "scored"


class InferenceLogParams(Strict):
    """The inference log of online serving (src/serving/inference_log.py)."""

    # Folder (relative to data.root, or an absolute path or s3:// URI); null: no log.
    path: str | None = "inference_log"
    # A Parquet file is written once this many rows wait, or flush_seconds after the oldest arrived.
    batch_rows: int = Field(10_000, gt=0)
    flush_seconds: float = Field(10.0, gt=0)
    # Rows waiting in memory to be spooled at most: a request beyond it is not logged (counted as dropped), never
    # delayed.
    max_pending_rows: int = Field(100_000, gt=0)
    # Every spool_seconds what waits in memory is appended to the local spool (what a SIGKILL may lose); the spool is
    # shipped as Parquet, and what a killed server left is shipped by the next one on the same spool_dir.
    spool_seconds: float = Field(0.2, gt=0)
    # Local folder of the spool (relative: to the project); null: .pipeline/inference-log-spool (PIPELINE_STATE_DIR),
    # else the temp dir.
    spool_dir: str | None = None
    # Spool size at most, in MB (the destination failing): beyond it, entries are dropped and counted.
    max_spool_mb: float = Field(1000.0, gt=0)


class ServingParams(Strict):
    """Online scoring (python src/main.py serve; the image's `serve`)."""

    # Worker processes, each with its own copy of the model (MODEL_SERVER_WORKERS overrides).
    workers: int = Field(1, ge=1)
    # Seconds a request may take before it is answered 504 (MODEL_SERVER_TIMEOUT overrides).
    timeout_seconds: float = Field(60.0, gt=0)
    # Largest request body accepted, in MB (SageMaker's real-time limit is 6 MB); a larger one gets 413.
    max_body_mb: float = Field(6.0, gt=0)
    # Per worker: requests being read or scored at once, and MB of request bodies held at once (counted from
    # Content-Length before a body is read); beyond either, 503 with Retry-After.
    max_inflight_requests: int = Field(64, ge=1)
    max_inflight_mb: float = Field(96.0, gt=0)
    # Refuse to start without API keys (they come from the environment, never from here).
    require_api_keys: bool = False
    log: InferenceLogParams = InferenceLogParams()

    @model_validator(mode="after")
    def _a_largest_body_fits(self) -> ServingParams:
        if self.max_inflight_mb < self.max_body_mb:
            raise ValueError(
                f"max_inflight_mb ({self.max_inflight_mb:g}) is below max_body_mb ({self.max_body_mb:g}): a body "
                "the server accepts could never be taken in; raise serving.max_inflight_mb or lower serving.max_body_mb"
            )
        return self


# SageMaker's rule for endpoint, model and endpoint config names.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# A serverless endpoint's memory sizes (MB).
SERVERLESS_MEMORY_MB = (1024, 2048, 3072, 4096, 5120, 6144)


class DeployParams(Strict):
    """A SageMaker endpoint serving the champion (python src/main.py deploy; mlsteps.deploy)."""

    # The endpoint; {project} and {environment} are filled in (checked as a SageMaker name when deploying).
    endpoint_name: str = "{project}-{environment}"
    # The image that serves (this project's, pushed by ./run_docker_cloud.sh or build_docker.sh --push).
    image_uri: str | None = None
    # The IAM role SageMaker runs the model with (reads the model archive; writes the inference log).
    execution_role_arn: str | None = None
    # s3:// prefix the model archives go under, one per content: <prefix>/<sha256>/model.tar.gz.
    model_data_prefix: str | None = None
    # Instances (ignored when memory_mb is set: a serverless endpoint).
    instance_type: str = "ml.m5.large"
    instance_count: int = Field(1, ge=1)
    # Serverless: memory (1024 to 6144 MB, by 1024) and requests at once; null: instances.
    memory_mb: int | None = None
    max_concurrency: int = Field(5, ge=1, le=200)
    # Seconds to wait for the endpoint to be InService (creating or updating one takes minutes on AWS).
    timeout_seconds: float = Field(1800.0, gt=0)
    # Holdout rows sent through the endpoint and compared with the model's own predictions; 0: no smoke test.
    smoke_rows: int = Field(20, ge=0)
    # Deploy right after the gate promotes a new champion (train_model).
    on_promotion: bool = False
    # AWS region of the endpoint; null: aws.region, else the AWS chain's.
    region: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> DeployParams:
        if self.model_data_prefix is not None and not self.model_data_prefix.startswith("s3://"):
            raise ValueError(f"model_data_prefix {self.model_data_prefix!r} is not an s3:// prefix")
        if self.memory_mb is not None and self.memory_mb not in SERVERLESS_MEMORY_MB:
            raise ValueError(f"memory_mb {self.memory_mb} is not one of {', '.join(map(str, SERVERLESS_MEMORY_MB))}")
        return self


class MonitorParams(Strict):
    """python src/main.py monitor: what a window of the inference log is compared with, and when it alerts (exit 3).
    A threshold of null is not judged. The defaults do not fire on a fresh sample of the training data."""

    # A model version with fewer scored rows in the window is reported, not judged (no alert).
    min_rows: int = Field(200, ge=1)
    # Bins of a number's drift: quantiles of the training data.
    bins: int = Field(10, ge=2, le=100)
    # Training rows read per feature at most (a seeded sample beyond).
    reference_rows: int = Field(1_000_000, ge=100)
    # A feature's PSI against the training data above this: drift (0.1 is a moderate shift, 0.25 a large one).
    drift_psi: float | None = Field(0.25, gt=0)
    # The predictions' PSI against the model's own on its holdout above this: drift.
    prediction_psi: float | None = Field(0.25, gt=0)
    # A feature's share of missing values above the training data's by more than this.
    missing_increase: float | None = Field(0.1, ge=0, le=1)
    # A share of a feature's values outside the data contract (min, max, allowed) above this (0: any).
    out_of_contract: float | None = Field(0.0, ge=0, le=1)
    # A share of requests refused or failed above this.
    error_rate: float | None = Field(0.05, ge=0, le=1)
    # The 99th percentile of request latency above this many ms (null: the model's own speed decides; set it).
    latency_p99_ms: float | None = Field(None, gt=0)
    # With --labels: a metric worse than on the holdout by more than this share of its holdout value.
    performance_drop: float | None = Field(0.1, ge=0)


class TrackingConfig(Strict):
    uri: str
    # Unset: "{project}-{environment}" (one experiment per environment).
    experiment: str
    # Unset: next to a SQLite database, "<db folder>/mlruns/<experiment>"; for a server, the server's default.
    artifact_location: str | None = None
    # Per request to a tracking server, and how often a failed request is retried.
    timeout_seconds: int = Field(30, gt=0)
    max_retries: int = Field(2, ge=0)


class AwsConfig(Strict):
    # Credentials never live here: they come from the standard AWS chain (env, profile, role).
    profile: str | None = None
    region: str | None = None
    # S3: seconds to connect and to wait for a read, and attempts per request (retries with backoff).
    connect_timeout: float = Field(3.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(3, ge=1)
