"""Command line of the pipeline: parse options, load config, run, report. No business logic here.

    python src/main.py                                   # every step, local environment
    python src/main.py --step train_model --environment dev
    cd src && python main.py --step make_data,feat_data
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

# Run from the source tree (python src/main.py or python main.py inside src/): make `src` importable.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import click  # noqa: E402

from src.lib.errors import PipelineError, StepError  # noqa: E402

logger = logging.getLogger("src.main")

STEP_NAMES = ("make_data", "feat_data", "train_model", "predict")


class _Optional(click.ParamType):
    """An int/float option where an empty string means "not given" (MLproject passes "" for unset)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = kind.__name__

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or value == "":
            return None
        try:
            return self.kind(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a valid {self.name}", param, ctx)


def _blank_to_none(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    return None if value == "" else value


def _parse_param(text: str) -> tuple[str, Any]:
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{text!r} is not KEY=VALUE (e.g. --param C=0.5)", param_hint="--param")
    return key.strip(), yaml.safe_load(raw)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--step", "-s", "steps", default="all", show_default=True, callback=_blank_to_none,
              help=f"Step(s) to run: all, or a comma list of {', '.join(STEP_NAMES)}.")
@click.option("--environment", "-e", default="local", show_default=True,
              help="Config environment: a file in config/ (local, dev, prd).")
@click.option("--estimator", callback=_blank_to_none,
              help="train_model: logistic_regression, random_forest or gradient_boosting.")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="train_model: estimator hyperparameter (repeatable), e.g. -p C=0.5.")
@click.option("--test-size", type=_Optional(float), help="feat_data: share of rows held out.")
@click.option("--seed", type=_Optional(int), help="Seed of both the train/test split and the estimator.")
@click.option("--model-uri", callback=_blank_to_none,
              help="predict: runs:/<id>/model, models:/<name>/<version> or models:/<name>@<alias>.")
@click.option("--input", "input_uri", callback=_blank_to_none, help="predict: dataset to score (path or s3:// URI).")
@click.option("--from-run", callback=_blank_to_none, metavar="RUN_ID",
              help="train_model: retrain on the data snapshot of this train_model run (runs train_model only, "
                   "unless --step says train_model,predict).")
@click.option("--parent-run-id", callback=_blank_to_none, metavar="RUN_ID",
              help="Attach the step runs to this open parent run (from `parent-start`), e.g. one task per step.")
@click.option("--force", "force", is_flag=False, flag_value="all", default=None, metavar="[STEPS]",
              help="Re-run steps even when a cached run matches: all (no value) or a comma list.")
@click.option("--dry-run", is_flag=True, help="Print, per step, whether it would run or be reused, and why.")
@click.option("--verbose", "-v", is_flag=True, help="Show library logs and full tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    steps: str | None,
    environment: str,
    estimator: str | None,
    params: tuple[str, ...],
    test_size: float | None,
    seed: int | None,
    model_uri: str | None,
    input_uri: str | None,
    from_run: str | None,
    parent_run_id: str | None,
    force: str | None,
    dry_run: bool,
    verbose: bool,
) -> None:
    """Run the MLflow pipeline: make_data -> feat_data -> train_model -> predict.

    Each step is a nested MLflow run under one parent run. Without options it runs every step on the local
    environment; `mlflow ui` from the repo root shows the runs.
    """
    if ctx.invoked_subcommand is not None:
        return
    _configure_logging(verbose)
    overrides = _overrides(estimator, params, test_size, seed, model_uri, input_uri)
    steps = steps or "all"
    if from_run:
        # Retraining from a snapshot replaces make_data and feat_data.
        steps = "train_model" if steps == "all" else steps
        overrides.setdefault("train_model", {})["from_run"] = from_run
    sys.exit(_run(environment, steps, overrides, force or "", dry_run, verbose, parent_run_id))


@cli.command()
@click.option("--environment", "-e", default=None, help="Environment to check (default: the one given before).")
@click.pass_context
def check(ctx: click.Context, environment: str | None) -> None:
    """Check an environment: config, AWS credentials, storage, tracking server."""
    from src.check import run_checks
    from src.lib.console import print_checks

    _configure_logging(False)
    environment = environment or ctx.parent.params["environment"]  # type: ignore[union-attr]
    results = run_checks(environment)
    print_checks(environment, results)
    sys.exit(0 if all(c.ok for c in results) else 1)


