"""The deployment subcommands: deploy, deployments, rollback, invoke (``mlsteps.commands`` adds them)."""

from __future__ import annotations

import click

from mlsteps.cli_options import ENVIRONMENT, command, load_settings


@click.command()
@ENVIRONMENT
@click.option("--model-uri", default=None, help="Model to deploy (default: models:/<name>@champion).")
@click.option(
    "--model-from-other-environment",
    is_flag=True,
    help="let --model-uri name another environment's model (dev's model on prd's endpoint).",
)
@command
def deploy(environment: str | None, model_uri: str | None, model_from_other_environment: bool) -> None:
    """Deploy the champion (or --model-uri) to the environment's SageMaker endpoint, smoke-tested (docs/deploy.md)."""
    from mlsteps.console import err
    from mlsteps.deploy.run import deploy_model

    # As predict's --model-uri: through the catalog, whose check refuses another environment's model unless asked.
    model = {"uri": model_uri, "other_environment": True} if model_from_other_environment else {"uri": model_uri}
    done = deploy_model(load_settings(environment, {"catalog": {"model": model}} if model_uri else None))
    err.print(done.summary(), soft_wrap=True, markup=False)
    if done.action != "unchanged":
        uploaded = "uploaded" if done.uploaded else "already there, not uploaded"
        err.print(f"model archive {done.data_url} ({uploaded}); recorded as run {done.run_id}", markup=False)


@click.command()
@ENVIRONMENT
@command
def deployments(environment: str | None) -> None:
    """List what the environment's endpoint served and when (newest first), as recorded in MLflow."""
    from mlsteps.registry import deployment_history
    from mlsteps.store import connect

    settings = load_settings(environment)
    connect(settings)
    endpoint = settings.deploy.endpoint_name
    runs = deployment_history(settings.tracking.experiment, endpoint)
    if not runs:
        click.echo(f"nothing was deployed to endpoint '{endpoint}' from this tracking store")
        return
    click.echo(f"endpoint '{endpoint}' ({settings.environment}), newest first:")
    for run in runs:
        started = _time(run.info.start_time)
        params, tags = run.data.params, run.data.tags
        click.echo(
            f"  {started}  {tags.get('deploy.result', '?'):8}  {params.get('model_uri', '?')}  "
            f"config {params.get('endpoint_config', '?')}  ({params.get('action', '?')}; by {tags.get('deploy.by', '?')})"
        )


@click.command()
@ENVIRONMENT
@command
def rollback(environment: str | None) -> None:
    """Return the environment's endpoint to the model it served before its last deployment."""
    from mlsteps.console import err
    from mlsteps.deploy.run import rollback_endpoint

    err.print(rollback_endpoint(load_settings(environment)).summary(), soft_wrap=True, markup=False)


@click.command()
@ENVIRONMENT
@click.option("--input", "input_uri", required=True, help="Rows to score: a CSV or Parquet file, a path or s3:// URI.")
@click.option("--output", default=None, help="Where to write them with their predictions (default: CSV on stdout).")
@command
def invoke(environment: str | None, input_uri: str, output: str | None) -> None:
    """Score a file through the environment's endpoint, checked against the model's inputs as predict does."""
    from mlsteps.console import err
    from mlsteps.deploy.invoke import invoke_file

    settings = load_settings(environment)
    scored, model_uri = invoke_file(settings, input_uri, output)
    err.print(
        f"scored {len(scored)} rows through endpoint '{settings.deploy.endpoint_name}' ({model_uri})"
        + (f" into {output}" if output else ""),
        soft_wrap=True,
        markup=False,
    )


def _time(millis: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


DEPLOY_COMMANDS = [deploy, deployments, rollback, invoke]
