"""The subcommands besides running the steps: check, promote, serve, export-model, monitor, init, parent-start
and parent-end, and deploy, deployments, rollback and invoke (``mlsteps.deploy.commands``); ``mlsteps.cli`` adds them
to its command group. Each parses its options and calls one function."""

from __future__ import annotations

from typing import Any

import click

from mlsteps.cli_options import ENVIRONMENT, command, load_settings, unbounded_stop
from mlsteps.deploy.commands import DEPLOY_COMMANDS
from mlsteps.discovery import step_names
from mlsteps.errors import UsageError


@click.command()
@ENVIRONMENT
@command
def check(environment: str | None) -> int:
    """Check an environment: config, AWS credentials, storage, tracking server."""
    from mlsteps.check import run_checks
    from mlsteps.console import print_checks

    environment = environment or click.get_current_context().find_root().params["environment"]
    results = run_checks(environment)
    print_checks(environment, results)
    return max((c.exit_code for c in results if not c.ok), default=0)


@click.command()
@ENVIRONMENT
@click.option("--version", "version", default=None, help="Registered model version to give the alias.")
@click.option("--rollback", is_flag=True, help="Give the alias back to the version that held it before.")
@click.option("--reason", default="", help="Why (kept on the model version).")
@command
def promote(environment: str | None, version: str | None, rollback: bool, reason: str) -> None:
    """Give a model version the champion alias by hand, or roll it back."""
    from mlsteps.console import err
    from mlsteps.promotion import previous_champion, set_alias
    from mlsteps.store import connect

    if bool(version) == rollback:
        raise UsageError("give exactly one of --version N or --rollback")
    settings = load_settings(environment)
    connect(settings)
    name, alias = settings.model_name, settings.gate.alias
    version = previous_champion(name, alias) if rollback else version
    previous = set_alias(
        name,
        str(version),
        alias,
        by="manual (promote command)",
        reason=reason or ("rollback" if rollback else "promoted by hand"),
    )
    err.print(f"@{alias} of '{name}' is now version {version} (was {previous or 'unset'})", markup=False)


@click.command()
@ENVIRONMENT
@click.option(
    "--model-uri",
    envvar="PIPELINE_MODEL_URI",
    default=None,
    help="Model to serve (default: catalog.model.uri, else models:/<name>@champion). Env: PIPELINE_MODEL_URI.",
)
@click.option(
    "--model-dir",
    envvar="PIPELINE_MODEL_DIR",
    default=None,
    help="Serve the model in this folder when it holds one (an MLmodel file), as SageMaker unpacks it into "
    "/opt/ml/model. Env: PIPELINE_MODEL_DIR.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=int,
    envvar="SAGEMAKER_BIND_TO_PORT",
    help="Env: SAGEMAKER_BIND_TO_PORT.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="MODEL_SERVER_WORKERS",
    help="Worker processes (default: serving.workers). Env: MODEL_SERVER_WORKERS.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar="MODEL_SERVER_TIMEOUT",
    help="Seconds before a request gets 504 (default: serving.timeout_seconds). Env: MODEL_SERVER_TIMEOUT.",
)
@command
def serve(
    environment: str | None,
    model_uri: str | None,
    model_dir: str | None,
    host: str,
    port: int,
    workers: int | None,
    timeout: float | None,
) -> None:
    """Serve a model: GET /ping, POST /invocations (CSV, header or not, or JSON), checked against its inputs."""
    from mlsteps.serving.server import serve_model

    unbounded_stop()  # uvicorn stops the server its own way: requests drained, the inference log flushed

    serve_model(load_settings(environment), model_uri, model_dir, host, port, workers, timeout)


@click.command("export-model")
@ENVIRONMENT
@click.option("--model-uri", default=None, help="Model to export (default: models:/<name>@champion).")
@click.option("--out", required=True, help="Where to write the archive: a path or an s3:// URI (model.tar.gz).")
@command
def export_model(environment: str | None, model_uri: str | None, out: str) -> None:
    """Write a model as SageMaker's model.tar.gz (unpacked into /opt/ml/model, served by the image's `serve`)."""
    from mlsteps.console import err
    from mlsteps.serving.server import export_model as export

    ref, written = export(load_settings(environment), model_uri, out)
    err.print(
        f"exported {ref.uri} (version {ref.version or '-'}, run {ref.run_id}) to {written}",
        soft_wrap=True,
        markup=False,
    )