@cli.command()
@click.option("--environment", "-e", default=None, help="Environment (default: the one given before).")
@click.option("--version", "version", default=None, help="Registered model version to give the alias.")
@click.option("--rollback", is_flag=True, help="Give the alias back to the version that held it before.")
@click.option("--reason", default="", help="Why (kept on the model version).")
@click.pass_context
def promote(ctx: click.Context, environment: str | None, version: str | None, rollback: bool, reason: str) -> None:
    """Give a model version the champion alias by hand, or roll it back."""
    from src.lib.console import err, print_error
    from src.lib.tracking import Tracker

    _configure_logging(False)
    try:
        if bool(version) == rollback:
            raise PipelineError("give exactly one of --version N or --rollback")
        settings = _settings(ctx, environment)
        tracker = Tracker(settings)
        tracker.connect()
        name, alias = settings.train_model.registered_model_name, settings.gate.alias
        if rollback:
            version = _previous_champion(tracker, name, alias)
        previous = tracker.set_alias(name, str(version), alias, by="manual (promote command)",
                                     reason=reason or ("rollback" if rollback else "promoted by hand"))
    except PipelineError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    err.print(f"@{alias} of '{name}' is now version {version} (was {previous or 'unset'})")


def _previous_champion(tracker: Any, name: str, alias: str) -> str:
    from mlflow import MlflowClient

    current = tracker.alias_version(name, alias)
    if current is None:
        raise PipelineError(f"no version of '{name}' holds @{alias}: nothing to roll back")
    previous = MlflowClient().get_model_version(name, current).tags.get(f"{alias}.previous_version", "none")
    if previous == "none":
        raise PipelineError(f"version {current} was the first @{alias} of '{name}': there is nothing to roll back to")
    return previous


