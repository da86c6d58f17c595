"""``serve`` and ``export-model``: which model to serve, from where, with how many workers; and the model as the
``model.tar.gz`` SageMaker unpacks into ``/opt/ml/model``.

The model is the one in ``--model-dir`` when that folder holds one (an ``MLmodel`` file: what SageMaker unpacks,
or an extracted ``export-model`` archive), else ``--model-uri`` (``PIPELINE_MODEL_URI``), else the catalog's
``model.uri``, else the version holding the gate's alias (the champion). A URI is resolved to its registered
version once, at start, and its files downloaded once: every worker loads the same version, even if the alias
moves while it serves, and needs no tracking server after that. The files are downloaded into a folder of the
temp dir that the server holds a lock on (``mlsteps.serving.owned``): removed when it stops, and, when it was
killed, by the next ``serve`` (or ``export-model``) on the machine.

With several workers, each is a process of its own with its own listening socket on the port, so that the kernel
spreads connections over them (``mlsteps.serving.workers``; uvicorn's own workers where it cannot).

An inference log that cannot be written stops ``serve`` before the model is even looked for: a probe file is
written to its destination and deleted, and its local spool must be writable (``mlsteps.serving.inference_log``).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlsteps.config import REPO_ROOT, Settings
from mlsteps.errors import ConfigError, PipelineError, UsageError
from mlsteps.refs import ModelRef
from mlsteps.serving.owned import owned_folder

SPEC_ENV = "PIPELINE_SERVE_SPEC"  # what each worker process of a multi-worker server builds its app from
WORKER_APP = "mlsteps.serving.server:app_from_environment"  # the app factory each worker process calls
# Each worker drains its requests for up to 30 s when stopped, then flushes its inference log.
SERVER_OPTIONS: dict[str, Any] = {"log_level": "warning", "timeout_graceful_shutdown": 30}
MODEL_COPY = "mlsteps-serve-model-"  # the model's files while a server runs: <temp dir>/mlsteps-serve-model-<pid>-<id>


def serve_model(
    settings: Settings,
    model_uri: str | None,
    model_dir: str | None,
    host: str,
    port: int,
    workers: int | None = None,
    timeout: float | None = None,
) -> None:
    """Serve a model until the process is stopped (Ctrl-C, SIGTERM); the inference log is flushed on the way out."""
    import uvicorn

    from mlsteps.console import err
    from mlsteps.serving.auth import load_api_keys
    from mlsteps.serving.workers import listen, run_workers, spreads_connections

    keys = load_api_keys(os.environ)  # a malformed key stops the server before the model is even loaded
    if settings.serving.require_api_keys and not keys.enabled:
        raise ConfigError(
            f"serving.require_api_keys is true in the '{settings.environment}' environment, but no "
            "API keys are given: set PIPELINE_API_KEYS_SHA256 or PIPELINE_API_KEYS_FILE "
            "(the template's docs/serving.md)"
        )
    workers = workers or settings.serving.workers
    log = settings.resolve(settings.serving.log.path) if settings.serving.log.path else None
    spool = _check_inference_log(settings, log) if log else None
    with owned_folder(Path(tempfile.gettempdir()), MODEL_COPY) as scratch:
        path, ref = resolve_model(settings, model_uri, model_dir, scratch)
        spec = {
            "path": path,
            "ref": asdict(ref),
            "log": log,
            "spool": spool,
            "timeout": timeout or settings.serving.timeout_seconds,
            "settings": settings.serving.model_dump(),
            "aws": settings.aws.model_dump(),
            # The contract's id column: a request may carry it; it is logged with the rows, never scored.
            "id_column": settings.dataset_schema.id_column,
        }
        if workers > 1:
            os.environ[SPEC_ENV] = json.dumps(spec)
        # One socket per worker, which the kernel spreads connections over (mlsteps.serving.workers), else uvicorn's
        # workers, all accepting from one socket.
        sockets = listen(host, port, workers) if workers > 1 and spreads_connections() else []
        if sockets:
            port = sockets[0].getsockname()[1]  # port 0: the one the kernel picked
        err.print(
            f"serving {ref.uri} (version {ref.version or '-'}) on http://{host}:{port} with {workers} "
            f"worker(s); API keys {'on' if keys.enabled else 'off'}; inference log "
            f"{f'{log} (spool {spool})' if log else 'off'}  "
            "(GET /ping, POST /invocations; Ctrl-C stops)",
            soft_wrap=True,
            highlight=False,
        )
        if workers == 1:
            uvicorn.run(app_from_spec(spec), host=host, port=port, **SERVER_OPTIONS)
        elif sockets:
            run_workers(WORKER_APP, sockets, SERVER_OPTIONS)
        else:
            uvicorn.run(WORKER_APP, factory=True, workers=workers, host=host, port=port, **SERVER_OPTIONS)


def _check_inference_log(settings: Settings, location: str) -> str:
    """Refuse to serve when the inference log's destination or spool cannot be written; the spool's folder."""
    from mlsteps.serving.inference_log import default_spool_dir
    from mlsteps.storage import Storage

    try:
        Storage(**settings.aws.model_dump()).ensure_writable(location)  # writes a probe and deletes it
    except PipelineError as exc:
        raise PipelineError(
            f"the inference log cannot be written to {location} (serving.log.path): {exc}. Make it writable, "
            "or set serving.log.path (PIPELINE__SERVING__LOG__PATH) to a folder or s3:// prefix that is, or to "
            "null to serve without an inference log"
        ) from exc
    given = settings.serving.log.spool_dir
    if given and "://" in given:
        raise ConfigError(f"serving.log.spool_dir is '{given}': the spool is a local folder (the log's path may be S3)")
    spool = (REPO_ROOT / given if given else default_spool_dir()).absolute()  # relative: to the project
    try:
        spool.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=spool):
            pass
    except OSError as exc:
        raise PipelineError(
            f"the inference log's spool {spool} (serving.log.spool_dir) cannot be written ({exc.strerror or exc}): "
            "make it writable, or set serving.log.spool_dir to a local folder that is"
        ) from exc
    return str(spool)


def app_from_environment() -> Any:
    """The app of one worker process of a multi-worker server (uvicorn calls it in each)."""
    return app_from_spec(json.loads(os.environ[SPEC_ENV]))


def app_from_spec(spec: dict[str, Any]) -> Any:
    """Load the model from its local folder and build the app around it (its own inference log writer)."""
    import mlflow.pyfunc

    from mlsteps.config import ServingParams
    from mlsteps.registry import input_schema
    from mlsteps.serving.app import Scoring, build_app
    from mlsteps.serving.auth import load_api_keys
    from mlsteps.serving.inference_log import InferenceLog

    params = ServingParams.model_validate(spec["settings"])
    ref = ModelRef(**spec["ref"])
    model = mlflow.pyfunc.load_model(spec["path"])
    schema = input_schema(model.metadata.signature, ref.uri, model.metadata.metadata)
    schema.keep = tuple(c for c in [spec.get("id_column")] if c and c not in schema)
    log = None
    if spec["log"]:
        log = InferenceLog(spec["log"], ref, params.log, schema, aws=spec["aws"], spool_dir=spec["spool"])
    return build_app(
        Scoring(
            model=model,
            schema=schema,
            ref=ref,
            keys=load_api_keys(os.environ),
            log=log,
            max_body_bytes=int(params.max_body_mb * 1_000_000),
            timeout_seconds=float(spec["timeout"]),
            max_inflight_requests=params.max_inflight_requests,
            max_inflight_bytes=int(params.max_inflight_mb * 1_000_000),
        )
    )


def resolve_model(
    settings: Settings, model_uri: str | None, model_dir: str | None, scratch: Path
) -> tuple[str, ModelRef]:
    """The local folder of the model to serve, and its identity (see the module's docstring)."""
    if model_dir:
        folder = Path(model_dir)
        if (folder / "MLmodel").is_file():
            return str(folder), _folder_ref(folder)
        if folder.is_dir() and any(folder.iterdir()):
            raise UsageError(
                f"'{folder}' holds files but no MLmodel file, so no model can be served from it: "
                "make its model.tar.gz with `python src/main.py export-model --out model.tar.gz`"
            )
    import mlflow.artifacts

    from mlsteps.registry import champion_uri, describe_model
    from mlsteps.store import connect

    connect(settings)
    uri = model_uri or settings.dataset("model").uri or champion_uri(settings.model_name, settings.gate.alias)
    ref = describe_model(uri)
    pinned = f"models:/{ref.name}/{ref.version}" if ref.name and ref.version else uri
    return mlflow.artifacts.download_artifacts(pinned, dst_path=str(scratch)), ref


def export_model(settings: Settings, model_uri: str | None, out: str) -> tuple[ModelRef, str]:
    """Write the model as SageMaker's ``model.tar.gz`` (its files at the archive's root) to ``out``, a path or an
    s3:// URI; the model's identity and where it went."""
    from mlsteps.storage import Storage

    data, ref = model_archive(settings, model_uri)
    written = Storage.for_settings(settings).write_bytes(data, out)
    return ref, written.uri


def model_archive(settings: Settings, model_uri: str | None) -> tuple[bytes, ModelRef]:
    """The model's files as SageMaker's ``model.tar.gz``, and its identity. The same version gives the same bytes
    (no times, owners or modes from this machine): ``deploy`` stores an archive once per content."""
    import gzip

    with owned_folder(Path(tempfile.gettempdir()), "mlsteps-export-model-") as scratch:
        path, ref = resolve_model(settings, model_uri, None, scratch)
        buffer = io.BytesIO()
        with (
            gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
        ):
            for file in sorted(Path(path).rglob("*")):
                if file.is_file():
                    archive.add(file, arcname=str(file.relative_to(path)), filter=_plain_owner)
    return buffer.getvalue(), ref


def _plain_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    info.mtime = 0
    return info


def _folder_ref(folder: Path) -> ModelRef:
    """Who a model folder is: its registered name and version (``registered_model_meta``, which MLflow writes
    when it registers a model) and its run (``MLmodel``)."""
    import yaml

    run_id = (yaml.safe_load((folder / "MLmodel").read_text()) or {}).get("run_id")
    meta_file = folder / "registered_model_meta"
    meta = (yaml.safe_load(meta_file.read_text()) or {}) if meta_file.is_file() else {}
    name, version = meta.get("model_name"), meta.get("model_version")
    if name and version is not None:
        return ModelRef(f"models:/{name}/{version}", str(name), str(version), run_id)
    return ModelRef(folder.resolve().as_uri(), None, None, run_id)