@click.command("init")
@click.argument("data_file", required=False)
@click.option("--target", help="The column to predict (default without DATA_FILE: schema.target of the config).")
@click.option(
    "--task",
    type=click.Choice(["auto", "binary", "multiclass", "regression"]),
    default=None,
    help="auto (default): regression for a numeric target with many values, else binary or multiclass.",
)
@click.option(
    "--id-column",
    help="The column that identifies a row (not a feature). Default: the one column named like an id (loan_id, ID) "
    "with a different value on every row, if there is exactly one; '' for none.",
)
@click.option(
    "--positive-class",
    help="binary: the label that counts as positive. Default: 1/true/yes, else the rarer label (printed).",
)
@click.option("--name", help="The project's short name (`project:`, in experiment and model names).")
@click.option("--force", is_flag=True, help="Replace a contract the config already holds.")
@click.option("--if-missing", is_flag=True, help="Do nothing when the config already holds a contract (make setup).")
@command
def init(data_file: str | None, **options: Any) -> None:
    """Infer the raw data's contract from a CSV or Parquet file (local or s3://) and write it into config/base.yaml.

    Writes the schema section (target, task, labels, positive class, every feature column), points catalog.raw
    at the file and, with --name, sets the project; every other line and comment of the file stays. Without
    DATA_FILE it completes the config's own contract from its raw file (what `make setup` runs).
    """
    from mlsteps.init_project import init_project, print_init

    print_init(init_project(data_file, **options))


@click.command()
@ENVIRONMENT
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Start of the window: an ISO date or date-time (UTC unless it says), or a duration before now (24h, 7d).",
)
@click.option("--until", default=None, help="End of the window (excluded), as --since. Default: now.")
@click.option(
    "--labels",
    default=None,
    help="Ground truth arrived since: a CSV or Parquet file (local or s3://) with the target column and "
    "request_id (and row) or the id column; joined to the logged predictions for live metrics.",
)
@click.option("--model-version", default=None, help="Only the rows this registered version scored.")
@command
def monitor(
    environment: str | None, since: str, until: str | None, labels: str | None, model_version: str | None
) -> int:
    """Watch the served model: drift, data quality, errors, latency and live metrics from the inference log.

    Exits 3 when a figure crosses its threshold (the config's monitor: section), 0 otherwise.
    """
    from datetime import UTC, datetime

    from mlsteps.monitor.run import monitor as run_monitor
    from mlsteps.monitor.summary import summary_lines
    from mlsteps.monitor.window import parse_when

    now = datetime.now(UTC)
    start = parse_when(since, now, "--since")
    end = parse_when(until, now, "--until") if until else now
    result = run_monitor(load_settings(environment), start, end, labels, model_version)
    click.echo("\n".join(summary_lines(result)))
    return result.exit_code


@click.command("parent-start")
@ENVIRONMENT
@command
def parent_start(environment: str | None) -> None:
    """Open a parent run for steps run as separate tasks; print its id (last line of stdout)."""
    from mlsteps.pipeline import pipeline_params
    from mlsteps.runs import Runs

    settings = load_settings(environment)
    runs = Runs(settings)
    runs.connect()
    click.echo(runs.start_parent(pipeline_params(settings, list(step_names()))))


@click.command("parent-end")
@ENVIRONMENT
@click.option("--run-id", required=True, help="The parent run to close.")
@command
def parent_end(environment: str | None, run_id: str) -> int:
    """Close a parent run: FINISHED if every step under it finished, else FAILED (and exit 1)."""
    from mlsteps.console import err
    from mlsteps.runs import Runs

    runs = Runs(load_settings(environment))
    runs.connect()
    status = runs.end_parent(run_id)
    err.print(f"parent run {run_id}: {status}", markup=False)
    return 0 if status == "FINISHED" else 1


COMMANDS = [check, promote, serve, export_model, monitor, init, parent_start, parent_end, *DEPLOY_COMMANDS]
