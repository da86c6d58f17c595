"""An AWS Lambda-style handler: score each object an S3 put event names, with the champion model.

Deploy it with the repo as the function's code, handler ``mlsteps.batch.s3_handler.handler``, an S3 put trigger on
``<data.root>/<batch.input_prefix>/``, and ``PIPELINE_ENVIRONMENT`` (default ``dev``) plus the usual overrides in
the function's environment. Each object is scored through the same code as the ``predict`` step and written to
``<data.root>/<batch.output_prefix>/<name>-<etag>.<csv|parquet>``: its columns, the prediction, the probability,
the model's name, version and run, and when it was scored. The name comes from the object's content (its ETag),
so a redelivered event (S3 delivers at least once) finds its output there and writes nothing again.

With ``engine.kind: dask`` (a scheduler at ``engine.address``, or a LocalCluster kept while the scorer lives), an
object is read in partitions and scored on the workers, and the output is a partitioned Parquet dataset instead:
the folder ``<output_prefix>/<name>-<etag>/`` with its ``_manifest.json`` written last (mlsteps.partitions).

A file that cannot be scored (not a table, wrong columns, a value of the wrong type) gets an error report
``<output_prefix>/errors/<name>-<etag>.json`` instead, and the handler returns normally, so the platform does
not retry it forever. Failures that are not the file's (the storage down or failing for now after its own
retries, credentials, the tracking server) raise and leave nothing behind, so that the platform delivers the
event again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from mlsteps import partitions
from mlsteps.config import Settings, join_uri, load_config
from mlsteps.errors import DataValidationError, StorageError, StorageTransient, StorageUnreachable
from mlsteps.input_checks import ModelInputs
from mlsteps.registry import champion_uri, describe_model, load_model
from mlsteps.storage import Storage
from mlsteps.store import connect
from mlsteps.uris import TABLE_FORMATS

logger = logging.getLogger(__name__)


@dataclass
class BatchScorer:
    """Scores objects with the current champion; keeps the loaded model while the champion does not change."""

    settings: Settings
    storage: Storage = field(init=False)
    _model: tuple[str, Any, ModelInputs, Any] | None = field(default=None, init=False)
    _engine: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False)

    def __post_init__(self) -> None:
        self.storage = Storage.for_settings(self.settings)
        connect(self.settings)
        if self.dask:
            from mlsteps.engine import engine_session

            self._engine.enter_context(engine_session(self.settings))

    @property
    def dask(self) -> bool:
        return self.settings.engine.kind == "dask"

    def close(self) -> None:
        """Close the engine (a LocalCluster the scorer started)."""
        self._engine.close()

    def score_object(self, bucket: str, key: str) -> dict[str, Any]:
        """Score ``s3://bucket/key``; return what was written (the scored batch, or an error report)."""
        uri = f"s3://{bucket}/{key}"
        prefix = join_uri(self.settings.data.root, self.settings.batch.input_prefix).rstrip("/") + "/"
        if not uri.startswith(prefix):
            return {"input": uri, "status": "ignored", "reason": f"not under {prefix}"}
        name, ext = posixpath.splitext(posixpath.basename(key))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        out_root = join_uri(self.settings.data.root, self.settings.batch.output_prefix)
        try:
            content = self._content_id(uri)
        except (StorageTransient, StorageUnreachable):
            raise
        except StorageError:  # gone already (deleted after the event): reported under a name of its own
            content = stamp
        output = join_uri(out_root, f"{name}-{content}" + ("/" if self.dask else ext.lower()))
        report = join_uri(out_root, f"errors/{name}-{content}.json")
        written = (partitions.manifest_uri(output), output) if self.dask else (output, output)
        for done, status in ((written[0], "already scored"), (report, "already reported")):
            if self.storage.exists(done):  # a redelivered event: its work is there
                done = written[1] if done == written[0] else done
                logger.info("%s: %s (%s)", uri, status, done)
                return {"input": uri, "status": status, "output" if done == output else "report": done}
        try:
            if ext.lower() not in TABLE_FORMATS:
                raise DataValidationError(f"'{key}' is not a .csv or .parquet file")
            if self.dask:
                rows = self._score_partitions(uri, output)
            else:
                scored = self._score(self.storage.read_table(uri))
                self.storage.write_table(scored, output)
                rows = len(scored)
            logger.info("scored %s -> %s (%d rows)", uri, output, rows)
            return {"input": uri, "status": "scored", "output": output, "rows": rows}
        except (StorageTransient, StorageUnreachable):
            raise  # not the file's fault: the platform delivers the event again
        except (DataValidationError, StorageError) as exc:
            body = {"input": uri, "error": str(exc), "at": stamp, "fix": "correct the file and upload it again"}
            self.storage.write_bytes(json.dumps(body, indent=2).encode(), report)
            logger.warning("could not score %s: %s (report: %s)", uri, exc, report)
            return {"input": uri, "status": "failed", "error": str(exc), "report": report}

    def _content_id(self, uri: str) -> str:
        """A short name for the object's content: its ETag (S3), else its SHA-256."""
        fingerprint = self.storage.fingerprint(uri)  # "etag:<etag>:<size>" or "sha256:<hex>"
        return fingerprint.split(":")[1].replace("-", "")[:16]

    def _champion(self) -> tuple[Any, ModelInputs, Any]:
        ref = describe_model(champion_uri(self.settings.model_name, self.settings.gate.alias))
        if self._model is None or self._model[0] != ref.identity:
            model, schema = load_model(f"models:/{ref.name}/{ref.version}")
            self._model = (ref.identity, model, schema, ref)
        _, model, schema, ref = self._model
        return model, schema, ref

    def _score(self, batch: Any) -> Any:
        from mlsteps.scoring import predict_frame

        model, schema, ref = self._champion()
        return predict_frame(model, batch, schema, ref, datetime.now(UTC), self.settings.dataset_schema.positive_class)

    def _score_partitions(self, uri: str, output: str) -> int:
        """The object at ``uri`` read in partitions, scored on the workers, written as a partitioned dataset."""
        from mlsteps.dask_io import read_input
        from mlsteps.dask_scoring import predict_partitions
        from mlsteps.refs import LoadedModel

        model, schema, ref = self._champion()
        frame = read_input(self.settings, self.storage, "predict_input", uri)
        positive = self.settings.dataset_schema.positive_class
        scored = predict_partitions(frame, LoadedModel(model, schema, ref), datetime.now(UTC), positive)
        partitions.write_datasets(self.storage, {"scored": (scored, output)})
        return partitions.read_manifest(self.storage, output).rows


_scorer: BatchScorer | None = None  # kept between invocations of a warm function


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Entry point for an S3 put event (``Records[].s3.bucket.name`` and ``Records[].s3.object.key``)."""
    global _scorer
    if _scorer is None:
        _scorer = BatchScorer(load_config(os.environ.get("PIPELINE_ENVIRONMENT", "dev")))
    results = []
    for record in event.get("Records", []):
        s3 = record.get("s3", {})
        bucket = s3.get("bucket", {}).get("name")
        key = s3.get("object", {}).get("key")
        if not bucket or not key:
            results.append({"status": "ignored", "reason": "not an S3 object event", "record": record})
            continue
        results.append(_scorer.score_object(bucket, unquote_plus(key)))
    return {"results": results}


def reset() -> None:
    """Forget the cached scorer (its config and model), e.g. after the environment changed."""
    global _scorer
    if _scorer is not None:
        _scorer.close()
    _scorer = None
