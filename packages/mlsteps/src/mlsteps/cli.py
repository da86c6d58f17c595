"""Command line of the pipeline: parse options, load the config once, dispatch, report. No business logic here.

A project's ``src/main.py`` hands over to ``main()``:

python src/main.py                                   # every step, local environment
python src/main.py --step train_model --environment dev
cd src && python main.py --step make_data,feat_data
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any

import click

from mlsteps.cli_options import blank_to_none, command, load_settings, overrides_from, step_options
from mlsteps.commands import COMMANDS
from mlsteps.discovery import declarations, step_names
from mlsteps.sagemaker_train import sagemaker_train

logger = logging.getLogger(__name__)
# The steps that snapshot their inputs, and so retrain from a run's snapshot with --from-run.
_TRAINERS = ",".join(d.name for d in declarations() if d.snapshot) or "(no step snapshots its inputs)"


class _Pipeline(click.Group):
    """The command line: a step named where a command goes (``main.py predict``) is answered with how to run it."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and args[0] in step_names():
            shown = " ".join(args[1:])
            raise click.UsageError(f"'{args[0]}' is a step: python src/main.py --step {args[0]} {shown}".rstrip(), ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=_Pipeline, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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
@step_options
@click.option(
    "--from-run",
    callback=blank_to_none,
    metavar="RUN_ID",
    help=f"{_TRAINERS}: retrain on the data snapshot of this {_TRAINERS} run (runs {_TRAINERS} only, unless "
    "--step names the steps after it too).",
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
@click.option(
    "--engine",
    type=click.Choice(["pandas", "dask"]),
    default=None,
    help="What runs the data steps: pandas in this process, or dask on a cluster (engine.address, else a "
    "LocalCluster started for the run). Default: engine.kind in the config (pandas).",
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
    engine: str | None,
    **options: Any,
) -> int:
    from mlsteps.reuse import local as uptodate

    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: give one")
    # Nothing changed since the last run: say so before paying for MLflow, pandas and the config models.
    current = None
    if not (dry_run or record or force or from_run or parent_run_id) and uptodate.applies():
        current = uptodate.fingerprint(environment, {"steps": steps or "all", "engine": engine, **options})
        state = uptodate.check(environment, current)
        if state is not None:
            if not quiet:
                click.echo(
                    f"up to date: nothing changed since pipeline run {state.parent_run_id} ({environment}); no step "
                    "ran and nothing was recorded in MLflow (--record records a run, --force re-runs steps)"
                )
                click.echo("\n".join(state.lines))
            return 0

    from mlsteps.console import ConsoleReporter, print_plan, print_summary, uptodate_lines
    from mlsteps.pipeline import check_from_run, parse_steps, plan_pipeline, run_pipeline

    # Retraining from a snapshot replaces the steps before the one that trains.
    selected = parse_steps(_TRAINERS if from_run and (steps or "all") == "all" else steps or "all")
    forced = parse_steps(force) if force else []
    check_from_run(from_run, selected)
    overrides = overrides_from(**options) | ({"engine": {"kind": engine}} if engine else {})
    settings = load_settings(environment, overrides)
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


for _command in COMMANDS:
    cli.add_command(_command)
cli.add_command(sagemaker_train)  # the image's `train`: a SageMaker training job


def main() -> None:
    """Run the command line, then end the process without the interpreter's teardown.

    Freeing the modules of MLflow, scikit-learn and pandas one by one costs about 1.5 s after the last line of
    work: the exit handlers run (logging is flushed, open MLflow runs are ended, bench/peak_rss.py reports) and
    the process ends with the command's exit code, as ``os._exit`` does.
    """
    from mlsteps.memory import return_freed_memory

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