@cli.command()
@click.option("--environment", "-e", default=None, help="Environment (default: the one given before).")
@click.option("--model-uri", default=None, help="Model to serve (default: models:/<name>@champion).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.pass_context
def serve(ctx: click.Context, environment: str | None, model_uri: str | None, host: str, port: int) -> None:
    """Serve a model with MLflow's scoring server: GET /ping, POST /invocations (CSV or JSON)."""
    from src.lib.console import err, print_error
    from src.lib.tracking import Tracker

    _configure_logging(False)
    try:
        settings = _settings(ctx, environment)
        tracker = Tracker(settings)
        tracker.connect()
        name, alias = settings.train_model.registered_model_name, settings.gate.alias
        if model_uri is None:
            if tracker.alias_version(name, alias) is None:
                raise PipelineError(f"no version of '{name}' holds @{alias}: train one that passes the gate, "
                                    "promote one (python src/main.py promote --version N), or pass --model-uri")
            model_uri = f"models:/{name}@{alias}"
        ref = tracker.describe_model(model_uri)
        from src.serving import build_app

        app = build_app(model_uri)
    except PipelineError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    import uvicorn

    err.print(f"serving {model_uri} (version {ref.version or '-'}) on http://{host}:{port}  "
              "(GET /ping, POST /invocations; Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@cli.command("parent-start")
@click.option("--environment", "-e", default=None, help="Environment (default: the one given before).")
@click.pass_context
def parent_start(ctx: click.Context, environment: str | None) -> None:
    """Open a parent run for steps run as separate tasks; print its id (last line of stdout)."""
    from src.lib.console import print_error
    from src.lib.tracking import Tracker
    from src.pipeline import STEPS, pipeline_params

    _configure_logging(False)
    try:
        settings = _settings(ctx, environment)
        tracker = Tracker(settings)
        tracker.connect()
        run_id = tracker.start_parent(pipeline_params(settings, list(STEPS)))
    except PipelineError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    click.echo(run_id)


@cli.command("parent-end")
@click.option("--environment", "-e", default=None, help="Environment (default: the one given before).")
@click.option("--run-id", required=True, help="The parent run to close.")
@click.pass_context
def parent_end(ctx: click.Context, environment: str | None, run_id: str) -> None:
    """Close a parent run: FINISHED if every step under it finished, else FAILED (and exit 1)."""
    from src.lib.console import err, print_error
    from src.lib.tracking import Tracker

    _configure_logging(False)
    try:
        settings = _settings(ctx, environment)
        tracker = Tracker(settings)
        tracker.connect()
        status = tracker.end_parent(run_id)
    except PipelineError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    err.print(f"parent run {run_id}: {status}")
    sys.exit(0 if status == "FINISHED" else 1)


def _settings(ctx: click.Context, environment: str | None) -> Any:
    from src.lib.config import load_config

    return load_config(environment or ctx.parent.params["environment"])  # type: ignore[union-attr]


def _overrides(
    estimator: str | None,
    params: tuple[str, ...],
    test_size: float | None,
    seed: int | None,
    model_uri: str | None,
    input_uri: str | None,
) -> dict[str, Any]:
    train: dict[str, Any] = {}
    if estimator:
        train["estimator"] = estimator
    if seed is not None:
        train["seed"] = seed
    if params:
        train["hyperparameters"] = {"__chosen__": dict(_parse_param(p) for p in params)}
    overrides: dict[str, Any] = {}
    if train:
        overrides["train_model"] = train
    if test_size is not None or seed is not None:
        overrides["feat_data"] = {k: v for k, v in {"test_size": test_size, "seed": seed}.items() if v is not None}
    if model_uri:
        overrides["predict"] = {"model_uri": model_uri}
    if input_uri:
        overrides["data"] = {"predict_input": input_uri}
    return overrides


def _run(environment: str, steps_text: str, overrides: dict[str, Any], force_text: str, dry_run: bool,
         verbose: bool, parent_run_id: str | None = None) -> int:
    from src.lib.config import load_config
    from src.lib.console import ConsoleReporter, print_error, print_plan, print_summary
    from src.pipeline import parse_steps, plan_pipeline, run_pipeline

    # SIGTERM (docker stop, a scheduler's timeout) ends the runs as KILLED, like Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        steps = parse_steps(steps_text)
        force = parse_steps(force_text) if force_text else []
        from_run = overrides.get("train_model", {}).get("from_run")
        if from_run and {"make_data", "feat_data"} & set(steps):
            raise PipelineError(
                "--from-run trains on a snapshot instead of make_data and feat_data's output: "
                "use it with --step train_model or --step train_model,predict"
            )
        settings = load_config(environment, overrides=_resolve_chosen_estimator(environment, overrides))
        if dry_run:
            print_plan(plan_pipeline(settings, steps, force))
            return 0
        result = run_pipeline(settings, steps, reporter=ConsoleReporter(), force=force, parent_run_id=parent_run_id)
    except KeyboardInterrupt as exc:
        print_error("interrupted: the runs in progress are marked KILLED")
        return 143 if isinstance(exc, Terminated) else 130
    except PipelineError as exc:
        print_error(str(exc), exc.cause if isinstance(exc, StepError) else None, verbose)
        return exc.exit_code
    print_summary(settings, result)
    return 0


def _resolve_chosen_estimator(environment: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """``--param`` applies to the estimator in use: the one given by --estimator, else the config's."""
    train = overrides.get("train_model", {})
    chosen = train.get("hyperparameters", {}).pop("__chosen__", None)
    if chosen is None:
        return overrides
    estimator = train.get("estimator")
    if estimator is None:
        from src.lib.config import load_config

        estimator = load_config(environment).train_model.estimator
    train["hyperparameters"] = {estimator: chosen}
    return overrides


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that the runs end as KILLED."""


def _raise_keyboard_interrupt(_signum: int, _frame: Any) -> None:
    raise Terminated


def _configure_logging(verbose: bool) -> None:
    import os

    from rich.logging import RichHandler

    # MLflow configures its own loggers when imported; this is the setting it reads.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "ERROR")

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=verbose)],
        force=True,
    )
    logging.getLogger("src").setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:
        for noisy in ("mlflow", "alembic", "urllib3", "botocore", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        import warnings

        warnings.filterwarnings("ignore")


if __name__ == "__main__":
    cli()
