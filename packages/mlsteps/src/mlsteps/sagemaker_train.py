"""A SageMaker training job in the project's image (the bring-your-own-container contract): ``docker run IMAGE
train`` runs ``python src/main.py sagemaker-train``.

SageMaker mounts the job's folders under ``/opt/ml`` and runs the image with the argument ``train``:

- ``input/config/hyperparameters.json``: the job's hyperparameters, every value a string. A name that is a
  command-line option of the training steps (``estimator``, ``seed``, ``test_size``) sets that option; any other
  name is an estimator hyperparameter, as ``--param NAME=VALUE`` (the value read as YAML: ``"0.5"`` is a float).
  SageMaker's own entries (``sagemaker_*``, ``_tuning_objective_metric``) are left out.
- ``input/data/<channel>/`` (``training`` unless ``--channel``): one CSV or Parquet file, the raw data, read as
  ``make_data`` reads ``catalog.raw``.
- ``model/``: where the trained model goes, in the layout of ``export-model``'s archive (SageMaker packs this
  folder into ``model.tar.gz``, which the image's ``serve`` reads from ``/opt/ml/model``).
- ``output/failure``: the reason when the job fails (its first line is the message), shown by SageMaker as the
  job's FailureReason; ``output/data/`` is uploaded as ``output.tar.gz``.

``PIPELINE_SAGEMAKER_ROOT`` moves the whole layout (default ``/opt/ml``). The variables of SageMaker's training
toolkit (``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``SM_INPUT_CONFIG_DIR``, ``SM_OUTPUT_DIR``,
``SM_OUTPUT_DATA_DIR``), when set, win over it; SageMaker itself sets none of them in a container without the
toolkit, so the fixed ``/opt/ml`` paths are the contract.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mlsteps.cli_options import ENVIRONMENT, command
from mlsteps.errors import ConfigError, PipelineError, UsageError

logger = logging.getLogger(__name__)

DEFAULT_ROOT = "/opt/ml"
DEFAULT_CHANNEL = "training"
# Entries SageMaker (its Python SDK, automatic model tuning) adds to the hyperparameters: not the model's.
SAGEMAKER_KEYS = ("sagemaker_", "_tuning_objective_metric")
DATA_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class JobPaths:
    """The folders and files of one training job."""

    hyperparameters: Path
    channel: Path
    model: Path
    failure: Path
    output_data: Path


def job_paths(channel: str, env: Mapping[str, str] | None = None) -> JobPaths:
    """Where the job's files are: under ``PIPELINE_SAGEMAKER_ROOT`` (default /opt/ml), or the toolkit's SM_*."""
    env = os.environ if env is None else env
    root = Path(env.get("PIPELINE_SAGEMAKER_ROOT") or DEFAULT_ROOT)
    config = Path(env.get("SM_INPUT_CONFIG_DIR") or root / "input" / "config")
    output = Path(env.get("SM_OUTPUT_DIR") or root / "output")
    return JobPaths(
        hyperparameters=config / "hyperparameters.json",
        channel=Path(env.get(f"SM_CHANNEL_{channel.upper()}") or root / "input" / "data" / channel),
        model=Path(env.get("SM_MODEL_DIR") or root / "model"),
        failure=output / "failure",
        output_data=Path(env.get("SM_OUTPUT_DATA_DIR") or output / "data"),
    )


def read_hyperparameters(path: Path) -> dict[str, str]:
    """The job's hyperparameters (none when the file is missing), SageMaker's own entries left out."""
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8") or "{}")
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}): give the job's hyperparameters as a JSON object") from exc
    if not isinstance(loaded, dict):
        raise UsageError(f"{path} holds a {type(loaded).__name__}, not a JSON object of names to values")
    return {str(k): str(v) for k, v in loaded.items() if not str(k).startswith(SAGEMAKER_KEYS)}


def hyperparameter_overrides(hyperparameters: Mapping[str, str], steps: list[str]) -> dict[str, Any]:
    """Config overrides from hyperparameters, as the command line makes them (``mlsteps.cli_options``): a name that
    is an option of one of ``steps`` sets it (typed as the option), any other is an estimator ``--param``."""
    import yaml

    from mlsteps.cli_options import declared_options, overrides_from

    options = {
        flag.lstrip("-").replace("-", "_"): (flag, spec)
        for flag, uses in declared_options().items()
        for step, spec in uses
        if step in steps and not spec["key"].startswith("catalog.")
    }
    params = next((f for f, (_, spec) in options.items() if spec.get("multiple")), None)
    values: dict[str, Any] = {}
    pairs: list[str] = []
    for name, text in hyperparameters.items():
        found = options.get(name.replace("-", "_"))
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"hyperparameter {name}={text!r} is not a value (read as YAML: {exc})") from exc
        if found is None or found[1].get("multiple"):
            pairs.append(f"{name}={text}")
            continue
        values[name.replace("-", "_")] = _typed(name, text, value, found[0], found[1].get("type"))
    if pairs:
        if params is None:
            raise UsageError(
                f"hyperparameters {', '.join(p.partition('=')[0] for p in pairs)}: no step of {', '.join(steps)} "
                f"takes estimator parameters; names it takes: {', '.join(sorted(options)) or 'none'}"
            )
        values[params] = tuple(pairs)
    return overrides_from(**values)


def _typed(name: str, text: str, value: Any, flag: str, kind: str | None) -> Any:
    """A hyperparameter's value as its option's type (what click makes of it on the command line)."""
    if kind == "flag":
        return bool(value)
    if kind not in ("int", "float"):
        return text
    try:
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise UsageError(f"hyperparameter {name}={text!r} is not a valid {kind} (as {flag} takes)") from None


def raw_data_file(channel: Path, name: str) -> Path:
    """The one CSV or Parquet file of the channel (or the one named as ``catalog.raw``'s file, among several)."""
    if not channel.is_dir():
        there = sorted(p.name for p in channel.parent.iterdir() if p.is_dir()) if channel.parent.is_dir() else []
        raise UsageError(
            f"no data channel '{channel.name}': {channel} does not exist (channels there: {', '.join(there) or 'none'})"
            f"; give the training job an input channel named '{channel.name}' with the raw CSV or Parquet file, or "
            "choose the channel with --channel (PIPELINE_SAGEMAKER_CHANNEL)"
        )
    files = sorted(p for p in channel.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
    named = [p for p in files if p.name == name]
    if len(files) == 1 or len(named) == 1:
        return (named or files)[0]
    if not files:
        found = sorted(p.name for p in channel.rglob("*") if p.is_file())[:10]
        raise UsageError(
            f"no CSV or Parquet file in {channel} (found: {', '.join(found) or 'nothing'}): put the raw data there "
            "as one .csv or .parquet file"
        )
    raise UsageError(
        f"{len(files)} data files in {channel} ({', '.join(p.name for p in files[:10])}): keep one, or name the one "
        f"to train on '{name}' (catalog.raw's file name)"
    )


@dataclass(frozen=True)
class TrainedModel:
    """What a job left: the model's URI, where its files went, the pipeline run."""

    model_uri: str
    model_dir: Path
    parent_run_id: str


def train_job(environment: str, channel: str, quiet: bool = False) -> TrainedModel:
    """Run a training job: hyperparameters, the channel's data, the training steps, the model into its folder.

    Raises:
        PipelineError: after writing its message into the job's failure file (any other error too).
    """
    paths = job_paths(channel)
    with contextlib.suppress(OSError):
        paths.failure.unlink()  # a failure left by an earlier run in the same folder
    try:
        return _train(environment, paths, quiet)
    except BaseException as exc:
        write_failure(paths.failure, exc)
        raise


def _train(environment: str, paths: JobPaths, quiet: bool) -> TrainedModel:
    from mlsteps.config import load_config
    from mlsteps.console import ConsoleReporter, print_summary
    from mlsteps.discovery import load_steps
    from mlsteps.pipeline import run_pipeline

    if paths.model.is_dir() and any(paths.model.iterdir()):
        raise UsageError(f"the model folder {paths.model} is not empty: the job writes its model there; empty it")
    hyperparameters = read_hyperparameters(paths.hyperparameters)
    base = load_config(environment)
    all_steps = load_steps()
    model_sets = {n for n, spec in base.catalog.items() if spec.kind == "model"}
    writers = [i for i, s in enumerate(all_steps.values()) if model_sets & set(s.writes)]
    if not writers:
        raise ConfigError(f"no step writes a model (a catalog entry of kind model): {', '.join(all_steps)}")
    steps = list(all_steps)[: writers[-1] + 1]
    model_set = min(model_sets & set(all_steps[steps[-1]].writes))
    raw = raw_data_file(paths.channel, Path(base.dataset("raw").path or "").name)
    overrides = {**hyperparameter_overrides(hyperparameters, steps), "catalog": {"raw": {"path": str(raw)}}}
    if base.local_only and "tracking.uri" not in base.overrides:
        # No tracking server: the runs go into the job's output, which SageMaker uploads as output.tar.gz.
        paths.output_data.mkdir(parents=True, exist_ok=True)
        overrides["tracking"] = {"uri": f"sqlite:///{paths.output_data.resolve() / 'mlflow.db'}"}
    try:
        settings = load_config(environment, overrides=overrides)
    except ConfigError as exc:
        if not hyperparameters:
            raise
        raise ConfigError(f"the hyperparameters in {paths.hyperparameters} are not valid: {exc}") from exc
    job = os.environ.get("TRAINING_JOB_NAME")
    result = run_pipeline(
        settings,
        steps,
        reporter=ConsoleReporter(quiet=quiet),
        extra_params={"sagemaker.training_job": job} if job else None,
    )
    if not quiet:
        print_summary(settings, result)
    outputs = result.step(steps[-1]).outputs
    model_uri = outputs.get(f"registered_{model_set}") or outputs[model_set]
    write_model(settings, model_uri, paths.model)
    return TrainedModel(model_uri, paths.model, result.parent_run_id)


def write_model(settings: Any, model_uri: str, folder: Path) -> None:
    """The model's files into ``folder``, as ``export-model`` archives them (what ``serve --model-dir`` reads)."""
    import tempfile

    from mlsteps.serving.owned import owned_folder
    from mlsteps.serving.server import resolve_model

    with owned_folder(Path(tempfile.gettempdir()), "mlsteps-sagemaker-model-") as scratch:
        path, _ref = resolve_model(settings, model_uri, None, scratch)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copytree(path, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".lock"))


def write_failure(path: Path, exc: BaseException) -> None:
    """The reason of a failed job, first line first; the traceback below it when the error was unexpected."""
    if isinstance(exc, PipelineError):
        text = f"{exc}\n"
    elif isinstance(exc, KeyboardInterrupt):
        text = "stopped by a signal (SIGTERM or Ctrl-C) before the model was written\n"
    else:
        text = f"unexpected error: {type(exc).__name__}: {exc}\n\n{''.join(traceback.format_exception(exc))}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        logger.warning("cannot write the failure file %s: %s", path, error)


@click.command("sagemaker-train")
@ENVIRONMENT
@click.option(
    "--channel",
    envvar="PIPELINE_SAGEMAKER_CHANNEL",
    default=DEFAULT_CHANNEL,
    show_default=True,
    help="The input channel holding the raw data (/opt/ml/input/data/<channel>/). Env: PIPELINE_SAGEMAKER_CHANNEL.",
)
@command
def sagemaker_train(environment: str | None, channel: str) -> None:
    """Run a SageMaker training job (the image's `train`): hyperparameters.json, the channel's CSV or Parquet file,
    the training steps, the model into /opt/ml/model (PIPELINE_SAGEMAKER_ROOT moves /opt/ml); on failure the
    reason in /opt/ml/output/failure."""
    from mlsteps.console import err

    root = click.get_current_context().find_root()
    trained = train_job(environment or root.params["environment"], channel, quiet=bool(root.params.get("quiet")))
    err.print(f"model {trained.model_uri} written to {trained.model_dir}", soft_wrap=True, markup=False)
