"""Command line of the pipeline: parse options, load the config once, dispatch, report. No business logic here.

python src/main.py                                   # every step, local environment
python src/main.py --step train_model --environment dev
cd src && python main.py --step make_data,feat_data
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run from the source tree (python src/main.py or python main.py inside src/): make `src` importable.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import click

from src.cli_options import OptionalNumber, blank_to_none, configure_logging, overrides_from
from src.lib.discovery import step_names
from src.lib.errors import PipelineError, StepError

logger = logging.getLogger("src.main")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that the runs end as KILLED."""


def _terminate(_signum: int, _frame: Any) -> None:
    raise Terminated


def command(func: Callable[..., int | None]) -> Callable[..., None]:
    """The one error path of every subcommand: a PipelineError is one clear message and its exit code;
    Ctrl-C exits 130 and SIGTERM 143, with the runs in progress marked KILLED."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from src.lib.console import print_error

        verbose = bool(click.get_current_context().find_root().params.get("verbose"))
        configure_logging(verbose)
        # SIGTERM (docker stop, a scheduler's timeout) ends the runs as KILLED, like Ctrl-C.
        signal.signal(signal.SIGTERM, _terminate)
        try:
            code = func(*args, **kwargs) or 0
        except KeyboardInterrupt as exc:
            print_error("interrupted: the runs in progress are marked KILLED")
            code = 143 if isinstance(exc, Terminated) else 130
        except PipelineError as exc:
            print_error(str(exc), exc if isinstance(exc, StepError) else None, verbose)
            code = exc.exit_code
        sys.exit(code)

    return wrapper


def _settings(environment: str | None, overrides: dict[str, Any] | None = None) -> Any:
    from src.lib.config import load_config

    root = click.get_current_context().find_root()
    return load_config(environment or root.params["environment"], overrides=overrides)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--step",
    "-s",
    "steps",
    default="all",
    show_default=True,
    callback=blank_to_none,
    help=f"Step(s) to run: all, or a comma list of {', '.join(step_names())}.",
)
@click.option(
    "--environment",
    "-e",
    default="local",
    show_default=True,
    help="Config environment: a file in config/ (local, dev, prd).",
)
@click.option(
    "--estimator",
    callback=blank_to_none,
    help="train_model: a name under train_model.estimators in the config (logistic_regression, "
    "random_forest, gradient_boosting, ...) or an import path (sklearn.ensemble.ExtraTreesClassifier).",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="train_model: estimator hyperparameter (repeatable), e.g. -p C=0.5.",
)
@click.option("--test-size", type=OptionalNumber(float), help="feat_data: share of rows held out.")
@click.option("--seed", type=OptionalNumber(int), help="Seed of both the train/test split and the estimator.")
@click.option(
    "--model-uri",
    callback=blank_to_none,
    help="predict: runs:/<id>/model, models:/<name>/<version> or models:/<name>@<alias>.",
)
@click.option("--input", "input_uri", callback=blank_to_none, help="predict: dataset to score (path or s3:// URI).")
@click.option(
    "--from-run",
    callback=blank_to_none,
    metavar="RUN_ID",
    help="train_model: retrain on the data snapshot of this train_model run (runs train_model only, "
    "unless --step says train_model,predict).",
)
@click.option(
    "--parent-run-id",
    callback=blank_to_none,
    metavar="RUN_ID",
    help="Attach the step runs to this open parent run (from `parent-start`), e.g. one task per step.",
)
@click.option(
    "--force",
    "force",
    is_flag=False,
    flag_value="all",
    default=None,
    metavar="[STEPS]",
    help="Re-run steps even when a cached run matches: all (no value) or a comma list.",
)
@click.option("--dry-run", is_flag=True, help="Print, per step, whether it would run or be reused, and why.")
@click.option(
    "--record",
    is_flag=True,
    help="Record a pipeline run in MLflow even when nothing changed (its steps reused). Without it, an unchanged "
    "re-run on local files says 'up to date' and records nothing.",
)
@click.option("--verbose", "-v", is_flag=True, help="Show library logs and full tracebacks.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (the exit code says how it went).")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """Run the MLflow pipeline: its steps in order (python src/main.py --help lists them).

    Each step is a nested MLflow run under one parent run. Without options it runs every step on the local
    environment; `mlflow ui` from the repo root shows the runs.
    """
    if ctx.invoked_subcommand is None:
        _run(**options)


@command
def _run(
    steps: str | None,
    environment: str,
    from_run: str | None,
    force: str | None,
    dry_run: bool,
    record: bool,
    parent_run_id: str | None,
    quiet: bool,
    verbose: bool,
    **options: Any,
) -> int:
    from src.lib import uptodate

    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: give one")
    # Nothing changed since the last run: say so before paying for MLflow, pandas and the config models.
    current = None
    if not (dry_run or record or force or from_run or parent_run_id) and uptodate.applies():
        current = uptodate.fingerprint(environment, {"steps": steps or "all", **options})
        state = uptodate.check(environment, current)
        if state is not None:
            if not quiet:
                click.echo(
                    f"up to date: nothing changed since pipeline run {state.parent_run_id} ({environment}); no step "
                    "ran and nothing was recorded in MLflow (--record records a run, --force re-runs steps)"
                )
                click.echo("\n".join(state.lines))
            return 0

    from src.lib.console import ConsoleReporter, print_plan, print_summary, uptodate_lines
    from src.pipeline import check_from_run, parse_steps, plan_pipeline, run_pipeline

    # Retraining from a snapshot replaces the steps before the one that trains.
    selected = parse_steps("train_model" if from_run and (steps or "all") == "all" else steps or "all")
    forced = parse_steps(force) if force else []
    check_from_run(from_run, selected)
    settings = _settings(environment, overrides_from(**options))
    if dry_run:
        print_plan(plan_pipeline(settings, selected, forced, from_run), settings)
        return 0
    result = run_pipeline(
        settings,
        selected,
        reporter=ConsoleReporter(quiet=quiet),
        force=forced,
        parent_run_id=parent_run_id,
        from_run=from_run,
    )
    if not quiet:
        print_summary(settings, result)
    if current is not None:
        used = [
            u for s in result.steps for u in (*s.outputs.values(), *(v.partition(" ")[0] for v in s.inputs.values()))
        ]
        uptodate.record(
            environment, current, settings.tracking.uri, used, result.parent_run_id, uptodate_lines(settings, result)
        )
    return 0


ENVIRONMENT = click.option("--environment", "-e", default=None, help="Environment (default: the one given before).")


@cli.command()
@ENVIRONMENT
@command
def check(environment: str | None) -> int:
    """Check an environment: config, AWS credentials, storage, tracking server."""
    from src.check import run_checks
    from src.lib.console import print_checks

    environment = environment or click.get_current_context().find_root().params["environment"]
    results = run_checks(environment)
    print_checks(environment, results)
    return 0 if all(c.ok for c in results) else 1


@cli.command()
@ENVIRONMENT
@click.option("--version", "version", default=None, help="Registered model version to give the alias.")
@click.option("--rollback", is_flag=True, help="Give the alias back to the version that held it before.")
@click.option("--reason", default="", help="Why (kept on the model version).")
@command
def promote(environment: str | None, version: str | None, rollback: bool, reason: str) -> None:
    """Give a model version the champion alias by hand, or roll it back."""
    from src.lib.console import err
    from src.lib.store import connect
    from src.models.promotion import previous_champion, set_alias

    if bool(version) == rollback:
        raise PipelineError("give exactly one of --version N or --rollback")
    settings = _settings(environment)
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
    err.print(f"@{alias} of '{name}' is now version {version} (was {previous or 'unset'})")


@cli.command()
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
    type=int,
    envvar="MODEL_SERVER_WORKERS",
    help="Worker processes (default: serving.workers). Env: MODEL_SERVER_WORKERS.",
)
@click.option(
    "--timeout",
    type=float,
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
    from src.serving.server import serve_model

    serve_model(_settings(environment), model_uri, model_dir, host, port, workers, timeout)


@cli.command("export-model")
@ENVIRONMENT
@click.option("--model-uri", default=None, help="Model to export (default: models:/<name>@champion).")
@click.option("--out", required=True, help="Where to write the archive: a path or an s3:// URI (model.tar.gz).")
@command
def export_model(environment: str | None, model_uri: str | None, out: str) -> None:
    """Write a model as SageMaker's model.tar.gz (unpacked into /opt/ml/model, served by the image's `serve`)."""
    from src.lib.console import err
    from src.serving.server import export_model as export

    ref, written = export(_settings(environment), model_uri, out)
    err.print(f"exported {ref.uri} (version {ref.version or '-'}, run {ref.run_id}) to {written}", soft_wrap=True)


@cli.command("init")
@click.argument("data_file", required=False)
@click.option("--target", help="The column to predict (default without DATA_FILE: schema.target of the config).")
@click.option(
    "--task",
    type=click.Choice(["auto", "binary", "multiclass", "regression"]),
    default=None,
    help="auto (default): regression for a numeric target with many values, else binary or multiclass.",
)
@click.option("--id-column", help="The column that identifies a row (not a feature). Default: none.")
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
    from src.init_project import init_project, print_init

    print_init(init_project(data_file, **options))


@cli.command("parent-start")
@ENVIRONMENT
@command
def parent_start(environment: str | None) -> None:
    """Open a parent run for steps run as separate tasks; print its id (last line of stdout)."""
    from src.lib.runs import Runs
    from src.pipeline import pipeline_params

    settings = _settings(environment)
    runs = Runs(settings)
    runs.connect()
    click.echo(runs.start_parent(pipeline_params(settings, list(step_names()))))


@cli.command("parent-end")
@ENVIRONMENT
@click.option("--run-id", required=True, help="The parent run to close.")
@command
def parent_end(environment: str | None, run_id: str) -> int:
    """Close a parent run: FINISHED if every step under it finished, else FAILED (and exit 1)."""
    from src.lib.console import err
    from src.lib.runs import Runs

    runs = Runs(_settings(environment))
    runs.connect()
    status = runs.end_parent(run_id)
    err.print(f"parent run {run_id}: {status}")
    return 0 if status == "FINISHED" else 1


def main() -> None:
    """Run the command line, then end the process without the interpreter's teardown.

    Freeing the modules of MLflow, scikit-learn and pandas one by one costs about 1.5 s after the last line of
    work: the exit handlers run (logging is flushed, open MLflow runs are ended, bench/peak_rss.py reports) and
    the process ends with the command's exit code, as ``os._exit`` does.
    """
    from src.lib.memory import return_freed_memory

    return_freed_memory()  # before pandas or pyarrow allocate: a step's peak memory is the data it holds
    try:
        cli()
        code: int = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # a message: print it as the interpreter would
            print(exc.code, file=sys.stderr)
            code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
